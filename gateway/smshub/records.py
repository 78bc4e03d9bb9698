"""The hub's tables (store migration 5): activations with their numeric ids, the PUSH_SMS queue,
status-4 cancellation counts. Plain SQL on the store's connection, inside the caller's
transaction on the core thread; the tables themselves are created by gateway.store's MIGRATIONS.

Caps: ``hub_push`` holds at most MAX_PENDING_PUSHES undelivered rows (beyond, the oldest is given
up, logged); delivered rows and finished activations go after the claim window; a text whose
retention passed before the hub took it is given up (``purged``), never sent without its text.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

MAX_PENDING_PUSHES = 50_000
MAX_ACTIVATIONS = 200_000  # finished ones beyond are forgotten oldest first (then FINISH repeats answer ERROR)


@dataclass(frozen=True, slots=True)
class Activation:
    id: int
    lease_id: str
    number: str
    service: str
    hub_service: str
    opened_at: float
    status: int | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class Push:
    sms_id: int
    message_id: str
    activation_id: int
    number: str
    attempts: int
    sender: str | None
    text: str | None


def lease_id_for(activation_id: int) -> str:
    return f"hub-{activation_id}"


def next_activation_id(db: sqlite3.Connection) -> int:
    """The id the next activation gets: AUTOINCREMENT never hands one out twice, even after purges."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'hub_activations'").fetchone()
    return (int(row[0]) if row else 0) + 1


def skip_activation_id(db: sqlite3.Connection, activation_id: int) -> None:
    """``activation_id``'s lease id is taken (a simgw.v1 lease named ``hub-N``): never hand it out."""
    db.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'hub_activations', 0 WHERE NOT EXISTS"
               " (SELECT 1 FROM sqlite_sequence WHERE name = 'hub_activations')")
    db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'hub_activations'", (activation_id,))


def add_activation(db: sqlite3.Connection, activation_id: int, number: str, service: str, hub_service: str,
                   at: float) -> None:
    db.execute("INSERT INTO hub_activations (id, lease_id, number, service, hub_service, opened_at)"
               " VALUES (?,?,?,?,?,?)", (activation_id, lease_id_for(activation_id), number, service, hub_service, at))


def _activation(row: sqlite3.Row | None) -> Activation | None:
    return None if row is None else Activation(*row)


_COLUMNS = "id, lease_id, number, service, hub_service, opened_at, status, finished_at"


def activation(db: sqlite3.Connection, activation_id: int) -> Activation | None:
    return _activation(db.execute(f"SELECT {_COLUMNS} FROM hub_activations WHERE id = ?", (activation_id,)).fetchone())


def activation_of_lease(db: sqlite3.Connection, lease_id: str) -> Activation | None:
    return _activation(db.execute(f"SELECT {_COLUMNS} FROM hub_activations WHERE lease_id = ?", (lease_id,)).fetchone())


def finish_activation(db: sqlite3.Connection, activation_id: int, status: int, at: float) -> None:
    db.execute("UPDATE hub_activations SET status = ?, finished_at = ? WHERE id = ? AND status IS NULL",
               (status, at, activation_id))


def count_cancel(db: sqlite3.Connection, number: str, service: str) -> int:
    """One more status-4 cancellation of ``number`` for ``service``; returns the total so far."""
    db.execute("INSERT INTO hub_cancels (number, service, count) VALUES (?,?,1) ON CONFLICT(number, service)"
               " DO UPDATE SET count = count + 1", (number, service.lower()))
    return int(db.execute("SELECT count FROM hub_cancels WHERE number = ? AND service = ?",
                          (number, service.lower())).fetchone()[0])


def forget_cancels(db: sqlite3.Connection, number: str, service: str) -> None:
    db.execute("DELETE FROM hub_cancels WHERE number = ? AND service = ?", (number, service.lower()))


