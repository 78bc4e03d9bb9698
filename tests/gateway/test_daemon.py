"""The daemon end to end: simulated modems on ptys, the real Gateway, its control socket and its
SQLite file; and the CLI's lease commands against it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig
from tests.conftest import FAST, run, wait_until
from gateway.control.client import request

SIMGW = [sys.executable, "-m", "gateway.cli"]


def config_for(farm: ModemFarm, state_dir: str, port: int = 0) -> Config:
    return Config(path="<test>", gateway_id="test", state_dir=state_dir,
                  modems=tuple(ModemConfig(m.link_path) for m in farm.modems), leases=LeaseConfig(),
                  control_listen=("127.0.0.1", port))


def write_toml(farm: ModemFarm, state_dir: str, port: int, path: str) -> None:
    modems = "".join(f'[[modems]]\nport = "{m.link_path}"\n' for m in farm.modems)
    with open(path, "w") as fh:
        fh.write(f'[gateway]\nstate_dir = "{state_dir}"\n\n[control]\nlisten = "127.0.0.1:{port}"\n\n{modems}')


def test_daemon_routes_leased_sms_and_quarantines_the_rest(tmp_path):
    async def scenario():
        farm = ModemFarm(3, profile="generic", periodic_interval=None)
        await farm.start()
        gateway = Gateway(config_for(farm, str(tmp_path)), modem_options=FAST)
        await gateway.start()
        try:
            await wait_until(lambda: len(gateway.core.engine._online) == 3, 10, "three numbers online")
            sock = gateway.control_socket
            numbers = [m.msisdn for m in farm.info()]
            status, result = await asyncio.to_thread(request, sock, "POST", "/leases",
                                                     {"number": numbers[0], "service": "telegram", "lease_id": "D1"})
            assert status == 201 and result["state"] == "waiting", result
            status, refused = await asyncio.to_thread(request, sock, "POST", "/leases",
                                                      {"number": numbers[1], "service": "x", "category": "banking"})
            assert status == 409 and refused["reason"] == "service_denied" and refused["message"]
            farm.send_sms(0, "Telegram", "Telegram code 55555", shuffle=True)
            farm.send_sms(1, "+79161234567", "nobody leased this number")
            await wait_until(lambda: len(gateway.store_messages()) == 2, 10, "two messages stored")
            by_text = {m.text: m for m in gateway.store_messages()}
            assert by_text["Telegram code 55555"].lease_id == "D1"
            assert by_text["nobody leased this number"].quarantined
            status, result = await asyncio.to_thread(request, sock, "POST", "/leases/D1/cancel")
            assert status == 409 and result["reason"] == "not_cancellable"
            status, result = await asyncio.to_thread(request, sock, "POST", "/leases/D1/finish")
            assert status == 200 and result["state"] == "finished"
            status, leases = await asyncio.to_thread(request, sock, "GET", "/leases")
            assert leases == []
            await wait_until(lambda: farm.stored_count() == 0, 5, "SIMs emptied after storing")
        finally:
            await gateway.stop()
            await farm.stop()

    run(scenario(), 60)


@pytest.mark.slow
def test_cli_lease_commands_against_the_running_daemon(tmp_path):
    async def scenario():
        farm = ModemFarm(2, profile="generic", periodic_interval=None)
        await farm.start()
        from tests.gateway.test_cli import free_port

        port = free_port()
        conf = str(tmp_path / "simgw.toml")
        write_toml(farm, str(tmp_path / "state"), port, conf)
        gateway = Gateway(config_for(farm, str(tmp_path / "state"), port), modem_options=FAST)
        await gateway.start()

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*SIMGW, "--config", conf, *args], capture_output=True, text=True, timeout=30)

        try:
            await wait_until(lambda: len(gateway.core.engine._online) == 2, 10, "numbers online")
            number = farm.info()[1].msisdn
            opened = await asyncio.to_thread(cli, "lease", "open", "--number", number, "--service", "whatsapp",
                                             "--id", "C1")
            assert opened.returncode == 0 and json.loads(opened.stdout)["state"] == "waiting", opened.stderr
            busy = await asyncio.to_thread(cli, "lease", "open", "--number", number, "--service", "viber")
            assert busy.returncode == 1 and json.loads(busy.stdout)["reason"] == "number_busy"
            farm.send_sms(1, "WhatsApp", "WhatsApp code 123-456")
            await wait_until(lambda: len(gateway.store_messages()) == 1, 10, "the SMS stored")
            table = await asyncio.to_thread(cli, "leases")
            assert "C1" in table.stdout and "received" in table.stdout
            messages = await asyncio.to_thread(cli, "messages")
            assert "123-456" not in messages.stdout and "<21 chars>" in messages.stdout
            shown = await asyncio.to_thread(cli, "messages", "--show-text")
            assert "WhatsApp code 123-456" in shown.stdout
            finished = await asyncio.to_thread(cli, "lease", "finish", "C1")
            assert json.loads(finished.stdout)["state"] == "finished"
            trail = await asyncio.to_thread(cli, "lease", "show", "C1")
            assert [line.split()[3] for line in trail.stdout.splitlines()[1:]] == ["opened", "sms", "finished"]
            bad = await asyncio.to_thread(cli, "lease", "cancel", "nope")
            assert json.loads(bad.stdout)["reason"] == "unknown_lease"
            status = await asyncio.to_thread(cli, "status")
            assert status.returncode == 0 and "no uplink configured" in status.stdout
            assert status.stdout.count(" ok ") == 2 and "dBm" in status.stdout
        finally:
            await gateway.stop()
            await farm.stop()

    run(scenario(), 90)


def test_a_modem_plugged_in_later_is_picked_up_without_a_restart(tmp_path):
    from drivers.simulator.engine import SimModem
    from drivers.simulator.farm import sim_identity
    from drivers.simulator.profiles import SIM_PROFILES
    from drivers.simulator.pty import PtyModem

    async def scenario():
        ports = tmp_path / "ports"
        farm = ModemFarm(1, profile="generic", periodic_interval=None, directory=str(ports))
        await farm.start()
        config = Config(path="<test>", gateway_id="test", state_dir=str(tmp_path / "state"),
                        modems=(ModemConfig(str(ports / "modem*")),), leases=LeaseConfig(),
                        control_listen=("127.0.0.1", 0))
        gateway = Gateway(config, modem_options=FAST, rescan_interval=0.3)
        await gateway.start()
        late = PtyModem(SimModem(SIM_PROFILES["quectel"], sim_identity(77)), str(ports / "modem-late"))
        try:
            await wait_until(lambda: len(gateway.core.engine._online) == 1, 10, "the first modem")
            await late.start()  # plugged in while the daemon runs
            await wait_until(lambda: len(gateway.core.engine._online) == 2, 10, "the new modem online")
            late.deliver(farm.pdus_for("+79161234567", "on the late modem")[0])
            await wait_until(lambda: any(m.text == "on the late modem" for m in gateway.store_messages()), 10,
                             "its SMS stored")
        finally:
            await gateway.stop()
            await late.stop()
            await farm.stop()

    run(scenario(), 60)
