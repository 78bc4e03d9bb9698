"""Once a second, what the dashboard and the alert metrics need that the gateway does not keep:
per-minute history of each modem, when the marketplace session last went up or down, the outbox
backlog (asked of the core thread), the Pi's disk and database size, and commits per second.

A failing sample is logged once per kind of error and retried next second: the sampler never
stops the daemon and never dies of a bad reading."""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from gateway.dashboard.history import History

if TYPE_CHECKING:
    from gateway.runtime.gateway import Gateway

log = structlog.get_logger("gateway.dashboard")
INTERVAL = 1.0
RATE_WINDOW = 10  # samples the commits/s rate is averaged over


@dataclass(slots=True)
class PiReading:
    database_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    commits_per_second: float = 0.0

    @property
    def disk_free_ratio(self) -> float | None:
        if not self.disk_total_bytes or self.disk_free_bytes is None:
            return None
        return self.disk_free_bytes / self.disk_total_bytes


class Sampler:
    def __init__(self, gateway: Gateway, *, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._gateway = gateway
        self._mono, self._wall = mono, wall
        self.history = History()
        self.started_mono, self.started_wall = mono(), wall()
        self.pi = PiReading()
        self.outbox_depth: int | None = None
        self.outbox_oldest_at: float | None = None  # wall time of the oldest unacknowledged event
        self.uplink_up: bool | None = None
        self.uplink_since: float | None = None  # wall time of the last change of self.uplink_up
        self._commits: collections.deque[tuple[float, int]] = collections.deque(maxlen=RATE_WINDOW)
        self._errors_logged: set[str] = set()

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad reading must not end the dashboard's history
                kind = type(exc).__name__
                if kind not in self._errors_logged:
                    self._errors_logged.add(kind)
                    log.warning("dashboard.sample_failed", error=str(exc)[:200], kind=kind, retry_every=INTERVAL)
            await asyncio.sleep(INTERVAL)

    async def sample(self) -> None:
        gateway, wall = self._gateway, self._wall()
        local = time.localtime(wall)
        minute, day = int(wall // 60), local.tm_year * 1000 + local.tm_yday
        for modem in gateway.modems:
            self.history.sample(modem.path, minute, day, modem.health.signal_dbm, modem.health.sms_received)
        if gateway.uplink is not None:
            up = gateway.uplink.connected.is_set()
            if up != self.uplink_up:
                self.uplink_up, self.uplink_since = up, wall
        self._commits.append((self._mono(), gateway.core.snapshot.store_writes))
        self.pi.commits_per_second = _rate(self._commits)
        self.pi.database_bytes = _database_bytes(gateway.config.database)
        try:
            usage = shutil.disk_usage(gateway.config.state_dir)
            self.pi.disk_free_bytes, self.pi.disk_total_bytes = usage.free, usage.total
        except OSError:
            self.pi.disk_free_bytes = self.pi.disk_total_bytes = None
        self.outbox_depth, self.outbox_oldest_at = await gateway.call(gateway.store.outbox_size)

    def outbox_oldest_age(self) -> float:
        """Seconds the oldest unacknowledged event has waited; 0 with none."""
        return 0.0 if self.outbox_oldest_at is None else max(0.0, self._wall() - self.outbox_oldest_at)

    def uptime(self) -> float:
        return self._mono() - self.started_mono


def _rate(samples: collections.deque[tuple[float, int]]) -> float:
    if len(samples) < 2:
        return 0.0
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def _database_bytes(path: str) -> int | None:
    """The database with its write-ahead log: what it takes on the SD card."""
    total, found = 0, False
    for name in (path, path + "-wal"):
        try:
            total += os.stat(name).st_size
            found = True
        except OSError:
            pass
    return total if found else None
