"""The gateway core: driver parts in, store and lease engine together, decisions out.

Synchronous on purpose: the daemon runs every call on one dedicated thread (the core thread), so
the engine and the database change in one order, and a SQLite commit (an fsync on an SD card)
never stalls the event loop that serves the modems. Each public method is one transaction
(:meth:`GatewayCore.atomic`): the engine's decision, the message and the outbox row commit
together, or the engine and the banks are rolled back and nothing happened. After each, a frozen
:class:`~gateway.core.snapshot.CoreSnapshot` is published for the event loop.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from collections.abc import Callable, Iterator
from typing import Any

import structlog

from drivers.bank import SwitchReport
from drivers.modem import ReceivedPart
from gateway.config import BankConfig
from gateway.core.banks import BankDesk
from gateway.core.intake import Intake
from gateway.core.persistence import LeaseRows, Ledger, decisions_json
from gateway.core.snapshot import CoreSnapshot, bank_views
from gateway.domain.activations import ActivationHistory, UsedServices
from gateway.domain.banks import Banks, SimRow, SwitchOrder
from gateway.domain.inventory import Inventory
from gateway.domain.leases import Decision, LeaseConfig, LeaseEngine, Refusal, Refused
from gateway.domain.messages import IngestStatus, Ingested
from gateway.store import MessageRow, Store, StoreError, retention

log = structlog.get_logger("gateway.core")

Step = Callable[[float], list[Decision]]


class GatewayCore:
    def __init__(self, store: Store, leases: LeaseConfig, *, mono: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, part_timeout: float = 600.0,
                 numbers: dict[str, str] | None = None, banks: tuple[BankConfig, ...] = (),
                 boot_id: str | None = None) -> None:
        self.store, self.config = store, leases
        self._mono, self._wall = mono, wall
        self._part_timeout = part_timeout
        self._boot_id = boot_id  # given when ``mono`` is the system's monotonic clock (same across restarts)
        self.engine = LeaseEngine(leases.policy)
        self.activated = ActivationHistory(lookup=self._stored_activation)  # the engine's, bounded
        self.engine.use_activation_history(self.activated)
        self.used = UsedServices(store.activations)  # the inventory's view of the history
        self.banks = Banks(tuple(bank.layout for bank in banks))
        self.catalog = Inventory(self.engine, self.banks, self.used, numbers)
        self.rows = LeaseRows(mono, wall)
        self.ledger = Ledger(store, self.rows, self.used, wall)
        self.desk = BankDesk(self.banks, self.engine, store, self.catalog.numbers_by_iccid, wall)
        self.intake = Intake(store, self.engine, number_for=self.catalog.number_for,
                             in_bank=lambda number: self.banks.locate(number) is not None,
                             decide=self._decide, mono=mono, wall=wall)
        self.snapshot = CoreSnapshot()  # replaced whole after each transaction; read from any thread

    def _stored_activation(self, number: str, service: str) -> float | None:
        """The store's answer, in engine time, for what the engine's bounded memory dropped."""
        at = self.store.activation_at(number, service)
        return None if at is None else at - self._wall() + self._mono()

    # ---------------------------------------------------------------------- the one transaction
    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction: what runs inside commits to the store together with the engine's and
        the banks' state, or all of it is put back as it was. Then a new snapshot is published."""
        savepoint = self.engine.snapshot(), self.banks.snapshot() if self.banks else None
        try:
            with self.store.transaction():
                yield
        except BaseException:
            engine, banks = savepoint
            self.engine.rollback(engine)
            self.used.forget()
            if banks is not None:
                self.banks.rollback(banks)
            self.publish()
            raise
        self.publish()

    def run_step(self, step: Step) -> list[Decision]:
        """``step(now)`` and what it decides, as one transaction (for other marketplaces' adapters too)."""
        with self.atomic():
            decisions = step(self._mono())
            self._decide(decisions)
        return decisions

    def _decide(self, decisions: list[Decision], *, message: MessageRow | None = None) -> None:
        """Write ``decisions`` and what the banks make of them, inside the current transaction."""
        self.ledger.write(decisions, message=message)
        if self.banks:
            followups = self.desk.followups(decisions, self._mono())
            if followups:
                self._decide(followups)

    def publish(self) -> CoreSnapshot:
        """Replace the published snapshot (one reference: readers see the old one or this one)."""
        self.snapshot = CoreSnapshot(tuple(self.engine.active()), self.engine.next_deadline(),
                                     self.banks.next_rotation() if self.banks else None,
                                     bank_views(self.banks) if self.banks else (), self.store.writes,
                                     self.store.commit_failures)
        return self.snapshot

    # --------------------------------------------------------------------------------- startup
    def start(self) -> list[Decision]:
        """Reload leases and history; resolve, in deadline order, every lease that ended while
        the daemon was down."""
        same_boot = _same_boot(self.store, self._boot_id)
        self.rows.reload(self.store, self.engine, self.config.policy, same_boot=same_boot)
        if self.banks:
            self.desk.restore()
        self.publish()
        try:
            return self.tick()
        except StoreError as exc:  # the timer loop resolves them once the store commits again
            log.error("core.start_tick_failed", error=str(exc), overdue=len(self.engine.active()))
            return []

    def set_lease_config(self, leases: LeaseConfig) -> None:
        """A reloaded policy applies to what comes next; running windows keep their deadlines."""
        self.config = leases
        self.engine.policy = leases.policy

    # ------------------------------------------------------------------------------- inventory
    def bind_sim(self, port: str, iccid: str, msisdn: str | None, online: bool) -> str | None:
        """A modem on ``port`` holds SIM ``iccid``; returns the number it serves (or None)."""
        return self.catalog.bind_sim(port, iccid, msisdn, online)

    def set_operator(self, port: str, operator: str | None) -> None:
        self.catalog.operators[port] = operator

    def inventory(self) -> dict[str, object]:
        """Every number with its state and what can be served at once (see :class:`Inventory`)."""
        return self.catalog.report(self._wall(), self.config.policy.reuse_cooldown)

    # ---------------------------------------------------------------------------------- ingest
    def ingest(self, part: ReceivedPart) -> Ingested:
        """Make one part durable, and route its message if it is now whole. When this returns the
        part is on disk and the driver may delete it from the SIM; when it raises it is not."""
        with self.atomic():
            return self.intake.part(part)

    def ingest_many(self, parts: list[ReceivedPart]) -> list[Ingested]:
        """Group commit: every part in one transaction, one fsync for all of them. If the batch
        fails, each part is tried alone, so one bad part cannot hold the others back."""
        if len(parts) == 1:
            return [self.ingest(parts[0])]
        try:
            with self.atomic():
                return [self.intake.part(part) for part in parts]
        except Exception:
            pass
        return [self._ingest_alone(part) for part in parts]

    def _ingest_alone(self, part: ReceivedPart) -> Ingested:
        try:
            return self.ingest(part)
        except Exception as exc:
            return Ingested(IngestStatus.FAILED, error=f"{type(exc).__name__}: {exc}")

    def flush_stale_parts(self) -> list[Ingested]:
        """Messages whose missing parts never came: routed as incomplete, marked so."""
        out = []
        for key in self.intake.stale_keys(self._part_timeout):
            with self.atomic():
                rows = self.store.parts(key)
                if rows:
                    out.append(self.intake.route(key, rows, rows[0]["total"]))
        return out

    # -------------------------------------------------------------------------------- commands
    def open_lease(self, lease_id: str, number: str, service: str, *, category: str | None = None,
                   wait_window: float | None = None) -> list[Decision]:
        return self.run_step(lambda now: self.open_step(lease_id, number, service, now, category=category,
                                                         wait_window=wait_window))

    def open_step(self, lease_id: str, number: str, service: str, now: float, *, category: str | None = None,
                  wait_window: float | None = None, hold: float | None = None) -> list[Decision]:
        """Open a lease inside the caller's transaction (a bank SIM may need a radio first);
        ``hold``: a hub's held lease, see :meth:`LeaseEngine.open`."""
        banked = self.desk.open(lease_id, number, service, now, category=category, wait_window=wait_window, hold=hold)
        if banked is not None:
            return banked
        return self.engine.open(lease_id, number, service, now, category=category, wait_window=wait_window, hold=hold)

    def open_chosen_step(self, lease_id: str, service: str, now: float, *, number: str | None,
                         country: str | None = None, operator: str | None = None,
                         exclude_prefixes: tuple[str, ...] = (), category: str | None = None,
                         wait_window: float | None = None) -> list[Decision]:
        """Open a lease on ``number``, or on the first free number that fits the criteria."""
        number = number or self.catalog.choose_number(service, now, country=country, operator=operator,
                                                      exclude_prefixes=exclude_prefixes)
        if number is None:
            return [*self.engine.tick(now), Refused(Refusal.NO_NUMBER, lease_id)]
        return self.open_step(lease_id, number, service, now, category=category, wait_window=wait_window)

    def repeat(self, lease_id: str) -> list[Decision]:
        return self.run_step(lambda now: self.engine.repeat(lease_id, now))

    def finish(self, lease_id: str) -> list[Decision]:
        return self.run_step(lambda now: self.engine.finish(lease_id, now))

    def cancel(self, lease_id: str) -> list[Decision]:
        return self.run_step(lambda now: self.engine.cancel(lease_id, now))

    def tick(self) -> list[Decision]:
        """End what is due; nothing due costs no transaction (no fsync on an SD card)."""
        due = self.engine.next_deadline()
        if due is None or due > self._mono():
            return []
        return self.run_step(self.engine.tick)

    def command(self, command_id: str, run: Step) -> dict[str, Any]:
        """A marketplace command, idempotent by ``command_id``: the first answer is stored in the
        same transaction as the decision, and a replay gets that answer again, unexecuted."""
        with self.atomic():
            previous = self.store.command_result(command_id)
            if previous is not None:
                return previous
            decisions = run(self._mono())
            self._decide(decisions)
            result = decisions_json(decisions)
            self.store.save_command_result(command_id, result, self._wall())
        return result

    # ------------------------------------------------------------------------------- SIM banks
    def take_switch_orders(self) -> list[SwitchOrder]:
        """Switches decided by committed transactions, for the switcher to perform."""
        return self.banks.take_orders()

    def rotate(self) -> list[SwitchOrder]:
        """Idle channels whose cycle is up move to their next idle SIM."""
        orders = self.desk.rotate(self._mono())
        self.publish()
        return orders

    def observe_channel(self, port: str, iccid: str) -> list[Decision]:
        """A bank channel's modem reports the SIM it holds, outside any switch of ours."""
        bank = self.banks.bank_of(port)
        if bank is None:
            return []
        return self.run_step(lambda now: self.desk.observed(bank, port, iccid, now))

    def switch_done(self, order: SwitchOrder, report: SwitchReport, msisdn: str | None = None,
                    msisdn_source: str | None = None) -> list[Decision]:
        """The switcher's report: record what the slot holds, then start the window of the lease
        that waited for it, or end that lease FAILED."""
        return self.run_step(lambda now: self.desk.switch_done(order, report, msisdn, msisdn_source, now))

    def save_scanned(self, row: SimRow) -> None:
        with self.atomic():
            self.desk.record_sim(row)

    # ---------------------------------------------------------------------------------- outbox
    def ack(self, seq: int) -> int:
        try:
            with self.store.transaction():
                return len(self.store.ack(seq, self._wall()))
        finally:
            self._note_writes()

    def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]]:
        return [(row[0], row[1], row[4]) for row in self.store.outbox(seq, limit)]

    def purge(self) -> dict[str, int]:
        """Everything past its retention, see :mod:`gateway.store.retention`."""
        try:
            counts = retention.purge(self.store, self.config, self._wall())
        finally:
            self._note_writes()
        if counts["leases"]:  # memory keeps no more than the store
            self.engine.forget_ended(lambda lease: self.store.lease(lease.id) is None)
        if counts["activations"] or counts["activations_dropped"]:
            self.activated.forget_purged(lambda number, service: self.store.activation_at(number, service) is None)
            self.used.forget()
        return counts

    def _note_writes(self) -> None:
        """A write that changed no engine or bank state: only the commit counts move on."""
        self.snapshot = replace(self.snapshot, store_writes=self.store.writes,
                                commit_failures=self.store.commit_failures)


def _same_boot(store: Store, boot_id: str | None) -> bool:
    """Has the machine not rebooted since the store was last used (so the monotonic clock ran on)?
    Records this boot's id otherwise; a store that cannot commit it is logged, not fatal."""
    if boot_id is None:
        return False
    if store.meta("boot_id") == boot_id:
        return True
    try:
        with store.transaction():
            store.set_meta("boot_id", boot_id)
    except StoreError as exc:  # a full disk must not keep the daemon down; noted next start
        log.error("core.boot_id_not_saved", error=str(exc))
    return False
