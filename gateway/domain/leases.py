"""The lease engine: which deal gets which SMS, and when a lease ends. I/O-free, clock injected.

Every rule of the marketplace's published policy lives in this file, the transition table first:

* a lease binds one number to one deal for one service; a number has one active lease at most;
* WAITING: the buyer waits for an SMS for at most the wait window (default and upper bound 20 min);
  a window that ends empty ends the lease EXPIRED (nothing to pay); it may be CANCELLED any time;
* an SMS moves it to RECEIVED: it auto-finishes ``finish_after`` (15 min) after the last SMS; the
  buyer may FINISH, or REPEAT (a new wait window: REPEAT_WAITING), but may no longer cancel;
* a repeat window that ends empty FINISHES the lease (the first SMS was delivered and counts);
* a number activated for a service (a lease finished with an SMS) is not leased for that service
  again, for ever or for the supplier's cool-down; denied services are never leased;
* PREPARING (SIM banks): the SIM is being brought onto a radio. The buyer's window has not started;
  it starts at READY (the SIM registered). A SIM that cannot be brought in, or not within
  ``prepare_timeout``, ends the lease FAILED (nothing to pay);
* a HELD lease (an activation an SMSHub-compatible hub controls) has no wait window and no
  auto-finish: its one deadline is the supplier's ``activation_cap``, SMS do not move it, and it
  ends when the hub RELEASEs it (FINISHED if it had an SMS, CANCELLED if not); the hub's status,
  not the engine, decides the number x service history;
* an SMS sent before the lease opened (``not_before``, with ``held_sms_tolerance`` for clock
  skew) is not the buyer's, even if it is read during the lease (held by the network for a SIM
  off air, or left on the SIM by a lost ``+CMTI``): it goes to quarantine.

Times are engine-clock seconds (monotonic while running: a wall-clock jump from NTP neither ends
every lease nor stretches them); the store converts to and from absolute wall-clock deadlines.
Windows are half-open: an SMS at exactly the deadline is outside it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gateway.domain.activations import ActivationHistory
from gateway.domain.journal import JournaledDict


class LeaseState(enum.Enum):
    PREPARING = "preparing"
    WAITING = "waiting"
    RECEIVED = "received"
    REPEAT_WAITING = "repeat_waiting"
    FINISHED = "finished"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES


ACTIVE_STATES = frozenset({LeaseState.PREPARING, LeaseState.WAITING, LeaseState.RECEIVED, LeaseState.REPEAT_WAITING})


class Trigger(enum.Enum):
    SMS = "sms"
    REPEAT = "repeat"
    FINISH = "finish"
    CANCEL = "cancel"
    DEADLINE = "deadline"
    READY = "ready"  # the lease's SIM is registered on a radio
    SIM_FAILED = "sim_failed"  # the SIM could not be brought onto a radio
    RELEASE = "release"  # the hub ended a held lease (FINISH_ACTIVATION), whatever it had received


# The whole state machine at a glance: (state, trigger) -> next state. Anything absent is refused.
TRANSITIONS: dict[tuple[LeaseState, Trigger], LeaseState] = {
    (LeaseState.PREPARING, Trigger.READY): LeaseState.WAITING,
    (LeaseState.PREPARING, Trigger.SMS): LeaseState.RECEIVED,
    (LeaseState.PREPARING, Trigger.CANCEL): LeaseState.CANCELLED,
    (LeaseState.PREPARING, Trigger.DEADLINE): LeaseState.FAILED,
    (LeaseState.PREPARING, Trigger.SIM_FAILED): LeaseState.FAILED,
    (LeaseState.WAITING, Trigger.SMS): LeaseState.RECEIVED,
    (LeaseState.WAITING, Trigger.CANCEL): LeaseState.CANCELLED,
    (LeaseState.WAITING, Trigger.DEADLINE): LeaseState.EXPIRED,
    (LeaseState.RECEIVED, Trigger.SMS): LeaseState.RECEIVED,
    (LeaseState.RECEIVED, Trigger.REPEAT): LeaseState.REPEAT_WAITING,
    (LeaseState.RECEIVED, Trigger.FINISH): LeaseState.FINISHED,
    (LeaseState.RECEIVED, Trigger.DEADLINE): LeaseState.FINISHED,
    (LeaseState.REPEAT_WAITING, Trigger.SMS): LeaseState.RECEIVED,
    (LeaseState.REPEAT_WAITING, Trigger.FINISH): LeaseState.FINISHED,
    (LeaseState.REPEAT_WAITING, Trigger.DEADLINE): LeaseState.FINISHED,
    (LeaseState.PREPARING, Trigger.RELEASE): LeaseState.CANCELLED,
    (LeaseState.WAITING, Trigger.RELEASE): LeaseState.CANCELLED,
    (LeaseState.RECEIVED, Trigger.RELEASE): LeaseState.FINISHED,
    (LeaseState.REPEAT_WAITING, Trigger.RELEASE): LeaseState.FINISHED,
}


class Refusal(enum.Enum):
    """Machine-readable reasons, each with the sentence a person reads."""

    NUMBER_BUSY = ("number_busy", "the number already has an active lease")
    SERVICE_DENIED = ("service_denied", "the supplier does not lease numbers for this service")
    NUMBER_USED_FOR_SERVICE = ("number_used_for_service", "the number was already activated for this service")
    NUMBER_OFFLINE = ("number_offline", "the number is not online on any modem")
    NO_NUMBER = ("no_number", "no free number matches the criteria")
    NOT_CANCELLABLE = ("not_cancellable", "the lease has received an SMS; finish it instead")
    NOT_FINISHABLE = ("not_finishable", "the lease has received no SMS yet; cancel it instead")
    NOT_REPEATABLE = ("not_repeatable", "repeat needs a received SMS and no repeat already waiting")
    UNKNOWN_LEASE = ("unknown_lease", "no lease with this id")
    LEASE_ENDED = ("lease_ended", "the lease has already ended")
    DUPLICATE_LEASE = ("duplicate_lease", "a lease with this id already exists")
    WINDOW_OUT_OF_POLICY = ("window_out_of_policy", "the wait window is outside the policy bounds")
    NO_CHANNEL = ("no_channel", "every radio that reaches the SIM is busy and the wait queue is full")
    NOT_HELD = ("not_held", "only a hub's held lease is released; finish or cancel this one")
    HELD_BY_HUB = ("held_by_hub", "an SMSHub activation: only the hub's FINISH_ACTIVATION ends it")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def sentence(self) -> str:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class Policy:
    wait_window: float = 20 * 60.0  # default window, seconds
    max_wait_window: float = 20 * 60.0  # the marketplace's upper bound
    min_wait_window: float = 60.0
    finish_after: float = 15 * 60.0  # auto-finish after the last SMS
    prepare_timeout: float = 10 * 60.0  # a SIM bank's switch must have the SIM registered by then
    held_sms_tolerance: float = 30.0  # clock skew allowed when telling held SMS from the lease's own
    reuse_cooldown: float | None = None  # None: a number is never re-leased for a service it activated
    denied_services: frozenset[str] = frozenset({"webmoney"})
    denied_categories: frozenset[str] = frozenset({"banking", "bank", "webmoney"})

    def denies(self, service: str, category: str | None) -> bool:
        return service.strip().lower() in self.denied_services or (
            category is not None and category.strip().lower() in self.denied_categories)


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """The lease policy and how long what leases leave behind is kept; built by the config."""

    policy: Policy = field(default_factory=Policy)
    quarantine_retention: float = 24 * 3600.0
    message_retention: float = 7 * 24 * 3600.0
    claim_window: float = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    number: str
    service: str
    category: str | None
    state: LeaseState
    opened_at: float
    deadline: float
    wait_window: float
    sms_count: int = 0
    last_sms_at: float | None = None
    ended_at: float | None = None
    not_before: float | None = None  # SMS sent before this (engine time) are not this lease's
    held: bool = False  # a hub's activation: deadline = the activation cap, ended by release()


# ------------------------------------------------------------------------------------ decisions
@dataclass(frozen=True, slots=True)
class Opened:
    lease: Lease


@dataclass(frozen=True, slots=True)
class Transitioned:
    """The lease moved to ``lease.state`` because of ``trigger`` at ``at``."""

    lease: Lease
    previous: LeaseState
    trigger: Trigger
    at: float
    detail: str | None = None  # why, where the trigger alone does not say (a failed SIM switch)


@dataclass(frozen=True, slots=True)
class Deliver:
    sms_id: str
    lease: Lease  # the lease after the SMS was counted


@dataclass(frozen=True, slots=True)
class Quarantine:
    sms_id: str
    number: str
    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Refusal
    lease_id: str | None = None

    @property
    def code(self) -> str:
        return self.reason.code


Decision = Opened | Transitioned | Deliver | Quarantine | Refused


@dataclass(slots=True)
class LeaseEngine:
    """Holds the active leases, the last ``max_remembered_ended`` ended ones within the claim
    window (the oldest is forgotten first: a command naming it is then ``unknown_lease``; the
    purge forgets those past the window, :meth:`forget_ended`) and the activation history
    (bounded, see :mod:`gateway.domain.activations`); every method returns decisions."""

    policy: Policy = field(default_factory=Policy)
    _active: dict[str, Lease] = field(default_factory=dict)
    _by_number: dict[str, str] = field(default_factory=dict)
    _ended: JournaledDict[str, Lease] = field(default_factory=JournaledDict)
    _activated: ActivationHistory = field(default_factory=ActivationHistory)
    _online: set[str] = field(default_factory=set)
    max_remembered_ended: int = 10_000

    # --------------------------------------------------------------------------- inventory
    def set_online(self, number: str, online: bool) -> None:
        (self._online.add if online else self._online.discard)(number)

    def is_online(self, number: str) -> bool:
        return number in self._online

    def restore(self, lease: Lease) -> None:
        """Load a lease from the store after a restart (its deadline already in engine time)."""
        if lease.state.active:
            self._active[lease.id] = lease
            self._by_number[lease.number] = lease.id
        else:
            self._remember_ended(lease)

    def restore_activation(self, number: str, service: str, at: float) -> None:
        self._activated.record(number, service, at, cooldown=self.policy.reuse_cooldown)

    def use_activation_history(self, history: ActivationHistory) -> None:
        """Before :meth:`restore_activation`: the daemon's history, which asks the store what it
        no longer holds in memory."""
        self._activated = history

    def snapshot(self) -> tuple:
        """The engine's state for :meth:`rollback` when the store could not persist a decision
        (memory never runs ahead of the disk). Cheap and the same on every day of uptime: the
        active leases (bounded by the numbers) are copied; the ended leases and the activation
        history, which fill up over weeks, are journaled instead (see :mod:`gateway.domain.journal`)."""
        return dict(self._active), dict(self._by_number), self._ended.mark(), self._activated.mark()

    def rollback(self, snapshot: tuple) -> None:
        active, by_number, ended, activated = snapshot
        self._active, self._by_number = dict(active), dict(by_number)
        self._ended.undo(ended)
        self._activated.undo(activated)

    # ------------------------------------------------------------------------------ queries
    def get(self, lease_id: str) -> Lease | None:
        return self._active.get(lease_id) or self._ended.get(lease_id)

    def active(self) -> list[Lease]:
        return list(self._active.values())

    def lease_for(self, number: str) -> Lease | None:
        lease_id = self._by_number.get(number)
        return self._active[lease_id] if lease_id else None

    def used_for(self, number: str, service: str, now: float) -> bool:
        """Was ``number`` activated for ``service`` within the cool-down (or ever, by default)?"""
        activated = self._activated.last(number, service)
        return activated is not None and (self.policy.reuse_cooldown is None or
                                          now - activated < self.policy.reuse_cooldown)

    def next_deadline(self) -> float | None:
        return min((lease.deadline for lease in self._active.values()), default=None)

    # ----------------------------------------------------------------------------- commands
    def open(self, lease_id: str, number: str, service: str, now: float, *, category: str | None = None,
             wait_window: float | None = None, preparing: bool = False, hold: float | None = None) -> list[Decision]:
        """Open a lease; ``preparing`` when its SIM must first be brought onto a radio; ``hold``
        (seconds, the activation cap) opens a held lease, outside the wait-window bounds."""
        decisions: list[Decision] = self.tick(now)
        refusal = self.open_refusal(lease_id, number, service, now, category=category,
                                    wait_window=None if hold is not None else wait_window)
        if refusal is not None:
            return [*decisions, Refused(refusal, lease_id)]
        window = hold if hold is not None else wait_window if wait_window is not None else self.policy.wait_window
        state, deadline = (LeaseState.PREPARING, now + self.policy.prepare_timeout) if preparing \
            else (LeaseState.WAITING, now + window)
        lease = Lease(lease_id, number, service, category, state, now, deadline, window,
                      not_before=now - self.policy.held_sms_tolerance, held=hold is not None)
        self._active[lease_id] = lease
        self._by_number[number] = lease_id
        return [*decisions, Opened(lease)]

    def open_refusal(self, lease_id: str, number: str, service: str, now: float, *, category: str | None = None,
                     wait_window: float | None = None) -> Refusal | None:
        """Why :meth:`open` would refuse, or None; asked first when opening needs a radio."""
        if lease_id in self._active or lease_id in self._ended:
            return Refusal.DUPLICATE_LEASE
        if self.policy.denies(service, category):
            return Refusal.SERVICE_DENIED
        if wait_window is not None and not (self.policy.min_wait_window <= wait_window <= self.policy.max_wait_window):
            return Refusal.WINDOW_OUT_OF_POLICY
        if number not in self._online:
            return Refusal.NUMBER_OFFLINE
        if number in self._by_number:
            return Refusal.NUMBER_BUSY
        if self.used_for(number, service, now):
            return Refusal.NUMBER_USED_FOR_SERVICE
        return None

    def repeat(self, lease_id: str, now: float) -> list[Decision]:
        return self._command(lease_id, Trigger.REPEAT, now, Refusal.NOT_REPEATABLE)

    def finish(self, lease_id: str, now: float) -> list[Decision]:
        return self._command(lease_id, Trigger.FINISH, now, Refusal.NOT_FINISHABLE)

    def cancel(self, lease_id: str, now: float) -> list[Decision]:
        return self._command(lease_id, Trigger.CANCEL, now, Refusal.NOT_CANCELLABLE)

    def release(self, lease_id: str, now: float) -> list[Decision]:
        """The hub ends its held lease, in any active state (FINISH_ACTIVATION)."""
        return self._command(lease_id, Trigger.RELEASE, now, Refusal.NOT_HELD)

    def sim_ready(self, lease_id: str, now: float) -> list[Decision]:
        """The lease's SIM registered: a PREPARING lease starts its wait window now."""
        return self._sim_news(lease_id, Trigger.READY, now)

    def sim_failed(self, lease_id: str, now: float, detail: str) -> list[Decision]:
        """The lease's SIM could not be brought in: a PREPARING lease ends FAILED."""
        return self._sim_news(lease_id, Trigger.SIM_FAILED, now, detail)

    def _sim_news(self, lease_id: str, trigger: Trigger, now: float, detail: str | None = None) -> list[Decision]:
        """News of a lease's SIM matters only while the lease waits for it; otherwise nothing."""
        decisions: list[Decision] = self.tick(now)
        lease = self._active.get(lease_id)
        if lease is None or lease.state is not LeaseState.PREPARING:
            return decisions
        return [*decisions, self._apply(lease, trigger, now, detail)]

    def _command(self, lease_id: str, trigger: Trigger, now: float, refusal: Refusal) -> list[Decision]:
        decisions = self.tick(now)
        lease = self._active.get(lease_id)
        if lease is None:
            reason = Refusal.LEASE_ENDED if lease_id in self._ended else Refusal.UNKNOWN_LEASE
            return [*decisions, Refused(reason, lease_id)]
        if lease.held != (trigger is Trigger.RELEASE):
            return [*decisions, Refused(Refusal.HELD_BY_HUB if lease.held else Refusal.NOT_HELD, lease_id)]
        if (lease.state, trigger) not in TRANSITIONS:
            return [*decisions, Refused(refusal, lease_id)]
        return [*decisions, self._apply(lease, trigger, now)]

    # ---------------------------------------------------------------------------------- SMS
    def sms_arrived(self, sms_id: str, number: str, now: float, *, sent_at: float | None = None) -> list[Decision]:
        """Route one SMS received at ``now`` on ``number``: to its active lease, or to quarantine.
        ``sent_at`` (engine time, from the network's timestamp) tells a held SMS from before the
        lease apart from the lease's own."""
        decisions = self.tick(now)
        lease = self.lease_for(number)
        if lease is None:
            return [*decisions, Quarantine(sms_id, number, "no active lease on the number")]
        if lease.not_before is not None and sent_at is not None and sent_at < lease.not_before:
            return [*decisions, Quarantine(sms_id, number, "sent before the lease opened (held by the network)")]
        transition = self._apply(lease, Trigger.SMS, now)
        assert isinstance(transition, Transitioned)
        return [*decisions, transition, Deliver(sms_id, transition.lease)]

    # -------------------------------------------------------------------------------- time
    def tick(self, now: float) -> list[Decision]:
        """End every lease whose deadline is at or before ``now``, earliest first."""
        due = sorted((lease for lease in self._active.values() if lease.deadline <= now), key=lambda l: l.deadline)
        return [self._apply(lease, Trigger.DEADLINE, lease.deadline, "activation cap" if lease.held else
                            "no radio in time" if lease.state is LeaseState.PREPARING else None) for lease in due]

    # ---------------------------------------------------------------------------- internals
    def _apply(self, lease: Lease, trigger: Trigger, at: float, detail: str | None = None) -> Transitioned:
        target = TRANSITIONS[(lease.state, trigger)]
        updated = replace(lease, state=target)
        if trigger is Trigger.SMS:
            updated = replace(updated, sms_count=lease.sms_count + 1, last_sms_at=at,
                              deadline=lease.deadline if lease.held else at + self.policy.finish_after)
        elif lease.held and trigger is Trigger.READY:
            updated = replace(updated, deadline=lease.opened_at + lease.wait_window)  # the cap, from the opening
        elif trigger in (Trigger.REPEAT, Trigger.READY):
            updated = replace(updated, deadline=at + lease.wait_window)
        if not target.active:
            updated = replace(updated, ended_at=at, deadline=min(lease.deadline, at))
            del self._active[lease.id]
            del self._by_number[lease.number]
            self._remember_ended(updated)
            if target is LeaseState.FINISHED and updated.sms_count > 0 and not lease.held:
                self._activated.record(lease.number, lease.service, at, cooldown=self.policy.reuse_cooldown)
        else:
            self._active[lease.id] = updated
        return Transitioned(updated, lease.state, trigger, at, detail)

    def forget_ended(self, purged: Callable[[Lease], bool]) -> int:
        """Forget ended leases, oldest first, as long as ``purged`` says the store no longer has
        them (it purges their rows at the end of the claim window, in wall time); returns how many."""
        forgotten = 0
        while (oldest := self._ended.oldest()) is not None and purged(oldest[1]):
            self._ended.pop(oldest[0])
            forgotten += 1
        return forgotten

    def _remember_ended(self, lease: Lease) -> None:
        self._ended.set(lease.id, lease)
        while len(self._ended) > self.max_remembered_ended:
            oldest = self._ended.oldest()
            assert oldest is not None
            self._ended.pop(oldest[0])
