"""The activation history on disk: kept no longer than the reuse cool-down, and capped with "never".

A real SQLite file, the daemon's own purge (``GatewayCore.purge``), clocks injected."""

from __future__ import annotations

import sqlite3

import pytest
from structlog.testing import capture_logs

import gateway.store.retention as retention_module
from gateway.config import LeaseConfig
from gateway.core import GatewayCore
from gateway.domain.leases import Policy
from gateway.store import Store
from tests.gateway.core.test_core import ICCID_A, ICCID_B, NUMBER_A, NUMBER_B, Clocks, make_core, part, pdus

HOUR = 3600.0


def activate(core: GatewayCore, lease_id: str, number: str, service: str, ref: int) -> None:
    """A lease that got its SMS and was finished: one row of the activation history."""
    assert core.open_lease(lease_id, number, service)[-1].__class__.__name__ == "Opened"
    iccid, port = (ICCID_A, "/dev/ttyUSB0") if number == NUMBER_A else (ICCID_B, "/dev/ttyUSB1")
    core.ingest(part(iccid, pdus(f"code {lease_id}", ref=ref)[0], port))
    core.finish(lease_id)


def stored(path: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT number, service FROM activations"))
    finally:
        db.close()


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "simgw.db")


def test_with_a_cooldown_the_purge_deletes_activations_older_than_it(db):
    """Fails before this commit: the purge kept every row (no ``activations`` count, both rows stay)."""
    clocks = Clocks()
    core = make_core(db, clocks, policy=Policy(reuse_cooldown=HOUR))
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.advance(HOUR / 2)
    activate(core, "L2", NUMBER_B, "telegram", ref=2)
    clocks.advance(HOUR / 2 + 1)  # L1's activation is past the cool-down, L2's is not

    counts = core.purge()

    assert counts["activations"] == 1
    assert stored(db) == [(NUMBER_B, "telegram")]
    assert core.used.of(NUMBER_A) == {}  # the inventory's view forgot it too
    assert core.open_lease("L3", NUMBER_A, "telegram")[-1].__class__.__name__ == "Opened"
    assert core.open_lease("L4", NUMBER_B, "telegram")[-1].code == "number_used_for_service"
    # the engine's memory no longer holds what the store dropped
    assert core.engine._activated.last(NUMBER_A, "telegram") is None
    clocks.advance(HOUR)
    assert core.purge()["activations"] == 1 and stored(db) == []


def test_with_never_the_history_is_kept_past_every_retention(db):
    clocks = Clocks()
    core = make_core(db, clocks)  # reuse_cooldown absent: never
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.advance(400 * 86400)  # past the longest claim window and message retention
    assert core.purge()["activations"] == 0
    assert stored(db) == [(NUMBER_A, "telegram")]
    assert core.open_lease("L2", NUMBER_A, "telegram")[-1].code == "number_used_for_service"


def test_with_never_the_history_is_capped_oldest_forgotten_first_and_said(db, monkeypatch):
    """At MAX_ACTIVATIONS rows the purge forgets the activations longest ago, with an error that
    says so; from 80 % of it, an alarm. What the store forgot, the engine's memory forgets too."""
    monkeypatch.setattr(retention_module, "MAX_ACTIVATIONS", 5)
    clocks = Clocks()
    core = make_core(db, clocks)
    services = [f"svc{i}" for i in range(7)]
    for i, service in enumerate(services[:4]):
        activate(core, f"A{i}", NUMBER_A, service, ref=i + 1)
        clocks.advance(60)
    with capture_logs() as logs:
        assert core.purge()["activations_dropped"] == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["activations.nearly_full"]

    for i, service in enumerate(services[4:], start=4):
        activate(core, f"A{i}", NUMBER_A, service, ref=i + 1)
        clocks.advance(60)
    with capture_logs() as logs:
        assert core.purge()["activations_dropped"] == 2
    dropped = [e for e in logs if e["event"] == "activations.dropped"]
    assert len(dropped) == 1 and dropped[0]["rows"] == 2 and dropped[0]["cap"] == 5
    assert stored(db) == sorted((NUMBER_A, s) for s in services[2:])
    assert core.open_lease("B0", NUMBER_A, "svc0")[-1].__class__.__name__ == "Opened"  # forgotten: leasable again
    core.cancel("B0")
    assert core.open_lease("B2", NUMBER_A, "svc2")[-1].code == "number_used_for_service"


