"""Which SIM of a bank is on which radio: the switching scheduler, I/O-free, clock injected.

A SIM bank has far more slots than channels (radios); each channel reaches a fixed group of
slots and holds one of them at a time. The scheduler decides, and only decides: the bank driver
performs a switch and reports back with :meth:`SimScheduler.switch_done`. Its rules:

* a lease for a SIM already on a radio needs nothing; one for a SIM off air takes a channel that
  reaches it and whose current SIM is idle; **a leased SIM is never switched out**;
* with no such channel the lease waits in a bounded queue (served first come, first served when a
  channel frees up) or is refused with ``no_channel``;
* idle channels rotate through their idle slots on a cycle, so every SIM registers regularly
  (collecting SMS the network held for it) and stays alive with its operator;
* a channel is used only once its SIM is known (:meth:`SimScheduler.observe`, or a finished
  switch): after a restart nothing is switched before the radios have said which SIM they hold;
* what the marketplace may be told is usable *at once* is the number of channels, never slots.

Each channel is in one :class:`ChannelState` (UNKNOWN, HOLDING, SWITCHING); every change of it is
a row of :data:`CHANNEL_TRANSITIONS`, and a decision outside the table, or one that would switch a
leased SIM out, raises :class:`SchedulerRuleBroken` (checked always, not an ``assert``).

It remembers nothing that grows with uptime: its state is one record per channel, the leased
slots and the bounded queue, so the core's per-transaction :meth:`SimScheduler.snapshot` costs
the same on the first day as after a year of rotation. Who wants to see every switch (a test, a
log) registers a listener with :meth:`SimScheduler.add_listener`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Outcome(enum.Enum):
    ON_AIR = "on_air"  # the SIM is already on a radio
    SWITCH = "switch"  # switch a channel to the SIM; the lease waits for it to register
    QUEUED = "queued"  # no channel now; served when one frees
    NO_CHANNEL = "no_channel"  # no channel now and the queue is full (or queueing is off)


@dataclass(frozen=True, slots=True)
class Switch:
    channel: str
    from_slot: int | None
    to_slot: int
    reason: str  # "lease" or "rotation"


@dataclass(frozen=True, slots=True)
class Placement:
    outcome: Outcome
    lease_id: str
    slot: int
    switch: Switch | None = None
    channel: str | None = None


class ChannelState(enum.Enum):
    UNKNOWN = "unknown"  # the radio has not said which SIM it holds (after a start): not used yet
    HOLDING = "holding"  # a known SIM (or none) is on the radio
    SWITCHING = "switching"  # a switch was handed to the driver; its report is awaited


class ChannelEvent(enum.Enum):
    OBSERVED = "observed"  # the radio reported the SIM it holds, outside a switch of ours
    SWITCH = "switch"  # the scheduler decided a switch
    SWITCH_DONE = "switch_done"  # the driver reported the switch, ok or not


# Rule 1: every change of a channel's state is in this table; anything else is SchedulerRuleBroken.
CHANNEL_TRANSITIONS: dict[tuple[ChannelState, ChannelEvent], ChannelState] = {
    (ChannelState.UNKNOWN, ChannelEvent.OBSERVED): ChannelState.HOLDING,
    (ChannelState.HOLDING, ChannelEvent.OBSERVED): ChannelState.HOLDING,
    (ChannelState.SWITCHING, ChannelEvent.OBSERVED): ChannelState.SWITCHING,  # the switch reports itself
    (ChannelState.HOLDING, ChannelEvent.SWITCH): ChannelState.SWITCHING,
    (ChannelState.SWITCHING, ChannelEvent.SWITCH_DONE): ChannelState.HOLDING,
    # a report for a switch this state no longer knows of (a rolled-back transaction): what the
    # radio holds now is known all the same
    (ChannelState.UNKNOWN, ChannelEvent.SWITCH_DONE): ChannelState.HOLDING,
    (ChannelState.HOLDING, ChannelEvent.SWITCH_DONE): ChannelState.HOLDING,
}


class SchedulerRuleBroken(RuntimeError):
    """A decision the scheduler's rules forbid (a transition not in the table, or a leased SIM
    switched out). Raised, never assumed away: the core's transaction rolls back, nothing moves."""


