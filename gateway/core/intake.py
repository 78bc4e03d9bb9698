"""Parts in, messages out: each received part made durable, and each whole message routed to the
lease of its number or to quarantine. Runs on the core thread inside the service's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from drivers.modem import ReceivedPart
from drivers.sms.assembly import AssembledSms, assemble
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu
from gateway.domain.leases import Decision, Deliver, LeaseEngine, Quarantine
from gateway.domain.messages import IngestStatus, Ingested, concat_part_key, message_id, raw_message_id
from gateway.store import MessageRow, Store

PLAUSIBLE_CLOCK_SKEW = 15 * 60.0  # a network timestamp further from our clock is not trusted for routing


MAX_PART_SETS = 8
PART_TIMESTAMP_TOLERANCE = 10.0
"""Seconds between the network timestamps of two parts that may still be one message. Parts of one
message are submitted back to back; a reference that came round belongs to a later message. A part
further from every waiting set starts its own: at worst a message whose parts the network stamped
further apart is routed as two incomplete ones, never mixed with another message's text."""
"""Sets of parts that may wait at once under one sender, reference and part count (see _part_set)."""


def _seconds_apart(rows: list, sms: SmsDeliver) -> float:
    """How far the network timestamps of a waiting set's parts are from this part's, at the nearest."""
    gaps = [float("inf")]
    for row in rows:
        try:
            other = decode_pdu(row["pdu"])
        except PduError:
            continue
        if isinstance(other, SmsDeliver):
            gaps.append(abs((other.timestamp - sms.timestamp).total_seconds()))
    return min(gaps)


class Decide(Protocol):
    def __call__(self, decisions: list[Decision], *, message: MessageRow | None = None) -> None: ...


