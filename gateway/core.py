"""The gateway core: driver parts in, store and lease engine together, decisions out.

Synchronous on purpose: the daemon runs every call on one dedicated thread, so the engine and the
database change in one order, and a SQLite commit (an fsync on an SD card) never stalls the event
loop that serves the modems. Each public method is one transaction: the engine's decision, the
message and the outbox row commit together, or the engine is rolled back and nothing happened.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from drivers.bank import SwitchReport
from drivers.modem import ReceivedPart
from drivers.sms.assembly import AssembledSms, assemble
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu
from gateway.activations import ActivationHistory, UsedServices
from gateway.countries import country_of, country_of_imsi
from gateway.banks import LEASABLE, SLOT_FAILURES, Banks, SwitchOrder
from gateway.capacity import count_by_service, count_radios
from gateway.config import BankConfig, LeaseConfig
from gateway.leases import (Decision, Deliver, Lease, LeaseEngine, LeaseState, Opened, Quarantine, Refusal, Refused,
                            Transitioned)
from gateway.simbank import Outcome, Placement
from gateway import retention
from gateway.uplink import frames
from gateway.store import MessageRow, SimRow, Store, StoredLease, StoreError, engine_lease, message_id

log = structlog.get_logger("gateway.core")
PLAUSIBLE_CLOCK_SKEW = 15 * 60.0  # a network timestamp further from our clock is not trusted for routing


@dataclass(frozen=True, slots=True)
class Ingested:
    """What became of one part: ``pending`` (waiting for its other parts), ``duplicate`` (already
    held), or ``routed`` with the message id and where it went."""

    status: str
    message_id: str | None = None
    lease_id: str | None = None
    quarantined: bool = False
    error: str | None = None  # status "failed": not stored, so not to be deleted from the SIM


@dataclass(frozen=True, slots=True)
class SimBinding:
    port: str
    iccid: str
    number: str | None


class GatewayCore:
    def __init__(
        self,
        store: Store,
        leases: LeaseConfig,
        *,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        part_timeout: float = 600.0,
        numbers: dict[str, str] | None = None,
        banks: tuple[BankConfig, ...] = (),
        boot_id: str | None = None,
    ) -> None:
        self.store = store
        self.config = leases
        self.engine = LeaseEngine(leases.policy)
        self.engine.use_activation_history(ActivationHistory(lookup=self._stored_activation))
        self.used = UsedServices(store.activations)  # the inventory's view of the history
        self._mono = mono
        self._wall = wall
        self._part_timeout = part_timeout
        self._numbers_by_iccid = dict(numbers or {})
        self._sims: dict[str, SimBinding] = {}  # by port
        self._operators: dict[str, str | None] = {}  # by port, from AT+COPS
        self.banks = Banks(banks)
        self._boot_id = boot_id  # given when ``mono`` is the system's monotonic clock (same across restarts)
        self.due_at: float | None = None  # the engine's next deadline, kept for readers on other threads
        # A held lease's SMS (an SMSHub activation) goes to its hub, not to the simgw.v1 outbox:
        # called inside the transaction that stores it (gateway.smshub.desk queues the push there).
        self.on_held_sms: Callable[[StoredLease, MessageRow], None] | None = None

    def _stored_activation(self, number: str, service: str) -> float | None:
        """The store's answer, in engine time, for what the engine's bounded memory dropped."""
        at = self.store.activation_at(number, service)
        return None if at is None else at - self._wall() + self._mono()

    def _snapshot(self) -> tuple:
        return self.engine.snapshot(), self.banks.snapshot() if self.banks else None

    def _rollback(self, snapshot: tuple) -> None:
        engine, banks = snapshot
        self.engine.rollback(engine)
        self.used.forget()
        self._note_due()
        if banks is not None:
            self.banks.rollback(banks)

    # -------------------------------------------------------------------------------- startup
    def start(self) -> list[Decision]:
        """Reload leases and history; resolve, in deadline order, every lease that ended while
        the daemon was down."""
        mono, wall = self._mono(), self._wall()
        policy = self.config.policy
        bound = max(policy.max_wait_window, policy.finish_after, policy.prepare_timeout)
        same_boot = self._boot_id is not None and self.store.meta("boot_id") == self._boot_id
        for stored in self.store.leases(active_only=True):
            self.engine.restore(engine_lease(stored, wall_now=wall, mono_now=mono, max_remaining=bound,
                                             same_boot=same_boot))
        if self._boot_id is not None and not same_boot:
            try:
                with self.store.transaction():
                    self.store.set_meta("boot_id", self._boot_id)
            except StoreError as exc:  # a full disk must not keep the daemon down; noted next start
                log.error("core.boot_id_not_saved", error=str(exc))
        for number, service, at in self.store.activations():
            self.engine.restore_activation(number, service, at - wall + mono)
        if self.banks:
            self.banks.load(self.store.sims())
            for row in self.banks.leasable():
                self.engine.set_online(row.msisdn, True)
            for lease in self.engine.active():
                where = self.banks.locate(lease.number)
                if where is not None:
                    self.banks.schedulers[where[0]].restore(lease.id, where[1],
                                                            on_air=lease.state is not LeaseState.PREPARING)
        self._note_due()
        try:
            return self.tick()
        except StoreError as exc:  # the timer loop resolves them once the store commits again
            log.error("core.start_tick_failed", error=str(exc), overdue=len(self.engine.active()))
            return []

    def set_lease_config(self, leases: LeaseConfig) -> None:
        """A reloaded policy applies to what comes next; running windows keep their deadlines."""
        self.config = leases
        self.engine.policy = leases.policy

    # ------------------------------------------------------------------------------ inventory
    def bind_sim(self, port: str, iccid: str, msisdn: str | None, online: bool) -> str | None:
        """A modem on ``port`` holds SIM ``iccid``; returns the number it serves (or None)."""
        number = msisdn or self._numbers_by_iccid.get(iccid) or None
        previous = self._sims.get(port)
        if previous is not None and previous.number and previous.number != number:
            self.engine.set_online(previous.number, False)
        self._sims[port] = SimBinding(port, iccid, number)
        if number:
            self.engine.set_online(number, online)
        return number

    def number_for(self, iccid: str) -> str | None:
        for binding in self._sims.values():
            if binding.iccid == iccid:
                return binding.number
        return self._numbers_by_iccid.get(iccid) or self.banks.number_for_iccid(iccid)

    # --------------------------------------------------------------------------------- ingest
    def ingest(self, part: ReceivedPart) -> Ingested:
        """Make one part durable, and route its message if it is now whole. When this returns the
        part is on disk and the driver may delete it from the SIM; when it raises it is not."""
        snapshot = self._snapshot()
        try:
            with self.store.transaction():
                return self._ingest(part)
        except BaseException:
            self._rollback(snapshot)
            raise

    def ingest_many(self, parts: list[ReceivedPart]) -> list[Ingested]:
        """Group commit: every part in one transaction, one fsync for all of them. If the batch
        fails, each part is tried alone, so one bad part cannot hold the others back."""
        if len(parts) == 1:
            return [self.ingest(parts[0])]
        snapshot = self._snapshot()
        try:
            with self.store.transaction():
                return [self._ingest(part) for part in parts]
        except Exception:
            self._rollback(snapshot)
        return [self._ingest_alone(part) for part in parts]

    def _ingest_alone(self, part: ReceivedPart) -> Ingested:
        try:
            return self.ingest(part)
        except Exception as exc:
            return Ingested("failed", error=f"{type(exc).__name__}: {exc}")

    def _ingest(self, part: ReceivedPart) -> Ingested:
        iccid = part.identity.iccid or f"port:{part.port}"
        sms = part.sms
        now_wall = self._wall()
        if not isinstance(sms, SmsDeliver):
            return self._ingest_unroutable(part, iccid, now_wall)
        concat = sms.concat
        if concat is None or concat.total <= 1:
            key = f"{iccid}|{hashlib.sha256(part.pdu_hex.encode()).hexdigest()[:16]}"
            number, total = 1, 1
        else:
            key = f"{iccid}|{sms.sender}|{concat.ref_bits}:{concat.ref}|{concat.total}"
            number, total = concat.part, concat.total
        outcome = self.store.insert_part(key, number, total, iccid, part.port, part.pdu_hex, now_wall)
        if outcome == "duplicate":
            return Ingested("duplicate")
        if outcome == "conflict":
            # A new message reuses the reference of one still incomplete: the old one will not
            # complete now; route what it has, marked incomplete, and start the new one.
            waiting = self.store.parts(key)
            self._route(key, waiting, waiting[0]["total"])
            self.store.insert_part(key, number, total, iccid, part.port, part.pdu_hex, now_wall)
        rows = self.store.parts(key)
        if len(rows) < total:
            return Ingested("pending")
        return self._route(key, rows, total, part.identity.msisdn or None, part)

    def _ingest_unroutable(self, part: ReceivedPart, iccid: str, now_wall: float) -> Ingested:
        """A PDU that did not decode, or a status report: kept on the Pi, never forwarded."""
        msg_id = "raw-" + hashlib.sha256(f"{iccid}|{part.pdu_hex}".encode()).hexdigest()[:20]
        if self.store.has_message(msg_id):
            return Ingested("duplicate", msg_id)
        kind = "undecodable" if part.sms is None else "status-report"
        row = MessageRow(msg_id, iccid, self.number_for(iccid), part.port, None, None, kind, 1, False, None,
                         now_wall, None, True, None)
        self.store.insert_message(row, [part.pdu_hex])
        return Ingested("routed", msg_id, None, True)

    def _route(self, key: str, rows: list, total: int, msisdn: str | None = None,
               known: ReceivedPart | None = None) -> Ingested:
        parts = []
        for row in rows:
            if known is not None and row["pdu"] == known.pdu_hex:
                decoded = known.sms  # the driver decoded this one already
            else:
                try:
                    decoded = decode_pdu(row["pdu"])
                except PduError:
                    continue  # cannot happen for rows we decoded on the way in; kept defensive
            if isinstance(decoded, SmsDeliver):
                parts.append(decoded)
        first = rows[0]
        message = assemble(first["port"], parts, total)
        result = self._store_message(first["iccid"], first["port"], message, msisdn)
        self.store.mark_parts_routed(key, result.message_id or "")
        return result

    def _store_message(self, iccid: str, port: str, message: AssembledSms, msisdn: str | None) -> Ingested:
        scts = message.timestamp.isoformat()
        msg_id = message_id(iccid, message.sender, scts, message.concat_ref, message.text)
        if self.store.has_message(msg_id):
            return Ingested("duplicate", msg_id)
        # The number comes with the part (the modem read it from the SIM or the config gave it), so
        # routing never depends on whether the modem's state change has been seen yet.
        number = msisdn or self.number_for(iccid)
        now = self._mono()
        if number is None:
            decisions: list[Decision] = [*self.engine.tick(now), Quarantine(msg_id, "", "the SIM's number is unknown")]
        else:
            decisions = self.engine.sms_arrived(msg_id, number, now, sent_at=self._sent_at(message, number, now))
        deliver = next((d for d in decisions if isinstance(d, Deliver)), None)
        wall = self._wall()
        row = MessageRow(msg_id, iccid, number, port, message.sender, message.text, message.encoding.value,
                         message.parts, message.complete, scts, wall, deliver.lease.id if deliver else None,
                         deliver is None, None)
        self.store.insert_message(row, list(message.pdus))
        self._persist(decisions, message=row)
        return Ingested("routed", msg_id, row.lease_id, row.quarantined)

    def _sent_at(self, message: AssembledSms, number: str, now: float) -> float | None:
        """When the network says the SMS was sent, in engine time, for telling an SMS that reached
        the SIM before a lease opened (read late: a lost +CMTI, a held SMS) from the lease's own.
        Used only where the network's clock can be trusted: within PLAUSIBLE_CLOCK_SKEW of ours;
        for bank SIMs always, since SMS held for days are exactly what it must keep from a buyer.
        The timestamp has whole seconds, so the SMS left up to a second later: that benefit of
        the doubt goes to the lease."""
        sent_wall = message.timestamp.timestamp() + 1.0
        wall = self._wall()
        if abs(wall - sent_wall) > PLAUSIBLE_CLOCK_SKEW and self.banks.locate(number) is None:
            return None
        return sent_wall - wall + now

    def flush_stale_parts(self) -> list[Ingested]:
        """Messages whose missing parts never came: routed as incomplete, marked so."""
        out = []
        for key in self.store.stale_part_keys(self._wall() - self._part_timeout):
            snapshot = self._snapshot()
            try:
                with self.store.transaction():
                    rows = self.store.parts(key)
                    if rows:
                        out.append(self._route(key, rows, rows[0]["total"]))
            except BaseException:
                self._rollback(snapshot)
                raise
        return out

    # ------------------------------------------------------------------------------- commands
    def open_lease(self, lease_id: str, number: str, service: str, *, category: str | None = None,
                   wait_window: float | None = None) -> list[Decision]:
        return self._transact(lambda now: self.open_step(lease_id, number, service, now, category=category,
                                                         wait_window=wait_window))

    def open_step(self, lease_id: str, number: str, service: str, now: float, *, category: str | None = None,
                  wait_window: float | None = None, hold: float | None = None) -> list[Decision]:
        """Open a lease inside the caller's transaction. A number in a SIM bank needs a radio: on
        air already, it opens WAITING; otherwise PREPARING while its SIM is switched in (or
        waits for a channel); with no channel and a full queue it is refused ``no_channel``."""
        where = self.banks.locate(number)
        if where is None:
            return self.engine.open(lease_id, number, service, now, category=category, wait_window=wait_window,
                                    hold=hold)
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

    # ----------------------------------------------------------------------------- SIM banks
    def take_switch_orders(self) -> list[SwitchOrder]:
        """Switches decided by committed transactions, for the switcher to perform."""
        return self.banks.take_orders()

    def rotate(self) -> list[SwitchOrder]:
        """Idle channels whose cycle is up move to their next idle SIM."""
        now = self._mono()
        for bank, scheduler in self.banks.schedulers.items():
            for switch in scheduler.rotations_due(now):
                self.banks.order(bank, switch)
        return self.banks.take_orders()

    def observe_channel(self, port: str, iccid: str) -> list[Decision]:
        """A bank channel's modem reports the SIM it holds, outside any switch of ours."""
        bank = self.banks.bank_of(port)
        if bank is None:
            return []
        slot = self.banks.slot_of_iccid(bank, iccid) if iccid else None

        def step(now: float) -> list[Decision]:
            return self._placed(bank, self.banks.schedulers[bank].observe(port, slot, now), now)

        return self._transact(step)

    def switch_done(self, order: SwitchOrder, report: SwitchReport, msisdn: str | None = None,
                    msisdn_source: str | None = None) -> list[Decision]:
        """The switcher's report: record what the slot holds, then start the window of the lease
        that waited for it, or end that lease FAILED."""
        bank, slot = order.bank, order.switch.to_slot

        def step(now: float) -> list[Decision]:
            self.record_sim(self._slot_row(bank, slot, report, msisdn, msisdn_source))
            scheduler = self.banks.schedulers[bank]
            lease_id = scheduler.lease_on(slot)
            actual = self.banks.slot_of_iccid(bank, report.iccid) if report.iccid and not report.ok else None
            placements = scheduler.switch_done(order.switch.channel, report.ok, now, actual)
            decisions: list[Decision] = self.engine.sim_ready(lease_id, now) if report.ok and lease_id else []
            detail = f"{report.failure.value}: {report.detail}" if report.failure else None
            return decisions + self._placed(bank, placements, now, detail)

        return self._transact(step)

    def record_sim(self, row: SimRow) -> None:
        """Keep what a slot holds (inside the caller's transaction) and offer its number or not."""
        old = self.banks.rows.get((row.bank, row.slot))
        self.store.save_sim(row)
        self.banks.rows[(row.bank, row.slot)] = row
        if old is not None and old.msisdn and old.msisdn != row.msisdn:
            self.engine.set_online(old.msisdn, False)
        if row.msisdn:
            self.engine.set_online(row.msisdn, row.status == LEASABLE)

    def save_scanned(self, row: SimRow) -> None:
        with self.store.transaction():
            self.record_sim(row)

    def _slot_row(self, bank: str, slot: int, report: SwitchReport, msisdn: str | None,
                  source: str | None) -> SimRow:
        old = self.banks.rows.get((bank, slot)) or SimRow(bank, slot, "unknown")
        wall = self._wall()
        if report.ok:
            same_sim = old.iccid == report.iccid
            number = msisdn or (old.msisdn if same_sim else None) or self._numbers_by_iccid.get(report.iccid)
            source = source or (old.msisdn_source if same_sim and old.msisdn else ("config" if number else None))
            return SimRow(bank, slot, LEASABLE, report.iccid, report.imsi, report.operator, number, source, None,
                          old.scan_run, wall)
        if report.failure is not None and report.failure.value in SLOT_FAILURES:
            return replace(old, status=report.failure.value, detail=report.detail, seen_at=wall)
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

    def _note_wait(self, decision: Transitioned) -> None:
        """A lease that waited for its SIM got it (or gave up): how long, for the bank's report."""
        if decision.lease.state not in (LeaseState.WAITING, LeaseState.RECEIVED):
            return  # it gave up (cancelled, failed): it never got its SIM
        where = self.banks.locate(decision.lease.number)
        if where is not None:
            self.banks.waits[where[0]].append(decision.at - decision.lease.opened_at)

    def _bank_followups(self, decisions: list[Decision]) -> list[Decision]:
        """A lease on a bank SIM ended: its channel may now serve a lease waiting for one."""
        out: list[Decision] = []
        for decision in decisions:
            if not isinstance(decision, Transitioned) or decision.lease.state.active:
                continue
            lease = decision.lease
            where = self.banks.locate(lease.number, leasable_only=False)  # its slot may have failed meanwhile
            if where is None:
                continue
            scheduler = self.banks.schedulers[where[0]]
            scheduler.cancel_queued(lease.id)
            if scheduler.lease_on(where[1]) == lease.id:
                now = self._mono()
                out += self._placed(where[0], scheduler.release(where[1], now), now)
        return out

    def repeat(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.repeat(lease_id, now))

    def finish(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.finish(lease_id, now))

    def cancel(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.cancel(lease_id, now))

    def run_step(self, step: Callable[[float], list[Decision]]) -> list[Decision]:
        """``step(now)`` as one transaction: for another marketplace's adapter (gateway.smshub)."""
        return self._transact(step)

    def tick(self) -> list[Decision]:
        """End what is due; nothing due costs no transaction (no fsync on an SD card)."""
        due = self.engine.next_deadline()
        if due is None or due > self._mono():
            return []
        return self._transact(self.engine.tick)

    def command(self, command_id: str, run: Callable[[float], list[Decision]]) -> dict[str, object]:
        """A marketplace command, idempotent by ``command_id``: the first answer is stored in the
        same transaction as the decision, and a replay gets that answer again, unexecuted."""
        snapshot = self._snapshot()
        try:
            with self.store.transaction():
                previous = self.store.command_result(command_id)
                if previous is not None:
                    return previous
                decisions = run(self._mono())
                self._persist(decisions)
                result = decisions_json(decisions)
                self.store.save_command_result(command_id, result, self._wall())
        except BaseException:
            self._rollback(snapshot)
            raise
        return result

    def choose_number(self, service: str, *, country: str | None, operator: str | None,
                      exclude_prefixes: tuple[str, ...] = ()) -> str | None:
        """A free, online number that was never activated for ``service`` and fits the criteria.
        Numbers on a radio now come before bank SIMs that would need a switch."""
        candidates = [(b.number, self._operators.get(b.port)) for b in sorted(self._sims.values(), key=lambda b: b.port)
                      if b.number and self.banks.bank_of(b.port) is None]
        banked = sorted(self.banks.leasable(), key=lambda r: (not self.banks.on_air(r.bank, r.slot), r.bank, r.slot))
        candidates += [(row.msisdn, row.operator) for row in banked]
        for number, number_operator in candidates:
            if not number or not self.engine.is_online(number) or self.engine.lease_for(number) is not None:
                continue
            if any(number.lstrip("+").startswith(p.lstrip("+")) for p in exclude_prefixes):
                continue
            if country and country_of(number) != country.upper():
                continue
            if operator and (number_operator or "").lower() != operator.lower():
                continue
            if self.engine.used_for(number, service, self._mono()):
                continue
            return number
        return None

    def set_operator(self, port: str, operator: str | None) -> None:
        self._operators[port] = operator

    def ack(self, seq: int) -> int:
        with self.store.transaction():
            return len(self.store.ack(seq, self._wall()))

    def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]]:
        return [(row[0], row[1], row[4]) for row in self.store.outbox(seq, limit)]

    def inventory(self) -> dict[str, object]:
        """Every number with its state, and what can be served *at once*: per country/operator
        (and per service already used on some number) the count of radios that could take a
        lease for it now. A radio counts once per key however many idle SIMs it reaches, so no
        count ever exceeds the radios; a radio whose SIM is leased, or that a lease waits for,
        counts for nothing."""
        numbers, radios = self.radio_candidates()
        wall, cooldown = self._wall(), self.config.policy.reuse_cooldown
        by_service = count_by_service(radios, self.used.services(), lambda number: {  # in reuse cool-down
            s for s, at in self.used.of(number).items() if cooldown is None or wall - at < cooldown})
        return {"full": True, "numbers": numbers, "capacity": count_radios(radios), "capacity_by_service": by_service,
                "radios": len(radios)}

    def radio_candidates(self) -> tuple[list[dict[str, object]], list[list[tuple[str, str]]]]:
        """Every number with its state, and per radio the ``("CC/operator", number)`` of each SIM
        it could serve a lease on now (its own SIM, or an idle bank SIM behind it)."""
        numbers: list[dict[str, object]] = []
        radios: list[list[tuple[str, str]]] = []  # per radio: (key, number) of the SIMs it could serve now

        def entry(number_id: str, number: str, operator: str | None, state: str, imsi: str | None = None) -> None:
            numbers.append({"number_id": number_id, "msisdn": number, "country": country_of(number) or
                            country_of_imsi(imsi), "operator": operator, "state": state,
                            "services_used": sorted(self.used.of(number))})

        def key(number: str, operator: str | None, imsi: str | None = None) -> str:
            return f"{country_of(number) or country_of_imsi(imsi) or '?'}/{operator or '?'}"

        for binding in sorted(self._sims.values(), key=lambda b: b.port):
            if not binding.number or self.banks.bank_of(binding.port) is not None:
                continue
            online, busy = self.engine.is_online(binding.number), self.engine.lease_for(binding.number) is not None
            operator = self._operators.get(binding.port)
            entry(binding.iccid, binding.number, operator, "busy" if busy else ("online" if online else "offline"))
            radios.append([(key(binding.number, operator), binding.number)] if online and not busy else [])
        for bank, scheduler in self.banks.schedulers.items():
            config = self.banks.configs[bank]
            for reach in config.reach().values():
                spoken_for = any(scheduler.lease_on(slot) for slot in reach) or \
                    any(slot in reach for _, slot in scheduler.queued)
                free: list[tuple[str, str]] = []
                for slot in reach:
                    row = self.banks.rows.get((bank, slot))
                    if row is None or not row.msisdn:
                        continue
                    busy = self.engine.lease_for(row.msisdn) is not None
                    leasable = row.status == LEASABLE and self.engine.is_online(row.msisdn)
                    on_air = self.banks.on_air(bank, slot)
                    entry(row.iccid or f"{bank}:{slot}", row.msisdn, row.operator,
                          "busy" if busy else ("offline" if not leasable else ("online" if on_air else "standby")),
                          row.imsi)
                    if leasable and not busy and not spoken_for:
                        free.append((key(row.msisdn, row.operator, row.imsi), row.msisdn))
                radios.append(free)
        return numbers, radios

    def _note_due(self) -> None:
        self.due_at = self.engine.next_deadline()

    def purge(self) -> dict[str, int]:
        """Everything past its retention, see :mod:`gateway.retention`."""
        return retention.purge(self.store, self.config, self._wall())

    def _transact(self, step: Callable[[float], list[Decision]]) -> list[Decision]:
        snapshot = self._snapshot()
        try:
            with self.store.transaction():
                decisions = step(self._mono())
                self._persist(decisions)
        except BaseException:
            self._rollback(snapshot)
            raise
        return decisions

    # ------------------------------------------------------------------------------- persisting
    def _to_wall(self, engine_time: float | None) -> float | None:
        return None if engine_time is None else self._wall() + (engine_time - self._mono())

    def _stored(self, lease: Lease) -> StoredLease:
        return StoredLease(lease.id, lease.number, lease.service, lease.category, lease.state,
                           self._to_wall(lease.opened_at), self._to_wall(lease.deadline), lease.wait_window,
                           lease.sms_count, self._to_wall(lease.last_sms_at), self._to_wall(lease.ended_at),
                           self._to_wall(lease.not_before), self._wall() - self._mono(), lease.held)

    def _persist(self, decisions: list[Decision], *, message: MessageRow | None = None) -> None:
        for decision in decisions:
            if isinstance(decision, Opened):
                stored = self._stored(decision.lease)
                self.store.save_lease(stored)
                self.store.audit(stored.id, stored.opened_at, "opened",
                                 {"number": stored.number, "service": stored.service, "deadline": stored.deadline,
                                  "state": stored.state.value})
                self._enqueue_lease(stored, "opened")
            elif isinstance(decision, Transitioned):
                if decision.previous is LeaseState.PREPARING and self.banks:
                    self._note_wait(decision)
                stored = self._stored(decision.lease)
                at = self._to_wall(decision.at)
                if decision.detail == "activation cap":  # the hub never finished it: the safety net
                    log.warning("lease.activation_cap", lease=stored.id, sms=stored.sms_count)
                self.store.save_lease(stored)
                if decision.trigger.value != "sms":
                    detail = {"trigger": decision.trigger.value}
                    if decision.detail:
                        detail["reason"] = decision.detail
                    self.store.audit(stored.id, at, stored.state.value, detail)
                    self._enqueue_lease(stored, decision.trigger.value, reason=decision.detail)
                if stored.state is LeaseState.FINISHED and stored.sms_count > 0 and not stored.held:
                    self.store.record_activation(stored.number, stored.service, at)
                    self.used.record(stored.number, stored.service, at)
            elif isinstance(decision, Deliver) and message is not None:
                lease = self._stored(decision.lease)
                self.store.audit(lease.id, message.received_at, "sms", {"msg_id": message.id, "parts": message.parts})
                if lease.held:
                    if self.on_held_sms is not None:
                        self.on_held_sms(lease, message)
                    continue
                self.store.enqueue("sms", _sms_payload(message, lease.id), message.received_at,
                                   lease_id=lease.id, message_id=message.id)
                self._enqueue_lease(lease, "sms")
            elif isinstance(decision, (Quarantine, Refused)):
                pass  # quarantine is the message row itself; a refusal changes nothing
        if self.banks:
            followups = self._bank_followups(decisions)
            if followups:
                self._persist(followups)
        self._note_due()

    def _enqueue_lease(self, lease: StoredLease, event: str, *, reason: str | None = None) -> None:
        """A ``lease`` frame's payload: the lease's own state, and the ``event`` that moved it."""
        if lease.held:
            return  # a hub's activation: the simgw.v1 marketplace neither made nor sees it
        payload = frames.lease_payload(
            lease_id=lease.id, state=lease.state.value, event=event, at=self._wall(), number=lease.number,
            service=lease.service, opened_at=lease.opened_at, deadline=lease.deadline, ended_at=lease.ended_at,
            sms_count=lease.sms_count, reason=reason)
        self.store.enqueue("lease", payload, self._wall(), lease_id=lease.id)




def _sms_payload(message: MessageRow, lease_id: str) -> dict[str, object]:
    return frames.sms_payload(msg_id=message.id, lease_id=lease_id, number=message.number, sender=message.sender,
                              text=message.text, parts=message.parts, complete=message.complete,
                              encoding=message.encoding, network_time=message.scts, received_at=message.received_at)


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