# ------------------------------------------------------------------------------------- pushes
def queue_push(db: sqlite3.Connection, message_id: str, activation_id: int, number: str, at: float) -> int:
    """Queue an SMS for PUSH_SMS, due now; its ``sms_id`` is the smsId the hub sees, every time."""
    cursor = db.execute("INSERT INTO hub_push (message_id, activation_id, number, created_at, next_at)"
                        " VALUES (?,?,?,?,?) ON CONFLICT(message_id) DO NOTHING",
                        (message_id, activation_id, number, at, at))
    return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else 0  # 0: it was queued already


def due_pushes(db: sqlite3.Connection, now: float, limit: int, skip: tuple[int, ...] = ()) -> list[Push]:
    """Undelivered pushes due by ``now``, oldest first, with their text as ``messages`` holds it now."""
    marks = ",".join("?" * len(skip))
    rows = db.execute("SELECT p.sms_id, p.message_id, p.activation_id, p.number, p.attempts, m.sender, m.text"
                      " FROM hub_push p LEFT JOIN messages m ON m.id = p.message_id"
                      f" WHERE p.done_at IS NULL AND p.next_at <= ? {f'AND p.sms_id NOT IN ({marks})' if skip else ''}"
                      " ORDER BY p.next_at, p.sms_id LIMIT ?", (now, *skip, limit))
    return [Push(*row) for row in rows]


def next_push_at(db: sqlite3.Connection) -> float | None:
    row = db.execute("SELECT MIN(next_at) FROM hub_push WHERE done_at IS NULL").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def push_done(db: sqlite3.Connection, sms_id: int, outcome: str, at: float) -> None:
    db.execute("UPDATE hub_push SET done_at = ?, outcome = ?, attempts = attempts + 1 WHERE sms_id = ?",
               (at, outcome, sms_id))


def push_again(db: sqlite3.Connection, sms_id: int, next_at: float) -> None:
    db.execute("UPDATE hub_push SET next_at = ?, attempts = attempts + 1 WHERE sms_id = ? AND done_at IS NULL",
               (next_at, sms_id))


def pushes(db: sqlite3.Connection) -> list[tuple[int, str, str | None, int]]:
    """(sms_id, message_id, outcome, attempts) of every push row, for tests and status."""
    return [tuple(r) for r in db.execute("SELECT sms_id, message_id, outcome, attempts FROM hub_push ORDER BY sms_id")]


def purge(db: sqlite3.Connection, now: float, *, claim_window: float) -> dict[str, int]:
    """Past their time: delivered pushes and finished activations after the claim window; pushes
    whose text retention removed, given up; undelivered ones past MAX_PENDING_PUSHES, oldest first."""
    purged = db.execute("UPDATE hub_push SET done_at = ?, outcome = 'purged' WHERE done_at IS NULL AND message_id IN"
                        " (SELECT id FROM messages WHERE text IS NULL) OR (done_at IS NULL AND message_id NOT IN"
                        " (SELECT id FROM messages))", (now,)).rowcount
    over = db.execute("UPDATE hub_push SET done_at = ?, outcome = 'over_cap' WHERE sms_id IN (SELECT sms_id FROM"
                      " hub_push WHERE done_at IS NULL ORDER BY sms_id DESC LIMIT -1 OFFSET ?)",
                      (now, MAX_PENDING_PUSHES)).rowcount
    done = db.execute("DELETE FROM hub_push WHERE done_at IS NOT NULL AND done_at <= ?", (now - claim_window,)).rowcount
    finished = db.execute("DELETE FROM hub_activations WHERE finished_at IS NOT NULL AND finished_at <= ?",
                          (now - claim_window,)).rowcount
    finished += db.execute("DELETE FROM hub_activations WHERE id IN (SELECT id FROM hub_activations WHERE"
                           " finished_at IS NOT NULL ORDER BY id DESC LIMIT -1 OFFSET ?)", (MAX_ACTIVATIONS,)).rowcount
    return {"pushes_purged": purged, "pushes_over_cap": over, "pushes_forgotten": done, "activations_forgotten": finished}
