"""``simgw demo --marketplace smshub``: the SMSHub flow on one machine, no hardware.

Simulated modems on real pseudo-terminals, the real daemon with its agent on 127.0.0.1, and the
reference hub: it polls GET_SERVICES, buys numbers, receives each SMS by PUSH_SMS and finishes
the activation (mostly 3, sold; sometimes 4, cancelled). Each line is what a supplier wants to see.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from drivers.modem import ModemOptions
from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig
from gateway.printable import escape
from gateway.smshub.names import Names
from gateway.tools.hub import RefHub
from gateway.smshub.settings import SmshubConfig

KEY = "demo-hub-key"
SERVICES = {"vk": ("vk", "VK", "VK: 33708 - your code for VKontakte registration"),
            "whatsapp": ("wa", "WhatsApp", "Your WhatsApp code: 512-907"),
            "telegram": ("tg", "Telegram", "Telegram code: 48213. Do not give this code to anyone!")}


async def run_hub_demo(stop: asyncio.Event, *, modems: int = 8, duration: float | None = None,
                       interval: float = 1.5, out=None) -> int:
    out = out or sys.stdout
    tmp = tempfile.mkdtemp(prefix="simgw-hubdemo-")
    farm = ModemFarm(modems, periodic_interval=3.0, directory=os.path.join(tmp, "ports"))
    hub = RefHub("http://127.0.0.1:0/", KEY)

    def say(line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {escape(line)}", file=out, flush=True)

    print(f"simgw demo: {modems} simulated modems, the gateway's SMSHub agent and a reference hub on 127.0.0.1. "
          "Ctrl-C stops.", file=out, flush=True)
    await farm.start()
    await hub.start_push_server()
    config = Config(path="<demo>", gateway_id="demo-gateway", state_dir=os.path.join(tmp, "state"),
                    modems=tuple(ModemConfig(m.link_path) for m in farm.modems), leases=LeaseConfig(),
                    control_listen=("127.0.0.1", 0),
                    smshub=SmshubConfig(hub.push_url, KEY, ("127.0.0.1", 0),
                                        names=Names({ours: code for ours, (code, _, _) in SERVICES.items()}),
                                        push_retry=2.0))
    gateway = Gateway(config, modem_options=ModemOptions(health_interval=10.0))
    await gateway.start()
    hub.agent_url = f"http://127.0.0.1:{gateway.hub.agent.address[1]}/smshub"
    rng, latencies, sent_at = random.Random(7), [], {}
    try:
        deadline = time.monotonic() + 30
        while len(gateway.core.engine._online) < modems and time.monotonic() < deadline and not stop.is_set():
            await asyncio.sleep(0.05)
        started = time.monotonic()
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            await _one_activation(hub, farm, rng, say, latencies, sent_at)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        if latencies:
            print(f"{len(latencies)} SMS pushed to the hub; +CMTI to PUSH_SMS median {statistics.median(latencies):.1f} ms,"
                  f" max {max(latencies):.1f} ms; pushed again after SUCCESS: {len(hub.log.after_success)}",
                  file=out, flush=True)
    finally:
        await gateway.stop()
        await hub.close()
        await farm.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


async def _one_activation(hub: RefHub, farm: ModemFarm, rng: random.Random, say, latencies: list[float],
                          sent_at: dict[str, float]) -> None:
    services = await hub.get_services()
    counts = {code: n for entry in services.get("countryList", []) for ops in entry["operatorMap"].values()
              for code, n in ops.items()}
    say(f"HUB  GET_SERVICES  {counts}")
    ours = rng.choice(sorted(SERVICES))
    code, sender, text = SERVICES[ours]
    sold = await hub.get_number("russia", code)
    if sold.get("status") != "SUCCESS":
        say(f"HUB  GET_NUMBER {code}: {sold.get('status')}")
        return
    say(f"HUB  GET_NUMBER {code}: {sold['number']} activation {sold['activationId']}")
    modem = next(m.id for m in farm.info() if m.msisdn == f"+{sold['number']}")
    text = f"{text} [{sold['activationId']}]"
    seen = len(hub.log.accepted)
    sent_at[text] = time.monotonic()
    farm.send_sms(modem, sender, text, shuffle=True)
    deadline = time.monotonic() + 15
    while len(hub.log.accepted) == seen and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    push = next((p for p in hub.log.accepted.values() if p.text == text), None)
    if push is not None:
        latencies.append((push.at - sent_at.pop(text)) * 1000)
        say(f"PUSH_SMS smsId {push.sms_id} to {push.phone} from {push.phone_from}: {latencies[-1]:.1f} ms  {push.text[:50]}")
    status = 3 if rng.random() < 0.8 else 4
    reply = await hub.finish(sold["activationId"], status)
    say(f"HUB  FINISH_ACTIVATION {sold['activationId']} status {status} "
        f"({'sold' if status == 3 else 'cancelled'}): {reply['status']}")
