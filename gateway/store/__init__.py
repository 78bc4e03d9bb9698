"""The durable store: SQLite (stdlib ``sqlite3``) in WAL mode with ``synchronous=FULL``.

What it keeps: each part of a concatenated SMS with its raw PDU until its message is whole; messages with a
deterministic id; leases with absolute wall-clock deadlines and their audit trail; the number x
service activation history; SIM-bank slots; and the outbox of events for the marketplace. One
module per table group (:mod:`.messages`, :mod:`.leases`, :mod:`.outbox`), the schema and its
caps in :mod:`.schema`, rows and their mappers in :mod:`.rows`, what may be kept for how long in
:mod:`.retention`. A Store is used from one thread only (the daemon's core thread).
"""

from __future__ import annotations

from gateway.store.connection import Connection, StoreError
from gateway.store.leases import LeaseQueries
from gateway.store.messages import MessageQueries
from gateway.store.outbox import OutboxQueries
from gateway.store.rows import MessageRow, StoredLease
from gateway.store.schema import (ACTIVATIONS_ALARM, COMMAND_RETENTION, MAX_ACTIVATIONS, MAX_COMMANDS, MAX_OUTBOX,
                                  MIGRATIONS, OUTBOX_ALARM)

__all__ = ["ACTIVATIONS_ALARM", "COMMAND_RETENTION", "MAX_ACTIVATIONS", "MAX_COMMANDS", "MAX_OUTBOX", "MIGRATIONS",
           "OUTBOX_ALARM", "MessageRow", "Store", "StoredLease", "StoreError"]


class Store(MessageQueries, LeaseQueries, OutboxQueries, Connection):
    """The database: a connection (:class:`Connection`) with the queries of every table."""
