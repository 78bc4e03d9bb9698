"""Final result codes of TS 27.007 §4.2 / 27.005 §3.2.5, plus the vendor spellings seen in the wild."""

from __future__ import annotations

import enum
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


@dataclass(frozen=True, slots=True)
class FinalResult:
    """How a command ended: ``text`` is the final line as sent; ``code`` is the numeric CME/CMS
    code when the modem gave one (with ``AT+CMEE=2`` it gives a description instead)."""

    kind: ResultKind
    text: str
    code: int | None = None

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


def parse_final(line: str) -> FinalResult | None:
    """Return the final result a line carries, or None if it is not one."""
    if line in _PLAIN:
        return FinalResult(_PLAIN[line], line)
    if line in _NUMERIC:
        return FinalResult(_NUMERIC[line], line)
    if line.startswith("CONNECT"):
        return FinalResult(ResultKind.CONNECT, line)
    for prefix, kind in (("+CME ERROR:", ResultKind.CME_ERROR), ("+CMS ERROR:", ResultKind.CMS_ERROR)):
        if line.startswith(prefix):
            detail = line[len(prefix):].strip()
            code = int(detail) if detail.isdigit() else None
            return FinalResult(kind, line, code)
    return None


# The CMS codes the driver acts on (TS 27.005 §3.2.5).
CMS_MEMORY_FULL = 322
CMS_INVALID_INDEX = 321
