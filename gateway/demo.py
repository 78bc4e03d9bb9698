"""``simgw demo``: simulated modems driven over real ptys, SMS shown live as they arrive.

No hardware and no configuration: a mixed-vendor farm starts on pseudo-terminals, the real driver
opens them like USB modems, and a script of activation-style messages (multipart, Cyrillic, emoji,
alphanumeric senders) is injected while the terminal shows each SMS with its latency from the
modem's ``+CMTI`` to the handler.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import sys
import time

from drivers.simulator.farm import ModemFarm
from gateway.listener import Arrival, Listener

SCRIPT: tuple[tuple[str, str], ...] = (
    ("Telegram", "Telegram code: 48213. Do not give this code to anyone, even if they say they are from Telegram!"),
    ("WhatsApp", "Your WhatsApp code: 512-907. Don't share this code with others"),
    ("+79161234567", "Ваш код подтверждения: 7731. Никому не сообщайте его."),
    ("Google", "G-402817 is your Google verification code."),
    ("Uber", "Your Uber code is 9921 😀 Never share this code. " * 3),
    ("+447700900123", "Der Bestätigungscode lautet 66120 – gültig für 10 Minuten. €"),
    ("VK", "Код для входа в VK: 350-441. Если вы не запрашивали код, проигнорируйте это сообщение. " * 2),
    ("Microsoft", "Use 8832 as Microsoft account security code"),
)


async def run_demo(stop: asyncio.Event, *, modems: int = 8, duration: float | None = None,
                   interval: float = 1.5, out=sys.stdout) -> int:
    farm = ModemFarm(modems, periodic_interval=3.0)
    await farm.start()
    sent_at: dict[tuple[str, str], float] = {}
    latencies: list[float] = []
    profiles = {m.link_path: m.engine.profile.name for m in farm.modems}

    def on_sms(arrival: Arrival) -> None:
        key = (arrival.port, arrival.sms.text)
        start = sent_at.pop(key, None)
        latency_ms = (arrival.last_part_monotonic - start) * 1000 if start is not None else float("nan")
        if start is not None:
            latencies.append(latency_ms)
        name = arrival.port.rsplit("/", 1)[-1]
        text = arrival.sms.text.replace("\n", " ")
        text = text if len(text) <= 60 else text[:57] + "..."
        print(f"{time.strftime('%H:%M:%S')}  {name} ({profiles.get(arrival.port, '?'):9}) "
              f"from {arrival.sms.sender:14} {arrival.sms.parts} part(s) {latency_ms:7.1f} ms  {text}",
              file=out, flush=True)

    listener = Listener([m.link_path for m in farm.modems], on_sms)
    print(f"simgw demo: {modems} simulated modems on ptys in {farm.directory}; Ctrl-C stops.", file=out, flush=True)
    await listener.start()
    try:
        await listener.wait_ready(30)
        print("all modems ready; injecting SMS...", file=out, flush=True)
        rng = random.Random(7)
        started = time.monotonic()
        for n in itertools.count():
            if stop.is_set() or (duration is not None and time.monotonic() - started >= duration):
                break
            modem_id = rng.randrange(modems)
            sender, text = SCRIPT[n % len(SCRIPT)]
            port = farm.modems[modem_id].link_path
            sent_at[(port, text)] = time.monotonic()
            farm.send_sms(modem_id, sender, text, shuffle=True)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(0.5)
    finally:
        await listener.stop()
        await farm.stop()
    if latencies:
        print(f"{len(latencies)} SMS received; latency median {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms", file=out, flush=True)
    return 0
