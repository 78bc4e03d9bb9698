"""The SIM bank scheduler, I/O-free: placement, the never-switch-out-a-leased-SIM rule, the
bounded queue, rotation, failed switches; and a random walk that checks the invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.scheduler import (CHANNEL_TRANSITIONS, ChannelEvent, ChannelState, Outcome, SchedulerRuleBroken,
                                      SimScheduler, interleaved_reach)

CHANNELS = ["ch0", "ch1", "ch2", "ch3"]


def bank(queue_limit: int = 2) -> SimScheduler:
    s = SimScheduler(interleaved_reach(CHANNELS, 128), queue_limit=queue_limit, rotation_period=60.0)
    for channel in CHANNELS:
        s.observe(channel, None, 0.0)
    return s


def test_every_channel_state_has_a_way_out_and_a_switch_always_ends_holding():
    sources = {state for state, _ in CHANNEL_TRANSITIONS}
    assert sources == set(ChannelState)
    assert CHANNEL_TRANSITIONS[(ChannelState.SWITCHING, ChannelEvent.SWITCH_DONE)] is ChannelState.HOLDING
    assert (ChannelState.UNKNOWN, ChannelEvent.SWITCH) not in CHANNEL_TRANSITIONS  # never before it is known
    assert (ChannelState.SWITCHING, ChannelEvent.SWITCH) not in CHANNEL_TRANSITIONS  # one switch at a time


def test_a_switch_outside_the_table_is_refused_not_assumed():
    s = SimScheduler(interleaved_reach(CHANNELS, 8), rotation_period=60.0)
    with pytest.raises(SchedulerRuleBroken, match="switch while unknown"):
        s._switch(s._channels["ch0"], 4, "rotation", 0.0)
    assert not s.is_switching("ch0")


def test_a_leased_sim_is_never_switched_out_even_if_asked_to():
    """The rule is checked where a switch is made, whoever asks: it raises (the core's
    transaction then rolls back) instead of an assert that ``python -O`` would strip."""
    s = bank()
    assert s.request("L1", 0, 0.0).outcome is Outcome.SWITCH
    s.switch_done("ch0", True, 1.0)
    assert s.on_air(0) and s.lease_on(0) == "L1"
    with pytest.raises(SchedulerRuleBroken, match="a leased SIM is never switched out"):
        s._switch(s._channels["ch0"], 4, "rotation", 2.0)
    assert s.on_air(0) and not s.is_switching("ch0")


def test_nothing_is_switched_on_a_channel_until_it_reports_its_sim():
    s = SimScheduler(interleaved_reach(CHANNELS, 128), rotation_period=60.0)
    s.restore("OLD", 1, on_air=True)  # a lease from before a restart, its SIM presumably on ch1
    assert s.rotations_due(1e9) == []  # no channel known: no rotation
    assert s.request("L1", 5, 0.0).outcome is Outcome.QUEUED
    assert s.observe("ch1", 1, 1.0) == []  # ch1 holds the leased SIM: L1 still waits
    assert all(sw.channel != "ch1" for sw in s.rotations_due(1e9))
    served = s.release(1, 2.0)
    assert [(p.lease_id, p.outcome) for p in served] == [("L1", Outcome.SWITCH)]


def test_wiring_4_by_32():
    reach = interleaved_reach(CHANNELS, 128)
    assert [len(s) for s in reach.values()] == [32] * 4 and reach["ch1"][:3] == (1, 5, 9)
    with pytest.raises(ValueError):
        SimScheduler({"a": (1, 2), "b": (2, 3)})


def test_off_air_sim_is_switched_in_then_on_air_needs_nothing():
    s = bank()
    first = s.request("L1", 5, 0.0)
    assert first.outcome is Outcome.SWITCH and first.switch.channel == "ch1" and first.switch.to_slot == 5
    s.switch_done("ch1", True, 1.0)
    s.release(5, 2.0)
    again = s.request("L2", 5, 3.0)
    assert again.outcome is Outcome.ON_AIR and again.switch is None


def test_a_leased_sim_is_never_switched_out_the_next_lease_queues():
    s = bank()
    s.request("L1", 1, 0.0)
    s.switch_done("ch1", True, 1.0)
    queued = s.request("L2", 5, 2.0)  # same channel, its SIM is leased
    assert queued.outcome is Outcome.QUEUED
    rotations = s.rotations_due(1e9)
    assert rotations and all(sw.channel != "ch1" for sw in rotations)  # the leased SIM's channel stays
    served = s.release(1, 3.0)
    assert [p.outcome for p in served] == [Outcome.SWITCH] and served[0].switch.from_slot == 1


def test_queue_is_bounded_then_no_channel():
    s = bank(queue_limit=1)
    s.request("L1", 2, 0.0)
    assert s.request("L2", 6, 0.0).outcome is Outcome.QUEUED
    assert s.request("L3", 10, 0.0).outcome is Outcome.NO_CHANNEL
    assert s.cancel_queued("L2") and s.queued == []


def test_failed_switch_hands_the_lease_back_and_frees_the_channel():
    s = bank()
    s.request("L1", 3, 0.0)
    (back,) = s.switch_done("ch3", False, 1.0)
    assert back.outcome is Outcome.NO_CHANNEL and back.lease_id == "L1"
    assert not s.is_leased(3) and s.request("L2", 7, 2.0).outcome is Outcome.SWITCH


def test_idle_channels_rotate_through_every_slot():
    s = bank()
    seen = set()
    now = 0.0
    for _ in range(40):
        for switch in s.rotations_due(now):
            s.switch_done(switch.channel, True, now)
            seen.add(switch.to_slot)
        now += 61.0
    assert seen == set(range(128))


@given(st.lists(st.tuples(st.sampled_from(["request", "release", "done_ok", "done_fail", "rotate", "observe"]),
                          st.integers(0, 127), st.sampled_from(CHANNELS)), max_size=80))
@settings(max_examples=300, deadline=None)
def test_random_walk_never_switches_out_a_leased_sim(steps):
    s = bank(queue_limit=3)
    decided: list = []
    s.add_listener(decided.append)
    now = 0.0
    n = 0
    for action, slot, channel in steps:
        now += 10.0
        before = len(decided)
        if action == "request" and not s.is_leased(slot) and all(q[1] != slot for q in s.queued):
            n += 1
            s.request(f"L{n}", slot, now)
        elif action == "release":
            s.release(slot, now)
        elif action in ("done_ok", "done_fail") and s._channels[channel].switching_to is not None:
            s.switch_done(channel, action == "done_ok", now)
        elif action == "rotate":
            s.rotations_due(now)
        elif action == "observe" and s.channel_of(slot) == channel and not s.is_leased(s.active_slot(channel) or -1):
            s.observe(channel, slot, now)  # a radio reports its SIM (never replacing a leased one)
        for switch in decided[before:]:  # (a released SIM may go; the scheduler also asserts it)
            assert switch.from_slot is None or switch.from_slot not in s._leased, "a leased SIM was switched out"
        assert len(s.queued) <= 3
        for c in s._channels.values():  # a radio holds one of its own SIMs, or none
            assert c.active is None or c.active in c.slots


# ---------------------------------------------------------------------- the core's bank inventory
def bank_core(tmp_path):
    """A core with one 4x32 bank whose SIMs are of two operators, on a real SQLite file; no I/O."""
    from drivers.bank import PRESETS
    from gateway.config import BankConfig, LeaseConfig
    from gateway.core import GatewayCore
    from gateway.domain.banks import SimRow, SimStatus
    from gateway.store import Store

    clock = [1000.0]
    store = Store(str(tmp_path / "core.db"))
    store.open()
    config = BankConfig("bank1", PRESETS["swit"], tuple(f"/dev/ch{i}" for i in range(4)), 128, controller="/dev/ctl",
                        rotation=None)
    with store.transaction():
        for slot in range(128):
            operator = "Alpha" if slot % 8 < 4 else "Beta"  # each channel reaches SIMs of both
            store.save_sim(SimRow("bank1", slot, SimStatus.OK, f"8970{slot:015d}", "", operator, f"+7900{slot:07d}",
                                  "cnum", None, None, 0.0))
    core = GatewayCore(store, LeaseConfig(), mono=lambda: clock[0], wall=lambda: 1.8e9 + clock[0], banks=(config,))
    core.start()
    for i in range(4):
        core.observe_channel(f"/dev/ch{i}", f"8970{i:015d}")
    return core, clock


def test_inventory_counts_radios_per_operator_and_service_never_slots(tmp_path):
    core, clock = bank_core(tmp_path)
    inventory = core.inventory()
    assert inventory["capacity"] == {"RU/Alpha": 4, "RU/Beta": 4} and inventory["radios"] == 4
    assert len(inventory["numbers"]) == 128
    assert sum(1 for n in inventory["numbers"] if n["state"] == "online") == 4  # on air; the rest standby
    # A lease on channel 0's SIM takes that radio out of every count.
    assert core.open_lease("L1", "+79000000000", "svc")[-1].lease.state.value == "waiting"
    assert core.inventory()["capacity"] == {"RU/Alpha": 3, "RU/Beta": 3}
    # A lease on a SIM off air (slot 5, channel 1) switches and holds channel 1 while preparing.
    decisions = core.open_lease("L2", "+79000000005", "svc")
    assert decisions[-1].lease.state.value == "preparing" and len(core.take_switch_orders()) == 1
    assert core.inventory()["capacity"] == {"RU/Alpha": 2, "RU/Beta": 2}
    # Services: a channel counts for a service only through SIMs never activated for it. Every
    # Beta SIM channel 3 reaches was used for "tg": for "tg", Beta is down to channel 0 (1 is held).
    with core.store.transaction():
        for slot in range(3, 128, 4):
            if slot % 8 >= 4:
                core.store.record_activation(f"+7900{slot:07d}", "tg", 1.8e9)
                core.engine.restore_activation(f"+7900{slot:07d}", "tg", clock[0])
    core.used.forget()  # written behind the core's back: the inventory reads the store again
    inventory = core.inventory()
    assert inventory["capacity"] == {"RU/Alpha": 2, "RU/Beta": 2}
    assert inventory["capacity_by_service"] == {"tg": {"RU/Alpha": 2, "RU/Beta": 1}}
    core.cancel("L2")
    assert core.inventory()["capacity"] == {"RU/Alpha": 3, "RU/Beta": 3}


def test_country_from_the_imsi_when_the_number_does_not_say():
    from gateway.domain.numbering import country_of, country_of_imsi

    assert country_of_imsi("250011234567890") == "RU" and country_of_imsi("310260000000000") == "US"
    assert country_of_imsi("") is None and country_of("79001234567") is None  # a national number: no country


# ------------------------------------------------------------------- flat cost over uptime
def test_what_a_transaction_copies_does_not_grow_with_switches():
    """Every core transaction snapshots the bank state (to roll it back if the commit fails). That
    copy, and what the scheduler holds, must be the same size after 40,000 switches (104 days of
    15-minute rotation on 4 channels) as after 1,000: a log of every switch since start made the
    CPU per SMS grow for as long as the daemon ran. Switches are heard through a listener."""
    import pickle

    from drivers.bank import PRESETS
    from gateway.domain.banks import Banks
    from gateway.config import BankConfig

    config = BankConfig("bank1", PRESETS["swit"], tuple(f"/dev/ch{i}" for i in range(4)), 128, controller="/dev/ctl",
                        rotation=60.0)
    banks = Banks((config.layout,))
    scheduler = banks.schedulers["bank1"]
    heard: list = []
    scheduler.add_listener(heard.append)
    for channel in config.channels:
        scheduler.observe(channel, None, 0.0)
    now, switches, size_at_1000 = 0.0, 0, None
    while switches < 40_000:
        now += 61.0
        for switch in scheduler.rotations_due(now):
            banks.order("bank1", switch)
            scheduler.switch_done(switch.channel, True, now)
            switches += 1
        banks.take_orders()
        if size_at_1000 is None and switches >= 1000:
            size_at_1000 = len(pickle.dumps(banks.snapshot()))
    size_at_end = len(pickle.dumps(banks.snapshot()))
    assert size_at_end <= size_at_1000 + 64, (size_at_1000, size_at_end)
    assert len(heard) == switches and heard[-1].reason == "rotation"
    # A rollback still puts back exactly what the snapshot held.
    before = banks.snapshot()
    active = [scheduler.active_slot(c) for c in config.channels]
    (switch, *_) = scheduler.rotations_due(now + 61.0)
    banks.order("bank1", switch)
    banks.rollback(before)
    scheduler = banks.schedulers["bank1"]
    assert [scheduler.active_slot(c) for c in config.channels] == active and banks.take_orders() == []
    assert not any(scheduler.is_switching(c) for c in config.channels)


@given(st.lists(st.lists(st.tuples(st.sampled_from(["RU/A", "RU/B"]), st.integers(0, 9)), max_size=4), max_size=5),
       st.dictionaries(st.integers(0, 9), st.sets(st.sampled_from(["tg", "wa", "vk"]), max_size=3)))
@settings(max_examples=300, deadline=None)
def test_capacity_by_service_from_intersections_equals_counting_every_sim(radios, used):
    """The inventory counts per service by intersecting the SIMs' used services (its cost follows
    the history of the SIMs on the radios, not services x SIMs); the same counts as asking every
    SIM about every service."""
    from gateway.domain.capacity import count_by_service

    radios = [[(key, f"+7{n}") for key, n in radio] for radio in radios]
    blocked = {f"+7{n}": services for n, services in used.items()}
    services = {"tg", "wa", "vk", "ok"}

    def brute(service: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for radio in radios:
            for key in {key for key, number in radio if service not in blocked.get(number, set())}:
                counts[key] = counts.get(key, 0) + 1
        return counts

    assert count_by_service(radios, services, lambda number: blocked.get(number, set())) == \
        {service: brute(service) for service in sorted(services)}


def test_the_inventory_reads_the_activation_history_once_and_keeps_in_step():
    from gateway.domain.activations import UsedServices

    loads = []
    rows = [("+71", "TG", 10.0), ("+72", "wa", 20.0)]

    def load():
        loads.append(1)
        return list(rows)

    used = UsedServices(load, capacity=3)
    assert used.of("+71") == {"tg": 10.0} and used.services() == {"tg", "wa"}
    used.record("+71", "vk", 30.0)  # committed by the core with the lease that finished
    assert used.of("+71") == {"tg": 10.0, "vk": 30.0} and len(loads) == 1
    used.forget()  # a rollback: what memory holds may be ahead of the disk; read it again
    assert used.of("+71") == {"tg": 10.0} and len(loads) == 2
    used.record("+73", "ok", 40.0)
    used.record("+74", "ok", 50.0)  # a 4th entry: over capacity, not kept; each use reads the store
    rows += [("+73", "ok", 40.0), ("+74", "ok", 50.0)]
    assert used.of("+74") == {"ok": 50.0} and used.of("+72") == {"wa": 20.0} and len(loads) == 4
