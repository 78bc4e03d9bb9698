"""One test per simulator fault: the driver recovers by itself, no SMS is lost, and the other
modems never notice (their SMS keep arriving promptly and they never enter recovery)."""

from __future__ import annotations

import asyncio
import time

import pytest

from drivers.modem import ModemState
from tests.conftest import Harness, run, wait_until

pytestmark = pytest.mark.slow  # each fault runs for seconds of simulated outage: deselect with -m "not slow"

OTHERS = (1, 2)


async def others_unaffected(h: Harness, tag: str) -> None:
    """SMS to the healthy modems arrive within a second, while the fault is on."""
    items = [(i, f"{tag}: healthy modem {i} at {time.monotonic():.3f}") for i in OTHERS]
    started = time.monotonic()
    for i, text in items:
        h.farm.send_sms(i, "+79161230000", text)
    await h.expect(items, timeout=3.0)
    assert time.monotonic() - started < 1.0
    for i in OTHERS:
        assert h.modems[i].health.recoveries == 0, f"modem {i} went through recovery"
        assert h.modems[i].health.state is ModemState.OK


async def finish(h: Harness, expected: list[tuple[int, str]], timeout: float = 20.0) -> None:
    await h.expect(expected, timeout=timeout)
    await wait_until(lambda: h.farm.stored_count() == 0 and h.farm.held_count() == 0, 10, "SIM storage to empty")
    await wait_until(lambda: h.modems[0].health.state is ModemState.OK, 10, "modem 0 back to ok")


def scenario(profile: str = "generic"):
    def wrap(body):
        def test():
            async def go():
                async with Harness(3, profile=profile, periodic_interval=0.2) as h:
                    await body(h)

            run(go(), 90)

        test.__name__ = body.__name__
        return test

    return wrap


@scenario("huawei")
async def test_fault_garbage(h: Harness):
    expected = []
    for k in range(5):
        h.farm.inject_fault(0, "garbage", data=bytes(range(256)) + b"\r\n\x00\xff+CMTI: \"SM\r\nOK\r\n")
        expected.append((0, f"after garbage {k}"))
        h.farm.send_sms(0, "+79161230001", expected[-1][1])
        await asyncio.sleep(0.05)
    await others_unaffected(h, "garbage")
    await finish(h, expected)
    assert h.modems[0].channel.stats.garbage > 0


@scenario()
async def test_fault_silence(h: Harness):
    h.farm.inject_fault(0, "silence", seconds=3.0)
    h.farm.send_sms(0, "+79161230002", "sent while the modem was silent")
    await wait_until(lambda: h.modems[0].health.state is ModemState.UNRESPONSIVE, 8, "unresponsive state")
    await others_unaffected(h, "silence")
    await finish(h, [(0, "sent while the modem was silent")])
    assert h.modems[0].health.recoveries >= 1


@scenario("simcom")
async def test_fault_reboot(h: Harness):
    h.farm.inject_fault(0, "reboot", seconds=1.5)
    h.farm.send_sms(0, "+79161230003", "sent while rebooting")
    await others_unaffected(h, "reboot")
    await finish(h, [(0, "sent while rebooting")])
    h.farm.send_sms(0, "+79161230003", "after the reboot, announced again")  # CNMI re-enabled
    await h.expect([(0, "after the reboot, announced again")], timeout=3)


@scenario()
async def test_fault_slow(h: Harness):
    h.farm.modems[0].delay = 0.3  # every answer 300 ms late, under the 1 s command timeout
    h.farm.send_sms(0, "+79161230004", "from a slow modem")
    await others_unaffected(h, "slow")
    await h.expect([(0, "from a slow modem")], timeout=10)
    h.farm.modems[0].delay = 0.0
    await finish(h, [(0, "from a slow modem")])


@scenario()
async def test_fault_no_line_ending(h: Harness):
    h.farm.inject_fault(0, "no_line_ending")
    h.farm.send_sms(0, "+79161230005", "after a missing line ending")
    await others_unaffected(h, "no_line_ending")
    await finish(h, [(0, "after a missing line ending")])


@scenario("huawei")
async def test_fault_full_storage(h: Harness):
    engine = h.farm.modems[0].engine
    h.farm.inject_fault(0, "full_storage")
    held_texts = [f"held {engine.sim.msisdn[-4:]} #{k}" for k in range(engine.capacity)]
    new = [(0, f"new while full {k}") for k in range(5)]
    for _, text in new:
        h.farm.send_sms(0, "+79161230006", text)
    await others_unaffected(h, "full")
    await finish(h, new + [(0, t) for t in held_texts])


@scenario()
async def test_fault_unplug_and_replug(h: Harness):
    h.farm.inject_fault(0, "unplug")
    await wait_until(lambda: h.modems[0].health.state is ModemState.GONE, 5, "gone state")
    h.farm.send_sms(0, "+79161230007", "arrived while unplugged")
    await others_unaffected(h, "unplug")
    old_slave = h.farm.modems[0].slave_path
    h.farm.inject_fault(0, "replug")
    assert h.farm.modems[0].slave_path != old_slave  # a new /dev/pts/N behind the same stable name
    await finish(h, [(0, "arrived while unplugged")])


@scenario()
async def test_fault_pull_sim(h: Harness):
    h.farm.inject_fault(0, "pull_sim")
    await wait_until(lambda: h.modems[0].health.state is ModemState.NO_SIM, 5, "no_sim state")
    h.farm.send_sms(0, "+79161230008", "held by the network without a SIM")
    await others_unaffected(h, "pull_sim")
    assert h.modems[0].health.state is ModemState.NO_SIM
    h.farm.inject_fault(0, "insert_sim")
    await finish(h, [(0, "held by the network without a SIM")])


def test_fault_wedged_modem_is_soft_reset():
    """Answers AT, hangs on everything else: reopening does not help, a soft reset does."""
    from dataclasses import replace

    from tests.conftest import FAST

    async def go():
        options = replace(FAST, soft_reset_after=2, reset_wait=2.5)
        async with Harness(3, profile="generic", periodic_interval=None, options=options) as h:
            h.farm.inject_fault(0, "wedge")
            h.farm.send_sms(0, "+79161230009", "stuck behind a wedged modem")
            await wait_until(lambda: h.modems[0].health.soft_resets == 1, 30, "a soft reset")
            await others_unaffected(h, "wedge")
            await finish(h, [(0, "stuck behind a wedged modem")], timeout=30)
            assert h.modems[0].health.recoveries >= 3

    run(go(), 90)
