"""SIM banks on the core thread: the lease engine and the bank schedulers kept in step.

Every method runs inside the service's transaction (:meth:`GatewayCore.atomic`): a lease for a
bank SIM asks its scheduler for a radio, a finished switch starts (or fails) the lease that
waited for it, and a lease that ends frees its channel for the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from drivers.bank import SwitchReport
from gateway.domain.banks import LEASABLE, SLOT_FAILURES, Banks, SimRow, SimStatus, SwitchOrder
from gateway.domain.leases import Decision, LeaseEngine, LeaseState, Refusal, Refused, Transitioned
from gateway.domain.scheduler import Outcome, Placement
from gateway.store import Store


class BankDesk:
    def __init__(self, banks: Banks, engine: LeaseEngine, store: Store, numbers_by_iccid: dict[str, str],
                 wall: Callable[[], float]) -> None:
        self.banks, self.engine, self.store = banks, engine, store
        self._numbers_by_iccid = numbers_by_iccid
        self._wall = wall

    def restore(self) -> None:
        """After a restart: offer the leasable SIMs, and tell each scheduler its leased slots."""
        self.banks.load(self.store.sims())
        for row in self.banks.leasable():
            self.engine.set_online(row.msisdn, True)
        for lease in self.engine.active():
            where = self.banks.locate(lease.number)
            if where is not None:
                self.banks.schedulers[where[0]].restore(lease.id, where[1],
                                                        on_air=lease.state is not LeaseState.PREPARING)

    def open(self, lease_id: str, number: str, service: str, now: float, *, category: str | None,
             wait_window: float | None, hold: float | None = None) -> list[Decision] | None:
        """Open a lease on a bank SIM: on air already, it opens WAITING; otherwise PREPARING while
        its SIM is switched in (or waits for a channel); with no channel and a full queue it is
        refused ``no_channel``. None: ``number`` is not in a bank."""
        where = self.banks.locate(number)
        if where is None:
            return None
        decisions: list[Decision] = self.engine.tick(now)
        refusal = self.engine.open_refusal(lease_id, number, service, now, category=category,
                                           wait_window=None if hold is not None else wait_window)
        if refusal is not None:
            return [*decisions, Refused(refusal, lease_id)]
        bank, slot = where
        placement = self.banks.schedulers[bank].request(lease_id, slot, now)
        if placement.outcome is Outcome.NO_CHANNEL:
            return [*decisions, Refused(Refusal.NO_CHANNEL, lease_id)]
        if placement.switch is not None:
            self.banks.order(bank, placement.switch)
        return [*decisions, *self.engine.open(lease_id, number, service, now, category=category, wait_window=wait_window,
                                              preparing=placement.outcome is not Outcome.ON_AIR, hold=hold)]

    def rotate(self, now: float) -> list[SwitchOrder]:
        """Idle channels whose cycle is up move to their next idle SIM."""
        for bank, scheduler in self.banks.schedulers.items():
            for switch in scheduler.rotations_due(now):
                self.banks.order(bank, switch)
        return self.banks.take_orders()

    def observed(self, bank: str, port: str, iccid: str, now: float) -> list[Decision]:
        slot = self.banks.slot_of_iccid(bank, iccid) if iccid else None
        return self._placed(bank, self.banks.schedulers[bank].observe(port, slot, now), now)

    def switch_done(self, order: SwitchOrder, report: SwitchReport, msisdn: str | None, source: str | None,
                    now: float) -> list[Decision]:
        bank, slot = order.bank, order.switch.to_slot
        self.record_sim(self._slot_row(bank, slot, report, msisdn, source))
        scheduler = self.banks.schedulers[bank]
        lease_id = scheduler.lease_on(slot)
        actual = self.banks.slot_of_iccid(bank, report.iccid) if report.iccid and not report.ok else None
        placements = scheduler.switch_done(order.switch.channel, report.ok, now, actual)
        decisions: list[Decision] = self.engine.sim_ready(lease_id, now) if report.ok and lease_id else []
        detail = f"{report.failure.value}: {report.detail}" if report.failure else None
        return decisions + self._placed(bank, placements, now, detail)

    def record_sim(self, row: SimRow) -> None:
        """Keep what a slot holds (inside the caller's transaction) and offer its number or not."""
        old = self.banks.rows.get((row.bank, row.slot))
        self.store.save_sim(row)
        self.banks.rows[(row.bank, row.slot)] = row
        if old is not None and old.msisdn and old.msisdn != row.msisdn:
            self.engine.set_online(old.msisdn, False)
        if row.msisdn:
            self.engine.set_online(row.msisdn, row.status == LEASABLE)

    def _slot_row(self, bank: str, slot: int, report: SwitchReport, msisdn: str | None,
                  source: str | None) -> SimRow:
        old = self.banks.rows.get((bank, slot)) or SimRow(bank, slot, SimStatus.UNKNOWN)
        wall = self._wall()
        if report.ok:
            same_sim = old.iccid == report.iccid
            number = msisdn or (old.msisdn if same_sim else None) or self._numbers_by_iccid.get(report.iccid)
            source = source or (old.msisdn_source if same_sim and old.msisdn else ("config" if number else None))
            return SimRow(bank, slot, LEASABLE, report.iccid, report.imsi, report.operator, number, source, None,
                          old.scan_run, wall)
        if report.failure is not None and report.failure.value in SLOT_FAILURES:
            return replace(old, status=SimStatus(report.failure.value), detail=report.detail, seen_at=wall)
        return old  # the radio failed, not the slot: what we knew of the SIM still holds

    def _placed(self, bank: str, placements: list[Placement], now: float, detail: str | None = None) -> list[Decision]:
        out: list[Decision] = []
        for placement in placements:
            if placement.outcome is Outcome.ON_AIR:
                out += self.engine.sim_ready(placement.lease_id, now)
            elif placement.outcome is Outcome.SWITCH and placement.switch is not None:
                self.banks.order(bank, placement.switch)
            elif placement.outcome is Outcome.NO_CHANNEL:
                out += self.engine.sim_failed(placement.lease_id, now, detail or "no radio could take the SIM")
        return out

    def followups(self, decisions: list[Decision], now: float) -> list[Decision]:
        """What the banks make of committed-to-be decisions: a lease that waited for its SIM got
        it (its wait is sampled for the report); a lease on a bank SIM ended, so its channel may
        now serve a lease waiting for one. Returns the decisions that follow."""
        out: list[Decision] = []
        for decision in decisions:
            if not isinstance(decision, Transitioned):
                continue
            if decision.previous is LeaseState.PREPARING:
                self._note_wait(decision)
            if not decision.lease.state.active:
                out += self._release(decision, now)
        return out

    def _note_wait(self, decision: Transitioned) -> None:
        if decision.lease.state not in (LeaseState.WAITING, LeaseState.RECEIVED):
            return  # it gave up (cancelled, failed): it never got its SIM
        where = self.banks.locate(decision.lease.number)
        if where is not None:
            self.banks.waits[where[0]].append(decision.at - decision.lease.opened_at)

    def _release(self, decision: Transitioned, now: float) -> list[Decision]:
        lease = decision.lease
        where = self.banks.locate(lease.number, leasable_only=False)  # its slot may have failed meanwhile
        if where is None:
            return []
        scheduler = self.banks.schedulers[where[0]]
        scheduler.cancel_queued(lease.id)
        if scheduler.lease_on(where[1]) != lease.id:
            return []
        return self._placed(where[0], scheduler.release(where[1], now), now)
