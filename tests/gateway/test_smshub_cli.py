"""``simgw hub`` and ``simgw demo --marketplace smshub`` as a person runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.gateway.test_cli import free_port, http, read_json_line, stop

SIMGW = [sys.executable, "-m", "gateway.cli"]


@pytest.mark.slow
def test_demo_with_the_smshub_marketplace_runs_and_ends_by_itself():
    result = subprocess.run([*SIMGW, "demo", "--marketplace", "smshub", "--modems", "4", "--duration", "5"],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("HUB  GET_SERVICES", "HUB  GET_NUMBER", "PUSH_SMS smsId 1 to 7900000000", "HUB  FINISH_ACTIVATION 1",
                 "pushed again after SUCCESS: 0"):
        assert line in result.stdout, (line, result.stdout[-2000:])


def test_hub_needs_a_key_and_serves_its_control_api():
    refused = subprocess.run([*SIMGW, "hub", "--agent", "http://127.0.0.1:9/"], capture_output=True, text=True,
                             timeout=30, env={k: v for k, v in os.environ.items() if k != "SIMGW_HUB_KEY"})
    assert refused.returncode == 2 and "--key-file" in refused.stderr
    push, control = free_port(), free_port()
    hub = subprocess.Popen([*SIMGW, "hub", "--agent", "http://127.0.0.1:9/", "--listen", f"127.0.0.1:{push}",
                            "--control", f"127.0.0.1:{control}", "--poll", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "SIMGW_HUB_KEY": "k3y"})
    try:
        ready = read_json_line(hub, 20)
        assert ready["hub"] == "ready" and ready["push_url"] == f"http://127.0.0.1:{push}/agent/api/sms"
        assert http("POST", f"http://127.0.0.1:{control}/mode", {"push": "error"}) == (200, {"mode": "error"})
        status, body = http("POST", f"http://127.0.0.1:{control}/mode", {"push": "sometimes"})
        assert status == 400 and "success" in body["error"]
        status, state = http("GET", f"http://127.0.0.1:{control}/state")
        assert status == 200 and state["mode"] == "error" and state["pushes"] == 0
    finally:
        assert stop(hub) == 0
