"""The real daemon process, SIGKILLed 100 times at random points of read -> store -> delete while
SMS keep arriving: in the end every injected SMS is stored exactly once, every leased one is in
its lease's outbox exactly once, and none is lost."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from drivers.simulator.farm import ModemFarm
from gateway.control.client import ControlUnavailable, request
from tests.conftest import run, wait_until
from tests.gateway.test_cli import free_port
from tests.gateway.test_daemon import write_toml

pytestmark = pytest.mark.slow  # the real daemon SIGKILLed 100 times: deselect with -m "not slow"

CYCLES = int(os.environ.get("SIMGW_CRASH_CYCLES", "100"))


def control(sock: str, method: str, path: str, body: dict | None = None) -> dict | list | None:
    """A lease command over the daemon's control socket; None while the daemon is down."""
    try:
        return request(sock, method, path, body, timeout=2)[1]
    except ControlUnavailable:
        return None


def test_sigkill_100_times_loses_nothing_and_duplicates_nothing(tmp_path):
    rng = random.Random(2026)
    state_dir = str(tmp_path / "state")
    conf = str(tmp_path / "simgw.toml")
    log_path = str(tmp_path / "daemon.log")
    port = free_port()
    sock = os.path.join(state_dir, "control.sock")

    async def scenario():
        farm = ModemFarm(4, profile="generic", periodic_interval=None, capacity=60, directory=str(tmp_path / "sim"))
        await farm.start()
        write_toml(farm, state_dir, port, conf)
        numbers = [m.msisdn for m in farm.info()]
        sent: list[tuple[int, str]] = []
        log = open(log_path, "ab")

        def start(crashy: bool) -> subprocess.Popen:
            env = {**os.environ, "SIMGW_CRASHPOINTS": "before_ingest:0.02,after_ingest:0.04" if crashy else ""}
            return subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", conf, "run"],
                                    stdout=log, stderr=log, env=env)

        async def until_up(proc: subprocess.Popen, timeout: float = 20) -> bool:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    return False
                if await asyncio.to_thread(control, sock, "GET", "/leases") is not None:
                    return True
                await asyncio.sleep(0.05)
            raise AssertionError("daemon did not come up")

        stop_sending = asyncio.Event()

        async def sender():
            n = 0
            while not stop_sending.is_set():
                modem = rng.randrange(4)
                text = f"crash-test #{n} " + ("long part text " * 12 if n % 5 == 0 else "code 12345")
                farm.send_sms(modem, "+79161234567", text, shuffle=True)
                sent.append((modem, text))
                n += 1
                await asyncio.sleep(rng.uniform(0.02, 0.12))

        # first start: open leases on numbers 0 and 1; 2 and 3 stay unleased (quarantine)
        proc = start(crashy=False)
        assert await until_up(proc)
        for lease_id, number in (("K0", numbers[0]), ("K1", numbers[1])):
            await wait_until(lambda: (control(sock, "POST", "/leases", {"number": number, "service": f"s-{lease_id}",
                                                                         "lease_id": lease_id}) or {}).get("ok")
                             or lease_id in [l["lease_id"] for l in control(sock, "GET", "/leases") or []],
                             15, f"lease {lease_id} to open")
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        sending = asyncio.create_task(sender())
        kills = crashes = 0
        for _ in range(CYCLES):
            proc = start(crashy=True)
            up = await until_up(proc)
            if up:
                try:
                    await asyncio.wait_for(asyncio.to_thread(proc.wait), rng.uniform(0.05, 0.8))
                except asyncio.TimeoutError:
                    pass
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:
                crashes += 1
            await asyncio.to_thread(proc.wait)
        stop_sending.set()
        await sending

        # a last, clean run drains every SIM
        proc = start(crashy=False)
        assert await until_up(proc)
        await wait_until(lambda: farm.stored_count() == 0 and farm.held_count() == 0, 60, "SIMs to drain")
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait) == 0
        await farm.stop()
        log.close()
        return sent, numbers, kills, crashes

    sent, numbers, kills, crashes = run(scenario(), 600)
    assert kills + crashes == CYCLES and crashes > 0 and kills > 0

    db = sqlite3.connect(os.path.join(state_dir, "simgw.db"))
    stored = collections.Counter(row[0] for row in db.execute("SELECT text FROM messages"))
    lease_of = dict(db.execute("SELECT text, lease_id FROM messages"))
    # an sms event keeps no text of its own (it is read from messages when sent): join on its message id
    events = db.execute("SELECT m.text, o.lease_id, o.payload FROM outbox o JOIN messages m ON m.id = o.message_id"
                        " WHERE o.kind = 'sms'").fetchall()
    assert all("text" not in json.loads(payload) for _, _, payload in events)
    outbox = collections.Counter(text for text, _, _ in events)
    outbox_lease = {text: lease_id for text, lease_id, _ in events}
    lost = [t for _, t in sent if stored[t] == 0]
    duplicated = [t for t, c in stored.items() if c > 1]
    assert not lost, f"{len(lost)} of {len(sent)} SMS lost, e.g. {lost[:3]}"
    assert not duplicated, f"stored twice: {duplicated[:3]}"
    assert len(stored) == len(sent)
    for modem, text in sent:
        if modem in (0, 1):
            assert outbox[text] == 1 and outbox_lease[text] == f"K{modem}" == lease_of[text], text
        else:
            assert outbox[text] == 0 and lease_of[text] is None, text
    assert db.execute("SELECT COUNT(*) FROM parts WHERE message_id IS NULL").fetchone()[0] == 0
    print(f"crash test: {len(sent)} SMS, {kills} SIGKILLs from outside, {crashes} self-kills at crash points")
