"""Numbers: which country a number or a SIM belongs to (enough for the marketplace's criteria),
and how an operator's USSD answer tells a SIM its own number. I/O-free: the modem that asks the
operator is :mod:`gateway.runtime.msisdn`'s."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Country calling codes of the markets suppliers sell in, longest first; enough for criteria.
_COUNTRY_CODES = (("380", "UA"), ("375", "BY"), ("374", "AM"), ("373", "MD"), ("371", "LV"), ("370", "LT"),
                  ("372", "EE"), ("995", "GE"), ("998", "UZ"), ("996", "KG"), ("992", "TJ"), ("993", "TM"),
                  ("994", "AZ"), ("48", "PL"), ("49", "DE"), ("44", "GB"), ("33", "FR"), ("34", "ES"),
                  ("39", "IT"), ("31", "NL"), ("90", "TR"), ("91", "IN"), ("62", "ID"), ("63", "PH"),
                  ("84", "VN"), ("66", "TH"), ("55", "BR"), ("52", "MX"), ("1", "US"), ("7", "RU"))


# Mobile country codes (the IMSI's first three digits) of the same markets.
_MCC = {"250": "RU", "255": "UA", "257": "BY", "401": "KZ", "283": "AM", "259": "MD", "247": "LV", "246": "LT",
        "248": "EE", "282": "GE", "434": "UZ", "437": "KG", "436": "TJ", "438": "TM", "400": "AZ", "260": "PL",
        "262": "DE", "234": "GB", "235": "GB", "208": "FR", "214": "ES", "222": "IT", "204": "NL", "286": "TR",
        "404": "IN", "405": "IN", "510": "ID", "515": "PH", "452": "VN", "520": "TH", "724": "BR", "334": "MX",
        **{str(mcc): "US" for mcc in range(310, 317)}}


def country_of_imsi(imsi: str | None) -> str | None:
    """ISO country of a SIM from its IMSI's mobile country code; None if unknown."""
    return _MCC.get((imsi or "")[:3])


def country_of(number: str) -> str | None:
    """ISO country of an international number (+7 -> RU); None for national or unknown forms."""
    if not number.startswith("+"):
        return None
    digits = number[1:]
    if digits.startswith(("76", "77")):
        return "KZ"
    for code, country in _COUNTRY_CODES:
        if digits.startswith(code):
            return country
    return None


@dataclass(frozen=True, slots=True)
class UssdNumber:
    """How an operator tells a SIM its own number: a USSD code and a pattern for the answer."""

    operator: str  # as AT+COPS names it, or the IMSI's MCC+MNC prefix
    code: str
    pattern: str  # a regular expression; group 1 (or the whole match) is the number


def ussd_rule(rules: tuple[UssdNumber, ...], operator: str | None, imsi: str) -> UssdNumber | None:
    """The rule for the SIM's operator: by the name AT+COPS gives, or by its IMSI's MCC+MNC."""
    for rule in rules:
        if operator and rule.operator.lower() == operator.lower():
            return rule
        if rule.operator.isascii() and rule.operator.isdigit() and imsi.startswith(rule.operator):
            return rule
    return None


def number_in(text: str, pattern: str) -> str | None:
    """The number in an operator's USSD answer, normalised; None when the answer has none."""
    match = re.search(pattern, text)
    if match is None:
        return None
    digits = re.sub(r"[^0-9+]", "", match.group(1) if match.groups() else match.group(0))
    if not re.fullmatch(r"\+?[0-9]{5,15}", digits):
        return None
    return digits if digits.startswith("+") or len(digits) < 11 else "+" + digits
