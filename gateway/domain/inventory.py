"""What the gateway can offer: which SIM is on which port, which number a new lease gets, and the
inventory the marketplace is told. I/O-free: it reads the lease engine, the banks and the
activation history it is given, and is told the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.activations import UsedServices
from gateway.domain.banks import LEASABLE, Banks
from gateway.domain.capacity import Radio, count_by_service, count_radios
from gateway.domain.leases import LeaseEngine
from gateway.domain.numbering import country_of, country_of_imsi


@dataclass(frozen=True, slots=True)
class SimBinding:
    """The SIM a modem on ``port`` holds, and the number it serves (None: unknown)."""

    port: str
    iccid: str
    number: str | None


def _key(number: str, operator: str | None, imsi: str | None = None) -> str:
    return f"{country_of(number) or country_of_imsi(imsi) or '?'}/{operator or '?'}"


class Inventory:
    """The SIMs on single modems (bound by port) and in banks, as the lease engine sees them."""

    def __init__(self, engine: LeaseEngine, banks: Banks, used: UsedServices,
                 numbers_by_iccid: dict[str, str] | None = None) -> None:
        self.engine, self.banks, self.used = engine, banks, used
        self.numbers_by_iccid = dict(numbers_by_iccid or {})
        self.sims: dict[str, SimBinding] = {}  # by port
        self.operators: dict[str, str | None] = {}  # by port, from AT+COPS

    def bind_sim(self, port: str, iccid: str, msisdn: str | None, online: bool) -> str | None:
        """A modem on ``port`` holds SIM ``iccid``; returns the number it serves (or None)."""
        number = msisdn or self.numbers_by_iccid.get(iccid) or None
        previous = self.sims.get(port)
        if previous is not None and previous.number and previous.number != number:
            self.engine.set_online(previous.number, False)
        self.sims[port] = SimBinding(port, iccid, number)
        if number:
            self.engine.set_online(number, online)
        return number

    def number_for(self, iccid: str) -> str | None:
        for binding in self.sims.values():
            if binding.iccid == iccid:
                return binding.number
        return self.numbers_by_iccid.get(iccid) or self.banks.number_for_iccid(iccid)

    def _single_sims(self) -> list[SimBinding]:
        """SIMs on modems of their own (not bank channels), by port."""
        return [b for b in sorted(self.sims.values(), key=lambda b: b.port)
                if b.number and self.banks.bank_of(b.port) is None]

    def choose_number(self, service: str, now: float, *, country: str | None, operator: str | None,
                      exclude_prefixes: tuple[str, ...] = ()) -> str | None:
        """A free, online number that was never activated for ``service`` and fits the criteria.
        Numbers on a radio now come before bank SIMs that would need a switch."""
        candidates = [(b.number, self.operators.get(b.port)) for b in self._single_sims()]
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
            if self.engine.used_for(number, service, now):
                continue
            return number
        return None

    def report(self, wall: float, reuse_cooldown: float | None) -> dict[str, object]:
        """Every number with its state, and what can be served *at once*: per country/operator
        (and per service already used on some number) the count of radios that could take a
        lease for it now. A radio counts once per key however many idle SIMs it reaches, so no
        count ever exceeds the radios; a radio whose SIM is leased, or that a lease waits for,
        counts for nothing."""
        numbers, radios = self.radio_candidates()
        by_service = count_by_service(radios, self.used.services(), lambda number: {  # in reuse cool-down
            s for s, at in self.used.of(number).items() if reuse_cooldown is None or wall - at < reuse_cooldown})
        return {"full": True, "numbers": numbers, "capacity": count_radios(radios), "capacity_by_service": by_service,
                "radios": len(radios)}

    def radio_candidates(self) -> tuple[list[dict[str, object]], list[Radio]]:
        """Every number with its state, and per radio the ``("CC/operator", number)`` of each SIM
        it could serve a lease on now (its own SIM, or an idle bank SIM behind it)."""
        numbers: list[dict[str, object]] = []
        radios: list[Radio] = [self._single_radio(binding, numbers) for binding in self._single_sims()]
        for bank in self.banks.schedulers:
            radios += self._bank_radios(bank, numbers)
        return numbers, radios

    def _entry(self, number_id: str, number: str, operator: str | None, state: str,
               imsi: str | None = None) -> dict[str, object]:
        return {"number_id": number_id, "msisdn": number, "country": country_of(number) or country_of_imsi(imsi),
                "operator": operator, "state": state, "services_used": sorted(self.used.of(number))}

    def _single_radio(self, binding: SimBinding, numbers: list[dict[str, object]]) -> Radio:
        number = binding.number or ""
        online, busy = self.engine.is_online(number), self.engine.lease_for(number) is not None
        operator = self.operators.get(binding.port)
        numbers.append(self._entry(binding.iccid, number, operator,
                                   "busy" if busy else ("online" if online else "offline")))
        return [(_key(number, operator), number)] if online and not busy else []

    def _bank_radios(self, bank: str, numbers: list[dict[str, object]]) -> list[Radio]:
        scheduler = self.banks.schedulers[bank]
        radios: list[Radio] = []
        for reach in self.banks.configs[bank].reach().values():
            spoken_for = any(scheduler.lease_on(slot) for slot in reach) or \
                any(slot in reach for _, slot in scheduler.queued)
            free: Radio = []
            for slot in reach:
                row = self.banks.rows.get((bank, slot))
                if row is None or not row.msisdn:
                    continue
                busy = self.engine.lease_for(row.msisdn) is not None
                leasable = row.status == LEASABLE and self.engine.is_online(row.msisdn)
                on_air = self.banks.on_air(bank, slot)
                numbers.append(self._entry(row.iccid or f"{bank}:{slot}", row.msisdn, row.operator,
                                           "busy" if busy else ("offline" if not leasable else
                                                                ("online" if on_air else "standby")), row.imsi))
                if leasable and not busy and not spoken_for:
                    free.append((_key(row.msisdn, row.operator, row.imsi), row.msisdn))
            radios.append(free)
        return radios
