"""SIM banks on the core thread: which SIM is in which slot, and the schedulers that move them.

I/O-free: it keeps the inventory rows (one per bank slot, as last seen by a switch or a scan),
one :class:`~gateway.domain.scheduler.SimScheduler` per bank, and the
switches decided but not yet handed to the switcher (the asyncio side), which performs them and
reports back. Only a slot whose SIM was seen ``ok`` with a known number is offered for leases.
"""

from __future__ import annotations

import math
import enum
from collections import deque
from dataclasses import dataclass

from gateway.domain.scheduler import SimScheduler, Switch

class SimStatus(enum.StrEnum):
    """What a bank slot was last seen holding. A string enum because its value is what the store
    keeps, ``/status`` shows and the metrics label; the set of values is closed here."""

    OK = "ok"  # a SIM that came up and registered
    EMPTY = "empty"
    WRONG_SIM = "wrong_sim"
    NO_NETWORK = "no_network"
    NO_ANSWER = "no_answer"  # the bank or modem did not acknowledge the switch
    MODEM_DOWN = "modem_down"  # the channel's radio was not serving (a scan records it)
    UNKNOWN = "unknown"  # never seen


LEASABLE = SimStatus.OK
SLOT_FAILURES = frozenset({SimStatus.EMPTY, SimStatus.WRONG_SIM, SimStatus.NO_NETWORK})  # the slot's fault, not the radio's


@dataclass(frozen=True, slots=True)
class BankLayout:
    """What the scheduler needs of a bank: its channels (radio ports), its slots, and how the two
    are wired. The config builds it from its ``[[banks]]`` table (:attr:`BankConfig.layout`)."""

    name: str
    channels: tuple[str, ...]
    slots: int
    consecutive: bool = False  # multi-SIM modems: each channel holds a run of slots, not every n-th
    rotation: float | None = 15 * 60.0  # None: idle SIMs stay where they are
    queue: int = 16  # leases that may wait for a channel; 0 refuses with no_channel at once

    def reach(self) -> dict[str, tuple[int, ...]]:
        """Channel port -> the slots (0-based) it can hold: interleaved behind a controller
        (channel c of n reaches c, c+n, ...), consecutive inside multi-SIM modems."""
        n = len(self.channels)
        if self.consecutive:
            per = self.slots // n
            return {port: tuple(range(i * per, (i + 1) * per)) for i, port in enumerate(self.channels)}
        return {port: tuple(range(i, self.slots, n)) for i, port in enumerate(self.channels)}


@dataclass(frozen=True, slots=True)
class SimRow:
    """One bank slot as last seen."""

    bank: str
    slot: int
    status: SimStatus
    iccid: str | None = None
    imsi: str | None = None
    operator: str | None = None
    msisdn: str | None = None
    msisdn_source: str | None = None  # cnum, ussd or config
    detail: str | None = None
    scan_run: str | None = None
    seen_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SwitchOrder:
    """A switch for the switcher to perform, with what it needs to address and verify it."""

    bank: str
    switch: Switch
    channel_no: int  # 1-based, as bank commands count
    slot_no: int  # 1-based, bank-wide
    local: int  # 1-based within the channel
    expected_iccid: str | None  # None: a slot not seen before; whatever SIM comes up is recorded


class Banks:
    def __init__(self, configs: tuple[BankLayout, ...]) -> None:
        self.configs = {b.name: b for b in configs}
        self.schedulers = {b.name: SimScheduler(b.reach(), queue_limit=b.queue,
                                                rotation_period=b.rotation if b.rotation else math.inf)
                           for b in configs}
        self._channel_of_port = {port: b.name for b in configs for port in b.channels}
        self.rows: dict[tuple[str, int], SimRow] = {}
        self.orders: list[SwitchOrder] = []
        self.waits: dict[str, deque[float]] = {b.name: deque(maxlen=1000) for b in configs}  # open -> on air, s

    def __bool__(self) -> bool:
        return bool(self.configs)

    # ------------------------------------------------------------------------------ lookups
    def bank_of(self, port: str) -> str | None:
        """The bank whose channel ``port`` is, if any."""
        return self._channel_of_port.get(port)

    def load(self, rows: list[SimRow]) -> None:
        self.rows = {(r.bank, r.slot): r for r in rows if r.bank in self.configs and r.slot < self.configs[r.bank].slots}

    def locate(self, number: str, *, leasable_only: bool = True) -> tuple[str, int] | None:
        """The bank slot of a number (by default only if it is leasable)."""
        for key, row in self.rows.items():
            if row.msisdn == number and (row.status == LEASABLE or not leasable_only):
                return key
        return None

    def on_air(self, bank: str, slot: int) -> bool:
        """Is the SIM in ``slot`` on a radio now (not being switched)?"""
        scheduler = self.schedulers[bank]
        channel = scheduler.channel_of(slot)
        return channel is not None and scheduler.active_slot(channel) == slot

    def slot_of_iccid(self, bank: str, iccid: str) -> int | None:
        return next((slot for (b, slot), row in self.rows.items() if b == bank and row.iccid == iccid), None)

    def number_for_iccid(self, iccid: str) -> str | None:
        return next((row.msisdn for row in self.rows.values() if row.iccid == iccid and row.msisdn), None)

    def leasable(self) -> list[SimRow]:
        return [row for row in self.rows.values() if row.status == LEASABLE and row.msisdn]

    def next_rotation(self) -> float | None:
        times = [t for s in self.schedulers.values() if (t := s.next_rotation()) is not None and t != math.inf]
        return min(times, default=None)

    # ------------------------------------------------------------------------------- orders
    def order(self, bank: str, switch: Switch) -> SwitchOrder:
        config = self.configs[bank]
        channel_index = config.channels.index(switch.channel)
        reach = config.reach()[switch.channel]
        row = self.rows.get((bank, switch.to_slot))
        expected = row.iccid if row is not None and row.iccid and row.status in (LEASABLE, SimStatus.NO_NETWORK) else None
        order = SwitchOrder(bank, switch, channel_index + 1, switch.to_slot + 1, reach.index(switch.to_slot) + 1,
                            expected)
        self.orders.append(order)
        return order

    def take_orders(self) -> list[SwitchOrder]:
        orders, self.orders = self.orders, []
        return orders

    # ---------------------------------------------------------------------------- snapshots
    def snapshot(self) -> tuple:
        """What a transaction may change, to put back if it fails. Each part is bounded by the
        configuration (channels, slots, queue limit), so it costs the same however long the
        daemon has run; the ``waits`` sample (bounded too) is not rolled back."""
        return {name: s.snapshot() for name, s in self.schedulers.items()}, dict(self.rows), list(self.orders)

    def rollback(self, snapshot: tuple) -> None:
        schedulers, rows, orders = snapshot
        for name, state in schedulers.items():
            self.schedulers[name].rollback(state)
        self.rows, self.orders = dict(rows), list(orders)
