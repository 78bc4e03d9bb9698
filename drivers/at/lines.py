"""Line framing for AT traffic, I/O-free.

Modems end lines with ``\\r\\n``, but real ones also send lone ``\\r``, ``\\n\\r``, NUL padding
after a reset and arbitrary garbage while booting. The framer turns any byte stream, split at any
point, into the same sequence of :class:`Line`, :class:`Prompt` and :class:`Garbage` items, and it
never raises on input: bad bytes become a ``Garbage`` item that the caller counts and logs.
"""

from __future__ import annotations

import re

from dataclasses import dataclass

DEFAULT_MAX_LINE = 2048
"""Longest line accepted. A +CMGL line with a 176-octet PDU is ~370 characters; 2 KiB leaves room
for vendor chatter while bounding memory on a port that streams junk without line endings."""


@dataclass(frozen=True, slots=True)
class Line:
    """One complete, decoded, non-empty line with its terminator stripped."""

    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ``> `` prompt after ``AT+CMGS``/``AT+CMGW``: it has no line terminator."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that cannot be part of an AT line; ``reason`` says why they were dropped."""

    data: bytes
    reason: str


FramedItem = Line | Prompt | Garbage

_TERMINATOR_RE = re.compile(rb"[\r\n]+")  # a run of terminators ends one line: the empty lines between are dropped
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f]")  # control characters but TAB


class LineFramer:
    """Splits a byte stream into lines.

    ``prompt_armed`` tells the framer that a prompt is possible right now (a command that expects
    one is in flight); only then is a pending ``>`` emitted as a :class:`Prompt`, because a lone
    ``>`` can otherwise be the start of ordinary text.
    """

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._max_line = max_line
        self._buffer = bytearray()
        self._overflowed = False
        self.prompt_armed = False

    @property
    def pending(self) -> bytes:
        """Bytes received since the last terminator (for diagnostics and prompt detection)."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[FramedItem]:
        items: list[FramedItem] = []
        if 0 in data:
            data = data.replace(b"\x00", b"")  # NUL padding (seen after power-up on SIMCom and Huawei): never content
        pieces = _TERMINATOR_RE.split(data)  # every piece but the last ended at a terminator
        for piece in pieces[:-1]:
            self._append(piece, items)
            self._end_line(items)
        self._append(pieces[-1], items)
        if self.prompt_armed and self._buffer.strip() == b">":
            self._buffer.clear()
            items.append(Prompt())
        return items

    def _append(self, piece: bytes, items: list[FramedItem]) -> None:
        if self._overflowed or not piece:
            return
        self._buffer += piece
        if len(self._buffer) > self._max_line:
            items.append(Garbage(bytes(self._buffer[:64]), f"line longer than {self._max_line} bytes"))
            self._buffer.clear()
            self._overflowed = True  # the rest of this line is dropped, up to its terminator

    def reset(self) -> bytes:
        """Drop any partial line (after a resync or a reopened port); returns what was dropped."""
        dropped = bytes(self._buffer)
        self._buffer.clear()
        self._overflowed = False
        return dropped

    def _end_line(self, items: list[FramedItem]) -> None:
        if self._overflowed:
            self._overflowed = False
            self._buffer.clear()
            return
        raw = bytes(self._buffer).strip(b" \t")
        self._buffer.clear()
        if not raw:
            return
        if raw == b">" and self.prompt_armed:
            items.append(Prompt())  # "> " followed by more bytes in the same read
            return
        items.append(_decode(raw))


def _decode(raw: bytes) -> Line | Garbage:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Garbage(raw, "not valid UTF-8")
    if _CONTROL_RE.search(text):
        if text.endswith("\x1a") and text[:-1].isprintable():
            return Line(text[:-1])  # payload echo ending in Ctrl-Z
        return Garbage(raw, "control characters in line")
    return Line(text)
