"""SIM banks end to end: the simulated bank (controller and on-modem styles) on real ptys, the
real daemon, its control API and SQLite file. What the issue asks to see: 100 leases on a 4x32
bank with SMS at random times, each SMS at its lease exactly once or in quarantine, no leased SIM
ever switched out (checked from the bank's own switch log), the time leases waited for a radio;
every switch fault ending in a clear state; the inventory never counting more than the radios."""

from __future__ import annotations

import asyncio
import collections
import random
import statistics
import time

import pytest

from drivers.bank import PRESETS, Failure, SwitchReport
from drivers.simulator.bank import SimBank
from gateway.domain.banks import SwitchOrder
from gateway.config import BankConfig
from gateway.domain.leases import Policy
from gateway.domain.scheduler import Switch
from gateway.runtime.switcher import RECENT_SWITCHES, Switcher
from gateway.store import Store
from tests.conftest import run, wait_until
from tests.gateway.bank_env import SCALE, BankRig, prefill_inventory, rig_config

POLICY = Policy(held_sms_tolerance=0.0)  # the simulated network's clock is ours


def stored(config) -> tuple[dict[str, tuple[str | None, bool]], collections.Counter[str]]:
    """text -> (lease, quarantined), and how many rows each text has."""
    store = Store(config.database)
    store.open()
    try:
        messages = store.messages()
        return {m.text: (m.lease_id, m.quarantined) for m in messages}, collections.Counter(m.text for m in messages)
    finally:
        store.close()


def holding_intervals(config) -> dict[str, list[tuple[float, float, str]]]:
    """number -> [(from, to, lease)]: when each lease held its SIM on a radio (from the moment it
    was WAITING or got an SMS, not while it was still PREPARING) until it ended."""
    store = Store(config.database)
    store.open()
    try:
        out: dict[str, list[tuple[float, float, str]]] = {}
        for lease in store.leases():
            trail = store.audit_trail(lease.id)
            opened_state = trail[0][2].get("state")
            starts = [at for at, kind, _ in trail if kind in ("waiting", "sms")]
            if opened_state == "waiting":
                starts.append(trail[0][0])
            if starts:
                out.setdefault(lease.number, []).append((min(starts), lease.ended_at or time.time(), lease.id))
        return out
    finally:
        store.close()


