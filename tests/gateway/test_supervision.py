"""Supervision: no fault silently stops the deal clock. The real Gateway over a real SQLite file,
with commits failing as on a full disk (the fault directory), and a fake clock driven by the test."""

from __future__ import annotations

import asyncio
import os

import pytest

from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig
from gateway.runtime.faults import FaultFiles
from gateway.domain.messages import IngestStatus
from gateway.domain.leases import LeaseState
from tests.conftest import run
from tests.gateway.core.test_core import ICCID_A, ICCID_B, NUMBER_A, NUMBER_B, part, pdus


class FakeClocks:
    def __init__(self) -> None:
        self.mono_now, self.wall_now = 5000.0, 1_800_000_000.0

    def mono(self) -> float:
        return self.mono_now

    def wall(self) -> float:
        return self.wall_now


@pytest.mark.slow
def test_a_minute_of_failed_commits_delays_deadlines_by_seconds_and_stops_nothing(tmp_path):
    clocks = FakeClocks()
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    faults = FaultFiles(str(fault_dir), refresh=0.0)
    config = Config(path="<test>", gateway_id="gw-test", state_dir=str(tmp_path / "state"), modems=(),
                    leases=LeaseConfig(quarantine_retention=120.0), control_listen=("127.0.0.1", 0))

    async def scenario():
        gateway = Gateway(config, mono=clocks.mono, wall=clocks.wall, faults=faults, timer_poll=0.01)
        await gateway.start()
        start = clocks.mono_now
        ended_at: dict[str, float] = {}

        async def advance_to(offset: float, step: float) -> None:
            while clocks.mono_now < start + offset:
                clocks.mono_now += step
                clocks.wall_now += step
                await asyncio.sleep(0.03)  # the timer loop wakes every 0.01 s
                active = {lease.id for lease in gateway.core.engine.active()}
                for lease_id in ("L1", "L2"):
                    if lease_id not in active and lease_id not in ended_at and lease_id in opened:
                        ended_at[lease_id] = clocks.mono_now - start

        try:
            opened: set[str] = set()
            await gateway.call(gateway.core.bind_sim, "/dev/ttyUSB0", ICCID_A, NUMBER_A, True)
            await gateway.call(gateway.core.bind_sim, "/dev/ttyUSB1", ICCID_B, NUMBER_B, True)
            await gateway.call(gateway.core.open_lease, "L1", NUMBER_A, "telegram", wait_window=60)  # due at +60
            opened.add("L1")
            # an SMS on a number with no lease (purged at +120), and half of one that never completes
            assert (await gateway.call(gateway.core.ingest, part(ICCID_B, pdus("nobody's")[0], "/dev/ttyUSB1"))).quarantined
            assert (await gateway.call(gateway.core.ingest, part(ICCID_B, pdus("half " * 80, ref=9)[0],
                                                                 "/dev/ttyUSB1"))).status is IngestStatus.PENDING
            await advance_to(10, 1.0)
            (fault_dir / "disk_full").touch()  # from +10 to +70 every commit fails
            await advance_to(70, 1.0)
            assert "L1" not in ended_at, "L1 cannot end while nothing commits"
            assert gateway.timers.store_failing and "full" in gateway.timers.store_failing
            os.unlink(fault_dir / "disk_full")
            await advance_to(78, 0.5)
            assert ended_at.get("L1", 1e9) <= 70 + 5.5, f"L1 ended at +{ended_at.get('L1')}, the disk was back at +70"
            await gateway.call(gateway.core.open_lease, "L2", NUMBER_B, "telegram", wait_window=60)
            opened.add("L2")
            l2_due = clocks.mono_now - start + 60
            await advance_to(l2_due + 8, 0.5)
            assert ended_at.get("L2", 1e9) <= l2_due + 5, f"L2 (opened after the disk came back) ended at " \
                                                           f"+{ended_at.get('L2')}, due at +{l2_due}"
            await advance_to(180, 10.0)  # the quarantine retention ended at +120: gone within a minute
            assert not [m for m in gateway.store_messages() if m.text == "nobody's"], "the purge stopped"
            await advance_to(700, 10.0)  # past the part timeout (600 s)
            assert gateway.read(lambda store: store.pending_parts()) == 0, "the stale-part flush stopped"
            states = {lease.id: lease.state for lease in gateway.read(lambda store: store.leases())}
            assert states == {"L1": LeaseState.EXPIRED, "L2": LeaseState.EXPIRED}
            assert gateway.supervisor.healthy() and "lease-timers" in gateway.supervisor.names
            assert gateway.timers.store_failing is None
        finally:
            await gateway.stop()

    run(scenario(), 120)


