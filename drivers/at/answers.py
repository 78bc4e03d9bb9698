"""What each command can answer: the declared shape of an answer, I/O-free.

An answer is only what its command can answer. A line that arrives while a command waits is part
of its answer when it carries one of the command's prefixes (``+CSQ:`` only to ``AT+CSQ``) or, for
commands answered by a bare value, when it has the value's shape (an IMEI is 14-17 digits). Any
other line is not the answer, whatever it says: a ``+X:``/``^X:`` line or a known status line is
unsolicited, the rest is stray. Without this, a Huawei's ``^HWNAT:06`` became the manufacturer
and a ZTE's unsolicited ``+CSQ: 17,99`` the IMEI (issue 11, failure 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FREE_TEXT = None
"""Shape of free-text answers (manufacturer, model, revision): any line that is not a status."""


@dataclass(frozen=True, slots=True)
class AnswerShape:
    """``value`` must fullmatch an answer line's value (after its prefix, quotes and blanks
    stripped) for the line to be part of the answer; ``complete`` says that one such line is the
    whole answer, so that a firmware that never sends the final ``OK`` after it (Wavecom's
    ``+CPIN: READY``) can be completed after a short grace by the caller that allows it. When the
    pattern has a group, the group is the value proper (:meth:`extract`): the IMEI inside
    ``IMEI356938030000000`` or ``356938030000000,NL2A62Z0N5``."""

    value: re.Pattern[str] | None = FREE_TEXT
    complete: bool = False

    def accepts(self, value: str) -> bool:
        return self.value is None or self.value.fullmatch(_clean(value)) is not None

    def extract(self, value: str) -> str:
        """The value proper of an accepted answer; "" if it does not have the shape."""
        if self.value is None:
            return _clean(value)
        match = self.value.fullmatch(_clean(value))
        if match is None:
            return ""
        return match.group(1) if match.groups() else match.group(0)


def _clean(value: str) -> str:
    return value.strip().strip('"').strip()


# An IMEI may carry a label (Gammu libgammu/phone/at/atgen.c strips "IMEI" after +CGSN:, seen on
# Motorola) or a serial number after a comma (ModemManager src/tests/test-modem-helpers.c,
# "IMEI + serial number").
IMEI = AnswerShape(re.compile(r'(?:IMEI\s*:?\s*)?"?([0-9]{14,17})"?(?:\s*,.*)?', re.IGNORECASE))
IMSI = AnswerShape(re.compile(r"[0-9]{6,15}"))
ICCID = AnswerShape(re.compile(r"[0-9A-Fa-f]{18,22}"))
CPIN = AnswerShape(re.compile(r"[A-Za-z][A-Za-z0-9 _-]*"), complete=True)  # READY, SIM PIN, PH-NET PUK...

SHAPES: dict[str, AnswerShape] = {
    "AT+CGSN": IMEI, "AT+GSN": IMEI,
    "AT+CIMI": IMSI,
    "AT+CPIN?": CPIN,
    # The vendors' ICCID commands (see drivers.profiles): 19-20 digits, some with an F pad.
    "AT+CCID": ICCID, "AT+CICCID": ICCID, "AT^ICCID?": ICCID, "AT+QCCID": ICCID,
    "AT+ZGETICCID": ICCID, "AT+ZICCID?": ICCID, "AT!ICCID?": ICCID, "AT^SCID": ICCID,
}


def shape_of(command_text: str) -> AnswerShape:
    """The declared shape of ``command_text``'s answer; free text for undeclared commands."""
    return SHAPES.get(command_text.upper(), AnswerShape())
