"""Retention: what the store may keep, and for how long; run every minute by the timer loop.

SMS texts and phone numbers are personal data. Texts and PDUs go first (``message_retention``,
``quarantine_retention``); the audit trail stays for the claim window; command answers for a day
(and the newest MAX_COMMANDS only); the outbox is capped in age (the claim window) and size
(MAX_OUTBOX, an alarm from OUTBOX_ALARM of it); the activation history no longer than the reuse
cool-down, or with "never" the newest MAX_ACTIVATIONS rows (an alarm from ACTIVATIONS_ALARM). A
purge that removed anything ends with a WAL checkpoint that truncates ``-wal``; with
``secure_delete`` the removed bytes are then gone from all three files.
"""

from __future__ import annotations

import structlog

from gateway.domain.leases import LeaseConfig
from gateway.store import ACTIVATIONS_ALARM, COMMAND_RETENTION, MAX_ACTIVATIONS, MAX_OUTBOX, OUTBOX_ALARM, Store

log = structlog.get_logger("gateway.store.retention")


def purge(store: Store, config: LeaseConfig, now: float) -> dict[str, int]:
    """Delete what is past its retention, in one transaction; returns counts per kind."""
    with store.transaction() as db:
        quarantined = db.execute("DELETE FROM messages WHERE quarantined = 1 AND received_at <= ?",
                                 (now - config.quarantine_retention,)).rowcount
        texts = db.execute("UPDATE messages SET text = NULL, sender = NULL, pdus = NULL, purged_at = ?"
                           " WHERE quarantined = 0 AND purged_at IS NULL AND received_at <= ?",
                           (now, now - config.message_retention)).rowcount
        rows = db.execute("DELETE FROM messages WHERE received_at <= ?", (now - config.claim_window,)).rowcount
        # Routed parts only serve to recognise a re-read: they hold raw PDUs, so they go with the
        # shortest retention; parts still waiting go with the longest.
        shortest = min(config.quarantine_retention, config.message_retention)
        longest = max(config.quarantine_retention, config.message_retention)
        stale_parts = db.execute("DELETE FROM parts WHERE (message_id IS NOT NULL AND received_at <= ?)"
                                 " OR received_at <= ?", (now - shortest, now - longest)).rowcount
        events = db.execute("DELETE FROM lease_events WHERE lease_id IN (SELECT id FROM leases WHERE ended_at"
                            " IS NOT NULL AND ended_at <= ?)", (now - config.claim_window,)).rowcount
        leases = db.execute("DELETE FROM leases WHERE ended_at IS NOT NULL AND ended_at <= ?",
                            (now - config.claim_window,)).rowcount
        db.execute("DELETE FROM commands WHERE at <= ?", (now - min(config.claim_window, COMMAND_RETENTION),))
        dropped = _cap_outbox(store, now - config.claim_window)
        cooldown = config.policy.reuse_cooldown
        expired = 0 if cooldown is None else db.execute("DELETE FROM activations WHERE at <= ?",
                                                        (now - cooldown,)).rowcount
        activations = _cap_activations(store)
    counts = {"quarantined": quarantined, "texts": texts, "messages": rows, "parts": stale_parts,
              "audit_events": events, "leases": leases, "outbox_dropped": dropped, "activations": expired,
              "activations_dropped": activations[0]}
    if any(counts.values()) and not checkpoint(store):
        log.warning("store.checkpoint_busy", hint="a reader holds the WAL; purged bytes leave it at the next purge")
    _alarm(store, config, now, dropped)
    _activations_alarm(*activations)
    return counts


def _cap_outbox(store: Store, older_than: float) -> int:
    """Drop events older than ``older_than`` (past the claim window nothing can be settled on
    them) and the oldest beyond MAX_OUTBOX; the marketplace sees a gap in ``seq``."""
    db = store.db
    dropped = db.execute("DELETE FROM outbox WHERE created_at <= ?", (older_than,)).rowcount
    row = db.execute("SELECT seq FROM outbox ORDER BY seq DESC LIMIT 1 OFFSET ?", (MAX_OUTBOX,)).fetchone()
    if row is not None:
        dropped += db.execute("DELETE FROM outbox WHERE seq <= ?", (row[0],)).rowcount
    return dropped


def _cap_activations(store: Store) -> tuple[int, int]:
    """Forget the activations longest ago beyond MAX_ACTIVATIONS; returns (dropped, rows kept)."""
    db = store.db
    (rows,) = db.execute("SELECT COUNT(*) FROM activations").fetchone()
    if rows <= MAX_ACTIVATIONS:
        return 0, rows
    dropped = db.execute("DELETE FROM activations WHERE rowid IN (SELECT rowid FROM activations ORDER BY at"
                         " LIMIT ?)", (rows - MAX_ACTIVATIONS,)).rowcount
    return dropped, rows - dropped


def _activations_alarm(dropped: int, rows: int) -> None:
    """An error for the activations forgotten at the cap, and one per purge from the alarm level on."""
    if dropped:
        log.error("activations.dropped", rows=dropped, cap=MAX_ACTIVATIONS,
                  consequence="these numbers may be leased again for the services they were activated for")
    elif rows >= ACTIVATIONS_ALARM * MAX_ACTIVATIONS:
        log.error("activations.nearly_full", rows=rows, cap=MAX_ACTIVATIONS,
                  hint="at the cap the activations longest ago are forgotten; a reuse_cooldown bounds the history")


def _alarm(store: Store, config: LeaseConfig, now: float, dropped: int) -> None:
    """An error for every event dropped at the cap, and one per purge from the alarm level on."""
    rows, oldest = store.outbox_size()
    if dropped:
        log.error("outbox.dropped", events=dropped, cap=MAX_OUTBOX, max_age_s=config.claim_window,
                  consequence="the marketplace sees a gap in seq")
    elif rows >= OUTBOX_ALARM * MAX_OUTBOX:
        log.error("outbox.nearly_full", events=rows, cap=MAX_OUTBOX, oldest_age_s=round(now - (oldest or now)),
                  hint="the marketplace is not acknowledging; at the cap the oldest events are dropped")


def checkpoint(store: Store) -> bool:
    """Copy the WAL into the database file and truncate it to nothing, so what a purge removed
    leaves ``-wal`` at once (``secure_delete`` has zeroed it in the pages). False when a reader
    holds the WAL: the next purge tries again."""
    busy, _, _ = store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy


def compact(store: Store) -> None:
    """Checkpoint, rebuild the file (VACUUM) and checkpoint again: ``simgw purge`` by hand."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("VACUUM")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