@pytest.mark.slow
def test_100_leases_on_a_4x32_bank_exactly_once_and_no_leased_sim_switched_out(tmp_path):
    rng = random.Random(5)
    bank = SimBank(4, 128, time_scale=SCALE)
    config = rig_config(bank, str(tmp_path), policy=POLICY, queue=32)
    prefill_inventory(bank, config)
    expected: dict[str, str | None] = {}  # text -> lease id, or None: must not reach any lease
    waits: list[float] = []
    refusals = 0
    plan = rng.sample(range(128), 100)
    idle = [s for s in range(128) if s not in plan]

    async def worker(rig: BankRig, jobs: list[int]) -> None:
        nonlocal refusals
        while jobs:
            slot = jobs.pop()
            lease_id = f"L{slot:03d}"
            number = bank.cards[slot].msisdn
            if rng.random() < 0.25:  # sent before the lease opened: held or quarantined, never the lease's
                text = f"stale for {slot}"
                bank.send_sms(slot, "+79990000000", text)
                expected[text] = None
                await asyncio.sleep(2.2)
            opened = time.monotonic()
            while True:
                status, result = await rig.call("POST", "/leases", {"number": number, "service": "svc",
                                                                    "lease_id": lease_id})
                if status == 201:
                    break
                assert result["reason"] == "no_channel", result
                refusals += 1
                await asyncio.sleep(0.2)
            if rng.random() < 0.1:  # the buyer cancels before anything came; what comes later is not theirs
                await rig.call("POST", f"/leases/{lease_id}/cancel")
                await wait_until(lambda: rig.lease_state(lease_id) == "cancelled", 10, f"{lease_id} cancelled")
                text = f"after cancel {slot}"
                bank.send_sms(slot, "+79990000001", text)
                expected[text] = None
                continue
            early = rng.random() < 0.5  # sent while the SIM is still being switched in: held, then the lease's
            text = f"code {slot} {rng.randrange(10**6)}"
            if early:
                bank.send_sms(slot, "Service", text)
                expected[text] = lease_id
            await wait_until(lambda: rig.lease_state(lease_id) in ("waiting", "received"), 30, f"{lease_id} on air")
            waits.append(time.monotonic() - opened)
            if not early:
                await asyncio.sleep(rng.random() * 0.2)
                bank.send_sms(slot, "Service", text)
                expected[text] = lease_id
            await wait_until(lambda: rig.lease_state(lease_id) == "received", 15, f"{lease_id} got its SMS")
            status, _ = await rig.call("POST", f"/leases/{lease_id}/finish")
            assert status == 200

    async def noise(stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            slot = rng.choice(idle)
            text = f"noise {n} to {slot}"
            bank.send_sms(slot, "+79990000002", text)
            expected[text] = None
            n += 1
            await asyncio.sleep(0.1)

    capacity_seen: list[dict] = []

    async def watch_inventory(rig: BankRig, stop: asyncio.Event) -> None:
        while not stop.is_set():
            frame = await rig.gateway.uplink_port.inventory()
            capacity_seen.append(frame)
            await asyncio.sleep(0.05)

    async def scenario():
        async with BankRig(bank, config) as rig:
            jobs = list(plan)
            stop = asyncio.Event()
            background = [asyncio.create_task(noise(stop)), asyncio.create_task(watch_inventory(rig, stop))]
            await asyncio.gather(*(worker(rig, jobs) for _ in range(8)))
            stop.set()
            await asyncio.gather(*background)
            await asyncio.sleep(1.0)  # let the last quarantined SMS land
            outcomes = dict(rig.gateway.switcher.counts)
            _, status = await rig.call("GET", "/status")
        return outcomes, status["banks"][0]["lease_wait"]

    outcomes, reported_wait = run(scenario(), 240)
    got, copies = stored(config)
    held = {text for card in bank.cards if card for text in _held_texts(card)}
    for text, lease_id in expected.items():
        if lease_id is not None:
            assert got.get(text) == (lease_id, False), f"{text!r}: expected at {lease_id}, found {got.get(text)}"
        else:
            assert text in held or got.get(text) == (None, True), f"{text!r} leaked: {got.get(text)}"
    assert max(copies.values()) == 1, copies.most_common(3)  # nothing stored twice
    # No leased SIM switched out: every physical switch, against when leases held their SIMs.
    intervals = holding_intervals(config)
    number_of = {slot: card.msisdn for slot, card in enumerate(bank.cards)}
    physical = [(t, frm) for t, _, frm, _, done in bank.switch_log if done and frm is not None]
    violations = [(frm, lease) for t, frm in physical for start, end, lease in intervals.get(number_of[frm], [])
                  if start <= t < end]
    assert not violations, f"leased SIMs switched out: {violations[:5]}"
    # The run switched SIMs out from under its checks (a lease whose SIM idle rotation had already
    # brought on air needs none: 100 of the 128 SIMs are leased, so how many depends on timing; 89
    # was seen once under the parallel suite) and every switch the daemon made succeeded.
    assert len(physical) >= 75 and set(outcomes) == {("bank1", "ok")}
    # The inventory frame never offered more numbers at once than there are radios (4), per key and
    # per service; and it did offer fewer while leases held radios.
    counts = [n for frame in capacity_seen for n in (*frame["capacity"].values(),
              *(n for per in frame["capacity_by_service"].values() for n in per.values()))]
    assert counts and max(counts) <= 4 and min(frame["capacity"].get("RU/SimNet", 0) for frame in capacity_seen) < 4
    assert reported_wait["count"] >= 80 and reported_wait["max_s"] <= max(waits) + 0.5  # what /status reports
    print(f"\n/status lease_wait: {reported_wait}")
    print(f"bank 4x32, 100 leases: {len(physical)} switches, {refusals} no_channel refusals; "
          f"wait for a radio p50 {statistics.median(waits):.2f}s, p90 {sorted(waits)[int(len(waits) * 0.9)]:.2f}s, "
          f"max {max(waits):.2f}s (switch 10s and registration 5s scaled by {SCALE})")


def _held_texts(card) -> list[str]:
    from drivers.sms.pdu import decode_pdu

    return [decode_pdu(pdu).text for pdu in card.held]


async def _lease(rig: BankRig, slot: int, lease_id: str) -> tuple[int, dict]:
    """Lease the number the inventory has for ``slot``."""
    return await rig.call("POST", "/leases", {"number": _number_of(rig, slot), "service": "svc", "lease_id": lease_id})


def _number_of(rig: BankRig, slot: int) -> str:
    return rig.gateway.core.banks.rows[("bank1", slot)].msisdn


def _outbox_reason(rig: BankRig, lease_id: str) -> str | None:
    rows = rig.gateway.read(lambda store: store.outbox(0, 10_000))
    return next((payload.get("reason") for _, kind, lid, _, payload in rows
                 if kind == "lease" and lid == lease_id and payload["state"] == "failed"), None)


def _failed(rig: BankRig, lease_id: str) -> bool:
    """The lease ended FAILED and that is committed: the engine changes before its transaction
    commits, so the outbox row (read on another connection) is what says it is on disk."""
    return rig.lease_state(lease_id) == "failed" and _outbox_reason(rig, lease_id) is not None


def _fault_rig(tmp_path, **overrides) -> tuple[SimBank, object]:
    bank = SimBank(2, 8, time_scale=SCALE, answers_ok=overrides.pop("answers_ok", True))
    config = rig_config(bank, str(tmp_path), policy=overrides.pop("policy", POLICY), **overrides)
    prefill_inventory(bank, config)
    return bank, config


def test_switch_not_acknowledged_fails_the_lease_then_the_bank_keeps_serving(tmp_path):
    bank, config = _fault_rig(tmp_path, answers_ok=False, expect_ok=True, retries=1)

    async def scenario():
        async with BankRig(bank, config) as rig:
            status, result = await _lease(rig, 2, "F1")  # slot 2 is off air: needs a switch
            assert status == 201 and result["state"] == "preparing"
            await wait_until(lambda: _failed(rig, "F1"), 10, "F1 failed")
            assert _outbox_reason(rig, "F1").startswith("no_answer")
            assert rig.gateway.switcher.recent[-1][2].attempts == 2  # retried once
            assert rig.gateway.core.banks.rows[("bank1", 2)].status == "ok"  # the bank's fault, not the SIM's
            status, result = await _lease(rig, 0, "F2")  # slot 0 is on air: no switch needed
            assert status == 201 and result["state"] == "waiting"

    run(scenario(), 60)


@pytest.mark.slow
def test_wrong_sim_after_a_switch_is_retried_and_a_persistently_wrong_slot_is_taken_out(tmp_path):
    bank, config = _fault_rig(tmp_path, retries=1)

    async def scenario():
        async with BankRig(bank, config) as rig:
            bank.fail_next_switch(0)  # the controller says nothing, the old SIM stays: caught by the ICCID
            status, _ = await _lease(rig, 2, "W1")
            await wait_until(lambda: rig.lease_state("W1") == "waiting", 10, "W1 waiting after a retry")
            assert rig.gateway.switcher.recent[-1][2].attempts == 2
            await rig.call("POST", "/leases/W1/cancel")
            bank.cards[4], bank.cards[6] = bank.cards[6], bank.cards[4]  # someone swapped two SIMs by hand
            await rig.call("POST", "/leases", {"number": _number_of(rig, 4), "service": "svc", "lease_id": "W2"})
            await wait_until(lambda: _failed(rig, "W2"), 10, "W2 failed")
            assert _outbox_reason(rig, "W2").startswith("wrong_sim")
            assert rig.gateway.core.banks.rows[("bank1", 4)].status == "wrong_sim"
            status, result = await rig.call("POST", "/leases", {"number": bank.cards[6].msisdn, "service": "svc"})
            assert status == 409 and result["reason"] == "number_offline"  # not offered until rescanned

    run(scenario(), 60)


@pytest.mark.slow
def test_empty_slot_and_a_sim_that_never_registers_end_their_leases_failed(tmp_path):
    bank, config = _fault_rig(tmp_path, retries=0)

    async def scenario():
        async with BankRig(bank, config) as rig:
            bank.cards[2] = None  # the SIM was taken out of slot 2
            bank.cards[3].never_registers = True
            await _lease(rig, 2, "E1")
            await _lease(rig, 3, "E2")
            await wait_until(lambda: _failed(rig, "E1") and _failed(rig, "E2"), 15,
                             "both leases failed")
            assert _outbox_reason(rig, "E1").startswith("empty") and _outbox_reason(rig, "E2").startswith("no_network")
            rows = rig.gateway.core.banks.rows
            assert rows[("bank1", 2)].status == "empty" and rows[("bank1", 3)].status == "no_network"
            status, result = await _lease(rig, 4, "E3")  # the radios still serve good SIMs
            await wait_until(lambda: rig.lease_state("E3") == "waiting", 10, "E3 waiting")

    run(scenario(), 60)


@pytest.mark.slow
def test_no_channel_refusal_and_a_queued_lease_that_gets_no_radio_in_time(tmp_path):
    bank, config = _fault_rig(tmp_path, queue=0)

    async def scenario():
        async with BankRig(bank, config) as rig:
            assert (await _lease(rig, 0, "N1"))[1]["state"] == "waiting"  # on air on channel 1
            assert (await _lease(rig, 1, "N2"))[1]["state"] == "waiting"  # on air on channel 2
            status, result = await _lease(rig, 2, "N3")  # behind channel 1, whose SIM is leased
            assert status == 409 and result["reason"] == "no_channel" and result["message"]

    run(scenario(), 60)
    bank, config = _fault_rig(tmp_path / "queued", queue=4, policy=Policy(held_sms_tolerance=0.0, prepare_timeout=1.0))

    async def queued():
        async with BankRig(bank, config) as rig:
            await _lease(rig, 0, "Q1")
            status, result = await _lease(rig, 2, "Q2")
            assert status == 201 and result["state"] == "preparing"  # queued behind Q1
            await wait_until(lambda: _failed(rig, "Q2"), 10, "Q2 failed, not stuck")
            assert _outbox_reason(rig, "Q2") == "no radio in time"
            assert rig.gateway.core.banks.schedulers["bank1"].queued == []

    run(queued(), 60)


def test_on_modem_sim_switch_cinterion_style(tmp_path):
    bank = SimBank(2, 4, style="on_modem", profile="cinterion", time_scale=SCALE, switch_time=1.0)
    config = rig_config(bank, str(tmp_path), policy=POLICY)
    prefill_inventory(bank, config)

    async def scenario():
        async with BankRig(bank, config) as rig:
            status, result = await _lease(rig, 1, "C1")  # the second SIM of the first modem
            assert result["state"] == "preparing"
            await wait_until(lambda: rig.lease_state("C1") == "waiting", 10, "C1 waiting")
            bank.send_sms(1, "Service", "code via on-modem switch")
            await wait_until(lambda: rig.lease_state("C1") == "received", 10, "C1 received")
            assert bank.active[0] == 1 and bank.switch_log[-1][1:] == (0, 0, 1, True)

    run(scenario(), 60)


@pytest.mark.slow
def test_the_marketplace_sees_preparing_then_waiting_failed_with_a_reason_and_radios_not_slots(tmp_path):
    from dataclasses import replace as dc_replace

    from gateway.config import UplinkConfig
    from gateway.tools.market import Market
    from tests.gateway.uplink_env import TOKEN, validate_frames

    bank = SimBank(2, 8, time_scale=SCALE)
    market = Market(str(tmp_path / "market.db"), TOKEN)
    market.record = True

    async def scenario():
        await market.start("127.0.0.1", 0)
        config = rig_config(bank, str(tmp_path / "gw"), policy=POLICY, retries=0)
        config = dc_replace(config, uplink=UplinkConfig(f"ws://127.0.0.1:{market.address[1]}/v1", TOKEN,
                                                        backoff_max=2.0))
        prefill_inventory(bank, config)
        try:
            async with BankRig(bank, config) as rig:
                await wait_until(lambda: rig.gateway.uplink.connected.is_set(), 10, "uplink connected")
                result = await market.command({"type": "lease.open", "command_id": "c1", "lease_id": "M1",
                                               "service": "svc", "number": bank.cards[2].msisdn}, gateway_id="bank-test")
                assert result["ok"] and result["state"] == "preparing"
                await wait_until(lambda: rig.lease_state("M1") == "waiting", 10, "M1 waiting")
                bank.send_sms(2, "Service", "code 4242")
                await wait_until(lambda: len(market.sms("M1")) == 1, 10, "the SMS at the marketplace")
                number = bank.cards[5].msisdn
                bank.cards[5] = None
                result = await market.command({"type": "lease.open", "command_id": "c2", "lease_id": "M2",
                                               "service": "svc", "number": number}, gateway_id="bank-test")
                assert result["state"] == "preparing"
                await wait_until(lambda: any(f.get("lease_id") == "M2" and f.get("state") == "failed"
                                             for f in market.frames_in), 10, "M2 failed at the marketplace")
                await asyncio.sleep(0.3)
        finally:
            await market.stop()
            market.close()

    run(scenario(), 60)
    states = [(f["lease_id"], f["state"] if f["type"] == "lease" else f["lease"]["state"])  # an sms frame carries it
              for f in market.frames_in if f.get("type") in ("lease", "sms")]
    assert states.index(("M1", "preparing")) < states.index(("M1", "waiting")) < states.index(("M1", "received"))
    failed = next(f for f in market.frames_in if f.get("type") == "lease" and f["state"] == "failed")
    assert failed["lease_id"] == "M2" and failed["reason"].startswith("empty")
    inventories = [f for f in market.frames_in if f.get("type") == "inventory"]
    assert inventories and all(n <= 2 for f in inventories for n in f.get("capacity", {}).values())
    assert any(n["state"] == "standby" for f in inventories for n in f["numbers"])
    assert {"lease", "sms", "inventory"} <= validate_frames(market.frames_in)


def test_status_and_metrics_show_the_bank(tmp_path):
    bank, config = _fault_rig(tmp_path)

    async def scenario():
        async with BankRig(bank, config) as rig:
            await _lease(rig, 2, "S1")
            await wait_until(lambda: rig.lease_state("S1") == "waiting", 10, "S1 waiting")
            status, body = await rig.call("GET", "/status")
            (entry,) = body["banks"]
            assert entry["slots"] == {"ok": 8} and entry["switches"] == {"ok": 1} and entry["queued"] == 0
            assert entry["lease_wait"]["count"] == 1 and 0 < entry["lease_wait"]["max_s"] < 5
            assert {"port": bank.modems[0].link_path, "slot": 3, "switching": False, "lease": "S1"} in entry["channels"]
            _, metrics = await rig.call("GET", "/metrics")
            assert 'simgw_bank_switches_total{bank="bank1",outcome="ok"} 1.0' in metrics
            assert 'simgw_bank_slots{bank="bank1",status="ok"} 8.0' in metrics

    run(scenario(), 60)


def test_the_switcher_counts_every_switch_and_keeps_only_the_last_few():
    """Fails before this change: the switcher appended every switch to a list (~830 bytes each)
    for as long as the daemon ran, and /status counted them from it. Now a count per (bank,
    outcome) and the last RECENT_SWITCHES switches. 3,000 switches on a channel whose modem is
    not driven (a real path: each ends ``modem_down`` at once, no port needed)."""
    config = BankConfig("bank1", PRESETS["swit"], ("/dev/nothing0", "/dev/nothing1"), 8, controller="/dev/nothing")
    reported: list[SwitchReport] = []

    async def report(order: SwitchOrder, result: SwitchReport, msisdn: str | None, source: str | None) -> None:
        reported.append(result)

    async def scenario() -> Switcher:
        switcher = Switcher((config,), lambda port: None, report)
        for n in range(3000):
            channel = n % 2
            order = SwitchOrder("bank1", Switch(config.channels[channel], None, channel + 2 * (n % 4), "rotation"),
                                channel + 1, channel + 2 * (n % 4) + 1, n % 4 + 1, None)
            switcher.start(order)
            if n % 100 == 99:
                await wait_until(lambda: not switcher.switching, 5, "the switches to end")
        await wait_until(lambda: len(reported) == 3000, 10, "every switch reported")
        await switcher.stop()
        return switcher

    switcher = run(scenario(), 60)
    assert switcher.counts == {("bank1", "modem_down"): 3000}
    assert len(switcher.recent) == RECENT_SWITCHES
    assert all(r.failure is Failure.MODEM_DOWN for r in reported)


@pytest.mark.slow
def test_rotation_collects_held_sms_and_never_moves_a_leased_sim_even_across_a_restart(tmp_path):
    bank, config = _fault_rig(tmp_path, rotation=0.3)

    async def scenario():
        await bank.start()
        try:
            gateway = None
            for life in range(2):  # the daemon's first life, then a restart on the same database
                from gateway.runtime.gateway import Gateway
                from tests.gateway.bank_env import BANK_OPTIONS

                gateway = Gateway(config, modem_options=BANK_OPTIONS)
                await gateway.start()
                if life == 0:
                    scheduler = gateway.core.banks.schedulers["bank1"]
                    await wait_until(lambda: all(scheduler._channels[c].known for c in scheduler.channels), 20, "known")
                    decisions = await gateway.call(gateway.core.open_lease, "R1", bank.cards[0].msisdn, "svc")
                    assert decisions[-1].lease.state.value == "waiting"  # slot 0 is on air on channel 1
                    for slot in (3, 5, 7):  # idle SIMs off air: the network holds these
                        bank.send_sms(slot, "+79990000003", f"held for idle {slot}")
                    await asyncio.sleep(1.5)
                    await gateway.stop()
            assert gateway.core.engine.get("R1").state.value == "waiting"
            await asyncio.sleep(1.5)  # rotations go on around the leased SIM
            bank.send_sms(0, "Service", "code after restart")
            await wait_until(lambda: gateway.core.engine.get("R1").state.value == "received", 10, "R1 received")
            await wait_until(lambda: sum(1 for m in gateway.store_messages() if m.quarantined) == 3, 10,
                             "held SMS collected by rotation, into quarantine")
            await gateway.stop()
        finally:
            await bank.stop()
        moved_off_0 = [entry for entry in bank.switch_log if entry[2] == 0 and entry[4]]
        rotated_on_channel_2 = [entry for entry in bank.switch_log if entry[1] == 1 and entry[4]]
        assert not moved_off_0 and len(rotated_on_channel_2) >= 3

    run(scenario(), 60)


def test_on_modem_sim_switch_quectel_dual_sim(tmp_path):
    bank = SimBank(2, 4, style="on_modem", profile="quectel", time_scale=SCALE, switch_time=1.0)
    config = rig_config(bank, str(tmp_path), policy=POLICY, command="AT+QUIMSLOT={local}", values=())
    prefill_inventory(bank, config)

    async def scenario():
        async with BankRig(bank, config) as rig:
            await _lease(rig, 3, "Q1")  # the second SIM of the second modem
            await wait_until(lambda: rig.lease_state("Q1") == "waiting", 10, "Q1 waiting")
            bank.send_sms(3, "Service", "code via AT+QUIMSLOT")
            await wait_until(lambda: rig.lease_state("Q1") == "received", 10, "Q1 received")
            assert bank.active[1] == 3

    run(scenario(), 60)
