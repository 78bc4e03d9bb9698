"""16 simulated modems on ptys, 1,000 SMS while the driver runs: every SMS exactly once, intact,
and every SIM storage empty at the end."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.conftest import Harness, run, wait_until

pytestmark = pytest.mark.slow  # 1,000 SMS over 16 modems: deselect with -m "not slow"

ALPHABETS = (
    "Your code is {n}. Do not share it with anyone.",
    "Ваш код подтверждения {n}, никому его не сообщайте",
    "Code {n} 😀 🚀 {{[~|]}} €",
    "Bestätigungscode {n} für Ihr Konto. §",
)


def make_texts(count: int, rng: random.Random) -> list[str]:
    texts = []
    for n in range(count):
        base = ALPHABETS[n % len(ALPHABETS)].format(n=f"{n:06d}")
        if n % 3 == 0:  # a third multipart: 2 to 4 parts
            base = (base + " ") * rng.randint(4, 9)
        texts.append(f"#{n} {base}")
    return texts


def test_16_modems_1000_sms_exactly_once():
    async def scenario():
        rng = random.Random(42)
        async with Harness(16, periodic_interval=0.5) as h:
            texts = make_texts(1000, rng)
            expected = []
            for n, text in enumerate(texts):
                modem = rng.randrange(16)
                sender = rng.choice(["+79161234567", "Telegram", "89031112233", "Google"])
                h.farm.send_sms(modem, sender, text, shuffle=True, ref_bits=8 if n % 2 else 16)
                expected.append((modem, text))
                if n % 50 == 49:
                    await asyncio.sleep(0.05)  # a burst every 50, like a busy evening
            await h.expect(expected, timeout=60)
            await wait_until(lambda: h.farm.stored_count() == 0 and h.farm.held_count() == 0, 10, "storage empty")
            assert sum(h.messages.values()) == 1000
            assert not h.bad_parts
            assert sum(1 for t in texts if len(t) > 70) >= 300

    run(scenario(), 120)
