"""PUSH_SMS: every SMS of an active activation to the hub until it answers SUCCESS.

The queue is the store's ``hub_push`` table, filled in the very commit that stores the SMS, so a
restart resumes where it stopped. A push that fails (an error reply, no reply, a refused
connection) is due again ``push_retry`` (10 s) later, for as long as it takes; SUCCESS marks it
delivered in its own commit and it is never sent again. The text is read from ``messages`` at
send time, so the retention purge of texts covers the queue too. OnlineSim's NO_OPERATION and
BAD_SERVICE end the retries (its documentation: they cannot succeed later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog

from gateway import __version__
from gateway.smshub import protocol
from gateway.smshub.desk import HubDesk
from gateway.smshub.records import Push
from gateway.smshub.settings import SmshubConfig
from gateway.store import StoreError

log = structlog.get_logger("gateway.smshub.push")
USER_AGENT = f"simgw/{__version__} (SMSHub agent)"
BATCH = 32
PARALLEL = 4  # pushes in flight at once
TIMEOUT = 10.0  # a reply later than this is no reply: retried
PURGE_INTERVAL = 3600.0


class HubPusher:
    def __init__(self, settings: SmshubConfig, desk: HubDesk, call: Callable[..., Awaitable[Any]], *,
                 claim_window: float, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.desk = desk
        self._call = call  # runs a function on the core thread
        self._claim_window = claim_window
        self._mono, self._wall = mono, wall
        self.wake = asyncio.Event()
        self._in_flight: set[int] = set()
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None

    def wake_threadsafe(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """A callable for the core thread: a push was queued."""
        return lambda: loop.call_soon_threadsafe(self.wake.set)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        next_purge = self._mono()
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session:
            while True:
                try:
                    next_purge = await self._round(session, next_purge)
                except StoreError as exc:  # a full or failing disk: the queue is intact; try again
                    log.error("smshub.push_store_failed", error=str(exc), retry_in=self.settings.push_retry)
                    await asyncio.sleep(self.settings.push_retry)

    async def _round(self, session: aiohttp.ClientSession, next_purge: float) -> float:
        """Purge when due, send what is due, or sleep until something is; returns the next purge time."""
        if self._mono() >= next_purge:
            counts = await self._call(self.desk.purge, self._claim_window)
            if any(counts.values()):
                log.warning("smshub.push_purged", **counts)
            next_purge = self._mono() + PURGE_INTERVAL
        self.wake.clear()
        due = await self._call(self.desk.due_pushes, BATCH, tuple(self._in_flight))
        if due:
            await self._send_all(session, due)
        else:
            await self._sleep_until_due()
        return next_purge

    async def _sleep_until_due(self) -> None:
        next_at = await self._call(self.desk.next_push_at)
        delay = self.settings.push_retry if next_at is None else max(0.0, next_at - self._wall())
        try:
            await asyncio.wait_for(self.wake.wait(), min(delay, self.settings.push_retry) + 0.01)
        except asyncio.TimeoutError:
            pass

    async def _send_all(self, session: aiohttp.ClientSession, due: list[Push]) -> None:
        limit = asyncio.Semaphore(PARALLEL)

        async def one(push: Push) -> None:
            async with limit:
                self._in_flight.add(push.sms_id)
                try:
                    outcome = await self._send(session, push)
                    await self._call(self.desk.push_result, push.sms_id, outcome, self.settings.push_retry)
                finally:
                    self._in_flight.discard(push.sms_id)

        await asyncio.gather(*(one(push) for push in due))

    async def _send(self, session: aiohttp.ClientSession, push: Push) -> protocol.PushOutcome:
        phone = protocol.numeric_phone(push.number)
        if push.text is None or phone is None:
            log.error("smshub.push_given_up", sms_id=push.sms_id, reason="text purged" if push.text is None
                      else "number without country code")
            return protocol.PushOutcome.STOP
        settings = self.settings
        body = protocol.encode(protocol.push_body(push.sms_id, phone, push.sender or "", push.text, settings.key))
        headers = protocol.push_headers(settings.key, settings.flavour, USER_AGENT)
        try:
            async with session.post(settings.push_url, data=body, headers=headers) as response:
                reply = await response.content.read(64 * 1024)
                outcome, detail = protocol.push_outcome(response.status, reply, settings.flavour)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            outcome, detail = protocol.PushOutcome.RETRY, type(exc).__name__
        if outcome is protocol.PushOutcome.DELIVERED:
            self.delivered += 1
            log.info("smshub.pushed", sms_id=push.sms_id, attempts=push.attempts + 1)
        else:
            self.failures += 1
            self.last_error = detail
            log.warning("smshub.push_failed", sms_id=push.sms_id, attempt=push.attempts + 1, reply=detail,
                        retry_in=settings.push_retry if outcome is protocol.PushOutcome.RETRY else None)
        return outcome
