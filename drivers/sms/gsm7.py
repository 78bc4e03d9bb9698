"""GSM 03.38 (TS 23.038) 7-bit alphabet: septet packing and the character tables, I/O-free.

The tables come from the ``gsm0338`` package rather than gsmmodem's own ``GSM7_BASIC`` string,
which maps 0x5F to a backtick instead of ``§`` (and shifts nothing else, but one wrong glyph in a
verification code is one wrong code). Decoding follows §6.2.1.1: an escape to a code the extension
table does not define shows the base character, and a lone escape shows as a space.
"""

from __future__ import annotations

import unicodedata

from gsm0338.charset import BASIC_CHARACTER_SET, BASIC_CHARACTER_SET_EXTENSION

ESCAPE = 0x1B

_BASIC: tuple[str, ...] = tuple(
    " " if code == ESCAPE else unicodedata.lookup(BASIC_CHARACTER_SET[code]) for code in range(128)
)
_EXTENSION: dict[int, str] = {code: unicodedata.lookup(name) for code, name in BASIC_CHARACTER_SET_EXTENSION.items()}
_ENCODE_BASIC: dict[str, int] = {ch: code for code, ch in enumerate(_BASIC) if code != ESCAPE}
_ENCODE_EXTENSION: dict[str, int] = {ch: code for code, ch in _EXTENSION.items()}


def decode_septets(septets: bytes) -> str:
    """Septet values (one per byte, 0..127) to text."""
    out: list[str] = []
    i = 0
    n = len(septets)
    while i < n:
        code = septets[i] & 0x7F
        if code == ESCAPE:
            if i + 1 >= n:
                out.append(" ")
                break
            nxt = septets[i + 1] & 0x7F
            out.append(_EXTENSION.get(nxt, " " if nxt == ESCAPE else _BASIC[nxt]))
            i += 2
            continue
        out.append(_BASIC[code])
        i += 1
    return "".join(out)


def encode_septets(text: str) -> bytes:
    """Text to septet values; raises ValueError for a character the alphabet lacks."""
    out = bytearray()
    for ch in text:
        if ch in _ENCODE_BASIC:
            out.append(_ENCODE_BASIC[ch])
        elif ch in _ENCODE_EXTENSION:
            out += bytes((ESCAPE, _ENCODE_EXTENSION[ch]))
        else:
            raise ValueError(f"character {ch!r} is not in the GSM 7-bit alphabet")
    return bytes(out)


def can_encode(text: str) -> bool:
    return all(ch in _ENCODE_BASIC or ch in _ENCODE_EXTENSION for ch in text)


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Read ``count`` septets packed LSB-first into ``data`` after ``fill_bits`` padding bits.

    Counting from the user-data length (not from the octets present) is what keeps a final ``@``
    (septet 0) on an 8-septet boundary, and what ignores junk octets after the user data."""
    value = int.from_bytes(data, "little")
    return bytes((value >> (fill_bits + 7 * i)) & 0x7F for i in range(count))


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Inverse of :func:`unpack_septets`."""
    value = 0
    for i, septet in enumerate(septets):
        value |= (septet & 0x7F) << (fill_bits + 7 * i)
    total_bits = fill_bits + 7 * len(septets)
    return value.to_bytes((total_bits + 7) // 8, "little")
