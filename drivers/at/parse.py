"""Parsers for the information responses the driver reads, I/O-free.

Each returns a typed value or raises :class:`AtParseError` naming the line it could not read; the
caller decides whether that is fatal (it never is for health probes). No other exception escapes:
a number is a number only when it is ASCII digits (:func:`is_digits`), because ``str.isdigit()``
accepts ``"²"``, which ``int()`` then refuses (issue 12 finding 4: ``+CMGL: ²,1,,32`` killed a
modem's reader).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class AtParseError(ValueError):
    """A response line did not have the documented shape."""


_DIGITS_RE = re.compile(r"[0-9]+")


def is_digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits only (``"²"``, ``"٣"`` and ``"12 "`` are not)."""
    return _DIGITS_RE.fullmatch(text) is not None


def split_args(args: str) -> list[str]:
    """Split a comma-separated argument list, honouring double quotes (``"SM",3`` -> ``SM``, ``3``)."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in args:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    out.append("".join(current).strip())
    return out


def _after_prefix(line: str, prefix: str) -> str:
    if not line.startswith(prefix):
        raise AtParseError(f"expected {prefix!r} line, got {line!r}")
    return line[len(prefix):].strip()


# ----------------------------------------------------------------------------------- SMS lists
@dataclass(frozen=True, slots=True)
class StoredPdu:
    """One message as ``+CMGL``/``+CMGR`` shows it in PDU mode."""

    index: int | None
    status: int
    pdu_hex: str


def parse_cmti(args: str) -> tuple[str, int]:
    """``+CMTI: "SM",3`` arguments -> (storage, index)."""
    parts = split_args(args)
    if len(parts) < 2 or not is_digits(parts[1]):
        raise AtParseError(f"bad +CMTI arguments {args!r}")
    return parts[0], int(parts[1])


def parse_cmgl(lines: tuple[str, ...], errors: list[str] | None = None) -> list[StoredPdu]:
    """Pairs of ``+CMGL: <index>,<stat>,[<alpha>],<length>`` and a PDU line.

    A header without a PDU line after it (seen when a URC or a truncated read intervenes) is
    skipped rather than mis-paired with the next header. A header that cannot be read (``+CMGL:
    ²,1,,32``) is skipped with its PDU, and described in ``errors`` if given: one bad entry must
    not hide the good ones listed with it, sweep after sweep."""
    out: list[StoredPdu] = []
    pending: tuple[int, int] | None = None
    skipping = False
    for line in lines:
        if line.startswith("+CMGL:"):
            fields = split_args(_after_prefix(line, "+CMGL:"))
            skipping = len(fields) < 2 or not is_digits(fields[0]) or not is_digits(fields[1])
            pending = None if skipping else (int(fields[0]), int(fields[1]))
            if skipping and errors is not None:
                errors.append(f"bad +CMGL header {line[:80]!r}")
        elif pending is not None:
            out.append(StoredPdu(pending[0], pending[1], line.strip()))
            pending = None
    return out


def parse_cmgr(lines: tuple[str, ...]) -> StoredPdu | None:
    """``+CMGR: <stat>,[<alpha>],<length>`` and a PDU line; None for an empty slot
    (some modems answer ``OK`` with no lines, others ``+CMGR: 0,,0``)."""
    header = next((i for i, line in enumerate(lines) if line.startswith("+CMGR:")), None)
    if header is None or header + 1 >= len(lines):
        return None
    fields = split_args(_after_prefix(lines[header], "+CMGR:"))
    if not fields or not is_digits(fields[0]):
        raise AtParseError(f"bad +CMGR header {lines[header]!r}")
    if len(fields) >= 3 and fields[-1] == "0":
        return None
    return StoredPdu(None, int(fields[0]), lines[header + 1].strip())


def parse_cpms(line: str) -> list[tuple[str | None, int, int]]:
    """``+CPMS: "SM",3,30,...`` (query) or ``+CPMS: 3,30,3,30,3,30`` (set) -> [(mem, used, total)]."""
    fields = split_args(_after_prefix(line, "+CPMS:"))
    out: list[tuple[str | None, int, int]] = []
    i = 0
    while i < len(fields):
        mem: str | None = None
        if not is_digits(fields[i]):
            mem = fields[i]
            i += 1
        if i + 1 >= len(fields) or not is_digits(fields[i]) or not is_digits(fields[i + 1]):
            break
        out.append((mem, int(fields[i]), int(fields[i + 1])))
        i += 2
    if not out:
        raise AtParseError(f"bad +CPMS line {line!r}")
    return out


# ---------------------------------------------------------------------------------- health
def csq_to_dbm(rssi: int) -> int | None:
    """27.007 §8.5: 0 -> -113 dBm, 31 -> -51 dBm or more, 99 unknown. 100..191 are TD-SCDMA."""
    if 0 <= rssi <= 31:
        return -113 + 2 * rssi
    if 100 <= rssi <= 191:
        return -216 + rssi
    return None


def parse_csq(line: str) -> tuple[int, int]:
    """``+CSQ: 21,99`` -> (rssi, ber)."""
    fields = split_args(_after_prefix(line, "+CSQ:"))
    if len(fields) < 2 or not is_digits(fields[0]) or not is_digits(fields[1]):
        raise AtParseError(f"bad +CSQ line {line!r}")
    return int(fields[0]), int(fields[1])


class Registration(enum.Enum):
    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8

    @property
    def registered(self) -> bool:
        return self in (Registration.HOME, Registration.ROAMING,
                        Registration.SMS_ONLY_HOME, Registration.SMS_ONLY_ROAMING)

    @property
    def roaming(self) -> bool:
        return self in (Registration.ROAMING, Registration.SMS_ONLY_ROAMING)


def parse_creg(line: str) -> Registration:
    """``+CREG: <n>,<stat>[,...]`` (query form) or ``+CREG: <stat>[,...]`` (URC form)."""
    match = re.match(r"^\+C(?:E|G|5G)?REG:\s*(.*)$", line)
    if match is None:
        raise AtParseError(f"bad registration line {line!r}")
    fields = split_args(match.group(1))
    # The query answer always has <n> first; the URC form with n=2 has a quoted <lac> second.
    stat_field = fields[1] if len(fields) >= 2 and is_digits(fields[1]) else fields[0]
    if not is_digits(stat_field):
        raise AtParseError(f"bad registration line {line!r}")
    value = int(stat_field)
    try:
        return Registration(value)
    except ValueError:
        return Registration.UNKNOWN


def parse_cops(line: str) -> str | None:
    """``+COPS: 0,0,"MegaFon",7`` -> operator name; None when not registered (``+COPS: 0``)."""
    fields = split_args(_after_prefix(line, "+COPS:"))
    return fields[2] if len(fields) >= 3 and fields[2] else None


def parse_cfun(line: str) -> int | None:
    """``+CFUN: 4`` -> 4 (27.007 §8.2: 1 full, 0 minimum, 4 radio off). None for the test form
    that some ZTE firmware answers to the query (``+CFUN: (0-1,4-7),(0-1)``: python-gsmmodem
    test/fakemodems.py ``ZteK3565Z``), which says nothing about the radio."""
    value = split_args(_after_prefix(line, "+CFUN:"))[0]
    return int(value) if is_digits(value) else None


def parse_cpin(line: str) -> str:
    """``+CPIN: READY`` -> ``READY`` (or ``SIM PIN``, ``NOT INSERTED``...), in upper case with
    single spaces, however the firmware spelled it."""
    return " ".join(_after_prefix(line, "+CPIN:").strip('"').upper().split())


def parse_identity_line(lines: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> str | None:
    """The value of a one-line identity answer (``AT+CGSN``, ``AT^ICCID?``, ``AT+QCCID``...),
    with or without its ``+PREFIX:``, quotes stripped; None when there is none."""
    for line in lines:
        value = line
        for prefix in prefixes:
            if line.upper().startswith(prefix.upper()):
                value = line[len(prefix):]
                break
        value = value.strip().strip('"').strip()
        if value:
            return value
    return None


def swap_nibbles(digits: str) -> str:
    """EF_ICCID as ``+CRSM`` returns it is BCD with the nibbles of each octet swapped."""
    out = "".join(digits[i + 1] + digits[i] for i in range(0, len(digits) - 1, 2))
    return out.rstrip("Ff")


def parse_cusd(line: str) -> tuple[int, str | None]:
    """``+CUSD: <m>[,<str>,<dcs>]`` -> (m, text). ``m`` 0/1: answered (1: more expected), 2:
    ended by the network, 4: not supported, 5: timed out. UCS2 answers (dcs 72) are hex text."""
    fields = split_args(_after_prefix(line, "+CUSD:"))
    if not fields or not is_digits(fields[0]):
        raise AtParseError(f"+CUSD without a status: {line!r}")
    status = int(fields[0])
    if len(fields) < 2:
        return status, None
    text = fields[1]
    dcs = int(fields[2]) if len(fields) > 2 and is_digits(fields[2]) else 15
    if dcs & 0xFC == 0x48 and len(text) % 4 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        text = bytes.fromhex(text).decode("utf-16-be", errors="replace")
    return status, text