@dataclass(slots=True)
class _Channel:
    name: str
    slots: tuple[int, ...]
    active: int | None = None
    state: ChannelState = ChannelState.UNKNOWN
    switching_to: int | None = None  # the target slot, while SWITCHING
    rotation_at: float = 0.0
    next_rotation_index: int = 0

    def copy(self) -> "_Channel":
        return _Channel(self.name, self.slots, self.active, self.state, self.switching_to, self.rotation_at,
                        self.next_rotation_index)

    @property
    def known(self) -> bool:
        return self.state is not ChannelState.UNKNOWN

    @property
    def switching(self) -> bool:
        return self.state is ChannelState.SWITCHING

    @property
    def holding(self) -> int | None:
        """The slot on air (None: none, or a switch under way)."""
        return self.active if self.state is ChannelState.HOLDING else None

    def move(self, event: ChannelEvent) -> None:
        target = CHANNEL_TRANSITIONS.get((self.state, event))
        if target is None:
            raise SchedulerRuleBroken(f"channel {self.name}: {event.value} while {self.state.value}")
        self.state = target


SchedulerState = tuple[dict[str, _Channel], dict[int, str], tuple[tuple[str, int], ...]]
SwitchListener = Callable[[Switch], None]


@dataclass(slots=True)
class SimScheduler:
    reach: dict[str, tuple[int, ...]]  # channel -> the slots it can hold
    queue_limit: int = 16
    rotation_period: float = 15 * 60.0
    _channels: dict[str, _Channel] = field(default_factory=dict)
    _leased: dict[int, str] = field(default_factory=dict)  # slot -> lease id
    _queue: deque[tuple[str, int]] = field(default_factory=deque)
    _listeners: list[SwitchListener] = field(default_factory=list)  # not state: kept across rollbacks

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for name, slots in self.reach.items():
            for slot in slots:
                if slot in seen:
                    raise ValueError(f"slot {slot} is reachable from both {seen[slot]} and {name}")
                seen[slot] = name
            self._channels[name] = _Channel(name, tuple(slots))

    # ----------------------------------------------------------------------------- queries
    def channel_of(self, slot: int) -> str | None:
        return next((c.name for c in self._channels.values() if slot in c.slots), None)

    def on_air(self, slot: int) -> bool:
        return any(c.holding == slot for c in self._channels.values())

    def is_leased(self, slot: int) -> bool:
        return slot in self._leased

    @property
    def queued(self) -> list[tuple[str, int]]:
        return list(self._queue)

    def lease_on(self, slot: int) -> str | None:
        return self._leased.get(slot)

    @property
    def channels(self) -> list[str]:
        return list(self._channels)

    def active_slot(self, channel: str) -> int | None:
        return self._channels[channel].holding

    def is_switching(self, channel: str) -> bool:
        return self._channels[channel].switching

    def next_rotation(self) -> float | None:
        """When :meth:`rotations_due` next has something to do (None: nothing can rotate now)."""
        return min((c.rotation_at for c in self._channels.values() if len(c.slots) > 1 and self._free(c)),
                   default=None)

    # ------------------------------------------------------------------- snapshot, listeners
    def snapshot(self) -> SchedulerState:
        """The whole state, for :meth:`rollback` when the transaction that changed it fails; its
        size is set by the configuration (channels, queue limit), never by uptime."""
        return {name: c.copy() for name, c in self._channels.items()}, dict(self._leased), tuple(self._queue)

    def rollback(self, state: SchedulerState) -> None:
        channels, leased, queue = state
        self._channels = {name: c.copy() for name, c in channels.items()}
        self._leased, self._queue = dict(leased), deque(queue)

    def add_listener(self, listener: SwitchListener) -> None:
        """Call ``listener`` with every switch decided, as it is decided (a switch decided in a
        transaction that is then rolled back has been heard too). A listener must not raise."""
        self._listeners.append(listener)

    # ---------------------------------------------------------------------------- commands
    def request(self, lease_id: str, slot: int, now: float) -> Placement:
        """A lease wants SIM ``slot``; ``now`` is engine time."""
        name = self.channel_of(slot)
        if name is None:
            raise KeyError(f"slot {slot} is on no channel")
        channel = self._channels[name]
        if channel.holding == slot:
            self._leased[slot] = lease_id
            return Placement(Outcome.ON_AIR, lease_id, slot, channel=name)
        if self._free(channel):
            self._leased[slot] = lease_id
            return Placement(Outcome.SWITCH, lease_id, slot, self._switch(channel, slot, "lease", now), name)
        if len(self._queue) < self.queue_limit:
            self._queue.append((lease_id, slot))
            return Placement(Outcome.QUEUED, lease_id, slot, channel=name)
        return Placement(Outcome.NO_CHANNEL, lease_id, slot)

    def restore(self, lease_id: str, slot: int, *, on_air: bool) -> None:
        """After a restart: a lease whose SIM was on air keeps it (its channel cannot be switched
        away); one still waiting for its SIM queues first."""
        if on_air:
            self._leased[slot] = lease_id
        else:
            self._queue.appendleft((lease_id, slot))

    def observe(self, channel: str, slot: int | None, now: float) -> list[Placement]:
        """The channel's radio reports the SIM it holds (None: none, or one of no known slot)."""
        state = self._channels[channel]
        state.move(ChannelEvent.OBSERVED)
        if state.switching:
            return []  # a switch in progress reports through switch_done
        state.active = slot
        if state.rotation_at == 0.0:
            state.rotation_at = now + self.rotation_period  # first sight: a full cycle before it moves
        return self._serve_queue(now)

    def release(self, slot: int, now: float) -> list[Placement]:
        """The lease on ``slot`` ended: its channel may serve the queue."""
        self._leased.pop(slot, None)
        return self._serve_queue(now)

    def cancel_queued(self, lease_id: str) -> bool:
        for item in list(self._queue):
            if item[0] == lease_id:
                self._queue.remove(item)
                return True
        return False

    def switch_done(self, channel: str, ok: bool, now: float, actual: int | None = None) -> list[Placement]:
        """The driver finished a switch (ICCID verified when ``ok``). After a failed one the channel
        holds ``actual`` (the slot whose SIM it reported, None if none or unknown); a lease waiting
        on it is handed back as ``NO_CHANNEL``."""
        state = self._channels[channel]
        target, state.switching_to = state.switching_to, None
        state.move(ChannelEvent.SWITCH_DONE)
        if ok:
            state.active = target
            return self._serve_queue(now)
        state.active = actual if actual in state.slots else None
        out = []
        if target is not None and target in self._leased:
            out.append(Placement(Outcome.NO_CHANNEL, self._leased.pop(target), target))
        return out + self._serve_queue(now)

    def rotations_due(self, now: float) -> list[Switch]:
        """Idle channels whose cycle is up move on to their next idle slot."""
        out = []
        for channel in self._channels.values():
            if now < channel.rotation_at or not self._free(channel) or len(channel.slots) < 2:
                continue
            target = self._next_idle_slot(channel)
            if target is not None and target != channel.active:
                out.append(self._switch(channel, target, "rotation", now))
            else:
                channel.rotation_at = now + self.rotation_period  # nothing idle to move to: look again later
        return out

    # ---------------------------------------------------------------------------- internals
    def _free(self, channel: _Channel) -> bool:
        """No switch under way, and the SIM on air (if any) carries no lease."""
        return channel.state is ChannelState.HOLDING and (channel.active is None or channel.active not in self._leased)

    def _switch(self, channel: _Channel, slot: int, reason: str, now: float) -> Switch:
        if channel.active is not None and channel.active in self._leased:
            raise SchedulerRuleBroken(f"channel {channel.name}: slot {channel.active} carries lease "
                                      f"{self._leased[channel.active]}; a leased SIM is never switched out")
        channel.move(ChannelEvent.SWITCH)
        switch = Switch(channel.name, channel.active, slot, reason)
        channel.switching_to = slot
        channel.rotation_at = now + self.rotation_period
        for listener in self._listeners:
            listener(switch)
        return switch

    def _next_idle_slot(self, channel: _Channel) -> int | None:
        for step in range(len(channel.slots)):
            index = (channel.next_rotation_index + step) % len(channel.slots)
            slot = channel.slots[index]
            if slot != channel.active and slot not in self._leased:
                channel.next_rotation_index = index + 1
                return slot
        return None

    def _serve_queue(self, now: float) -> list[Placement]:
        out = []
        for lease_id, slot in list(self._queue):
            channel = self._channels[self.channel_of(slot)]
            if self._free(channel) or channel.holding == slot:
                self._queue.remove((lease_id, slot))
                out.append(self.request(lease_id, slot, now))
        return out


def interleaved_reach(channels: list[str], slots: int) -> dict[str, tuple[int, ...]]:
    """The usual bank wiring: channel c reaches slots c, c + n, c + 2n, ... (n channels)."""
    n = len(channels)
    return {name: tuple(range(i, slots, n)) for i, name in enumerate(channels)}
