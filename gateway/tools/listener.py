"""Drive a set of modems and hand every complete SMS to a callback, assembled in memory.

This is the receive path of ``simgw listen`` and of the demo: the sink keeps parts in an
:class:`SmsAssembler` and acknowledges at once (the console is its durable medium). The daemon's
store-backed sink replaces it where an SMS must survive a crash.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from drivers.modem import Modem, ModemOptions, ReceivedPart, stop_modems
from drivers.sms.assembly import AssembledSms, SmsAssembler
from drivers.sms.pdu import SmsDeliver

log = structlog.get_logger("gateway.tools.listener")


@dataclass(frozen=True, slots=True)
class Arrival:
    """A complete (or timed-out incomplete) SMS with where and when it arrived."""

    port: str
    iccid: str
    sms: AssembledSms
    first_part_monotonic: float
    last_part_monotonic: float


class Listener:
    def __init__(
        self,
        ports: list[str],
        on_sms: Callable[[Arrival], None],
        *,
        options: ModemOptions = ModemOptions(),
        on_error: Callable[[ReceivedPart], None] | None = None,
        part_timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_sms = on_sms
        self._on_error = on_error
        self._clock = clock
        self._assembler = SmsAssembler(part_timeout)
        self._first_seen: dict[tuple[str, str, int], float] = {}
        self.modems = [Modem(port, self._sink, options=options, clock=clock) for port in ports]
        self._tasks: list[asyncio.Task[None]] = []
        self._iccid_by_port: dict[str, str] = {}

    async def start(self) -> None:
        for modem in self.modems:
            self._tasks.append(asyncio.create_task(modem.run(), name=f"modem:{modem.path}"))
        self._tasks.append(asyncio.create_task(self._expire_loop(), name="assembler-expiry"))

    async def stop(self) -> None:
        await stop_modems(self.modems, self._tasks)

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(m.ready.wait() for m in self.modems)), timeout)

    async def _sink(self, part: ReceivedPart) -> None:
        self._iccid_by_port[part.port] = part.identity.iccid
        if part.sms is None or not isinstance(part.sms, SmsDeliver):
            if self._on_error is not None:
                self._on_error(part)
            return
        sms = part.sms
        key = (part.port, sms.sender, sms.concat.ref if sms.concat else -1)
        first = self._first_seen.setdefault(key, part.received_monotonic)
        done = self._assembler.add(part.port, sms, part.received_monotonic)
        if done is not None:
            self._first_seen.pop(key, None)
            self._emit(Arrival(part.port, part.identity.iccid, done, first, part.received_monotonic))

    def _emit(self, arrival: Arrival) -> None:
        try:
            self._on_sms(arrival)
        except Exception:
            log.exception("listener.callback_failed")

    async def _expire_loop(self) -> None:
        while True:
            deadline = self._assembler.next_deadline()
            await asyncio.sleep(1.0 if deadline is None else max(0.05, min(1.0, deadline - self._clock())))
            for sms in self._assembler.expire(self._clock()):
                self._first_seen.pop((sms.source, sms.sender, sms.concat_ref or -1), None)
                now = self._clock()
                self._emit(Arrival(sms.source, self._iccid_by_port.get(sms.source, ""), sms, now, now))
