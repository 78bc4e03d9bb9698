"""The schema, as numbered migrations (``PRAGMA user_version`` says how many have run; opening
the store runs the rest, each in its own transaction), and the caps of the tables that grow."""

from __future__ import annotations


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
# Activation history (number x service) kept with reuse_cooldown = "never": beyond, the purge
# forgets the activations longest ago (an error says how many: those numbers may be leased for
# those services again), from ACTIVATIONS_ALARM of it an alarm. ~60 bytes a row in the file. It is
# 20,000 below the capacity of the lease engine's and the inventory's memory of it
# (gateway.domain.activations, 100,000): the rows added between two purges (a minute) fit, so
# both answer from memory at every size the store reaches. With a cool-down, older rows go.
MAX_ACTIVATIONS = 80_000
ACTIVATIONS_ALARM = 0.8
