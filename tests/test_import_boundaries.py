"""Issue 13, must-show 1: the package boundaries hold at import time, in fresh interpreters.

- The I/O-free cores import no asyncio, sqlite3, serial, websockets or config: a test can drive
  them with byte literals and a fake clock, and a newcomer can trust the folder.
- ``simgw run`` (the real command, its own process, a config file, a marketplace, an SMS end to
  end) never imports the tools that are not the daemon: the reference marketplace, the demo, the
  reference hub (all in ``gateway.tools``) and the simulator (``drivers.simulator``).

Each check runs in a new interpreter, because this test process has imported everything.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from tests.conftest import run, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The I/O-free cores. A package here stands for every module inside it.
IO_FREE_MODULES = ("gateway.domain", "gateway.uplink.protocol", "drivers.at", "drivers.sms")
FORBIDDEN_IN_CORES = ("asyncio", "sqlite3", "serial", "websockets", "gateway.config")

# What the daemon must never load: the tools package (reference marketplace, demo, listen, sims
# scan, reference hub), the simulator, and the tools' own helpers that live in drivers/ (the
# hand-written JSON-over-HTTP server of the simulator and marketplace; the `simgw scan` probe).
NOT_THE_DAEMON = ("gateway.tools", "drivers.simulator", "drivers.httpjson", "drivers.probe")

_FIRST_IMPORTER = r"""
import importlib, json, pkgutil, sys

def each_module(name):
    module = importlib.import_module(name)
    yield name
    if hasattr(module, "__path__"):  # a package: every module inside it
        for info in pkgutil.walk_packages(module.__path__, name + "."):
            importlib.import_module(info.name)
            yield info.name

forbidden = json.loads(sys.argv[1])
checked, culprits, seen = [], {}, set(sys.modules)
for top in sys.argv[2:]:
    for name in each_module(top):
        checked.append(name)
        for new in set(sys.modules) - seen:
            for f in forbidden:
                if new == f or new.startswith(f + "."):
                    culprits.setdefault(f, name)
        seen = set(sys.modules)
print(json.dumps({"checked": checked, "culprits": culprits, "loaded": sorted(f for f in forbidden if f in sys.modules)}))
"""


def forbidden_imports(modules: tuple[str, ...], forbidden: tuple[str, ...]) -> dict:
    """Import ``modules`` (packages: with all their submodules) in a fresh interpreter and say which
    of ``forbidden`` got loaded, and which checked module first pulled each one in."""
    done = subprocess.run([sys.executable, "-c", _FIRST_IMPORTER, json.dumps(forbidden), *modules],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_io_free_cores_import_no_io_and_no_config():
    result = forbidden_imports(IO_FREE_MODULES, FORBIDDEN_IN_CORES)
    assert "drivers.at.protocol" in result["checked"] and "drivers.sms.pdu" in result["checked"]
    assert result["loaded"] == [], f"I/O in the I/O-free cores (module loaded <- first checked module that " \
                                   f"pulled it in): {result['culprits']}"


def test_the_core_check_sees_a_forbidden_import():
    """The check above can fail: a module that does import config and asyncio is caught, and named."""
    result = forbidden_imports(("gateway.domain.leases", "gateway.runtime.gateway"), FORBIDDEN_IN_CORES)
    assert "gateway.config" in result["loaded"] and "asyncio" in result["loaded"]
    assert result["culprits"]["gateway.config"] == "gateway.runtime.gateway"


def test_gsmmodem_is_whole_after_the_sms_core_took_only_its_pdu_module():
    """drivers.sms loads gsmmodem.pdu without gsmmodem's __init__ (which imports pyserial); a later
    ``import gsmmodem`` still loads the real package whole (its modem stack and its pdu module)."""
    code = ("import sys, drivers.sms.pdu, drivers.sms.encode; assert 'serial' not in sys.modules; "
            "assert not [m for m in sys.modules if m.startswith('gsmmodem')]; "
            "import gsmmodem, gsmmodem.pdu; from gsmmodem import GsmModem; "
            "assert 'serial' in sys.modules and gsmmodem.pdu is sys.modules['gsmmodem.pdu']; "
            "from drivers.sms.gsmmodem_pdu import decodeSemiOctets; "
            "assert gsmmodem.pdu.decodeSemiOctets('2143') == '1234' == decodeSemiOctets('2143'); "
            "print('whole')")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "whole", done.stderr


# ------------------------------------------------------------------------- the daemon's imports
_IMPORTTIME = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)


def modules_imported(importtime_stderr: str) -> set[str]:
    """Every module a process imported, from its ``-X importtime`` lines on stderr."""
    return set(_IMPORTTIME.findall(importtime_stderr))


def not_the_daemon(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(NOT_THE_DAEMON)
                  and (m in NOT_THE_DAEMON or m.startswith(tuple(p + "." for p in NOT_THE_DAEMON))))


def test_the_importtime_reading_sees_a_tool_import():
    """The daemon check below can fail: the same reading of the same kind of stderr finds a tool."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import gateway.tools.market"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    found = not_the_daemon(modules_imported(done.stderr))
    assert "gateway.tools.market" in found and "drivers.httpjson" in found, found