@pytest.mark.slow
def test_a_task_failing_over_and_over_stops_the_watchdog_and_exits_non_zero(tmp_path):
    """The real daemon process, with systemd's notify socket played by a real unix datagram socket."""
    import json
    import socket
    import subprocess
    import sys
    import time

    from tests.gateway.test_cli import free_port

    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    (fault_dir / "fail_task").write_text("port-rescan\n")  # every start of the port rescan fails
    conf = tmp_path / "simgw.toml"
    conf.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n\n[control]\nlisten = "127.0.0.1:{free_port()}"\n')
    notify_path = str(tmp_path / "notify.sock")
    received: list[tuple[float, str]] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify_path)
        sock.settimeout(0.2)
        env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "200000", "SIMGW_FAULT_DIR": str(fault_dir)}
        env.pop("WATCHDOG_PID", None)
        log_path = tmp_path / "daemon.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", str(conf), "run"],
                                    stdout=log, stderr=log, env=env)
            try:
                deadline = time.monotonic() + 40
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        received.append((time.monotonic(), sock.recv(4096).decode()))
                    except socket.timeout:
                        pass
                status = proc.wait(5)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    messages = [text for _, text in received]
    events = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert status == 1, (status, messages[-5:], log_path.read_text()[-2000:])
    assert messages[0].startswith("READY=1")
    stopping = next(i for i, text in enumerate(messages) if text.startswith("STOPPING=1"))
    pings = [i for i, text in enumerate(messages) if text == "WATCHDOG=1"]
    assert pings and pings[0] < stopping, "the watchdog was pinged while the task was being retried"
    assert all(i < stopping for i in pings), "no watchdog ping once the supervisor gave up"
    gave_up = [e for e in events if e.get("event") == "task.gave_up"]
    assert len(gave_up) == 1 and gave_up[0]["task"] == "port-rescan", gave_up
    failed = [e for e in events if e.get("event") == "task.failed" and e.get("task") == "port-rescan"]
    assert 1 <= len(failed) <= 5 and all("fault injected" in e["error"] for e in failed)
    assert sum(1 for e in failed if e.get("exception")) == 1, "the traceback is logged once, not per retry"


def test_supervisor_restarts_a_failed_task_retries_transient_failures_forever_and_gives_up_on_the_rest():
    from gateway.store import StoreError
    from gateway.runtime.supervisor import SupervisionPolicy, Supervisor

    async def scenario():
        supervisor = Supervisor(SupervisionPolicy(max_failures=3, window=60.0, backoff_initial=0.01, backoff_max=0.02),
                                transient=(StoreError,))
        runs = {"flaky": 0, "disk": 0, "broken": 0}

        async def flaky():  # fails twice, then does its work and returns
            runs["flaky"] += 1
            if runs["flaky"] <= 2:
                raise ValueError("flaky")

        async def disk():  # the store refuses 20 times in a row: never a reason to give up
            runs["disk"] += 1
            if runs["disk"] <= 20:
                raise StoreError("database or disk is full")

        async def broken():
            runs["broken"] += 1
            raise KeyError("always")

        await asyncio.gather(supervisor.start("flaky", flaky), supervisor.start("disk", disk))
        assert runs["flaky"] == 3 and runs["disk"] == 21 and supervisor.healthy()
        supervisor.start("broken", broken)
        await asyncio.wait_for(supervisor.gave_up.wait(), 5)
        assert runs["broken"] == 3 and not supervisor.healthy() and "broken" in supervisor.reason
        await supervisor.stop()
        assert supervisor.names == []

    run(scenario(), 30)


@pytest.mark.slow
def test_stopping_is_bounded_even_when_a_task_swallows_its_cancellation():
    from gateway.runtime.supervisor import Supervisor

    async def scenario():
        supervisor = Supervisor()
        release = asyncio.Event()

        async def stubborn():
            while not release.is_set():
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    pass  # the bug this guards against: a cancel lost (e.g. wait_for racing its inner future)

        supervisor.start("stubborn", stubborn)
        supervisor.start("polite", lambda: asyncio.sleep(10))
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await supervisor.stop(timeout=0.2) == ["stubborn"]
        assert loop.time() - started < 2.0
        release.set()

    run(scenario(), 30)


def test_the_timer_loop_stops_when_cancelled_just_as_it_is_woken(tmp_path):
    """3.11's wait_for returns the inner result and drops the CancelledError when both happen at
    once (found by the http helper: Gateway.stop hung about one run in six)."""
    config = Config(path="<test>", gateway_id="gw-test", state_dir=str(tmp_path / "state"), modems=(),
                    leases=LeaseConfig(), control_listen=("127.0.0.1", 0))

    async def scenario():
        gateway = Gateway(config)
        await gateway.call(gateway.store.open)
        await gateway.call(gateway.core.start)
        try:
            for ticks in range(4):  # the cancel lands 0..3 loop iterations after the wake-up
                task = asyncio.get_running_loop().create_task(gateway.timers.run())
                await asyncio.sleep(0.05)  # waiting for its next wake-up
                gateway.nudges.timers.set()
                for _ in range(ticks):
                    await asyncio.sleep(0)
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=1.0)
                assert done, "the timer loop swallowed its cancellation"
        finally:
            await gateway.call(gateway.store.close)

    run(scenario(), 30)
