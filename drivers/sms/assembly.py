"""Multipart SMS reassembly, I/O-free, clock injected.

Parts arrive in any order, sometimes twice (read, crash before delete, read again), sometimes
never. A message is complete when every part 1..total is present; a message still incomplete
``timeout`` seconds after its first part is flushed as incomplete, with the missing parts named,
so the buyer sees what did arrive instead of nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from drivers.sms.pdu import AddressType, Encoding, SmsDeliver, payload_text

DEFAULT_PART_TIMEOUT = 600.0
"""Ten minutes: SMSCs deliver the parts of one message within seconds, but a network holding
SMS for an unregistered SIM may release them minutes apart."""


@dataclass(frozen=True, slots=True)
class AssembledSms:
    """A whole message, ready for the console or the store."""

    source: str
    sender: str
    sender_type: AddressType
    timestamp: datetime
    encoding: Encoding
    text: str
    data: bytes
    parts: int
    complete: bool
    missing_parts: tuple[int, ...]
    concat_ref: int | None
    pdus: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Key:
    source: str
    sender: str
    ref: int
    total: int
    ref_bits: int


@dataclass(slots=True)
class _Partial:
    first_seen: float
    parts: dict[int, SmsDeliver] = field(default_factory=dict)


def assemble(source: str, parts: list[SmsDeliver], total: int) -> AssembledSms:
    """Join ``parts`` (any order; duplicates already removed) into one message."""
    ordered = sorted(parts, key=lambda p: p.concat.part if p.concat else 1)
    first = ordered[0]
    payload = b"".join(p.payload for p in ordered)
    present = {p.concat.part if p.concat else 1 for p in ordered}
    missing = tuple(n for n in range(1, total + 1) if n not in present)
    return AssembledSms(
        source=source, sender=first.sender, sender_type=first.sender_type, timestamp=first.timestamp,
        encoding=first.encoding, text=payload_text(first.encoding, payload),
        data=payload if first.encoding is Encoding.DATA_8BIT else b"", parts=total,
        complete=not missing, missing_parts=missing,
        concat_ref=first.concat.ref if first.concat else None,
        pdus=tuple(p.raw_hex for p in ordered),
    )


class SmsAssembler:
    """Collects parts per (source, sender, reference, total) and yields whole messages."""

    def __init__(self, timeout: float = DEFAULT_PART_TIMEOUT) -> None:
        self._timeout = timeout
        self._partials: dict[_Key, _Partial] = {}
        self.duplicate_parts = 0

    def add(self, source: str, sms: SmsDeliver, now: float) -> AssembledSms | None:
        """Add one part; return the message if it is now complete."""
        concat = sms.concat
        if concat is None or concat.total <= 1:
            return assemble(source, [sms], 1)
        key = _Key(source, sms.sender, concat.ref, concat.total, concat.ref_bits)
        partial = self._partials.setdefault(key, _Partial(now))
        if concat.part in partial.parts:
            self.duplicate_parts += 1
            return None
        partial.parts[concat.part] = sms
        if len(partial.parts) < concat.total:
            return None
        del self._partials[key]
        return assemble(source, list(partial.parts.values()), concat.total)

    def expire(self, now: float) -> list[AssembledSms]:
        """Flush every message whose first part is older than the timeout, marked incomplete."""
        done = [key for key, partial in self._partials.items() if now - partial.first_seen >= self._timeout]
        return [assemble(key.source, list(self._partials.pop(key).parts.values()), key.total) for key in done]

    def next_deadline(self) -> float | None:
        if not self._partials:
            return None
        return min(p.first_seen for p in self._partials.values()) + self._timeout

    @property
    def pending(self) -> int:
        return len(self._partials)
