"""The durable store: SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``.

What it keeps: every received part with its raw PDU until its message is whole; messages with a
deterministic id (so a message read twice, after a crash before the SIM delete, is stored once);
leases with absolute wall-clock deadlines; the audit trail of each lease for the claim window;
the number x service activation history; and the outbox of events for the marketplace, with a
monotonic sequence number.

``synchronous=FULL`` because a power cut must not lose an SMS that was already deleted from the
SIM: a commit is on the card before the driver is told to delete. ``secure_delete`` so purged
texts do not linger in free pages. The schema is versioned (``PRAGMA user_version``) and
migrated on open. A Store is used from one thread only (the daemon's core thread).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from gateway.leases import Lease, LeaseState

MIGRATIONS: tuple[str, ...] = (
    # 1: the initial schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE parts (
        key TEXT NOT NULL, part INTEGER NOT NULL, total INTEGER NOT NULL,
        iccid TEXT NOT NULL, port TEXT NOT NULL, pdu TEXT NOT NULL, received_at REAL NOT NULL,
        message_id TEXT,
        PRIMARY KEY (key, part));
    CREATE TABLE messages (
        id TEXT PRIMARY KEY, iccid TEXT NOT NULL, number TEXT, port TEXT NOT NULL,
        sender TEXT, text TEXT, encoding TEXT NOT NULL, parts INTEGER NOT NULL, complete INTEGER NOT NULL,
        scts TEXT, received_at REAL NOT NULL, lease_id TEXT, quarantined INTEGER NOT NULL DEFAULT 0,
        pdus TEXT, purged_at REAL);
    CREATE INDEX messages_lease ON messages (lease_id);
    CREATE INDEX messages_received ON messages (quarantined, received_at);
    CREATE TABLE leases (
        id TEXT PRIMARY KEY, number TEXT NOT NULL, service TEXT NOT NULL, category TEXT,
        state TEXT NOT NULL, opened_at REAL NOT NULL, deadline REAL NOT NULL, wait_window REAL NOT NULL,
        sms_count INTEGER NOT NULL, last_sms_at REAL, ended_at REAL);
    CREATE INDEX leases_state ON leases (state);
    CREATE TABLE lease_events (
        id INTEGER PRIMARY KEY, lease_id TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL, detail TEXT);
    CREATE INDEX lease_events_lease ON lease_events (lease_id);
    CREATE TABLE activations (number TEXT NOT NULL, service TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (number, service));
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, lease_id TEXT, message_id TEXT,
        payload TEXT NOT NULL, created_at REAL NOT NULL);
    """,
    # 2: marketplace commands are idempotent by command id: the first answer is kept and repeated
    """
    CREATE TABLE commands (command_id TEXT PRIMARY KEY, result TEXT NOT NULL, at REAL NOT NULL);
    """,
    # 3: SIM banks: a lease may wait for its SIM (held SMS from before it are not its own), and the
    #    inventory of every SIM in every bank slot; each lease keeps the wall-minus-monotonic offset
    #    its times were written with, so a restart on the same boot ignores wall-clock jumps
    """
    ALTER TABLE leases ADD COLUMN not_before REAL;
    ALTER TABLE leases ADD COLUMN clock_offset REAL;
    CREATE TABLE sims (
        bank TEXT NOT NULL, slot INTEGER NOT NULL, status TEXT NOT NULL, iccid TEXT, imsi TEXT,
        operator TEXT, msisdn TEXT, msisdn_source TEXT, detail TEXT, scan_run TEXT, seen_at REAL NOT NULL,
        PRIMARY KEY (bank, slot));
    CREATE INDEX sims_iccid ON sims (iccid);
    """,
    # 4: an SMS event in the outbox no longer carries the text and sender: they are read from
    #    messages when the event is sent, so the retention purge of messages covers them too
    """
    UPDATE outbox SET payload = json_remove(payload, '$.text', '$.sender') WHERE kind = 'sms';
    CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
    """,
    # 5 (smshub): a lease may be HELD by an SMSHub-compatible hub (gateway/smshub): its activation
    #    has a numeric id from a sequence; its SMS are pushed from hub_push (smsId = the row's
    #    sequence number), texts read from messages at send time; status-4 cancellations counted
    """
    ALTER TABLE leases ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE hub_activations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, lease_id TEXT NOT NULL UNIQUE, number TEXT NOT NULL,
        service TEXT NOT NULL, hub_service TEXT NOT NULL, opened_at REAL NOT NULL, status INTEGER,
        finished_at REAL);
    CREATE INDEX hub_activations_finished ON hub_activations (finished_at);
    CREATE TABLE hub_push (
        sms_id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, activation_id INTEGER NOT NULL,
        number TEXT NOT NULL, created_at REAL NOT NULL, next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        done_at REAL, outcome TEXT);
    CREATE INDEX hub_push_due ON hub_push (done_at, next_at);
    CREATE TABLE hub_cancels (number TEXT NOT NULL, service TEXT NOT NULL, count INTEGER NOT NULL,
        PRIMARY KEY (number, service));
    """,
)


MAX_OUTBOX = 50_000  # unacknowledged events kept; beyond, the oldest are dropped (alarm from 80 %)
OUTBOX_ALARM = 0.8
MAX_COMMANDS = 20_000  # marketplace command answers kept for replays: the newest ...
COMMAND_RETENTION = 24 * 3600.0  # ... and none older than this


class StoreError(RuntimeError):
    """The store refused (disk full, read-only, corrupt); the message says which and where."""


def message_id(iccid: str, sender: str, scts: str, concat_ref: int | None, text: str) -> str:
    """What identifies an SMS on the network, hashed: the same SMS read twice gets the same id."""
    material = "\x1f".join((iccid, sender, scts, "" if concat_ref is None else str(concat_ref), text))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:24]


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
    held: bool = False  # an SMSHub activation (gateway.leases: HELD)


