"""The outbox of events for the marketplace, with a monotonic seq, and command answers for replays."""

from __future__ import annotations

import json
import sqlite3

_FROM_MESSAGES = ("text", "sender")  # SMS event fields read from ``messages`` when sent, never stored twice


class OutboxQueries:
    """Queries on ``outbox`` and ``commands`` (mixed into :class:`~gateway.store.Store`)."""

    db: sqlite3.Connection
    max_commands: int
    _enqueued: list[tuple[int, str, dict]]

    def enqueue(self, kind: str, payload: dict, at: float, *, lease_id: str | None = None,
                message_id: str | None = None) -> int:
        """Add an event. An SMS event is stored without its text and sender (they stay in
        ``messages`` alone, under its retention); :meth:`outbox` puts them back."""
        stored = {k: v for k, v in payload.items() if k not in _FROM_MESSAGES} if kind == "sms" else payload
        cursor = self.db.execute(
            "INSERT INTO outbox (kind, lease_id, message_id, payload, created_at) VALUES (?,?,?,?,?)",
            (kind, lease_id, message_id, json.dumps(stored, ensure_ascii=False), at))
        seq = int(cursor.lastrowid)
        self._enqueued.append((seq, kind, payload))
        return seq

    def outbox(self, after_seq: int = 0, limit: int = 1000) -> list[tuple[int, str, str | None, str | None, dict]]:
        """Events after ``after_seq``; an SMS event with its message's text and sender as they
        are now (None once purged)."""
        rows = self.db.execute("SELECT o.seq, o.kind, o.lease_id, o.message_id, o.payload, m.text, m.sender"
                               " FROM outbox o LEFT JOIN messages m ON o.kind = 'sms' AND m.id = o.message_id"
                               " WHERE o.seq > ? ORDER BY o.seq LIMIT ?", (after_seq, limit))
        out = []
        for seq, kind, lease_id, msg_id, payload, text, sender in rows:
            event = json.loads(payload)
            if kind == "sms":
                event.update(text=text, sender=sender)
            out.append((seq, kind, lease_id, msg_id, event))
        return out

    def outbox_size(self) -> tuple[int, float | None]:
        """Events not yet acknowledged, and when the oldest of them was made."""
        count, oldest = self.db.execute("SELECT COUNT(*), MIN(created_at) FROM outbox").fetchone()
        return count, oldest

    def acked_seq(self) -> int:
        return int(self.meta("acked_seq", "0") or 0)

    def max_seq(self) -> int:
        """The highest outbox seq ever assigned (AUTOINCREMENT never reuses one)."""
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def ack(self, seq: int, at: float) -> list[tuple[str, str]]:
        """The marketplace holds every event up to ``seq``: prune them from the outbox and note,
        for each SMS, when it was acknowledged (claims are settled on this). Returns (lease, msg)."""
        if seq <= self.acked_seq() or seq > self.max_seq():
            return []
        rows = self.db.execute("SELECT lease_id, message_id FROM outbox WHERE kind = 'sms' AND seq <= ?", (seq,))
        acked = [(row[0], row[1]) for row in rows]
        for lease_id, msg_id in acked:
            self.audit(lease_id, at, "sms.acked", {"msg_id": msg_id})
        self.db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,))
        self.set_meta("acked_seq", str(seq))
        return acked

    def command_result(self, command_id: str) -> dict | None:
        row = self.db.execute("SELECT result FROM commands WHERE command_id = ?", (command_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def save_command_result(self, command_id: str, result: dict, at: float) -> None:
        """Remember the answer for a replay; only the newest ``max_commands`` are kept (and none
        past COMMAND_RETENTION, see :meth:`purge`): a replay older than that runs again, which
        the lease rules make harmless (``duplicate_lease``, ``lease_ended``)."""
        cursor = self.db.execute("INSERT INTO commands (command_id, result, at) VALUES (?,?,?)",
                                 (command_id, json.dumps(result, ensure_ascii=False), at))
        self.db.execute("DELETE FROM commands WHERE rowid <= ?", (cursor.lastrowid - self.max_commands,))

    def command_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
