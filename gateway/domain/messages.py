"""What identifies an SMS and its parts, and what became of a part. I/O-free.

A part is keyed so that the same PDU read twice (a crash between our commit and the SIM delete)
lands on the same row, and the parts of one concatenated SMS share a key; a whole message's id
is a hash of what identifies it on the network, so the same SMS read twice is stored once.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass


class IngestStatus(enum.StrEnum):
    """A string enum, like the other states that reach logs and answers: its value is the word."""

    PENDING = "pending"  # held, waiting for its other parts
    DUPLICATE = "duplicate"  # already held
    ROUTED = "routed"  # whole: stored, and delivered to a lease or quarantined
    FAILED = "failed"  # not stored, so not to be deleted from the SIM


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of one part, with the message id and where it went once it is routed."""

    status: IngestStatus
    message_id: str | None = None
    lease_id: str | None = None
    quarantined: bool = False
    error: str | None = None  # status FAILED: why


def message_id(iccid: str, sender: str, scts: str, concat_ref: int | None, text: str) -> str:
    """What identifies an SMS on the network, hashed: the same SMS read twice gets the same id."""
    material = "\x1f".join((iccid, sender, scts, "" if concat_ref is None else str(concat_ref), text))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def raw_message_id(iccid: str, pdu_hex: str) -> str:
    """The id of a PDU kept as it is (undecodable, or a status report): the PDU itself, hashed."""
    return "raw-" + hashlib.sha256(f"{iccid}|{pdu_hex}".encode()).hexdigest()[:20]


def concat_part_key(iccid: str, sender: str, ref_bits: int, ref: int, total: int) -> str:
    """The parts of one concatenated SMS share the sender, the reference and the count."""
    return f"{iccid}|{sender}|{ref_bits}:{ref}|{total}"
