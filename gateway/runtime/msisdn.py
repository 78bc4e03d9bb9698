"""A SIM's own number, found the three ways rigs have: the SIM says it (``AT+CNUM``), the
operator says it (a USSD code, its answer matched by a pattern), or the supplier wrote it in the
config by ICCID. In that order: what the SIM or network says beats a hand-kept list. The rules
are data in :mod:`gateway.domain.numbering`; this module asks the modem."""

from __future__ import annotations

from drivers.modem import Modem
from gateway.domain.numbering import UssdNumber, ussd_rule, number_in


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
