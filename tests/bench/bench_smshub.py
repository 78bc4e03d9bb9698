"""Benchmark: the SMSHub agent. GET_NUMBER latency at the hub, and +CMTI at the simulator to the
PUSH_SMS received at the hub.

    .venv/bin/python tests/bench/bench_smshub.py [--modems 8 64] [--rounds 3] [--out bench-results/smshub.json]

The daemon runs as in production (``simgw run`` with a config file, its own process: drivers,
SQLite with synchronous=FULL, the agent on 127.0.0.1); the simulated modems (real ptys) and the
reference hub run in this process, so both ends of each measurement read the same clock. Per
round and per service (4 services): the hub buys every number one request after another
(GET_NUMBER latency: the HTTP round trip at the hub, gzip both ways), one SMS is delivered to
each sold number 50 ms apart (latency: the simulator's +CMTI write to the PUSH_SMS arriving at
the hub), then every activation is finished with status 4. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import percentile, write_results  # noqa: E402

from drivers.simulator.farm import ModemFarm  # noqa: E402
from gateway import logs  # noqa: E402
from gateway.tools.hub import RefHub  # noqa: E402

KEY = "bench-hub-key-0123456789"
SERVICES = {"vk": "vk", "whatsapp": "wa", "telegram": "tg", "google": "go"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: str, farm: ModemFarm, agent_port: int, hub_port: int) -> str:
    path = os.path.join(directory, "simgw.toml")
    modems = "".join(f'[[modems]]\nport = "{m.link_path}"\n' for m in farm.modems)
    services = "".join(f'{ours} = "{code}"\n' for ours, code in SERVICES.items())
    with open(path, "w") as fh:
        fh.write(f'[gateway]\nid = "bench"\nstate_dir = "{directory}/state"\nlog_level = "warning"\n\n'
                 f'[control]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                 f'[smshub]\nlisten = "127.0.0.1:{agent_port}"\nkey = "{KEY}"\n'
                 f'push_url = "http://127.0.0.1:{hub_port}/agent/api/sms"\n\n[smshub.services]\n{services}\n{modems}')
    return path


async def ready(hub: RefHub, modems: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await hub.get_services()
            if hub.available("russia", "simnet", "vk") == modems:
                return
        except Exception:  # noqa: BLE001 - the daemon is still starting
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the agent never reported {modems} numbers")


async def one_round(hub: RefHub, farm: ModemFarm, modems: int, code: str, sms_ms: list[float]) -> None:
    sold = []
    for _ in range(modems):
        reply = await hub.get_number("russia", code)
        assert reply["status"] == "SUCCESS", reply
        sold.append(reply)
    index = {m.msisdn: m.id for m in farm.info()}
    sent: dict[str, float] = {}
    for reply in sold:
        text = f"{code} code {reply['activationId']}"
        sent[text] = time.monotonic()
        farm.send_sms(index[f"+{reply['number']}"], "Bench", text)
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 60
    got = {p.text: p.at for p in hub.log.accepted.values()}
    while not set(sent) <= set(got) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        got = {p.text: p.at for p in hub.log.accepted.values()}
    missing = set(sent) - set(got)
    assert not missing, f"{len(missing)} SMS never pushed"
    sms_ms += [(got[text] - at) * 1000 for text, at in sent.items()]
    for reply in sold:
        assert (await hub.finish(reply["activationId"], 4)) == {"status": "SUCCESS"}


async def bench(modems: int, rounds: int) -> dict:
    directory = tempfile.mkdtemp(prefix="simgw-bench-hub-")
    farm = ModemFarm(modems, profile="generic", periodic_interval=None, directory=os.path.join(directory, "ports"))
    await farm.start()
    agent_port, hub_port = free_port(), free_port()
    hub = RefHub(f"http://127.0.0.1:{agent_port}/", KEY)
    await hub.start_push_server("127.0.0.1", hub_port)
    config = write_config(directory, farm, agent_port, hub_port)
    daemon = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--config", config, "run"],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "daemon.log"), "wb"))
    try:
        await ready(hub, modems)
        hub.log.calls.clear()
        sms_ms: list[float] = []
        for _ in range(rounds):
            for code in SERVICES.values():
                await one_round(hub, farm, modems, code, sms_ms)
        number_ms = [seconds * 1000 for action, _, seconds in hub.log.calls if action == "GET_NUMBER"]
        return {"modems": modems, "get_number": len(number_ms), "get_number_p50_ms": percentile(number_ms, 50),
                "get_number_p99_ms": percentile(number_ms, 99), "get_number_max_ms": max(number_ms),
                "sms": len(sms_ms), "push_p50_ms": percentile(sms_ms, 50), "push_p99_ms": percentile(sms_ms, 99),
                "pushed_after_success": len(hub.log.after_success)}
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        await hub.close()
        await farm.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modems", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--rounds", type=int, default=3, choices=range(1, 5),
                        help="rounds of 4 services (status 4 returns a number to a service 4 times at most)")
    parser.add_argument("--out", default="bench-results/smshub.json")
    args = parser.parse_args()
    logs.configure(json_lines=True, level="error")
    results = [asyncio.run(bench(n, args.rounds)) for n in args.modems]
    print(f"{'modems':>6} {'GET_NUMBER':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'SMS':>6} "
          f"{'+CMTI->PUSH p50':>16} {'p99 ms':>8}")
    for r in results:
        print(f"{r['modems']:>6} {r['get_number']:>10} {r['get_number_p50_ms']:>8.1f} {r['get_number_p99_ms']:>8.1f} "
              f"{r['get_number_max_ms']:>8.1f} {r['sms']:>6} {r['push_p50_ms']:>16.1f} {r['push_p99_ms']:>8.1f}")
    write_results(args.out, results)


if __name__ == "__main__":
    main()
