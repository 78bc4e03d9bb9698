"""The durable store: SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``.

What it keeps: each part of a concatenated SMS with its raw PDU until its message is whole; messages with a
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
import os
import sqlite3
from collections.abc import Callable, Iterator

from gateway.store.schema import MAX_COMMANDS, MIGRATIONS


class StoreError(RuntimeError):
    """The store refused (disk full, read-only, corrupt); the message says which and where."""



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



class Connection:
    """The database file, its pragmas, its migrations and one write transaction at a time."""

    def __init__(self, path: str, *, commit_fault: Callable[[], str | None] | None = None,
                 max_commands: int = MAX_COMMANDS) -> None:
        self.path = path
        self.max_commands = max_commands
        self._commit_fault = commit_fault  # injected by the soak: the error a full disk would give
        self.on_committed: Callable[[list[tuple[int, str, dict]]], None] | None = None  # outbox rows, once durable
        self._enqueued: list[tuple[int, str, dict]] = []
        self._db: sqlite3.Connection | None = None
        self.writes = 0  # committed write transactions (the SD card's wear)
        self.commit_failures = 0  # write transactions SQLite refused (disk full, read-only, I/O error, locked)

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
            self.commit_failures += 1
            raise StoreError(f"{self.path}: cannot begin a write: {exc}") from None
        self._enqueued = []  # rows this transaction adds to the outbox; handed on only if it commits
        try:
            yield db
        except BaseException as exc:
            if isinstance(exc, sqlite3.Error):  # e.g. SQLITE_FULL while writing pages, before COMMIT
                self.commit_failures += 1
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
            self.commit_failures += 1
            raise StoreError(f"{self.path}: commit failed: {exc}") from None
        self.writes += 1
        if self._enqueued and self.on_committed is not None:
            self.on_committed(self._enqueued)
        self._enqueued = []

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))
