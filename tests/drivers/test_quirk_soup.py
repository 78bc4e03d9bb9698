"""Quirk soup: 16 simulated modems, each with a seeded random set of compatible catalogue quirks,
under the simulator's own faults (garbage, silence, reboot, slow answers, a lost line ending; and
one restart of every modem, so the quirks that play at boot play),
with SMS flowing for a bounded time. Nothing lost, nothing duplicated, every modem ``ok`` with the
right identity at the end. The seed is printed, so a failure can be replayed."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from drivers.channel import AtError
from drivers.modem import ModemState
from drivers.simulator.catalogue import load_catalogue
from drivers.simulator.quirks import mechanisms
from tests.conftest import Harness, run, wait_until
from tests.drivers.test_quirks import driven, wait_for

pytestmark = pytest.mark.slow

CATALOGUE = load_catalogue()
MODEMS = 16
FLOW_SECONDS = 15.0
SEED = 20261126
FAULTS = ("garbage", "silence", "reboot", "slow", "no_line_ending")
DRIVER_PROFILE = {"generic": "generic", **{e.profile: e.expect_profile for e in CATALOGUE if not e.any_profile}}


def soup_plan(rng: random.Random) -> list[tuple[str, list[str]]]:
    """A simulator profile per modem (every vendor the catalogue covers, in turn) and 1-3 quirks
    it can carry together, drawn at random."""
    profiles = sorted(DRIVER_PROFILE)
    plan = []
    for i in range(MODEMS):
        profile = profiles[i % len(profiles)]
        own = [e.key for e in CATALOGUE.usable_on(profile) if not e.any_profile]
        usable = [e.key for e in CATALOGUE.usable_on(profile)]
        rng.shuffle(usable)
        chosen: list[str] = [rng.choice(own)] if own else []  # the vendor's own quirks first
        want = rng.randint(1, 3)
        for key in usable:
            if len(chosen) == want:
                break
            if key not in chosen and CATALOGUE.compatible([*chosen, key]):
                chosen.append(key)
        plan.append((profile, chosen))
    return plan


async def flow(h: Harness, rng: random.Random, seconds: float) -> list[tuple[int, str]]:
    """SMS to every modem and a fault somewhere every second or so, for ``seconds``; returns what was sent."""
    sent: list[tuple[int, str]] = []
    probes: list[asyncio.Task] = []
    deadline = time.monotonic() + seconds
    ticks = int(seconds)
    blips = {i: rng.randrange(1, max(2, ticks - 6)) for i in range(MODEMS)}  # each restarts once: boot quirks play
    tick = 0
    while time.monotonic() < deadline:
        tick += 1
        for i, at in blips.items():
            if at == tick:
                h.farm.inject_fault(i, "reboot", seconds=1.0)
            elif tick == at + 2:
                h.farm.stale_announcement(i)  # a +CMTI for an emptied slot: the driver meets an error answer
            elif tick == at + 3:  # a vendor command this firmware lacks: its "unsupported" answer plays
                probes.append(asyncio.create_task(h.modems[i].command("AT+WIND?", check=False), name=f"probe:{i}"))
        for i in range(MODEMS):
            if rng.random() < 0.5:
                text = f"soup {SEED} modem {i} sms {tick}" + (" long" * 40 if rng.random() < 0.2 else "")
                h.farm.send_sms(i, "+79161230077", text, shuffle=True)
                sent.append((i, text))
        if tick % 2 == 0:
            victim, kind = rng.randrange(MODEMS), rng.choice(FAULTS)
            if kind == "slow":
                h.farm.modems[victim].delay = 0.2
                asyncio.get_running_loop().call_later(3.0, setattr, h.farm.modems[victim], "delay", 0.0)
            else:
                h.farm.inject_fault(victim, kind, seconds=1.5)
        await asyncio.sleep(1.0)
    for outcome in await asyncio.gather(*probes, return_exceptions=True):
        assert not isinstance(outcome, Exception) or isinstance(outcome, AtError), repr(outcome)  # a fault may cut one short
    return sent


def missing(h: Harness, plan: list[tuple[str, list[str]]], sent: list[tuple[int, str]]) -> str:
    """Which modems still owe SMS, with their quirks and the driver's view of them."""
    owed: dict[int, int] = {}
    for i, text in sent:
        if h.count(i, text) == 0:
            owed[i] = owed.get(i, 0) + 1
    return f"{sum(owed.values())} of {len(sent)} SMS: " + "; ".join(
        f"modem {i} {plan[i][0]}+{plan[i][1]} owes {n} (state {h.modems[i].health.state.value}, "
        f"last error {h.modems[i].health.last_error!r}, on SIM {len(h.farm.modems[i].engine.storage)}, "
        f"held {len(h.farm.modems[i].engine.network_queue)})" for i, n in sorted(owed.items()))


