"""The CLI as a user runs it: `simgw simulate` in one process, `simgw listen` in another, an SMS
injected through the control API reaches the console; `simgw scan` finds the URC port."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

from drivers.probe import scan
from drivers.simulator.engine import SimModem
from drivers.simulator.farm import ModemFarm
from drivers.simulator.pty import PtyModem
from tests.conftest import run

SIMGW = [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def read_json_line(proc: subprocess.Popen, timeout: float) -> dict:
    """The next JSON line on the process's stdout, read by a thread so the wait is bounded."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no JSON line within {timeout}s") from None
    assert line, f"process ended; stderr: {proc.stderr.read()[-2000:] if proc.poll() is not None else ''}"
    return json.loads(line)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.mark.slow
def test_simulate_and_listen_deliver_an_injected_sms_to_the_console():
    directory = tempfile.mkdtemp(prefix="simgw-cli-")
    port = free_port()
    sim = subprocess.Popen([*SIMGW, "simulate", "--modems", "2", "--control", f"127.0.0.1:{port}", "--dir", directory],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listen = None
    try:
        ready = read_json_line(sim, 20)
        assert ready["simulator"] == "ready"
        status, modems = http("GET", f"http://127.0.0.1:{port}/modems")
        assert status == 200 and [m["id"] for m in modems] == [0, 1]
        assert set(modems[0]) == {"id", "port", "profile", "iccid", "imsi", "msisdn", "imei", "quirks"}
        listen = subprocess.Popen([*SIMGW, "listen", "--port", modems[0]["port"], "--port", modems[1]["port"]],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # let the listener initialise the modems
        status, body = http("POST", f"http://127.0.0.1:{port}/modems/1/sms",
                            {"sender": "+79161234567", "text": "Код 4321 😀 " * 8})
        assert status == 201 and len(body["pdus"]) == 2
        line = read_json_line(listen, 15)
        assert line["text"] == "Код 4321 😀 " * 8 and line["parts"] == 2 and line["encoding"] == "ucs2"
        assert line["iccid"] == modems[1]["iccid"] and line["port"] == modems[1]["port"]
        assert set(line) >= {"port", "iccid", "sender", "text", "timestamp", "parts", "encoding"}
        # a raw PDU as AT+CMGR shows it, and the control API's refusals
        status, _ = http("POST", f"http://127.0.0.1:{port}/modems/0/sms", {"pdu": body["pdus"][0][:20]})
        assert status == 400
        status, _ = http("POST", f"http://127.0.0.1:{port}/modems/9/fault", {"kind": "reboot"})
        assert status == 404
        status, _ = http("POST", f"http://127.0.0.1:{port}/modems/0/fault", {"kind": "meteor"})
        assert status == 400
        assert stop(listen) == 0
        listen = None
    finally:
        if listen is not None:
            listen.kill()
        assert stop(sim) == 0
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_scan_recommends_the_port_that_carries_urcs():
    """A Huawei stick exposes a modem port (answers AT, never a URC) and a PC UI port (^RSSI)."""

    async def scenario():
        farm = ModemFarm(1, profile="huawei", periodic_interval=0.2)
        await farm.start()
        ui = farm.modems[0]
        quiet_engine = SimModem(ui.engine.profile, ui.engine.sim, imei=ui.engine.imei)
        quiet = PtyModem(quiet_engine, os.path.join(farm.directory, "modem000-if00"), periodic_interval=None)
        await quiet.start()
        try:
            reports = await scan([quiet.link_path, ui.link_path, "/dev/simgw-missing"], listen=1.0)
        finally:
            await quiet.stop()
            await farm.stop()
        by_port = {r.port: r for r in reports}
        assert by_port[ui.link_path].recommended and not by_port[quiet.link_path].recommended
        assert by_port[ui.link_path].iccid == ui.engine.sim.iccid
        assert by_port[ui.link_path].signal_dbm == -71
        assert by_port["/dev/simgw-missing"].error and not by_port["/dev/simgw-missing"].answers

    run(scenario(), 30)


@pytest.mark.slow
def test_demo_runs_and_ends_by_itself():
    result = subprocess.run([*SIMGW, "demo", "--modems", "4", "--duration", "6"], capture_output=True, text=True,
                            timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "all modems ready, marketplace connected" in result.stdout
    assert re.search(r"^dashboard: http://127\.0\.0\.1:[0-9]+/ ", result.stdout, re.M)
    assert "LEASE deal-1" in result.stdout and "opened" in result.stdout
    assert "SMS  -> marketplace" in result.stdout
    assert "reached the marketplace; latency from +CMTI median" in result.stdout


def test_market_cli_serves_its_control_api():
    ws_port, http_port = free_port(), free_port()
    db = os.path.join(tempfile.mkdtemp(prefix="simgw-market-"), "market.db")
    token = db + ".token"
    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fh.write("t0ken\n")
    market = subprocess.Popen([*SIMGW, "market", "--listen", f"127.0.0.1:{ws_port}", "--control",
                               f"127.0.0.1:{http_port}", "--token-file", token, "--db", db],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = read_json_line(market, 20)
        assert ready["market"] == "ready" and ready["listen"] == f"127.0.0.1:{ws_port}"
        assert http("GET", f"http://127.0.0.1:{http_port}/leases") == (200, [])
        status, body = http("POST", f"http://127.0.0.1:{http_port}/leases", {"service": "telegram"})
        assert status == 503 and "no gateway" in body["error"]
    finally:
        assert stop(market) == 0
