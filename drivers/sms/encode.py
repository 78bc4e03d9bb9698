"""SMS-DELIVER encoding, as a network would build it, for the simulator and the tests. I/O-free.

A real SMSC splits a long text into parts of 153 GSM septets or 67 UCS2 code units and does not
care whether a surrogate pair straddles the cut; we split the same way so the receive side is
tested against what the air really carries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from drivers.sms.gsm7 import ESCAPE, can_encode, encode_septets, pack_septets
from drivers.sms.gsmmodem_pdu import encodeSemiOctets, encodeTimestamp as _encodeTimestamp
from drivers.sms.pdu import Encoding


@dataclass(frozen=True, slots=True)
class DeliverSpec:
    sender: str
    text: str = ""
    data: bytes | None = None
    timestamp: datetime | None = None
    smsc: str = "+79168999100"
    concat_ref: int = 0
    ref_bits: int = 8
    encoding: Encoding | None = None


def _address(number: str) -> bytes:
    if number.startswith("+") and re.fullmatch(r"[0-9]+", number[1:]) is not None:
        digits = number[1:]
        return bytes((len(digits), 0x91)) + bytes(encodeSemiOctets(digits))
    if re.fullmatch(r"[0-9]+", number):
        return bytes((len(number), 0x81)) + bytes(encodeSemiOctets(number))
    septets = encode_septets(number)  # alphanumeric sender, e.g. "Google"
    return bytes(((len(septets) * 7 + 3) // 4, 0xD0)) + pack_septets(septets)


def _smsc(number: str) -> bytes:
    digits = number.lstrip("+")
    body = bytes((0x91 if number.startswith("+") else 0x81,)) + bytes(encodeSemiOctets(digits))
    return bytes((len(body),)) + body


def _timestamp(ts: datetime | None) -> bytes:
    ts = ts or datetime(2026, 11, 22, 10, 30, 0, tzinfo=timezone(timedelta(hours=3)))
    return bytes(_encodeTimestamp(ts))


def choose_encoding(text: str) -> Encoding:
    return Encoding.GSM7 if can_encode(text) else Encoding.UCS2


def _split_gsm7(septets: bytes, size: int) -> list[bytes]:
    parts: list[bytes] = []
    i = 0
    while i < len(septets):
        end = min(i + size, len(septets))
        if end < len(septets) and septets[end - 1] == ESCAPE and (end - i) > 1:
            end -= 1  # never cut between an escape and its character (SMSCs do not)
        parts.append(septets[i:end])
        i = end
    return parts or [b""]


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def encode_deliver(spec: DeliverSpec) -> list[str]:
    """The PDUs (hex, SMSC first) a network would deliver for ``spec``: one, or the parts."""
    encoding = spec.encoding or (Encoding.DATA_8BIT if spec.data is not None else choose_encoding(spec.text))
    if encoding is Encoding.GSM7:
        septets = encode_septets(spec.text)
        chunks = [septets] if len(septets) <= 160 else _split_gsm7(septets, 153 if spec.ref_bits == 8 else 152)
    elif encoding is Encoding.UCS2:
        raw = spec.text.encode("utf-16-be")
        chunks = [raw] if len(raw) <= 140 else _split(raw, 134 if spec.ref_bits == 8 else 132)
    else:
        raw = spec.data if spec.data is not None else spec.text.encode("latin-1")
        chunks = [raw] if len(raw) <= 140 else _split(raw, 134 if spec.ref_bits == 8 else 132)
    dcs = {Encoding.GSM7: 0x00, Encoding.UCS2: 0x08, Encoding.DATA_8BIT: 0x04}[encoding]
    total = len(chunks)
    pdus = []
    for number, chunk in enumerate(chunks, start=1):
        udh = b""
        if total > 1:
            if spec.ref_bits == 16:
                udh = bytes((0x08, 0x04, spec.concat_ref >> 8 & 0xFF, spec.concat_ref & 0xFF, total, number))
            else:
                udh = bytes((0x00, 0x03, spec.concat_ref & 0xFF, total, number))
            udh = bytes((len(udh),)) + udh
        pdus.append(_deliver_pdu(spec, dcs, encoding, chunk, udh))
    return pdus


def _deliver_pdu(spec: DeliverSpec, dcs: int, encoding: Encoding, chunk: bytes, udh: bytes) -> str:
    first = 0x04 | (0x40 if udh else 0)  # SMS-DELIVER, no more messages to send
    if encoding is Encoding.GSM7:
        header_septets = (len(udh) * 8 + 6) // 7
        fill = header_septets * 7 - len(udh) * 8
        # The header fills whole octets; the text starts after ``fill`` zero bits.
        user_data = udh + pack_septets(chunk, fill)
        udl = header_septets + len(chunk)
    else:
        user_data = udh + chunk
        udl = len(user_data)
    tpdu = (bytes((first,)) + _address(spec.sender) + bytes((0x00, dcs)) + _timestamp(spec.timestamp)
            + bytes((udl,)) + user_data)
    return (_smsc(spec.smsc) + tpdu).hex().upper()

