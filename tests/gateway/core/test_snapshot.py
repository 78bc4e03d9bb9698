"""The core's one transaction and what it publishes: atomic() commits the store with the engine
and banks or puts all of them back, and after either a new frozen CoreSnapshot is published;
the one Lease <-> row mapper gives a lease back as it was written."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.core import CoreSnapshot
from gateway.core.persistence import LeaseRows
from gateway.domain.leases import LeaseState
from gateway.store import StoreError
from tests.gateway.core.test_core import NUMBER_A, NUMBER_B, Clocks, make_core


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "simgw.db")


def test_each_commit_publishes_a_new_frozen_snapshot_of_what_the_loop_needs(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    before = core.snapshot
    assert isinstance(before, CoreSnapshot) and before.leases == () and before.due_at is None
    core.open_lease("L1", NUMBER_A, "telegram")
    after = core.snapshot
    assert after is not before and [lease.id for lease in after.leases] == ["L1"]
    assert after.due_at == core.engine.next_deadline() and after.store_writes == core.store.writes
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.due_at = 0.0  # type: ignore[misc]
    core.cancel("L1")
    assert core.snapshot.leases == () and before.leases == () and [lease.id for lease in after.leases] == ["L1"]


def test_a_failed_commit_rolls_back_engine_and_snapshot_together(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    published = core.snapshot
    fail = {"now": True}
    core.store._commit_fault = lambda: "database or disk is full" if fail["now"] else None
    with pytest.raises(StoreError, match="disk is full"):
        core.open_lease("L2", NUMBER_B, "telegram")
    assert core.engine.lease_for(NUMBER_B) is None  # memory did not run ahead of the disk
    assert [lease.id for lease in core.snapshot.leases] == ["L1"] == [lease.id for lease in published.leases]
    fail["now"] = False
    core.open_lease("L2", NUMBER_B, "telegram")
    assert sorted(lease.id for lease in core.snapshot.leases) == ["L1", "L2"]


def test_an_exception_inside_atomic_puts_the_engine_back(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    with pytest.raises(RuntimeError, match="boom"):
        with core.atomic():
            core.engine.open("L9", NUMBER_A, "telegram", clocks.mono)
            raise RuntimeError("boom")
    assert core.engine.lease_for(NUMBER_A) is None and core.store.lease("L9") is None


def test_the_lease_mapper_gives_a_lease_back_as_it_was_written(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    (opened,) = core.open_lease("L1", NUMBER_A, "telegram")
    lease = opened.lease
    stored = core.store.lease("L1")
    assert stored is not None and stored.state is LeaseState.WAITING
    assert stored.deadline == pytest.approx(clocks.wall + (lease.deadline - clocks.mono))
    clocks.advance(100)  # the same boot: the monotonic clock ran on
    again = LeaseRows(lambda: clocks.mono, lambda: clocks.wall + 3600).lease(stored, max_remaining=1e9,
                                                                           same_boot=True)
    assert again == lease  # a wall clock an hour off changes nothing on the same boot
