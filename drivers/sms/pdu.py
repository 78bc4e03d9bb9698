"""SMS-DELIVER and SMS-STATUS-REPORT decoding (TS 23.040), I/O-free.

Built on ``gsmmodem.pdu`` for the parts it gets right: semi-octet numbers, the service-centre
timestamp with its quarter-hour time zone, and the UDH information-element classes
(``Concatenation``). Our layer owns what its ``decodeSmsPdu`` (0.13.0) gets wrong:

* it raises a bare ``StopIteration`` on a truncated PDU: we bound every read and raise
  :class:`PduError` naming the field;
* it skips one septet after a 16-bit concatenation header (fill bits = 0), losing the first
  character: we compute the fill bits from the header length;
* it derives the septet count from the octets present, dropping a final ``@`` and reading junk
  after the user data: we honour TP-UDL;
* it reads every data-coding group other than 00xx as GSM 7-bit: we follow TS 23.038 §4;
* it decodes UCS2 one code unit at a time, leaving emoji as lone surrogates: we keep the raw
  UTF-16 octets so parts can be joined before decoding (a pair may straddle two parts);
* its GSM 7-bit table maps 0x5F to a backtick and drops escapes to unknown codes (see gsm7).
"""

from __future__ import annotations

import binascii
import enum
import re
from dataclasses import dataclass
from datetime import datetime

from drivers.sms.gsm7 import decode_septets, unpack_septets
from drivers.sms.gsmmodem_pdu import Concatenation, InformationElement, SmsPduTzInfo


class PduError(ValueError):
    """A PDU that cannot be decoded; the message says which field and why."""


