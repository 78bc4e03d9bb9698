"""Parts and messages: each part of a concatenated SMS until its message is whole, and each message once."""

from __future__ import annotations

import json
import sqlite3

from gateway.store.rows import MessageRow, message_of


class MessageQueries:
    """Queries on ``parts`` and ``messages`` (mixed into :class:`~gateway.store.Store`)."""

    db: sqlite3.Connection

    def insert_part(self, key: str, part: int, total: int, iccid: str, port: str, pdu: str, at: float) -> str:
        """Record a part of a concatenated SMS (a one-part SMS goes straight to ``messages``).
        Returns ``new``; ``duplicate`` when this very PDU is already held (read twice: a crash
        came between our commit and the SIM delete), even after its message was routed; or ``conflict`` when a different PDU waits in that slot (the intake picks a set
        whose slot is free, see Intake._part_set, so it never sees this). Routed parts are kept, marked, until retention, for exactly that."""
        row = self.db.execute("SELECT pdu, message_id FROM parts WHERE key = ? AND part = ?", (key, part)).fetchone()
        if row is not None:
            if row["pdu"] == pdu:
                return "duplicate"
            if row["message_id"] is None:
                return "conflict"
            # the concatenation reference came round again for a new message: retire the old set
            self.db.execute("DELETE FROM parts WHERE key = ? AND message_id IS NOT NULL", (key,))
        self.db.execute(
            "INSERT INTO parts (key, part, total, iccid, port, pdu, received_at) VALUES (?,?,?,?,?,?,?)",
            (key, part, total, iccid, port, pdu, at))
        return "new"

    def slot_rows(self, keys: list[str], part: int) -> list[sqlite3.Row]:
        """What each of ``keys`` holds in slot ``part`` (routed or waiting), for choosing a set."""
        marks = ",".join("?" * len(keys))
        return self.db.execute(f"SELECT key, pdu, message_id FROM parts WHERE part = ? AND key IN ({marks})",
                               (part, *keys)).fetchall()

    def keys_in_use(self, keys: list[str]) -> set[str]:
        marks = ",".join("?" * len(keys))
        return {row[0] for row in self.db.execute(f"SELECT DISTINCT key FROM parts WHERE key IN ({marks})", keys)}

    def parts(self, key: str) -> list[sqlite3.Row]:
        """The parts of ``key`` still waiting for their message."""
        return self.db.execute("SELECT * FROM parts WHERE key = ? AND message_id IS NULL ORDER BY part",
                               (key,)).fetchall()

    def mark_parts_routed(self, key: str, msg_id: str) -> None:
        self.db.execute("UPDATE parts SET message_id = ? WHERE key = ? AND message_id IS NULL", (msg_id, key))

    def pending_parts(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM parts WHERE message_id IS NULL").fetchone()[0]

    def stale_part_keys(self, older_than: float) -> list[str]:
        rows = self.db.execute("SELECT key FROM parts WHERE message_id IS NULL GROUP BY key"
                               " HAVING MIN(received_at) <= ?", (older_than,))
        return [row[0] for row in rows]

    # -------------------------------------------------------------------------------- messages
    def has_message(self, msg_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE id = ?", (msg_id,)).fetchone() is not None

    def insert_message(self, row: MessageRow, pdus: list[str]) -> None:
        self.db.execute(
            "INSERT INTO messages (id, iccid, number, port, sender, text, encoding, parts, complete, scts, received_at,"
            " lease_id, quarantined, pdus) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row.id, row.iccid, row.number, row.port, row.sender, row.text, row.encoding, row.parts, int(row.complete),
             row.scts, row.received_at, row.lease_id, int(row.quarantined), json.dumps(pdus)))

    def messages(self, *, quarantined: bool | None = None, lease_id: str | None = None,
                 limit: int = 1000) -> list[MessageRow]:
        clauses, args = [], []
        if quarantined is not None:
            clauses.append("quarantined = ?")
            args.append(int(quarantined))
        if lease_id is not None:
            clauses.append("lease_id = ?")
            args.append(lease_id)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = self.db.execute(f"SELECT * FROM messages {where} ORDER BY received_at LIMIT ?", (*args, limit))
        return [message_of(row) for row in rows]