def test_a_restart_reloads_only_what_the_purge_kept(db):
    clocks = Clocks()
    core = make_core(db, clocks, policy=Policy(reuse_cooldown=HOUR))
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.advance(HOUR + 1)
    core.purge()
    core.store.close()
    store = Store(db)
    store.open()
    again = GatewayCore(store, LeaseConfig(policy=Policy(reuse_cooldown=HOUR)), mono=lambda: clocks.mono,
                        wall=lambda: clocks.wall)
    again.start()
    assert len(again.engine._activated) == 0 and store.activations() == []


def test_memory_holds_every_activation_the_store_reaches_between_two_purges():
    """The engine and the inventory answer from memory at every size the store reaches: the
    purge trims it to MAX_ACTIVATIONS every minute, and a minute of activations fits above that
    (beyond its capacity the inventory would reread the whole table on every rebuild)."""
    from gateway.domain.activations import DEFAULT_CAPACITY
    from gateway.runtime.timers import PURGE_INTERVAL
    from gateway.store import MAX_ACTIVATIONS

    assert PURGE_INTERVAL <= 60
    assert DEFAULT_CAPACITY - MAX_ACTIVATIONS >= 20_000  # 333 activations a second for a minute


def test_ended_leases_are_forgotten_in_memory_with_their_rows(db):
    """The engine remembers ended leases (for a late command naming one) no longer than the store
    keeps their rows: the claim window. Fails before this commit: memory kept the last 10,000
    whatever their age (RSS grew for 10,000 leases, ~4 MB, in tests/bench/bench_uptime.py)."""
    clocks = Clocks()
    core = make_core(db, clocks)
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.advance(3600)
    activate(core, "L2", NUMBER_B, "telegram", ref=2)
    clocks.advance(LeaseConfig().claim_window - 1800)  # L1 is past the claim window, L2 is not
    assert core.purge()["leases"] == 1
    assert core.engine.get("L1") is None and core.store.lease("L1") is None
    assert core.engine.get("L2") is not None and core.store.lease("L2") is not None
    assert core.finish("L1")[-1].code == "unknown_lease"


def test_ended_leases_follow_the_store_when_the_wall_clock_runs_ahead(db):
    """Rows are purged by wall time, the engine counts in monotonic time: memory follows the
    store's rows, not a clock (a wall clock set forward purges both)."""
    clocks = Clocks()
    core = make_core(db, clocks)
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.wall += LeaseConfig().claim_window + 1  # the monotonic clock stays
    assert core.purge()["leases"] == 1
    assert core.engine.get("L1") is None


def test_activations_in_memory_follow_the_store_when_the_wall_clock_runs_ahead(db):
    """The store purges by wall time, the engine judges the cool-down in monotonic time: what the
    store no longer has, memory forgets, whatever the clocks did."""
    clocks = Clocks()
    core = make_core(db, clocks, policy=Policy(reuse_cooldown=HOUR))
    activate(core, "L1", NUMBER_A, "telegram", ref=1)
    clocks.wall += HOUR / 2  # the monotonic clock stays
    activate(core, "L2", NUMBER_B, "telegram", ref=2)
    clocks.wall += HOUR / 2 + 1
    assert core.purge()["activations"] == 1
    assert len(core.activated) == 1
    assert core.open_lease("L3", NUMBER_A, "telegram")[-1].__class__.__name__ == "Opened"
    assert core.open_lease("L4", NUMBER_B, "telegram")[-1].code == "number_used_for_service"
