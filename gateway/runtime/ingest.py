"""Parts from the modem drivers to the core thread, grouped: the driver's receive contract.

A driver awaits :meth:`Ingest.sink` for each part and deletes it from the SIM only when that
returns; it returns once the core thread has committed the part, and raises if it could not.
Parts that arrive while the core thread is busy go together in one transaction (one fsync).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog

from drivers.modem import ReceivedPart
from gateway.core import GatewayCore
from gateway.domain.messages import IngestStatus, Ingested
from gateway.runtime.faults import CrashPoints
from gateway.runtime.nudges import Nudges
from gateway.store import StoreError

log = structlog.get_logger("gateway.app")
CoreCall = Callable[..., Awaitable[Any]]


class Ingest:
    def __init__(self, core: GatewayCore, call: CoreCall, nudges: Nudges, crash: CrashPoints, *,
                 configured_msisdn: dict[str, str], wake_at: Callable[[], float],
                 after_delivery: Callable[[], Awaitable[None]]) -> None:
        self._core, self._call, self._nudges, self._crash = core, call, nudges, crash
        self._configured_msisdn = configured_msisdn  # port -> the number the config gives its SIM
        self._timer_wake_at = wake_at
        self._after_delivery = after_delivery
        self._queue: list[tuple[ReceivedPart, asyncio.Future[Ingested]]] = []
        self._ready = asyncio.Event()

    async def sink(self, part: ReceivedPart) -> None:
        """The driver's receive contract: return only once the part is on disk; raise if not."""
        self._crash.maybe_crash("before_ingest")
        if not part.identity.msisdn and part.port in self._configured_msisdn:
            part = replace(part, identity=replace(part.identity, msisdn=self._configured_msisdn[part.port]))
        future: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        self._queue.append((part, future))
        self._ready.set()
        result = await future
        if result.status is IngestStatus.FAILED:
            raise StoreError(f"not stored: {result.error}")
        self._crash.maybe_crash("after_ingest")
        log.info("sms.stored", port=part.port, status=result.status.value, msg_id=result.message_id,
                 lease=result.lease_id, quarantined=result.quarantined)
        if result.lease_id:
            due = self._core.snapshot.due_at
            if due is not None and due < self._timer_wake_at():
                self._nudges.timers.set()  # a deadline now comes before the timer's next wake-up
            self._nudges.outbox.set()
            await self._after_delivery()

    async def run(self) -> None:
        """Hand the core thread everything that queued while it was busy: group commit, so 64
        modems do not cost 64 fsyncs when their SMS arrive together. Every waiting driver gets
        an answer, an error included, so no part is deleted from a SIM unstored."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    results = await self._call(self._core.ingest_many, [part for part, _ in batch])
                except BaseException as exc:
                    error = exc if isinstance(exc, Exception) else StoreError("the daemon is stopping")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
