"""Leases, their audit trail, the activation history and the bank slots' SIMs."""

from __future__ import annotations

import json
import sqlite3

from gateway.domain.banks import SimRow
from gateway.domain.leases import LeaseState
from gateway.store.rows import StoredLease, lease_of, sim_of


class LeaseQueries:
    """Queries on ``leases``, ``lease_events``, ``activations`` and ``sims`` (mixed into the Store)."""

    db: sqlite3.Connection

    def save_lease(self, lease: StoredLease) -> None:
        self.db.execute(
            "INSERT INTO leases (id, number, service, category, state, opened_at, deadline, wait_window, sms_count,"
            " last_sms_at, ended_at, not_before, clock_offset, held) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id)"
            " DO UPDATE SET state=excluded.state, deadline=excluded.deadline, sms_count=excluded.sms_count,"
            " last_sms_at=excluded.last_sms_at, ended_at=excluded.ended_at, opened_at=excluded.opened_at,"
            " not_before=excluded.not_before, clock_offset=excluded.clock_offset",
            (lease.id, lease.number, lease.service, lease.category, lease.state.value, lease.opened_at, lease.deadline,
             lease.wait_window, lease.sms_count, lease.last_sms_at, lease.ended_at, lease.not_before,
             lease.clock_offset, int(lease.held)))

    def leases(self, *, active_only: bool = False) -> list[StoredLease]:
        if active_only:
            states = tuple(s.value for s in LeaseState if s.active)
            rows = self.db.execute(f"SELECT * FROM leases WHERE state IN ({','.join('?' * len(states))})"
                                   " ORDER BY opened_at", states)
        else:
            rows = self.db.execute("SELECT * FROM leases ORDER BY opened_at")
        return [lease_of(row) for row in rows]

    def lease(self, lease_id: str) -> StoredLease | None:
        row = self.db.execute("SELECT * FROM leases WHERE id = ?", (lease_id,)).fetchone()
        return lease_of(row) if row else None

    # ------------------------------------------------------------------------------------ sims
    def save_sim(self, row: SimRow) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sims (bank, slot, status, iccid, imsi, operator, msisdn, msisdn_source, detail,"
            " scan_run, seen_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row.bank, row.slot, row.status, row.iccid, row.imsi, row.operator, row.msisdn, row.msisdn_source,
             row.detail, row.scan_run, row.seen_at))

    def sims(self, bank: str | None = None) -> list[SimRow]:
        rows = (self.db.execute("SELECT * FROM sims WHERE bank = ? ORDER BY slot", (bank,)) if bank is not None
                else self.db.execute("SELECT * FROM sims ORDER BY bank, slot"))
        return [sim_of(row) for row in rows]

    def audit(self, lease_id: str, at: float, kind: str, detail: dict | None = None) -> None:
        self.db.execute("INSERT INTO lease_events (lease_id, at, kind, detail) VALUES (?,?,?,?)",
                        (lease_id, at, kind, json.dumps(detail, ensure_ascii=False) if detail else None))

    def audit_trail(self, lease_id: str) -> list[tuple[float, str, dict]]:
        rows = self.db.execute("SELECT at, kind, detail FROM lease_events WHERE lease_id = ? ORDER BY id", (lease_id,))
        return [(row[0], row[1], json.loads(row[2]) if row[2] else {}) for row in rows]

    def record_activation(self, number: str, service: str, at: float) -> None:
        self.db.execute("INSERT INTO activations (number, service, at) VALUES (?,?,?) ON CONFLICT(number, service)"
                        " DO UPDATE SET at = MAX(at, excluded.at)", (number, service.lower(), at))

    def activation_at(self, number: str, service: str) -> float | None:
        row = self.db.execute("SELECT at FROM activations WHERE number = ? AND service = ?",
                              (number, service.lower())).fetchone()
        return None if row is None else float(row[0])

    def activations(self) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], r[2]) for r in self.db.execute("SELECT number, service, at FROM activations")]
