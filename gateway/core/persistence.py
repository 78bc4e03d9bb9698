"""Decisions to rows: what the lease engine decided, written to the store and the outbox inside
the caller's transaction, and the one mapper between a :class:`Lease` (engine time) and its row
(wall-clock time). Runs on the core thread only.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from gateway.domain.activations import UsedServices
from gateway.domain.leases import (Decision, Deliver, Lease, LeaseEngine, LeaseState, Opened, Policy, Refused,
                                   Transitioned)
from gateway.store import MessageRow, Store, StoredLease
from gateway.uplink import frames


log = structlog.get_logger("gateway.core")


class LeaseRows:
    """The one mapper between a lease in engine time (monotonic while running) and its row in
    wall-clock time, both ways. Each row keeps the wall-minus-monotonic offset it was written
    with, so a restart on the same boot gets its times back exactly whatever the wall clock did."""

    def __init__(self, mono: Callable[[], float], wall: Callable[[], float]) -> None:
        self._mono, self._wall = mono, wall

    def to_wall(self, engine_time: float | None) -> float | None:
        return None if engine_time is None else self._wall() + (engine_time - self._mono())

    def row(self, lease: Lease) -> StoredLease:
        to_wall = self.to_wall
        return StoredLease(lease.id, lease.number, lease.service, lease.category, lease.state,
                           to_wall(lease.opened_at), to_wall(lease.deadline), lease.wait_window, lease.sms_count,
                           to_wall(lease.last_sms_at), to_wall(lease.ended_at), to_wall(lease.not_before),
                           self._wall() - self._mono(), lease.held)

    def lease(self, stored: StoredLease, *, max_remaining: float, same_boot: bool = False) -> Lease:
        """A stored lease in engine time. On the same boot the monotonic clock has run on across
        the restart, so the offset the times were written with gives them back exactly. Otherwise
        the wall clock is all there is: the remaining time is clamped to ``max_remaining``, so a
        wall clock set back while we were down cannot stretch a lease; a deadline already past
        keeps its order (the first tick resolves it)."""
        wall_now, mono_now = self._wall(), self._mono()
        if same_boot and stored.clock_offset is not None:
            offset = -stored.clock_offset
            deadline = stored.deadline + offset
        else:
            offset = mono_now - wall_now
            deadline = mono_now + min(stored.deadline - wall_now,
                                      max(max_remaining, stored.wait_window) if stored.held else max_remaining)

        def to_engine(wall: float | None) -> float | None:
            return None if wall is None else wall + offset

        return Lease(stored.id, stored.number, stored.service, stored.category, stored.state,
                     stored.opened_at + offset, deadline, stored.wait_window, stored.sms_count,
                     to_engine(stored.last_sms_at), to_engine(stored.ended_at), to_engine(stored.not_before),
                     stored.held)


    def reload(self, store: Store, engine: LeaseEngine, policy: Policy, *, same_boot: bool) -> None:
        """After a start: the active leases and the activation history back into ``engine``."""
        bound = max(policy.max_wait_window, policy.finish_after, policy.prepare_timeout)
        for stored in store.leases(active_only=True):
            engine.restore(self.lease(stored, max_remaining=bound, same_boot=same_boot))
        wall, mono = self._wall(), self._mono()
        for number, service, at in store.activations():
            engine.restore_activation(number, service, at - wall + mono)


class Ledger:
    """Writes decisions: each lease change to ``leases``, its audit line, its outbox event; each
    delivered SMS to the outbox; each finished lease with an SMS to the activation history."""

    def __init__(self, store: Store, rows: LeaseRows, used: UsedServices, wall: Callable[[], float]) -> None:
        self.store, self.rows, self.used, self._wall = store, rows, used, wall
        # A held lease's SMS (an SMSHub activation) goes to its hub, not to the simgw.v1 outbox:
        # called inside the transaction that stores it (gateway.smshub.desk queues the push there).
        self.on_held_sms: Callable[[StoredLease, MessageRow], None] | None = None

    def write(self, decisions: list[Decision], *, message: MessageRow | None = None) -> None:
        for decision in decisions:
            if isinstance(decision, Opened):
                self._opened(decision)
            elif isinstance(decision, Transitioned):
                self._transitioned(decision)
            elif isinstance(decision, Deliver) and message is not None:
                self._delivered(decision, message)
            # Quarantine is the message row itself; a refusal changes nothing

    def _opened(self, decision: Opened) -> None:
        stored = self.rows.row(decision.lease)
        self.store.save_lease(stored)
        self.store.audit(stored.id, stored.opened_at, "opened",
                         {"number": stored.number, "service": stored.service, "deadline": stored.deadline,
                          "state": stored.state.value})
        self._enqueue_lease(stored, "opened")

    def _transitioned(self, decision: Transitioned) -> None:
        stored = self.rows.row(decision.lease)
        at = self.rows.to_wall(decision.at)
        if decision.detail == "activation cap":  # the hub never finished it: the safety net
            log.warning("lease.activation_cap", lease=stored.id, sms=stored.sms_count)
        self.store.save_lease(stored)
        if decision.trigger.value != "sms":
            detail = {"trigger": decision.trigger.value}
            if decision.detail:
                detail["reason"] = decision.detail
            self.store.audit(stored.id, at, stored.state.value, detail)
            self._enqueue_lease(stored, decision.trigger.value, reason=decision.detail)
        if stored.state is LeaseState.FINISHED and stored.sms_count > 0 and not stored.held and at is not None:
            self.store.record_activation(stored.number, stored.service, at)
            self.used.record(stored.number, stored.service, at)

    def _delivered(self, decision: Deliver, message: MessageRow) -> None:
        lease = self.rows.row(decision.lease)
        self.store.audit(lease.id, message.received_at, "sms", {"msg_id": message.id, "parts": message.parts})
        if lease.held:
            if self.on_held_sms is not None:
                self.on_held_sms(lease, message)
            return
        # One event per SMS: the lease's new state, count and deadline ride in the sms frame.
        self.store.enqueue("sms", sms_payload(message, lease), message.received_at,
                           lease_id=lease.id, message_id=message.id)

    def _enqueue_lease(self, lease: StoredLease, event: str, *, reason: str | None = None) -> None:
        """A ``lease`` frame's payload: the lease's own state, and the ``event`` that moved it."""
        if lease.held:
            return  # a hub's activation: the simgw.v1 marketplace neither made nor sees it
        payload = frames.lease_payload(
            lease_id=lease.id, state=lease.state.value, event=event, at=self._wall(), number=lease.number,
            service=lease.service, opened_at=lease.opened_at, deadline=lease.deadline, ended_at=lease.ended_at,
            sms_count=lease.sms_count, reason=reason)
        self.store.enqueue("lease", payload, self._wall(), lease_id=lease.id)


def sms_payload(message: MessageRow, lease: StoredLease) -> dict[str, object]:
    return frames.sms_payload(msg_id=message.id, lease_id=lease.id, number=message.number, sender=message.sender,
                              text=message.text, parts=message.parts, complete=message.complete,
                              encoding=message.encoding, network_time=message.scts, received_at=message.received_at,
                              lease=frames.sms_lease(state=lease.state.value, sms_count=lease.sms_count,
                                                     deadline=lease.deadline))


def decisions_json(decisions: list[Decision]) -> dict[str, object]:
    """The outcome of a command for the CLI and the control API: the lease, or the refusal."""
    for decision in reversed(decisions):
        if isinstance(decision, Refused):
            return {"ok": False, "reason": decision.code, "message": decision.reason.sentence,
                    "lease_id": decision.lease_id}
        if isinstance(decision, (Opened, Transitioned)):
            lease = decision.lease
            return {"ok": True, "lease_id": lease.id, "state": lease.state.value, "number": lease.number,
                    "service": lease.service, "sms_count": lease.sms_count}
    return {"ok": True}
