"""The hub's requests decided on the core thread, through the same engine and store as simgw.v1.

A number sold to the hub is a HELD lease of the one lease engine (gateway.domain.leases): while it is
active, neither marketplace can lease the number again, and GET_SERVICES stops counting its
radio, exactly as the simgw.v1 inventory does (both count with GatewayCore.radio_candidates).
Each method is one transaction (GatewayCore.run_step): the lease, the activation row, the
history and the audit trail commit together or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from gateway.core import GatewayCore
from gateway.domain.leases import Decision, Opened, Refusal, Refused
from gateway.domain.numbering import country_of
from gateway.smshub import protocol, records
from gateway.smshub.names import ANY, Names
from gateway.store import MessageRow, StoredLease

log = structlog.get_logger("gateway.smshub")
MEANING = {protocol.NEVER_AGAIN: "never_again", protocol.SOLD: "sold", protocol.CANCELLED: "cancelled",
           protocol.REFUNDED: "refunded"}
MAX_CANCELS = 4  # Appendix 4: after status 4 "you can give this number to us 3 more times (4 in total)"


class HubDesk:
    def __init__(self, core: GatewayCore, names: Names, activation_cap: float, *,
                 mono: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.core = core
        self.names = names
        self.cap = activation_cap
        self._mono, self._wall = mono, wall  # the core's clocks: engine time and wall time
        self.on_push_queued: Callable[[], None] | None = None  # wakes the pusher (thread-safe callable)
        core.ledger.on_held_sms = self._queue_push

    # ------------------------------------------------------------------------- GET_SERVICES
    def services(self) -> dict:
        """Per country, operator and service: the radios that could take a lease for it now. A
        radio counts once per key however many idle SIMs it reaches (a 512-slot bank with 60
        radios reports at most 60); a denied service counts 0."""
        numbers, radios = self.core.catalog.radio_candidates()
        engine, now = self.core.engine, self._mono()
        per_radio = [[(self._country(number), self._operator(key), number) for key, number in radio] for radio in radios]
        unknown = {c for radio in per_radio for c, op, _ in radio if c and op is None}  # Appendix 2: then "any"
        counts: dict[str, dict[str, dict[str, int]]] = {}
        for entry in numbers:  # every SIM we have is listed, with 0 while none is free
            country, operator = self.names.country(entry["country"]), self.names.operator(entry["operator"])
            if country and (operator or country in unknown):
                counts.setdefault(country, {}).setdefault(ANY if country in unknown else operator, {})
        for ours, code in sorted(self.names.services.items()):
            denied = engine.policy.denies(ours, ours) or engine.policy.denies(code, code)
            for radio in per_radio:
                keys = {(c, ANY if c in unknown else op) for c, op, number in radio
                        if c and not denied and not engine.used_for(number, ours, now)}
                for country, operator in keys:
                    services = counts.setdefault(country, {}).setdefault(operator or ANY, {})
                    services[code] = services.get(code, 0) + 1
        for operators in counts.values():  # every offered key lists every service, 0 where none is free
            for services in operators.values():
                for code in self.names.services.values():
                    services.setdefault(code, 0)
        return protocol.services_reply(counts)

    def _country(self, number: str) -> str | None:
        return self.names.country(country_of(number))

    def _operator(self, key: str) -> str | None:
        return self.names.operator(key.partition("/")[2])

    # --------------------------------------------------------------------------- GET_NUMBER
    def get_number(self, request: protocol.GetNumber) -> dict:
        """Open a held lease on a number of a free radio that fits, or NO_NUMBERS."""
        reply: dict = protocol.no_numbers()

        def step(now: float) -> list[Decision]:
            nonlocal reply
            decisions: list[Decision] = self.core.engine.tick(now)
            service = self.names.service(request.service)
            policy = self.core.engine.policy
            if service is None or policy.denies(service, service) or policy.denies(request.service, request.service):
                return decisions
            for number in self._candidates(service, request, now):
                activation_id = records.next_activation_id(self.core.store.db)
                lease_id = records.lease_id_for(activation_id)
                opened = self.core.open_step(lease_id, number, service, now, hold=self.cap)
                refused = next((d for d in opened if isinstance(d, Refused)), None)
                if refused is not None and refused.reason is Refusal.DUPLICATE_LEASE:
                    records.skip_activation_id(self.core.store.db, activation_id)  # another market's id
                    activation_id = records.next_activation_id(self.core.store.db)
                    lease_id = records.lease_id_for(activation_id)
                    opened = self.core.open_step(lease_id, number, service, now, hold=self.cap)
                    refused = next((d for d in opened if isinstance(d, Refused)), None)
                if refused is not None:
                    continue
                wall = self._wall()
                records.add_activation(self.core.store.db, activation_id, number, service, request.service, wall)
                self.core.store.audit(lease_id, wall, "hub.activation",
                                      {"activation_id": activation_id, "hub_service": request.service,
                                       "sum": request.sum, "currency": request.currency})
                reply = protocol.number_reply(protocol.numeric_phone(number) or 0, activation_id)
                return decisions + opened
            return decisions

        decisions = self.core.run_step(step)
        opened = next((d for d in decisions if isinstance(d, Opened)), None)
        log.info("smshub.get_number", service=request.service, country=request.country, operator=request.operator,
                 status=reply["status"], lease=opened.lease.id if opened else None)
        return reply

    def _candidates(self, service: str, request: protocol.GetNumber, now: float) -> list[str]:
        """Numbers of free radios fitting the request, SIMs on air before bank SIMs needing a switch."""
        _, radios = self.core.catalog.radio_candidates()
        engine, banks = self.core.engine, self.core.banks
        wanted_operator = None if request.operator == ANY else request.operator
        out = []
        for radio in radios:
            for key, number in radio:
                if self._country(number) != request.country or protocol.numeric_phone(number) is None:
                    continue
                if wanted_operator is not None and self._operator(key) != wanted_operator:
                    continue
                if any(number.lstrip("+").startswith(prefix) for prefix in request.exclude_prefixes):
                    continue
                if engine.used_for(number, service, now):
                    continue
                where = banks.locate(number)
                out.append((where is not None and not banks.on_air(*where), number))
        return [number for _, number in sorted(out)]

    # -------------------------------------------------------------------- FINISH_ACTIVATION
    def finish(self, request: protocol.FinishActivation) -> dict:
        """End the activation as the hub says, once; a repeat for a known activation is SUCCESS."""
        reply: dict = protocol.success()

        def step(now: float) -> list[Decision]:
            nonlocal reply
            db = self.core.store.db
            activation = records.activation(db, request.activation_id)
            if activation is None:
                reply = protocol.error("unknown activationId")
                return []
            if activation.status is not None:
                if activation.status != request.status:
                    log.warning("smshub.finish_repeated_differently", activation=activation.id,
                                first=activation.status, now=request.status)
                return []
            decisions = self.core.engine.release(activation.lease_id, now)
            decisions = [d for d in decisions if not isinstance(d, Refused)]  # ended already: by the cap
            self._history(activation, request.status, now)
            wall = self._wall()
            records.finish_activation(db, activation.id, request.status, wall)
            self.core.store.audit(activation.lease_id, wall, "hub.finish",
                                  {"activation_id": activation.id, "status": request.status,
                                   "meaning": MEANING[request.status]})
            return decisions

        self.core.run_step(step)
        log.info("smshub.finish", activation=request.activation_id, status=request.status, reply=reply["status"])
        return reply

    def _history(self, activation: records.Activation, status: int, now: float) -> None:
        """Appendix 4: 1 never again for this service; 3 sold and 5 refunded: the number was used
        for it (never again, as for simgw.v1); 4 cancelled: again, up to 4 cancellations in all."""
        number, service = activation.number, activation.service
        if status == protocol.CANCELLED and records.count_cancel(self.core.store.db, number, service) < MAX_CANCELS:
            return
        records.forget_cancels(self.core.store.db, number, service)
        wall = self._wall()
        self.core.store.record_activation(number, service, wall)
        self.core.used.record(number, service, wall)  # the simgw.v1 inventory's view of the history
        self.core.engine.restore_activation(number, service, now)

    # ------------------------------------------------------------------------------ PUSH_SMS
    def _queue_push(self, lease: StoredLease, message: MessageRow) -> None:
        """Inside the transaction that stores the SMS: its push is queued in the same commit."""
        activation = records.activation_of_lease(self.core.store.db, lease.id)
        if activation is None:
            log.error("smshub.sms_without_activation", lease=lease.id, msg_id=message.id)
            return
        records.queue_push(self.core.store.db, message.id, activation.id, lease.number, message.received_at)
        if self.on_push_queued is not None:
            self.on_push_queued()

    def due_pushes(self, limit: int, skip: tuple[int, ...]) -> list[records.Push]:
        return records.due_pushes(self.core.store.db, self._wall(), limit, skip)

    def next_push_at(self) -> float | None:
        return records.next_push_at(self.core.store.db)

    def push_result(self, sms_id: int, outcome: protocol.PushOutcome, retry: float) -> None:
        with self.core.store.transaction() as db:
            if outcome is protocol.PushOutcome.RETRY:
                records.push_again(db, sms_id, self._wall() + retry)
            else:
                records.push_done(db, sms_id, outcome.value, self._wall())

    def purge(self, claim_window: float) -> dict[str, int]:
        with self.core.store.transaction() as db:
            return records.purge(db, self._wall(), claim_window=claim_window)
