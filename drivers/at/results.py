"""Final result codes of TS 27.007 §4.2 / 27.005 §3.2.5, plus the vendor spellings seen in the wild.

An error code is matched in both its forms: numeric (``AT+CMEE=1``: ``+CMS ERROR: 321``) and
verbose (``AT+CMEE=2``: ``+CMS ERROR: invalid memory index``). The verbose texts are the spec's
own, from the tables of TS 27.007 §9.2 (``+CME ERROR``) and TS 27.005 §3.2.5 (``+CMS ERROR``);
firmwares vary their case, spacing and punctuation, and write ``(U)SIM`` or ``SIM``, so texts are
compared after normalising (lower case, letters and digits only), as ModemManager's
``src/mm-error-helpers.c`` does for its ``me_error_strings``/``msg_error_strings`` tables.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class ResultKind(enum.Enum):
    OK = "ok"
    ERROR = "error"
    CME_ERROR = "cme_error"
    CMS_ERROR = "cms_error"
    NOT_SUPPORTED = "not_supported"  # Huawei/ZTE "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS"
    NO_CARRIER = "no_carrier"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    NO_DIALTONE = "no_dialtone"
    CONNECT = "connect"
    TOO_LARGE = "too_large"  # the response passed the protocol's caps and was dropped as garbage


@dataclass(frozen=True, slots=True)
class FinalResult:
    """How a command ended: ``text`` is the final line as sent; ``code`` is the numeric CME/CMS
    code, given by the modem or looked up from its verbose text. ``implied`` marks an answer that
    was complete by its own shape and got no final line at all (Wavecom's ``+CPIN: READY``)."""

    kind: ResultKind
    text: str
    code: int | None = None
    implied: bool = False

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK


_PLAIN: dict[str, ResultKind] = {
    "OK": ResultKind.OK,
    "ERROR": ResultKind.ERROR,
    "COMMAND NOT SUPPORT": ResultKind.NOT_SUPPORTED,
    "COMMAND NOT SUPPORTED": ResultKind.NOT_SUPPORTED,
    "TOO MANY PARAMETERS": ResultKind.NOT_SUPPORTED,
    "NO CARRIER": ResultKind.NO_CARRIER,
    "BUSY": ResultKind.BUSY,
    "NO ANSWER": ResultKind.NO_ANSWER,
    "NO DIALTONE": ResultKind.NO_DIALTONE,
    "NO DIAL TONE": ResultKind.NO_DIALTONE,
}

# Numeric result codes (ATV0): a modem that lost its ATV1 after a reset still answers.
_NUMERIC: dict[str, ResultKind] = {"0": ResultKind.OK, "4": ResultKind.ERROR, "3": ResultKind.NO_CARRIER}

CME_TEXTS: dict[int, str] = {
    # TS 27.007 §9.2.1 "General errors"
    0: "phone failure", 1: "no connection to phone", 2: "phone-adaptor link reserved",
    3: "operation not allowed", 4: "operation not supported", 5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required", 7: "PH-FSIM PUK required", 10: "SIM not inserted",
    11: "SIM PIN required", 12: "SIM PUK required", 13: "SIM failure", 14: "SIM busy",
    15: "SIM wrong", 16: "incorrect password", 17: "SIM PIN2 required", 18: "SIM PUK2 required",
    20: "memory full", 21: "invalid index", 22: "not found", 23: "memory failure",
    24: "text string too long", 25: "invalid characters in text string", 26: "dial string too long",
    27: "invalid characters in dial string", 30: "no network service", 31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required", 41: "network personalization PUK required",
    42: "network subset personalization PIN required", 43: "network subset personalization PUK required",
    44: "service provider personalization PIN required", 45: "service provider personalization PUK required",
    46: "corporate personalization PIN required", 47: "corporate personalization PUK required",
    48: "hidden key required", 49: "EAP method not supported", 50: "incorrect parameters",
    100: "unknown",
}

CMS_TEXTS: dict[int, str] = {
    # TS 27.005 §3.2.5 "Message Service Failure Result Code +CMS ERROR"
    300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    303: "operation not supported", 304: "invalid PDU mode parameter", 305: "invalid text mode parameter",
    310: "(U)SIM not inserted", 311: "(U)SIM PIN required", 312: "PH-(U)SIM PIN required",
    313: "(U)SIM failure", 314: "(U)SIM busy", 315: "(U)SIM wrong", 316: "(U)SIM PUK required",
    317: "(U)SIM PIN2 required", 318: "(U)SIM PUK2 required", 320: "memory failure",
    321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    331: "no network service", 332: "network timeout", 340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _index(table: dict[int, str], *, usim: bool) -> dict[str, int]:
    """Normalised text -> code; ``(U)SIM`` entries are also found as ``SIM`` and ``USIM``."""
    index: dict[str, int] = {}
    for code, text in table.items():
        spellings = {text}
        if usim and "(U)SIM" in text:
            spellings |= {text.replace("(U)SIM", "SIM"), text.replace("(U)SIM", "USIM")}
        for spelling in spellings:
            index.setdefault(_normalise(spelling), code)
    return index


_CME_BY_TEXT = _index(CME_TEXTS, usim=False)
_CMS_BY_TEXT = _index(CMS_TEXTS, usim=True)
# Seen in the field: vendors that drop the "memory" of 321 or write "invalid index" under +CMS,
# and "unknown error" under +CME (ModemManager's tables carry the same aliases).
_CMS_BY_TEXT.setdefault(_normalise("invalid index"), 321)
_CME_BY_TEXT.setdefault(_normalise("unknown error"), 100)


def error_code(kind: ResultKind, detail: str) -> int | None:
    """The numeric code of a ``+CME ERROR``/``+CMS ERROR`` detail, numeric or verbose."""
    detail = detail.strip()
    if re.fullmatch(r"[0-9]{1,5}", detail):
        return int(detail)
    table = _CMS_BY_TEXT if kind is ResultKind.CMS_ERROR else _CME_BY_TEXT
    return table.get(_normalise(detail))


def parse_final(line: str) -> FinalResult | None:
    """Return the final result a line carries, or None if it is not one. Never raises."""
    if line in _PLAIN:
        return FinalResult(_PLAIN[line], line)
    if line in _NUMERIC:
        return FinalResult(_NUMERIC[line], line)
    if line.startswith("CONNECT"):
        return FinalResult(ResultKind.CONNECT, line)
    for prefix, kind in (("+CME ERROR:", ResultKind.CME_ERROR), ("+CMS ERROR:", ResultKind.CMS_ERROR)):
        if line.startswith(prefix):
            return FinalResult(kind, line, error_code(kind, line[len(prefix):]))
    return None


# The codes the driver acts on, by TS 27.005 §3.2.5 / 27.007 §9.2.1 number.
CMS_MEMORY_FULL = 322
CMS_INVALID_INDEX = 321
CME_SIM_NOT_INSERTED = 10
CME_SIM_FAILURE = 13
CME_SIM_BUSY = 14
CMS_SIM_BUSY = 314
CMS_SIM_NOT_INSERTED = 310
SMS_NOT_READY_CMS = frozenset({302, 314, 500})
"""Codes seen on SMS commands issued before the modem said ``SMS Ready``/``SMS DONE``."""
