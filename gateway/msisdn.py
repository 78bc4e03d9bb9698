"""A SIM's own number, found the three ways rigs have: the SIM says it (``AT+CNUM``), the
operator says it (a USSD code, its answer matched by a pattern), or the supplier wrote it in the
config by ICCID. In that order: what the SIM or network says beats a hand-kept list."""

from __future__ import annotations

import re

from drivers.modem import Modem
from gateway.config import UssdNumber


def ussd_rule(rules: tuple[UssdNumber, ...], operator: str | None, imsi: str) -> UssdNumber | None:
    """The rule for the SIM's operator: by the name AT+COPS gives, or by its IMSI's MCC+MNC."""
    for rule in rules:
        if operator and rule.operator.lower() == operator.lower():
            return rule
        if rule.operator.isascii() and rule.operator.isdigit() and imsi.startswith(rule.operator):
            return rule
    return None


def number_in(text: str, pattern: str) -> str | None:
    match = re.search(pattern, text)
    if match is None:
        return None
    digits = re.sub(r"[^0-9+]", "", match.group(1) if match.groups() else match.group(0))
    if not re.fullmatch(r"\+?[0-9]{5,15}", digits):
        return None
    return digits if digits.startswith("+") or len(digits) < 11 else "+" + digits


async def discover(modem: Modem, *, rules: tuple[UssdNumber, ...], numbers: dict[str, str],
                   ussd_timeout: float = 20.0) -> tuple[str | None, str | None]:
    """(number, how it was found) for the SIM now in ``modem``; (None, None) if no way knows."""
    identity = modem.identity
    if identity.msisdn:
        return identity.msisdn, "cnum"
    rule = ussd_rule(rules, modem.health.operator, identity.imsi)
    if rule is not None:
        text = await modem.ussd(rule.code, timeout=ussd_timeout)
        number = number_in(text, rule.pattern) if text else None
        if number:
            return number, "ussd"
    if identity.iccid in numbers:
        return numbers[identity.iccid], "config"
    return None, None
