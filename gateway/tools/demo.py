"""``simgw demo``: the whole system on one machine, no hardware, no configuration.

Eight simulated modems of mixed vendors on real pseudo-terminals, the real gateway daemon driving
them, and the reference marketplace over a real WebSocket on 127.0.0.1. The demo opens leases as
buyers would, injects activation SMS (multipart, Cyrillic, emoji; some on numbers nobody leased)
and shows what a person wants to see: each SMS as it reaches the marketplace with its latency
from the modem's announcement, lease states, and how many SMS stayed in quarantine on the Pi.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

from drivers.httpjson import HttpError
from drivers.modem import ModemOptions
from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig, UplinkConfig
from gateway.tools.market import Arrival, Market
from gateway.printable import escape

SCRIPT: tuple[tuple[str, str, str], ...] = (
    ("telegram", "Telegram", "Telegram code: 48213. Do not give this code to anyone, even if they say they are from Telegram!"),
    ("whatsapp", "WhatsApp", "Your WhatsApp code: 512-907. Don't share this code with others"),
    ("vk", "VK", "Код для входа в VK: 350-441. Если вы не запрашивали код, проигнорируйте это сообщение. " * 2),
    ("google", "Google", "G-402817 is your Google verification code."),
    ("uber", "Uber", "Your Uber code is 9921 😀 Never share this code. " * 3),
    ("yandex", "+79161234567", "Ваш код подтверждения: 7731. Никому не сообщайте его."),
    ("microsoft", "Microsoft", "Use 8832 as Microsoft account security code"),
)
TOKEN = "demo-supplier-token"


class Demo:
    def __init__(self, modems: int, out) -> None:
        self.out = out
        self.tmp = tempfile.mkdtemp(prefix="simgw-demo-")
        self.farm = ModemFarm(modems, periodic_interval=3.0, directory=os.path.join(self.tmp, "ports"))
        self.market = Market(os.path.join(self.tmp, "market.db"), TOKEN, on_sms=self.on_sms, on_lease=self.on_lease)
        self.gateway: Gateway | None = None
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.lease_of_modem: dict[int, tuple[str, str]] = {}  # modem -> (lease id, service)
        self.lease_sms: dict[str, int] = {}
        self.rng = random.Random(7)
        self.ids = itertools.count(1)
        self.quarantined_sent = 0

    def say(self, line: str) -> None:
        print(f"{time.strftime('%H:%M:%S')}  {escape(line)}", file=self.out, flush=True)  # SMS text inside

    def on_sms(self, arrival: Arrival) -> None:
        start = self.sent_at.pop(arrival.text or "", None)
        latency = (time.monotonic() - start) * 1000 if start is not None else float("nan")
        if start is not None:
            self.latencies.append(latency)
        if arrival.lease_id:
            self.lease_sms[arrival.lease_id] = self.lease_sms.get(arrival.lease_id, 0) + 1
        text = (arrival.text or "").replace("\n", " ")
        text = text if len(text) <= 56 else text[:53] + "..."
        self.say(f"SMS  -> marketplace  lease {arrival.lease_id:<8} from {arrival.sender or '?':<13} "
                 f"{arrival.parts} part(s) {latency:7.1f} ms  {text}")

    def on_lease(self, frame: dict) -> None:
        if frame.get("event") == "opened" or frame["state"] in ("finished", "expired", "cancelled", "repeat_waiting"):
            word = "opened" if frame.get("event") == "opened" else frame["state"]
            self.say(f"LEASE {frame['lease_id']:<8} {word:<14} {frame['service']:<10} on {frame['number']}")

    async def start(self) -> None:
        await self.farm.start()
        await self.market.start("127.0.0.1", 0)
        config = Config(path="<demo>", gateway_id="demo-gateway", state_dir=os.path.join(self.tmp, "state"),
                        modems=tuple(ModemConfig(m.link_path) for m in self.farm.modems), leases=LeaseConfig(),
                        control_listen=("127.0.0.1", 0),
                        uplink=UplinkConfig(f"ws://127.0.0.1:{self.market.address[1]}/v1", TOKEN))
        self.gateway = Gateway(config, modem_options=ModemOptions(health_interval=10.0))
        await self.gateway.start()

    async def stop(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        await self.market.stop()
        self.market.close()
        await self.farm.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def open_lease(self, modem: int) -> None:
        service = self.rng.choice([s for s, _, _ in SCRIPT])
        lease_id = f"deal-{next(self.ids)}"
        number = self.farm.info()[modem].msisdn
        try:
            result = await self.market.command({"type": "lease.open", "lease_id": lease_id, "service": service,
                                                "number": number})
        except HttpError as exc:
            self.say(f"lease {lease_id} not opened: {exc}")
            return
        if result.get("ok"):
            self.lease_of_modem[modem] = (lease_id, service)
        else:
            self.say(f"LEASE {lease_id:<8} refused: {result.get('reason')} ({result.get('message')})")

    async def step(self) -> None:
        modem = self.rng.randrange(len(self.farm.modems))
        lease = self.lease_of_modem.get(modem)
        if lease is not None and self.lease_sms.get(lease[0], 0) >= 1:
            action = self.rng.choice(["finish", "repeat"])
            result = await self.market.command({"type": f"lease.{action}", "lease_id": lease[0]})
            if action == "finish" or not result.get("ok"):
                del self.lease_of_modem[modem]
                await self.open_lease(modem)
            else:
                self.lease_sms[lease[0]] = 0
            lease = self.lease_of_modem.get(modem)
        service = lease[1] if lease else self.rng.choice([s for s, _, _ in SCRIPT])
        _, sender, text = next(item for item in SCRIPT if item[0] == service)
        text = f"{text} [{next(self.ids)}]"
        self.sent_at[text] = time.monotonic()
        if lease is None:
            self.quarantined_sent += 1
            self.sent_at.pop(text)
            self.say(f"SMS  on {self.farm.info()[modem].msisdn} with no lease: stays on the Pi (quarantine)")
        self.farm.send_sms(modem, sender, text, shuffle=True)


async def run_demo(stop: asyncio.Event, *, modems: int = 8, duration: float | None = None,
                   interval: float = 1.5, out=None) -> int:
    out = out or sys.stdout
    demo = Demo(modems, out)
    print(f"simgw demo: {modems} simulated modems on ptys, the gateway, and a marketplace on 127.0.0.1. "
          "Ctrl-C stops.", file=out, flush=True)
    await demo.start()
    try:
        gateway = demo.gateway
        host, port = gateway.control_address or ("127.0.0.1", 0)
        print(f"dashboard: http://{host}:{port}/  (live; numbers masked)", file=out, flush=True)
        deadline = time.monotonic() + 30
        while len(gateway.core.engine._online) < modems or not gateway.uplink.connected.is_set():
            if time.monotonic() > deadline or stop.is_set():
                break
            await asyncio.sleep(0.05)
        demo.say(f"all modems ready, marketplace connected; opening leases on {modems - 2} of {modems} numbers")
        for modem in range(modems - 2):
            await demo.open_lease(modem)
        started = time.monotonic()
        while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
            await demo.step()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(0.5)
        quarantined = len(gateway.read(lambda s: s.messages(quarantined=True)))
        if demo.latencies:
            print(f"{len(demo.latencies)} SMS reached the marketplace; latency from +CMTI median "
                  f"{statistics.median(demo.latencies):.1f} ms, max {max(demo.latencies):.1f} ms; "
                  f"{quarantined} SMS quarantined on the Pi, none sent", file=out, flush=True)
    finally:
        await demo.stop()
    return 0
