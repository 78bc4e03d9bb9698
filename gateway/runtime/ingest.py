"""Parts from the modem drivers to the core thread, grouped: the driver's receive contract.

A driver awaits :meth:`Ingest.sink` for each part and deletes it from the SIM only when that
returns; it returns once the core thread has committed the part, and raises if it could not.
Parts that arrive while the core thread is busy with a batch go together in the next one (one
transaction, one fsync). No task of its own: the first part hands its batch to the core thread at
once, and the core thread's answer, back on the loop, settles the batch and sends the next.
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
Submit = Callable[[Callable[..., Any], tuple, Callable[[Any, BaseException | None], None]], None]
"""``submit(fn, args, done)``: run ``fn(*args)`` on the core thread, then ``done(result, error)``
on the loop (:meth:`gateway.runtime.gateway.Gateway.submit`)."""
Batch = list[tuple[ReceivedPart, asyncio.Future[Ingested]]]


class Ingest:
    def __init__(self, core: GatewayCore, submit: Submit, nudges: Nudges, crash: CrashPoints, *,
                 configured_msisdn: dict[str, str], wake_at: Callable[[], float],
                 after_delivery: Callable[[], Awaitable[None]]) -> None:
        self._core, self._submit, self._nudges, self._crash = core, submit, nudges, crash
        self._configured_msisdn = configured_msisdn  # port -> the number the config gives its SIM
        self._timer_wake_at = wake_at
        self._after_delivery = after_delivery
        self._queue: Batch = []  # parts waiting for the batch in flight to finish
        self._in_flight = False  # a batch is on the core thread

    async def sink(self, part: ReceivedPart) -> None:
        """The driver's receive contract: return only once the part is on disk; raise if not."""
        self._crash.maybe_crash("before_ingest")
        if not part.identity.msisdn and part.port in self._configured_msisdn:
            part = replace(part, identity=replace(part.identity, msisdn=self._configured_msisdn[part.port]))
        future: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        self._queue.append((part, future))
        if not self._in_flight:
            self._send()
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

    def _send(self) -> None:
        """Hand everything queued to the core thread as one batch (group commit, so 64 modems do
        not cost 64 fsyncs when their SMS arrive together)."""
        batch, self._queue = self._queue, []
        try:
            self._submit(self._core.ingest_many, ([part for part, _ in batch],),
                         lambda results, error: self._answered(batch, results, error))
        except Exception as exc:  # the core thread has shut down: nothing of this batch is stored
            self._answered(batch, None, StoreError(f"the core thread is gone: {exc}"))
            return
        self._in_flight = True

    def _answered(self, batch: Batch, results: list[Ingested] | None, error: BaseException | None) -> None:
        """(loop) The core thread's answer: every waiting driver hears, an error included, so no
        part is deleted from a SIM unstored; then the parts that queued meanwhile go."""
        self._in_flight = False
        if error is not None or results is None:
            failure = error if isinstance(error, Exception) else StoreError("the daemon is stopping")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
        else:
            for (_, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(result)
        if self._queue:
            self._send()
