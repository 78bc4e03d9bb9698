"""What the event loop may know of the core: a frozen snapshot, published after every commit.

The core thread owns the lease engine, the bank schedulers and the store; the event loop (status,
metrics, the timers, the control views) never reads them. After each transaction commits (or
rolls back) the core builds a :class:`CoreSnapshot` and publishes it by replacing one reference,
so a reader on another thread sees either the previous snapshot or the new one, whole. Its size
is bounded by the configuration (active leases ≤ numbers, channels, slot states), never by uptime.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from gateway.domain.banks import Banks, SimStatus
from gateway.domain.leases import Lease


@dataclass(frozen=True, slots=True)
class ChannelView:
    port: str
    slot: int | None  # 1-based, as the bank counts; None: not known yet
    switching: bool
    lease: str | None


@dataclass(frozen=True, slots=True)
class SlotView:
    """One bank slot for the dashboard's grid."""

    slot: int  # 1-based
    status: SimStatus | None  # the inventory's status; None: never scanned
    radio: str | None  # the channel that can hold it
    on_air: bool
    lease: str | None
    msisdn: str | None


@dataclass(frozen=True, slots=True)
class BankView:
    name: str
    channels: tuple[ChannelView, ...]
    queued: int
    slots: tuple[tuple[str, int], ...]  # slot status -> how many slots are in it
    waits: tuple[float, ...]  # recent leases' seconds from opening to SIM on air (bounded sample)
    slot_views: tuple[SlotView, ...] = ()  # every slot, in order (bounded by the bank's size)

    def wait_summary(self) -> dict[str, float | int | None]:
        """How long the recent leases of this bank waited from opening until their SIM was on air."""
        waits = sorted(self.waits)
        if not waits:
            return {"count": 0, "p50_s": None, "p90_s": None, "max_s": None}
        return {"count": len(waits), "p50_s": round(statistics.median(waits), 2),
                "p90_s": round(waits[min(len(waits) - 1, int(len(waits) * 0.9))], 2), "max_s": round(waits[-1], 2)}


@dataclass(frozen=True, slots=True)
class CoreSnapshot:
    leases: tuple[Lease, ...] = ()  # the active ones
    due_at: float | None = None  # the lease engine's next deadline (engine time)
    next_rotation: float | None = None  # the banks' next idle rotation (engine time)
    banks: tuple[BankView, ...] = ()
    store_writes: int = 0  # committed write transactions (the SD card's wear)
    commit_failures: int = 0  # write transactions SQLite refused (disk full, read-only, I/O error)


def bank_views(banks: Banks) -> tuple[BankView, ...]:
    views = []
    for name, scheduler in banks.schedulers.items():
        slots: dict[str, int] = {}
        for (bank, _), row in banks.rows.items():
            if bank == name:
                slots[row.status] = slots.get(row.status, 0) + 1
        channels = []
        for port in scheduler.channels:
            slot = scheduler.active_slot(port)
            channels.append(ChannelView(port, None if slot is None else slot + 1, scheduler.is_switching(port),
                                        scheduler.lease_on(slot) if slot is not None else None))
        views.append(BankView(name, tuple(channels), len(scheduler.queued), tuple(slots.items()),
                              tuple(banks.waits[name]), _slot_views(banks, name)))
    return tuple(views)


def _slot_views(banks: Banks, name: str) -> tuple[SlotView, ...]:
    scheduler, out = banks.schedulers[name], []
    for slot in range(banks.configs[name].slots):
        row = banks.rows.get((name, slot))
        out.append(SlotView(slot + 1, row.status if row else None, scheduler.channel_of(slot), scheduler.on_air(slot),
                            scheduler.lease_on(slot), row.msisdn if row else None))
    return tuple(out)
