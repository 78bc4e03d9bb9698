"""``simgw sims scan`` as a user runs it: the simulated 4x32 bank in one process (``simgw simulate
--bank``), the scan in another, interrupted with Ctrl-C (SIGINT) part-way and resumed; numbers
found by AT+CNUM, by the operator's USSD code and by the config's ICCID list."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from drivers.simulator.farm import sim_identity
from gateway.store import Store
from tests.gateway.test_cli import free_port

pytestmark = pytest.mark.slow  # 128 bank slots scanned, interrupted and resumed: deselect with -m "not slow"

SIMGW = [sys.executable, "-m", "gateway.cli"]


class Output:
    """Collects a pipe in a thread; the progress bar redraws with \\r, so lines will not do."""

    def __init__(self, pipe) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe) -> None:
        while chunk := os.read(pipe.fileno(), 4096):
            self.text += chunk.decode(errors="replace")

    def slots_done(self) -> int:
        found = re.findall(r"(\d+)/128 slots", self.text)
        return int(found[-1]) if found else 0


def write_config(path: str, state: str, bank: dict) -> None:
    modems = "".join(f'[[modems]]\nport = "{port}"\n' for port in bank["channels"])
    numbers = "".join(f'"{iccid}" = "{msisdn}"\n' for iccid, msisdn in bank["numbers_for_config"].items())
    channels = ", ".join(f'"{port}"' for port in bank["channels"])
    with open(path, "w") as fh:
        fh.write(f'''[gateway]
state_dir = "{state}"

[control]
listen = "127.0.0.1:{free_port()}"

{modems}
[numbers]
{numbers}
[[banks]]
name = "bank1"
preset = "swit"
controller = "{bank["controller"]}"
channels = [{channels}]
slots = {bank["slots"]}
switch_time = "0.15s"
ok_timeout = "0.3s"
settle_timeout = "5s"
sim_timeout = "0.5s"
register_timeout = "2s"
poll = "0.05s"
reset_wait = "0.05s"

[[ussd_numbers]]
operator = "SimNet"
code = "{bank["ussd_code"]}"
pattern = '(\\+\\d{{10,15}})'
''')


def test_scan_128_slots_interrupted_and_resumed_finds_numbers_three_ways(tmp_path):
    directory = str(tmp_path / "bank")
    sim = subprocess.Popen([*SIMGW, "simulate", "--bank", "4x32", "--time-scale", "0.01", "--dir", directory],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready = json.loads(sim.stdout.readline())
        bank = ready["bank"]
        conf, state = str(tmp_path / "simgw.toml"), str(tmp_path / "state")
        write_config(conf, state, bank)
        assert subprocess.run([*SIMGW, "check-config", "--config", conf], capture_output=True).returncode == 0

        first = subprocess.Popen([*SIMGW, "sims", "scan", "--config", conf], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        progress = Output(first.stderr)
        deadline = time.monotonic() + 60
        while progress.slots_done() < 40 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        assert first.wait(30) == 130, progress.text[-500:]
        time.sleep(0.2)
        assert "interrupted" in progress.text and "ETA" in progress.text and "[####" in progress.text
        store = Store(os.path.join(state, "simgw.db"))
        store.open()
        kept = {(r.slot, r.seen_at) for r in store.sims()}
        store.close()
        assert 40 <= len(kept) < 128, len(kept)

        second = subprocess.run([*SIMGW, "sims", "scan", "--config", conf], capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-800:]
        assert json.loads(second.stdout.strip().splitlines()[-1]) == {"slots": {"ok": 128}}
        first_draw = re.search(r"(\d+)/128 slots", second.stderr)
        assert first_draw and int(first_draw.group(1)) >= len(kept) - 1  # resumed, not started over
        assert "128/128 slots" in second.stderr

        store = Store(os.path.join(state, "simgw.db"))
        store.open()
        rows = {r.slot: r for r in store.sims()}
        store.close()
        assert kept <= {(slot, row.seen_at) for slot, row in rows.items()}  # slots of the first run not redone
        sources = {"cnum": 0, "ussd": 0, "config": 0}
        for slot, row in rows.items():
            card = sim_identity(5000 + slot)
            assert (row.iccid, row.msisdn, row.status) == (card.iccid, card.msisdn, "ok"), (slot, row)
            sources[row.msisdn_source] += 1
        assert sources == {"cnum": 43, "ussd": 43, "config": 42}  # slot % 3: CNUM, USSD only, neither

        table = subprocess.run([*SIMGW, "sims", "--config", conf], capture_output=True, text=True, timeout=30)
        assert table.returncode == 0 and table.stdout.count(" ok ") == 128 and "ussd" in table.stdout
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(10)
