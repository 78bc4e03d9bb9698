"""The event loop's wake-ups after a decision: who must look again at what the core committed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Nudges:
    """``timers``: a deadline may now come sooner; ``outbox``: rows wait for the uplink;
    ``inventory``: what the gateway offers changed (the uplink sends a new inventory)."""

    timers: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: asyncio.Event = field(default_factory=asyncio.Event)
    inventory: asyncio.Event = field(default_factory=asyncio.Event)

    def decided(self, *, inventory: bool = False) -> None:
        self.timers.set()
        self.outbox.set()
        if inventory:
            self.inventory.set()