class Intake:
    def __init__(self, store: Store, engine: LeaseEngine, *, number_for: Callable[[str], str | None],
                 in_bank: Callable[[str], bool], decide: Decide, mono: Callable[[], float],
                 wall: Callable[[], float]) -> None:
        self.store, self.engine = store, engine
        self._number_for, self._in_bank, self._decide = number_for, in_bank, decide
        self._mono, self._wall = mono, wall

    def part(self, part: ReceivedPart) -> Ingested:
        """Store one part; route its message if it is now whole."""
        iccid = part.identity.iccid or f"port:{part.port}"
        sms = part.sms
        now_wall = self._wall()
        if not isinstance(sms, SmsDeliver):
            return self._unroutable(part, iccid, now_wall)
        concat = sms.concat
        if concat is None or concat.total <= 1:
            return self._single(part, iccid, sms)
        number, total = concat.part, concat.total
        key = self._part_set(concat_part_key(iccid, sms.sender, concat.ref_bits, concat.ref, total),
                             number, part.pdu_hex, sms)
        if key is None:
            return Ingested(IngestStatus.DUPLICATE)
        outcome = self.store.insert_part(key, number, total, iccid, part.port, part.pdu_hex, now_wall)
        if outcome == "duplicate":
            return Ingested(IngestStatus.DUPLICATE)
        rows = self.store.parts(key)
        if len(rows) < total:
            return Ingested(IngestStatus.PENDING)
        return self.route(key, rows, total, part.identity.msisdn or None, part)

    def _single(self, part: ReceivedPart, iccid: str, sms: SmsDeliver) -> Ingested:
        """A one-part SMS is its own message: stored and routed at once, with no ``parts`` row to
        write, read back and mark routed. Its message row recognises a re-read (a crash between
        our commit and the SIM delete): the id comes from what the network sent, and the row
        outlives what a parts row would have (retention drops routed parts first)."""
        return self._store_message(iccid, part.port, assemble(part.port, [sms], 1), part.identity.msisdn or None)

    def _part_set(self, base: str, number: int, pdu_hex: str, sms: SmsDeliver) -> str | None:
        """The key of the set this part joins, or None when this very PDU is held already.

        Two messages can share sender, reference and part count (the reference is one byte and
        comes round; a sweep after a crash reads their parts interleaved). Each waits in its own
        set, so neither is cut short: a part joins the waiting set with its slot free whose
        network timestamp is nearest its own and within PART_TIMESTAMP_TOLERANCE (parts of one
        message are sent together; a tie goes to the oldest set), else a
        set with nothing waiting (one never used first). Past MAX_PART_SETS sets waiting at once, the oldest is routed
        as it is (incomplete) to make room."""
        keys = [base, *(f"{base}#{n}" for n in range(1, MAX_PART_SETS))]
        slots = self.store.slot_rows(keys, number)
        if any(row["pdu"] == pdu_hex for row in slots):
            return None
        taken = {row["key"] for row in slots if row["message_id"] is None}
        waiting = {key: self.store.parts(key) for key in keys}
        gaps = {key: _seconds_apart(waiting[key], sms) for key in keys if waiting[key] and key not in taken}
        near = [key for key, gap in gaps.items() if gap <= PART_TIMESTAMP_TOLERANCE]
        if near:
            return min(near, key=gaps.__getitem__)
        used = self.store.keys_in_use(keys)
        idle = sorted((key for key in keys if not waiting[key]), key=lambda key: key in used)
        if idle:  # an unused one first: the routed parts of a set kept recognise its re-reads
            return idle[0]
        oldest = min(keys, key=lambda key: min(row["received_at"] for row in waiting[key]))
        self.route(oldest, waiting[oldest], waiting[oldest][0]["total"])
        return oldest

    def _unroutable(self, part: ReceivedPart, iccid: str, now_wall: float) -> Ingested:
        """A PDU that did not decode, or a status report: kept on the Pi, never forwarded."""
        msg_id = raw_message_id(iccid, part.pdu_hex)
        if self.store.has_message(msg_id):
            return Ingested(IngestStatus.DUPLICATE, msg_id)
        kind = "undecodable" if part.sms is None else "status-report"
        row = MessageRow(msg_id, iccid, self._number_for(iccid), part.port, None, None, kind, 1, False, None,
                         now_wall, None, True, None)
        self.store.insert_message(row, [part.pdu_hex])
        return Ingested(IngestStatus.ROUTED, msg_id, None, True)

    def route(self, key: str, rows: list, total: int, msisdn: str | None = None,
              known: ReceivedPart | None = None) -> Ingested:
        """Assemble the parts held under ``key`` (incomplete if some never came) and route them."""
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
            return Ingested(IngestStatus.DUPLICATE, msg_id)
        # The number comes with the part (the modem read it from the SIM or the config gave it), so
        # routing never depends on whether the modem's state change has been seen yet.
        number = msisdn or self._number_for(iccid)
        now = self._mono()
        if number is None:
            decisions: list[Decision] = [*self.engine.tick(now), Quarantine(msg_id, "", "the SIM's number is unknown")]
        else:
            decisions = self.engine.sms_arrived(msg_id, number, now, sent_at=self._sent_at(message, number, now))
        deliver = next((d for d in decisions if isinstance(d, Deliver)), None)
        row = MessageRow(msg_id, iccid, number, port, message.sender, message.text, message.encoding.value,
                         message.parts, message.complete, scts, self._wall(), deliver.lease.id if deliver else None,
                         deliver is None, None)
        self.store.insert_message(row, list(message.pdus))
        self._decide(decisions, message=row)
        return Ingested(IngestStatus.ROUTED, msg_id, row.lease_id, row.quarantined)

    def _sent_at(self, message: AssembledSms, number: str, now: float) -> float | None:
        """When the network says the SMS was sent, in engine time, for telling an SMS that reached
        the SIM before a lease opened (read late: a lost +CMTI, a held SMS) from the lease's own.
        Used only where the network's clock can be trusted: within PLAUSIBLE_CLOCK_SKEW of ours;
        for bank SIMs always, since SMS held for days are exactly what it must keep from a buyer.
        The timestamp has whole seconds, so the SMS left up to a second later: that benefit of
        the doubt goes to the lease."""
        sent_wall = message.timestamp.timestamp() + 1.0
        wall = self._wall()
        if abs(wall - sent_wall) > PLAUSIBLE_CLOCK_SKEW and not self._in_bank(number):
            return None
        return sent_wall - wall + now

    def stale_keys(self, part_timeout: float) -> list[str]:
        return self.store.stale_part_keys(self._wall() - part_timeout)
