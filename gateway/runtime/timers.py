"""The daemon's timer loop: lease deadlines and auto-finish, bank rotation, retention, stale parts.

One asyncio task (supervised) arms one wake-up for the earliest thing due, and wakes at least
every ``poll`` seconds whatever it expects. Each job runs on its own: a job whose commit fails (a
full disk) is still due, and everything due is tried again after a backoff of at most
TIMER_RETRY_MAX for as long as the failure lasts, so a deadline is kept within seconds of the disk
coming back and nothing else stops meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from gateway.core import decisions_json
from gateway.store import StoreError

if TYPE_CHECKING:
    from gateway.runtime.gateway import Gateway

log = structlog.get_logger("gateway.timers")
PURGE_INTERVAL = 60.0  # nothing outlives its retention setting by more than this
PART_FLUSH_INTERVAL = 30.0
TIMER_POLL = 5.0  # the loop wakes at least this often, whatever it expects next
TIMER_RETRY_MAX = 5.0  # a failed job (the store refused a commit) is tried again at least this often


@dataclass(slots=True)
class _Schedule:
    """When the periodic jobs are next due (engine time)."""

    next_purge: float
    next_flush: float
    rotation: float | None = None

    def wake_at(self, deadline: float | None) -> float:
        return min(x for x in (deadline, self.next_purge, self.next_flush, self.rotation) if x is not None)


class TimerLoop:
    def __init__(self, gateway: "Gateway", wake: asyncio.Event, *, mono: Callable[[], float],
                 poll: float = TIMER_POLL) -> None:
        self._gateway = gateway
        self._wake = wake  # set by whoever changed what is due
        self._mono = mono
        self._poll = poll
        self.wake_at = 0.0  # when the loop next wakes by itself (engine time)
        self.store_failing: str | None = None  # the last commit error, until a round succeeds again

    async def run(self) -> None:
        schedule = _Schedule(next_purge=self._mono(), next_flush=self._mono() + PART_FLUSH_INTERVAL)
        failures, retry_at, failing_since = 0, 0.0, 0.0
        while True:
            now = self._mono()
            if now >= retry_at:
                error = await self._round(now, schedule)
                if error is None and failures:
                    log.warning("timers.store_recovered", failed_for_s=round(now - failing_since, 1), retries=failures)
                    failures, retry_at, self.store_failing = 0, 0.0, None
                elif error is not None:
                    failing_since = failing_since if failures else now
                    failures += 1
                    retry_at = now + min(TIMER_RETRY_MAX, 0.5 * 2 ** (failures - 1))
                    if failures == 1:
                        log.error("timers.store_failing", error=error, retry_every_s=TIMER_RETRY_MAX,
                                  consequence="deadlines and purges wait for the store; SMS stay on the SIMs")
                    self.store_failing = error
            self.wake_at = retry_at or schedule.wake_at(self._gateway.core.snapshot.due_at)
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancellation that comes just
            # as the wake-up does, and the loop would never stop
            try:
                async with asyncio.timeout(max(0.0, min(self.wake_at - self._mono(), self._poll)) + 0.001):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _round(self, now: float, schedule: _Schedule) -> str | None:
        """Run every job that is due; a job's failure leaves it due. Returns the last error."""
        error = None
        for job in (self._deadlines, self._banks, self._purge, self._flush):
            try:
                await job(now, schedule)
            except StoreError as exc:
                error = str(exc)
        return error

    async def _deadlines(self, now: float, schedule: _Schedule) -> None:
        gateway = self._gateway
        due = gateway.core.snapshot.due_at
        decisions = await gateway.call(gateway.core.tick) if due is not None and due <= now else []
        if decisions:
            gateway.outbox_changed.set()
        for decision in decisions:
            log.info("lease.ended", **{k: v for k, v in decisions_json([decision]).items() if k != "ok"})

    async def _banks(self, now: float, schedule: _Schedule) -> None:
        gateway = self._gateway
        if gateway.switcher is not None:
            await gateway.switching.dispatch()
            await gateway.switching.dispatch(await gateway.call(gateway.core.rotate))
            schedule.rotation = gateway.core.snapshot.next_rotation

    async def _purge(self, now: float, schedule: _Schedule) -> None:
        if now >= schedule.next_purge:
            counts = await self._gateway.call(self._gateway.core.purge)
            if any(counts.values()):
                log.info("store.purged", **counts)
            schedule.next_purge = now + PURGE_INTERVAL

    async def _flush(self, now: float, schedule: _Schedule) -> None:
        if now >= schedule.next_flush:
            flushed = await self._gateway.call(self._gateway.core.flush_stale_parts)
            if any(result.lease_id for result in flushed):
                self._gateway.outbox_changed.set()
            schedule.next_flush = now + PART_FLUSH_INTERVAL