class Encoding(enum.Enum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    DATA_8BIT = "8bit"


class AddressType(enum.Enum):
    UNKNOWN = "unknown"
    INTERNATIONAL = "international"
    NATIONAL = "national"
    ALPHANUMERIC = "alphanumeric"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Concatenation header: ``ref`` is shared by all parts of one message; ``part`` is 1-based."""

    ref: int
    part: int
    total: int
    ref_bits: int


@dataclass(frozen=True, slots=True)
class SmsDeliver:
    """One received SMS-DELIVER. ``payload`` is septet values for GSM7, raw octets otherwise;
    multipart reassembly joins payloads and decodes once (see :mod:`drivers.sms.assembly`)."""

    smsc: str | None
    sender: str
    sender_type: AddressType
    timestamp: datetime
    protocol_id: int
    dcs: int
    encoding: Encoding
    payload: bytes
    concat: ConcatInfo | None
    udh: tuple[tuple[int, bytes], ...]
    raw_hex: str

    @property
    def text(self) -> str:
        """This part's text on its own (a straddling surrogate half shows as U+FFFD)."""
        return payload_text(self.encoding, self.payload)


@dataclass(frozen=True, slots=True)
class StatusReport:
    smsc: str | None
    reference: int
    recipient: str
    recipient_type: AddressType
    timestamp: datetime
    discharge: datetime
    status: int
    raw_hex: str


Decoded = SmsDeliver | StatusReport


def payload_text(encoding: Encoding, payload: bytes) -> str:
    if encoding is Encoding.GSM7:
        return decode_septets(payload)
    if encoding is Encoding.UCS2:
        return payload.decode("utf-16-be", errors="replace")
    return payload.decode("latin-1")


def encoding_for_dcs(dcs: int) -> Encoding:
    """TS 23.038 §4: the alphabet of each data-coding group."""
    group = dcs >> 4
    if group <= 0x7:  # 00xx general, 01xx automatic deletion: bits 3..2 select the alphabet
        if dcs & 0x20:  # compressed: we cannot decompress, so we keep the octets intact
            return Encoding.DATA_8BIT
        alphabet = (dcs >> 2) & 0x03
        return {0: Encoding.GSM7, 1: Encoding.DATA_8BIT, 2: Encoding.UCS2}.get(alphabet, Encoding.GSM7)
    if group in (0xC, 0xD):  # message waiting, discard/store: GSM 7-bit
        return Encoding.GSM7
    if group == 0xE:  # message waiting, store: UCS2
        return Encoding.UCS2
    if group == 0xF:  # data coding / message class: bit 2 selects 8-bit data
        return Encoding.DATA_8BIT if dcs & 0x04 else Encoding.GSM7
    return Encoding.GSM7  # 1000..1011 reserved: the default alphabet


class _Reader:
    """Bounded cursor: every read names the field, so a short PDU says what is missing."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def octet(self, field: str) -> int:
        return self.take(1, field)[0]

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduError(f"PDU truncated in {field}: need {n} octet(s) at offset {self.pos}, "
                           f"have {len(self.data) - self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


_NIBBLES_SWAPPED = bytes(((octet & 0x0F) << 4) | (octet >> 4) for octet in range(256))


def semi_octets(raw: bytes) -> str:
    """Semi-octet digits (TS 23.040 9.1.2.3: low nibble first; a high nibble F is the filler and
    ends them), as lowercase hex like gsmmodem's ``decodeSemiOctets``, which it replaces: that
    one builds the string a character at a time in Python, twice per SMS and once more for the
    timestamp. Here the nibbles are swapped by one ``translate`` and cut at the first filler."""
    digits = raw.translate(_NIBBLES_SWAPPED).hex()
    filler = digits[1::2].find("f")
    return digits if filler < 0 else digits[:2 * filler + 1]


def _hex_to_bytes(pdu: str | bytes) -> bytes:
    if isinstance(pdu, bytes):
        return pdu
    text = pdu.strip()
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError) as exc:
        raise PduError(f"not a hex PDU ({exc}): {text[:40]!r}") from None


def _address_type(toa: int) -> AddressType:
    ton = (toa >> 4) & 0x07
    return {0: AddressType.UNKNOWN, 1: AddressType.INTERNATIONAL, 2: AddressType.NATIONAL,
            5: AddressType.ALPHANUMERIC}.get(ton, AddressType.OTHER)


def _read_address(reader: _Reader, field: str) -> tuple[str, AddressType]:
    digits = reader.octet(f"{field} length")
    toa = reader.octet(f"{field} type")
    kind = _address_type(toa)
    body = reader.take((digits + 1) // 2, field)
    if kind is AddressType.ALPHANUMERIC:
        return decode_septets(unpack_septets(body, digits * 4 // 7)), kind
    number = semi_octets(body)[:digits]
    return ("+" + number if kind is AddressType.INTERNATIONAL else number), kind


def _read_smsc(reader: _Reader) -> str | None:
    length = reader.octet("SMSC length")
    if length == 0:
        return None
    toa = reader.octet("SMSC type")
    number = semi_octets(reader.take(length - 1, "SMSC address"))
    return "+" + number if _address_type(toa) is AddressType.INTERNATIONAL else number


def _read_timestamp(reader: _Reader, field: str) -> datetime:
    raw = reader.take(7, field)
    digits = semi_octets(raw)
    if len(digits) != 14 or re.fullmatch(r"[0-9]{12}", digits[:12]) is None:
        raise PduError(f"bad {field} {raw.hex()}")
    try:
        yy, mo, dd, hh, mi, ss = (int(digits[i:i + 2]) for i in range(0, 12, 2))
        year = yy + (1900 if yy >= 69 else 2000)  # strptime's %y pivot, which this replaces (4x faster)
        return datetime(year, mo, dd, hh, mi, ss, tzinfo=SmsPduTzInfo(digits[12:]))
    except ValueError as exc:
        raise PduError(f"bad {field} {raw.hex()}: {exc}") from None


def _read_udh(header: bytes) -> tuple[tuple[tuple[int, bytes], ...], ConcatInfo | None]:
    elements: list[tuple[int, bytes]] = []
    concat: ConcatInfo | None = None
    reader = _Reader(header)
    while reader.pos < len(header):
        iei = reader.octet("UDH element id")
        data = reader.take(reader.octet("UDH element length"), "UDH element")
        elements.append((iei, data))
        if iei in (0x00, 0x08) and len(data) == (3 if iei == 0x00 else 4):
            element = InformationElement(iei, len(data), list(data))
            assert isinstance(element, Concatenation)
            if element.parts >= 1 and 1 <= element.number <= element.parts:
                concat = ConcatInfo(element.reference, element.number, element.parts, 8 if iei == 0 else 16)
    return tuple(elements), concat


def _read_user_data(reader: _Reader, first_octet: int, encoding: Encoding):
    udl = reader.octet("user data length")
    has_udh = bool(first_octet & 0x40)
    if encoding is Encoding.GSM7:
        octets = reader.take((udl * 7 + 7) // 8, "user data")
        if not has_udh:
            return unpack_septets(octets, udl), (), None
        udhl = octets[0] if octets else 0
        header = octets[1:1 + udhl]
        if len(header) != udhl:
            raise PduError("UDH longer than the user data")
        header_bits = (udhl + 1) * 8
        header_septets = (header_bits + 6) // 7
        fill_bits = header_septets * 7 - header_bits
        if header_septets > udl:
            raise PduError("UDH longer than the user data")
        payload = unpack_septets(octets[udhl + 1:], udl - header_septets, fill_bits)
        elements, concat = _read_udh(header)
        return payload, elements, concat
    octets = reader.take(udl, "user data")
    if not has_udh:
        return octets, (), None
    udhl = octets[0] if octets else 0
    if udhl + 1 > len(octets):
        raise PduError("UDH longer than the user data")
    elements, concat = _read_udh(octets[1:1 + udhl])
    return octets[1 + udhl:], elements, concat


def decode_pdu(pdu: str | bytes) -> Decoded:
    """Decode one PDU as ``AT+CMGR``/``+CMT`` show it (service-centre address first).

    Raises :class:`PduError` and nothing else on any input."""
    try:
        return _decode(_hex_to_bytes(pdu))
    except PduError:
        raise
    except Exception as exc:  # a defect in a primitive must not escape as anything else
        raise PduError(f"undecodable PDU: {type(exc).__name__}: {exc}") from None


def _decode(data: bytes) -> Decoded:
    reader = _Reader(data)
    smsc = _read_smsc(reader)
    first = reader.octet("first octet")
    mti = first & 0x03
    if mti == 0x00:
        sender, sender_type = _read_address(reader, "originating address")
        pid = reader.octet("protocol identifier")
        dcs = reader.octet("data coding scheme")
        timestamp = _read_timestamp(reader, "service-centre timestamp")
        encoding = encoding_for_dcs(dcs)
        payload, udh, concat = _read_user_data(reader, first, encoding)
        if encoding is Encoding.UCS2 and len(payload) % 2:
            payload = payload[:-1]  # an odd trailing octet is not a character
        return SmsDeliver(smsc, sender, sender_type, timestamp, pid, dcs, encoding, payload, concat,
                          udh, data.hex().upper())
    if mti == 0x02:
        reference = reader.octet("message reference")
        recipient, recipient_type = _read_address(reader, "recipient address")
        timestamp = _read_timestamp(reader, "service-centre timestamp")
        discharge = _read_timestamp(reader, "discharge time")
        status = reader.octet("status")
        return StatusReport(smsc, reference, recipient, recipient_type, timestamp, discharge, status,
                            data.hex().upper())
    raise PduError(f"not a received message: TP-MTI {mti} (first octet {first:#04x})")
