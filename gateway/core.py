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
from dataclasses import dataclass

import structlog

from drivers.modem import ReceivedPart
from drivers.sms.assembly import AssembledSms, assemble
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu
from gateway.config import LeaseConfig
from gateway.leases import Decision, Deliver, Lease, LeaseEngine, LeaseState, Opened, Quarantine, Refused, Transitioned
from gateway.store import MessageRow, Store, StoredLease, engine_lease, message_id

log = structlog.get_logger("gateway.core")


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
    ) -> None:
        self.store = store
        self.config = leases
        self.engine = LeaseEngine(leases.policy)
        self._mono = mono
        self._wall = wall
        self._part_timeout = part_timeout
        self._numbers_by_iccid = dict(numbers or {})
        self._sims: dict[str, SimBinding] = {}  # by port
        self._operators: dict[str, str | None] = {}  # by port, from AT+COPS

    # -------------------------------------------------------------------------------- startup
    def start(self) -> list[Decision]:
        """Reload leases and history; resolve, in deadline order, every lease that ended while
        the daemon was down."""
        mono, wall = self._mono(), self._wall()
        bound = max(self.config.policy.max_wait_window, self.config.policy.finish_after)
        for stored in self.store.leases(active_only=True):
            self.engine.restore(engine_lease(stored, wall_now=wall, mono_now=mono, max_remaining=bound))
        for number, service, at in self.store.activations():
            self.engine.restore_activation(number, service, at - wall + mono)
        return self.tick()

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
        return self._numbers_by_iccid.get(iccid)

    # --------------------------------------------------------------------------------- ingest
    def ingest(self, part: ReceivedPart) -> Ingested:
        """Make one part durable, and route its message if it is now whole. When this returns the
        part is on disk and the driver may delete it from the SIM; when it raises it is not."""
        snapshot = self.engine.snapshot()
        try:
            with self.store.transaction():
                return self._ingest(part)
        except BaseException:
            self.engine.rollback(snapshot)
            raise

    def ingest_many(self, parts: list[ReceivedPart]) -> list[Ingested]:
        """Group commit: every part in one transaction, one fsync for all of them. If the batch
        fails, each part is tried alone, so one bad part cannot hold the others back."""
        if len(parts) == 1:
            return [self.ingest(parts[0])]
        snapshot = self.engine.snapshot()
        try:
            with self.store.transaction():
                return [self._ingest(part) for part in parts]
        except Exception:
            self.engine.rollback(snapshot)
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
        return self._route(key, rows, total, part.identity.msisdn or None)

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

    def _route(self, key: str, rows: list, total: int, msisdn: str | None = None) -> Ingested:
        parts = []
        for row in rows:
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
            decisions = self.engine.sms_arrived(msg_id, number, now)
        deliver = next((d for d in decisions if isinstance(d, Deliver)), None)
        wall = self._wall()
        row = MessageRow(msg_id, iccid, number, port, message.sender, message.text, message.encoding.value,
                         message.parts, message.complete, scts, wall, deliver.lease.id if deliver else None,
                         deliver is None, None)
        self.store.insert_message(row, list(message.pdus))
        self._persist(decisions, message=row)
        return Ingested("routed", msg_id, row.lease_id, row.quarantined)

    def flush_stale_parts(self) -> list[Ingested]:
        """Messages whose missing parts never came: routed as incomplete, marked so."""
        out = []
        for key in self.store.stale_part_keys(self._wall() - self._part_timeout):
            snapshot = self.engine.snapshot()
            try:
                with self.store.transaction():
                    rows = self.store.parts(key)
                    if rows:
                        out.append(self._route(key, rows, rows[0]["total"]))
            except BaseException:
                self.engine.rollback(snapshot)
                raise
        return out

    # ------------------------------------------------------------------------------- commands
    def open_lease(self, lease_id: str, number: str, service: str, *, category: str | None = None,
                   wait_window: float | None = None) -> list[Decision]:
        return self._transact(lambda now: self.engine.open(lease_id, number, service, now, category=category,
                                                           wait_window=wait_window))

    def repeat(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.repeat(lease_id, now))

    def finish(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.finish(lease_id, now))

    def cancel(self, lease_id: str) -> list[Decision]:
        return self._transact(lambda now: self.engine.cancel(lease_id, now))

    def tick(self) -> list[Decision]:
        return self._transact(self.engine.tick)

    def command(self, command_id: str, run: Callable[[float], list[Decision]]) -> dict[str, object]:
        """A marketplace command, idempotent by ``command_id``: the first answer is stored in the
        same transaction as the decision, and a replay gets that answer again, unexecuted."""
        snapshot = self.engine.snapshot()
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
            self.engine.rollback(snapshot)
            raise
        return result

    def choose_number(self, service: str, *, country: str | None, operator: str | None,
                      exclude_prefixes: tuple[str, ...] = ()) -> str | None:
        """A free, online number that was never activated for ``service`` and fits the criteria."""
        for binding in sorted(self._sims.values(), key=lambda b: b.port):
            number = binding.number
            if not number or not self.engine.is_online(number) or self.engine.lease_for(number) is not None:
                continue
            if any(number.lstrip("+").startswith(p.lstrip("+")) for p in exclude_prefixes):
                continue
            if country and country_of(number) != country.upper():
                continue
            if operator and (self._operators.get(binding.port) or "").lower() != operator.lower():
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
        numbers = []
        capacity: dict[str, int] = {}
        used = {}
        for number, service, _ in self.store.activations():
            used.setdefault(number, []).append(service)
        for binding in sorted(self._sims.values(), key=lambda b: b.port):
            if not binding.number:
                continue
            online = self.engine.is_online(binding.number)
            busy = self.engine.lease_for(binding.number) is not None
            country, operator = country_of(binding.number), self._operators.get(binding.port)
            numbers.append({"number_id": binding.iccid, "msisdn": binding.number, "country": country,
                            "operator": operator, "state": "busy" if busy else ("online" if online else "offline"),
                            "services_used": sorted(used.get(binding.number, []))})
            if online:
                key = f"{country or '?'}/{operator or '?'}"
                capacity[key] = capacity.get(key, 0) + 1
        return {"full": True, "numbers": numbers, "capacity": capacity}

    def next_deadline(self) -> float | None:
        return self.engine.next_deadline()

    def purge(self) -> dict[str, int]:
        cfg = self.config
        return self.store.purge(self._wall(), quarantine_retention=cfg.quarantine_retention,
                                message_retention=cfg.message_retention, claim_window=cfg.claim_window)

    def _transact(self, step: Callable[[float], list[Decision]]) -> list[Decision]:
        snapshot = self.engine.snapshot()
        try:
            with self.store.transaction():
                decisions = step(self._mono())
                self._persist(decisions)
        except BaseException:
            self.engine.rollback(snapshot)
            raise
        return decisions

    # ------------------------------------------------------------------------------- persisting
    def _to_wall(self, engine_time: float | None) -> float | None:
        return None if engine_time is None else self._wall() + (engine_time - self._mono())

    def _stored(self, lease: Lease) -> StoredLease:
        return StoredLease(lease.id, lease.number, lease.service, lease.category, lease.state,
                           self._to_wall(lease.opened_at), self._to_wall(lease.deadline), lease.wait_window,
                           lease.sms_count, self._to_wall(lease.last_sms_at), self._to_wall(lease.ended_at))

    def _persist(self, decisions: list[Decision], *, message: MessageRow | None = None) -> None:
        for decision in decisions:
            if isinstance(decision, Opened):
                stored = self._stored(decision.lease)
                self.store.save_lease(stored)
                self.store.audit(stored.id, stored.opened_at, "opened",
                                 {"number": stored.number, "service": stored.service, "deadline": stored.deadline})
                self._enqueue_lease(stored, "opened")
            elif isinstance(decision, Transitioned):
                stored = self._stored(decision.lease)
                at = self._to_wall(decision.at)
                self.store.save_lease(stored)
                if decision.trigger.value != "sms":
                    self.store.audit(stored.id, at, stored.state.value, {"trigger": decision.trigger.value})
                    self._enqueue_lease(stored, stored.state.value)
                if stored.state is LeaseState.FINISHED and stored.sms_count > 0:
                    self.store.record_activation(stored.number, stored.service, at)
            elif isinstance(decision, Deliver) and message is not None:
                lease = self._stored(decision.lease)
                self.store.audit(lease.id, message.received_at, "sms", {"msg_id": message.id, "parts": message.parts})
                self.store.enqueue("sms", _sms_payload(message, lease.id), message.received_at,
                                   lease_id=lease.id, message_id=message.id)
                self._enqueue_lease(lease, "delivered")
            elif isinstance(decision, (Quarantine, Refused)):
                pass  # quarantine is the message row itself; a refusal changes nothing

    def _enqueue_lease(self, lease: StoredLease, state: str) -> None:
        self.store.enqueue("lease", {"lease_id": lease.id, "state": state, "at": self._wall(), "number": lease.number,
                                     "service": lease.service, "opened_at": lease.opened_at,
                                     "deadline": lease.deadline, "ended_at": lease.ended_at,
                                     "sms_count": lease.sms_count}, self._wall(), lease_id=lease.id)