@dataclass(frozen=True, slots=True)
class SimRow:
    """One bank slot as last seen: ``status`` is ok, empty, wrong_sim, no_network or no_answer."""

    bank: str
    slot: int
    status: str
    iccid: str | None = None
    imsi: str | None = None
    operator: str | None = None
    msisdn: str | None = None
    msisdn_source: str | None = None  # cnum, ussd or config
    detail: str | None = None
    scan_run: str | None = None
    seen_at: float = 0.0


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


def _private_files(path: str) -> None:
    """The database holds texts and numbers: create it 0600 for the daemon's user alone (outside
    systemd's UMask too) and tighten one left looser. SQLite gives its -wal and -shm the database
    file's mode when it creates them; ones that already exist are tightened here as well."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        pass
    for name in (path, path + "-wal", path + "-shm", path + "-journal"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, 0o600)
        except OSError:  # absent, or not ours to change (a read-only medium): open it as it is
            pass


class Store:
    def __init__(self, path: str, *, commit_fault: Callable[[], str | None] | None = None,
                 max_commands: int = MAX_COMMANDS) -> None:
        self.path = path
        self.max_commands = max_commands
        self._commit_fault = commit_fault  # injected by the soak: the error a full disk would give
        self.on_committed: Callable[[list[tuple[int, str, dict]]], None] | None = None  # outbox rows, once durable
        self._enqueued: list[tuple[int, str, dict]] = []
        self._db: sqlite3.Connection | None = None
        self.writes = 0  # committed write transactions (the SD card's wear)

    # ------------------------------------------------------------------------------- lifecycle
    def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            _private_files(self.path)
            db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        db.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "secure_delete=ON",
                       "busy_timeout=10000"):
            db.execute(f"PRAGMA {pragma}")
        self._db = db
        self._migrate()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"database {self.path} is not open")
        return self._db

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this simgw ({len(MIGRATIONS)})")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot begin a write: {exc}") from None
        self._enqueued = []  # rows this transaction adds to the outbox; handed on only if it commits
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        try:
            fault = self._commit_fault() if self._commit_fault is not None else None
            if fault is not None:
                raise sqlite3.OperationalError(fault)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: commit failed: {exc}") from None
        self.writes += 1
        if self._enqueued and self.on_committed is not None:
            self.on_committed(self._enqueued)
        self._enqueued = []

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # ----------------------------------------------------------------------------------- parts
    def insert_part(self, key: str, part: int, total: int, iccid: str, port: str, pdu: str, at: float) -> str:
        """Record a part. Returns ``new``; ``duplicate`` when this very PDU is already held (read
        twice: a crash came between our commit and the SIM delete), even after its message was
        routed; or ``conflict`` when a different PDU waits in that slot (the caller flushes the
        waiting set first). Routed parts are kept, marked, until retention, for exactly that."""
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
        return [_message(row) for row in rows]

    # ---------------------------------------------------------------------------------- leases
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
        return [_lease(row) for row in rows]

    def lease(self, lease_id: str) -> StoredLease | None:
        row = self.db.execute("SELECT * FROM leases WHERE id = ?", (lease_id,)).fetchone()
        return _lease(row) if row else None

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
        return [SimRow(r["bank"], r["slot"], r["status"], r["iccid"], r["imsi"], r["operator"], r["msisdn"],
                       r["msisdn_source"], r["detail"], r["scan_run"], r["seen_at"]) for r in rows]

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

    # ---------------------------------------------------------------------------------- outbox
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

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))


_FROM_MESSAGES = ("text", "sender")  # SMS event fields read from ``messages`` when sent, never stored twice


def _lease(row: sqlite3.Row) -> StoredLease:
    return StoredLease(row["id"], row["number"], row["service"], row["category"], LeaseState(row["state"]),
                       row["opened_at"], row["deadline"], row["wait_window"], row["sms_count"], row["last_sms_at"],
                       row["ended_at"], row["not_before"], row["clock_offset"], bool(row["held"]))


def _message(row: sqlite3.Row) -> MessageRow:
    return MessageRow(row["id"], row["iccid"], row["number"], row["port"], row["sender"], row["text"],
                      row["encoding"], row["parts"], bool(row["complete"]), row["scts"], row["received_at"],
                      row["lease_id"], bool(row["quarantined"]), row["purged_at"])


def engine_lease(stored: StoredLease, *, wall_now: float, mono_now: float, max_remaining: float,
                 same_boot: bool = False) -> Lease:
    """Convert a stored lease to engine time. On the same boot the monotonic clock has run on
    across the restart, so the offset the times were written with gives them back exactly, whatever
    the wall clock did meanwhile. Otherwise the wall clock is all there is: the remaining time is
    clamped to the policy bound, so a wall clock set back while we were down cannot stretch a
    lease; a deadline already past keeps its order (the first tick resolves it)."""
    if same_boot and stored.clock_offset is not None:
        offset = -stored.clock_offset
        deadline = stored.deadline + offset
    else:
        offset = mono_now - wall_now
        deadline = mono_now + min(stored.deadline - wall_now,
                                  max(max_remaining, stored.wait_window) if stored.held else max_remaining)

    def to_engine(wall: float | None) -> float | None:
        return None if wall is None else wall + offset

    return Lease(stored.id, stored.number, stored.service, stored.category, stored.state,
                 stored.opened_at + offset, deadline, stored.wait_window, stored.sms_count,
                 to_engine(stored.last_sms_at), to_engine(stored.ended_at), to_engine(stored.not_before),
                 stored.held)