def idle_quirks(h: Harness, plan: list[tuple[str, list[str]]]) -> list[tuple[int, str, str]]:
    """(modem, quirk, mechanism) that the driver never met."""
    out = []
    for i, (_, keys) in enumerate(plan):
        fired = h.farm.modems[i].engine.quirks.fired
        out += [(i, k, m) for k in keys for m in mechanisms(CATALOGUE.get(k).sim) if not fired.get(m)]
    return out


def states(h: Harness) -> str:
    return ", ".join(f"{i}:{m.health.state.value}({m.health.last_error})" for i, m in enumerate(h.modems)
                     if m.health.state is not ModemState.OK)


def test_quirk_soup_nothing_lost_nothing_duplicated_all_ok():
    rng = random.Random(SEED)
    plan = soup_plan(rng)
    print(f"quirk soup seed {SEED}: " + "; ".join(f"{i}:{p}+{','.join(q)}" for i, (p, q) in enumerate(plan)))
    assert len({k for _, q in plan for k in q}) >= 16  # a real mix, not the same few quirks

    async def go() -> None:
        h = Harness(MODEMS, plan=plan, periodic_interval=None)
        waiting = [(i, f"soup {SEED} modem {i}: on the SIM before the driver opened the port") for i in range(MODEMS)]
        for i, text in waiting:  # read by the first AT+CMGL, so list-format quirks play
            h.farm.modems[i].engine.fill_storage(h.farm.pdus_for("+79161230077", text))
        async with driven(h):
            await wait_for(lambda: all(m.ready.is_set() for m in h.modems), 30,
                           lambda: "every driver ready: " + states(h))
            sent = waiting + await flow(h, rng, FLOW_SECONDS)
            await wait_for(lambda: all(h.count(i, t) >= 1 for i, t in sent), 60, lambda: missing(h, plan, sent))
            duplicated = [(i, t[:40]) for i, t in sent if h.count(i, t) != 1]
            assert not duplicated, f"delivered more than once: {duplicated[:5]}"
            for i in range(MODEMS):
                h.farm.modems[i].delay = 0.0
            await wait_until(lambda: h.farm.stored_count() == 0 and h.farm.held_count() == 0, 30, "storage empty")
            await wait_for(lambda: all(m.health.state is ModemState.OK for m in h.modems), 30,
                           lambda: "every modem ok: " + states(h))
            assert not h.bad_parts
            # A fault can swallow the stale +CMTI or the unknown command of the flow: once more, calmly.
            for i in range(MODEMS):
                h.farm.stale_announcement(i)
                assert not (await h.modems[i].command("AT+WIND?", check=False)).result.ok
            await wait_for(lambda: not idle_quirks(h, plan), 10, lambda: f"every quirk to play: {idle_quirks(h, plan)}")
            await asyncio.sleep(1.5)  # a health cycle after the error answers: still ok, nothing new on the SIM
            assert all(m.health.state is ModemState.OK for m in h.modems), "not ok after the last round: " + states(h)
            assert h.farm.stored_count() == 0 and all(h.count(i, t) == 1 for i, t in sent)
            for i, (profile, keys) in enumerate(plan):
                modem, engine = h.modems[i], h.farm.modems[i].engine
                assert modem.profile.name == DRIVER_PROFILE[profile], f"modem {i} ({profile}+{keys}): {modem.profile.name}"
                assert (modem.identity.imei, modem.identity.imsi, modem.identity.iccid) == \
                    (engine.imei, engine.sim.imsi, engine.sim.iccid), f"modem {i} ({profile}+{keys})"
            print(f"quirk soup: {len(sent)} SMS to {MODEMS} modems in {FLOW_SECONDS:.0f}s, all delivered once")

    run(go(), 240)