# Country calling codes of the markets suppliers sell in, longest first; enough for criteria.
_COUNTRY_CODES = (("380", "UA"), ("375", "BY"), ("374", "AM"), ("373", "MD"), ("371", "LV"), ("370", "LT"),
                  ("372", "EE"), ("995", "GE"), ("998", "UZ"), ("996", "KG"), ("992", "TJ"), ("993", "TM"),
                  ("994", "AZ"), ("48", "PL"), ("49", "DE"), ("44", "GB"), ("33", "FR"), ("34", "ES"),
                  ("39", "IT"), ("31", "NL"), ("90", "TR"), ("91", "IN"), ("62", "ID"), ("63", "PH"),
                  ("84", "VN"), ("66", "TH"), ("55", "BR"), ("52", "MX"), ("1", "US"), ("7", "RU"))


def country_of(number: str) -> str | None:
    """ISO country of an international number (+7 -> RU); None for national or unknown forms."""
    if not number.startswith("+"):
        return None
    digits = number[1:]
    if digits.startswith(("76", "77")):
        return "KZ"
    for code, country in _COUNTRY_CODES:
        if digits.startswith(code):
            return country
    return None


def _sms_payload(message: MessageRow, lease_id: str) -> dict[str, object]:
    return {"msg_id": message.id, "lease_id": lease_id, "number": message.number, "sender": message.sender,
            "text": message.text, "parts": message.parts, "complete": message.complete,
            "encoding": message.encoding, "network_time": message.scts, "received_at": message.received_at}


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

