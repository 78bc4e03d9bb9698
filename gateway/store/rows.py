"""Rows as the store reads and writes them, and the one mapper per row type."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gateway.domain.banks import SimRow, SimStatus
from gateway.domain.leases import LeaseState


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A lease as persisted: engine fields with absolute wall-clock times."""

    id: str
    number: str
    service: str
    category: str | None
    state: LeaseState
    opened_at: float
    deadline: float
    wait_window: float
    sms_count: int
    last_sms_at: float | None
    ended_at: float | None
    not_before: float | None = None
    clock_offset: float | None = None  # wall - monotonic when written
    held: bool = False  # an SMSHub activation (gateway.domain.leases: HELD)


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: str
    iccid: str
    number: str | None
    port: str
    sender: str | None
    text: str | None
    encoding: str
    parts: int
    complete: bool
    scts: str | None
    received_at: float
    lease_id: str | None
    quarantined: bool
    purged_at: float | None


def lease_of(row: sqlite3.Row) -> StoredLease:
    return StoredLease(row["id"], row["number"], row["service"], row["category"], LeaseState(row["state"]),
                       row["opened_at"], row["deadline"], row["wait_window"], row["sms_count"], row["last_sms_at"],
                       row["ended_at"], row["not_before"], row["clock_offset"], bool(row["held"]))


def message_of(row: sqlite3.Row) -> MessageRow:
    return MessageRow(row["id"], row["iccid"], row["number"], row["port"], row["sender"], row["text"],
                      row["encoding"], row["parts"], bool(row["complete"]), row["scts"], row["received_at"],
                      row["lease_id"], bool(row["quarantined"]), row["purged_at"])



def sim_of(row: sqlite3.Row) -> SimRow:
    return SimRow(row["bank"], row["slot"], SimStatus(row["status"]), row["iccid"], row["imsi"], row["operator"],
                  row["msisdn"], row["msisdn_source"], row["detail"], row["scan_run"], row["seen_at"])