# the installed `simgw` console script where there is one (as in production), else the same call
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "simgw")
SIMGW_UNDER_IMPORTTIME = [sys.executable, "-X", "importtime",
                          *([_SCRIPT] if os.path.isfile(_SCRIPT) else
                            ["-c", "import sys; from gateway.cli import main; sys.exit(main())"])]


def _get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.status, response.read().decode()


def test_simgw_run_never_imports_the_tools(tmp_path):
    """The real ``simgw run`` under ``-X importtime``: it starts, drives two simulated modems,
    connects to the marketplace, routes a leased SMS to it and answers /status and /metrics, then
    stops on SIGTERM; every module it imported on the way is read back from stderr."""
    from drivers.simulator.farm import ModemFarm
    from gateway.tools.market import Market
    from tests.gateway.test_cli import free_port

    token = "boundary-test-token-0123456789"
    state, control = tmp_path / "state", free_port()
    stderr_path = tmp_path / "daemon.stderr"

    async def scenario() -> None:
        farm = ModemFarm(2, profile="generic", periodic_interval=None, directory=str(tmp_path / "ports"))
        market = Market(str(tmp_path / "market.db"), token)
        await farm.start()
        await market.start("127.0.0.1", 0)
        conf = tmp_path / "simgw.toml"
        conf.write_text(f'[gateway]\nid = "gw-boundary"\nstate_dir = "{state}"\n\n'
                        f'[control]\nlisten = "127.0.0.1:{control}"\n\n'
                        f'[uplink]\nurl = "ws://127.0.0.1:{market.address[1]}/v1"\ntoken = "{token}"\n\n'
                        + "".join(f'[[modems]]\nport = "{m.link_path}"\n' for m in farm.modems))
        conf.chmod(0o600)
        with open(stderr_path, "wb") as stderr:
            daemon = subprocess.Popen([*SIMGW_UNDER_IMPORTTIME, "--log-json", "--config", str(conf), "run"],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            await wait_until(lambda: daemon.poll() is not None or market.gateways == ["gw-boundary"], 30,
                             "the daemon connected to the marketplace")
            assert daemon.poll() is None, stderr_path.read_text()[-2000:]
            number = farm.info()[0].msisdn
            deadline = time.monotonic() + 20
            while True:  # the number is offered once its modem is ready
                result = await market.command({"type": "lease.open", "lease_id": "B1", "service": "telegram",
                                               "number": number})
                if result.get("ok") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert result.get("ok"), result
            farm.send_sms(0, "Telegram", "Telegram code 24680")
            await wait_until(lambda: any(s["text"] == "Telegram code 24680" for s in market.sms()), 20,
                             "the SMS at the marketplace")
            for path in ("/status", "/metrics"):
                status, _ = await asyncio.to_thread(_get, control, path)
                assert status == 200, path
        finally:
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(daemon.wait, 30)
            await market.stop()
            await farm.stop()
        assert returncode == 0, stderr_path.read_text()[-2000:]

    run(scenario(), 120)
    imported = modules_imported(stderr_path.read_text())
    # the reading is of the daemon that ran: its composition root, drivers, store and uplink
    assert {"gateway.runtime.gateway", "gateway.cli", "drivers.modem", "sqlite3", "websockets"} <= imported, \
        sorted(imported)[:40]
    assert not_the_daemon(imported) == [], f"simgw run imported tools: {not_the_daemon(imported)}"
