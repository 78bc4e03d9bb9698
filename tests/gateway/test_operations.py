"""Operations: the systemd notify protocol over a real unix datagram socket, log redaction with SMS
flowing, the unit's security exposure, and modem states read from /status and /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from drivers.modem import ModemState
from tests.conftest import FAST, run, wait_until
from gateway.control.client import request
from tests.gateway.test_cli import free_port, http
from tests.gateway.test_daemon import write_toml
from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.slow
def test_notify_ready_watchdog_at_half_interval_and_stopping(tmp_path):
    sock_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(sock_path)
    listener.settimeout(10)
    conf = tmp_path / "simgw.toml"
    conf.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[control]\nlisten = "127.0.0.1:{free_port()}"\n')
    env = {**os.environ, "NOTIFY_SOCKET": sock_path, "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", str(conf), "run"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first = listener.recv(4096).decode()
        assert "READY=1" in first.splitlines() and "STATUS=serving" in first
        pings = []
        while len(pings) < 5:
            message = listener.recv(4096).decode()
            if message == "WATCHDOG=1":
                pings.append(time.monotonic())
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert all(0.3 < gap < 0.9 for gap in gaps), gaps  # half of WatchdogSec=1s, not the whole second
        proc.send_signal(signal.SIGTERM)
        while True:
            message = listener.recv(4096).decode()
            if "STOPPING=1" in message.splitlines():
                break
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


def test_logs_never_show_a_full_number_or_a_message_text(tmp_path):
    """The daemon in production mode (JSON logs) with SMS flowing and leases at work."""
    secret_texts = ["Your code is 918273 do not share", "Код подтверждения 554433", "Google G-775533"]

    async def scenario():
        farm = ModemFarm(2, profile="generic", periodic_interval=None, directory=str(tmp_path / "ports"))
        await farm.start()
        conf = str(tmp_path / "simgw.toml")
        port = free_port()
        write_toml(farm, str(tmp_path / "state"), port, conf)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "--log-json", "--log-level", "debug", "--config", conf, "run",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_until(lambda: _try(lambda: http("GET", f"{base}/status")[1]["modems"][0]["state"] == "ok"),
                             20, "the daemon up")
            numbers = [m.msisdn for m in farm.info()]
            sock = str(tmp_path / "state" / "control.sock")
            await wait_until(lambda: _try(lambda: request(sock, "POST", "/leases",
                                                          {"number": numbers[0], "service": "tg"})[0] == 201), 10, "lease")
            for i, text in enumerate(secret_texts):
                farm.send_sms(i % 2, "+79161234567", text)
            await wait_until(lambda: farm.stored_count() == 0 and len(_messages(tmp_path)) == 3, 10, "SMS stored")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await proc.communicate()
            await farm.stop()
        return err.decode(), numbers

    logs, numbers = run(scenario(), 60)
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "sms.stored" for line in lines)
    for text in secret_texts:
        assert text not in logs and text.split()[-1] not in logs
    for number in [*numbers, "+79161234567", "79161234567"]:
        assert number not in logs, number
    assert re.search(r"\+\d{3}\*\*\*\d{3}", logs)  # masked, yet an operator can tell numbers apart


def _messages(tmp_path):
    import sqlite3

    db = tmp_path / "state" / "simgw.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id FROM messages").fetchall()


def _try(check) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_security_exposure_at_most_2():
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             os.path.join(ROOT, "systemd", "simgw.service")], capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for simgw.service: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout[-500:] + result.stderr[-500:]
    assert float(match.group(1)) <= 2.0, match.group(0)


@pytest.mark.slow
def test_states_read_from_status_and_metrics(tmp_path):
    """Silent, rebooting, unplugged-and-back, SIM pulled: each modem's state as an operator sees it."""

    async def scenario():
        farm = ModemFarm(5, profile="generic", periodic_interval=None, directory=str(tmp_path / "ports"))
        await farm.start()
        config = Config(path="<test>", gateway_id="ops", state_dir=str(tmp_path / "state"),
                        modems=tuple(ModemConfig(m.link_path) for m in farm.modems), leases=LeaseConfig(),
                        control_listen=("127.0.0.1", 0))
        gateway = Gateway(config, modem_options=FAST)
        await gateway.start()
        base = f"http://127.0.0.1:{gateway.control_address[1]}"

        async def state_of(i: int) -> str:
            status = (await asyncio.to_thread(http, "GET", f"{base}/status"))[1]
            return status["modems"][i]["state"]

        async def wait_state(i: int, state: str, timeout: float = 10) -> None:
            deadline = time.monotonic() + timeout
            while await state_of(i) != state:
                assert time.monotonic() < deadline, f"modem {i} never reached {state}; is {await state_of(i)}"
                await asyncio.sleep(0.05)

        try:
            for i in range(5):
                await wait_state(i, "ok")
            farm.inject_fault(0, "silence", seconds=3)
            farm.inject_fault(1, "reboot", seconds=1.0)
            farm.inject_fault(2, "unplug")
            farm.inject_fault(3, "pull_sim")
            await wait_state(0, "unresponsive")
            await wait_state(2, "gone")
            await wait_state(3, "no_sim")
            metrics = await asyncio.to_thread(_get_text, f"{base}/metrics")
            assert f'simgw_modem_state{{port="{farm.modems[2].link_path}",state="gone"}} 1.0' in metrics
            assert f'simgw_modem_state{{port="{farm.modems[4].link_path}",state="ok"}} 1.0' in metrics
            assert "# TYPE simgw_modem_sms_received_total counter" in metrics
            farm.inject_fault(2, "replug")
            farm.inject_fault(3, "insert_sim")
            for i in range(4):
                await wait_state(i, "ok", timeout=15)
            assert gateway.modems[4].health.recoveries == 0 and gateway.modems[4].health.state is ModemState.OK
            metrics = await asyncio.to_thread(_get_text, f"{base}/metrics")
            recoveries = re.search(rf'simgw_modem_recoveries_total{{port="{re.escape(farm.modems[2].link_path)}"}} (\S+)',
                                   metrics)
            assert recoveries and float(recoveries.group(1)) >= 1
        finally:
            await gateway.stop()
            await farm.stop()

    run(scenario(), 90)


def _get_text(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode()
