"""The gateway core over a real SQLite file, with fake clocks: routing, dedup, restart recovery,
clock jumps, retention."""

from __future__ import annotations

import glob
import itertools
import sqlite3
from datetime import datetime, timezone

import pytest

from drivers.modem import ModemIdentity, ReceivedPart
from drivers.sms.encode import DeliverSpec, encode_deliver
from drivers.sms.pdu import decode_pdu
from gateway.config import LeaseConfig
from gateway.core import GatewayCore
from gateway.core.intake import MAX_PART_SETS
from gateway.domain.messages import IngestStatus
from gateway.domain.leases import LeaseState, Policy
from gateway.store import MIGRATIONS, Store, StoreError

NUMBER_A, NUMBER_B = "+79000000001", "+79000000002"
ICCID_A, ICCID_B = "89701000000000000013", "89701000000000000021"


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def part(iccid: str, pdu: str, port: str = "/dev/ttyUSB0") -> ReceivedPart:
    return ReceivedPart(port, ModemIdentity(iccid=iccid), "SM", 1, pdu, decode_pdu(pdu), None,
                        datetime.now(timezone.utc), 0.0)


def pdus(text: str, sender: str = "+79161234567", ref: int = 5) -> list[str]:
    return encode_deliver(DeliverSpec(sender, text, concat_ref=ref,
                                      timestamp=datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)))


def make_core(path: str, clocks: Clocks, **lease_kwargs) -> GatewayCore:
    store = Store(path)
    store.open()
    core = GatewayCore(store, LeaseConfig(**lease_kwargs), mono=lambda: clocks.mono, wall=lambda: clocks.wall)
    core.start()
    core.bind_sim("/dev/ttyUSB0", ICCID_A, NUMBER_A, True)
    core.bind_sim("/dev/ttyUSB1", ICCID_B, NUMBER_B, True)
    return core


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "simgw.db")


def test_leased_sms_goes_to_the_outbox_and_unleased_to_quarantine(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    assert core.open_lease("L1", NUMBER_A, "telegram")[-1].lease.state is LeaseState.WAITING
    clocks.advance(30)
    routed = core.ingest(part(ICCID_A, pdus("Telegram code 12345")[0]))
    assert routed.status is IngestStatus.ROUTED and routed.lease_id == "L1"
    quarantined = core.ingest(part(ICCID_B, pdus("not for anyone")[0], "/dev/ttyUSB1"))
    assert quarantined.quarantined and quarantined.lease_id is None
    sms_events = [row for row in core.store.outbox() if row[1] == "sms"]
    assert len(sms_events) == 1 and sms_events[0][2] == "L1" and sms_events[0][4]["text"] == "Telegram code 12345"
    assert all(row[3] != quarantined.message_id for row in core.store.outbox())


def test_multipart_any_order_and_a_message_read_twice_is_stored_once(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    text = "Ваш код 777-888. " * 10
    parts = pdus(text)
    assert len(parts) >= 2
    results = [core.ingest(part(ICCID_A, p)) for p in reversed(parts)]
    assert [r.status for r in results] == [IngestStatus.PENDING] * (len(parts) - 1) + [IngestStatus.ROUTED]
    # the crash-before-delete case: the modem offers every part again
    again = [core.ingest(part(ICCID_A, p)) for p in parts]
    assert again[-1].status is IngestStatus.DUPLICATE
    assert [m.text for m in core.store.messages()] == [text]
    assert sum(1 for row in core.store.outbox() if row[1] == "sms") == 1


def test_a_one_part_sms_read_twice_is_stored_and_sent_once_without_a_parts_row(db):
    """The crash-before-delete case for a one-part SMS: its message row alone recognises the
    re-read (the same PDU, or the same SMS from another storage), even days later."""
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    pdu = pdus("Telegram code 24680")[0]
    first = core.ingest(part(ICCID_A, pdu))
    assert first.status is IngestStatus.ROUTED and first.lease_id == "L1"
    clocks.advance(3600)
    again = core.ingest(part(ICCID_A, pdu))
    assert again.status is IngestStatus.DUPLICATE and again.message_id == first.message_id
    assert [m.text for m in core.store.messages()] == ["Telegram code 24680"]
    assert sum(1 for row in core.store.outbox() if row[1] == "sms") == 1
    assert core.engine.get("L1").sms_count == 1
    assert core.store.db.execute("SELECT COUNT(*) FROM parts").fetchone()[0] == 0


def test_store_refusal_leaves_engine_and_disk_unchanged(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    core.store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages BEGIN SELECT RAISE(FAIL, 'disk full'); END")
    with pytest.raises((StoreError, sqlite3.Error)):
        core.ingest(part(ICCID_A, pdus("code 1")[0]))
    assert core.engine.get("L1").sms_count == 0  # the engine was rolled back with the transaction
    assert core.store.pending_parts() == 0
    assert core.snapshot.commit_failures == 1  # the event loop's /metrics hears of it from the snapshot
    core.store.db.execute("DROP TRIGGER refuse")
    assert core.ingest(part(ICCID_A, pdus("code 1")[0])).lease_id == "L1"


def test_restart_keeps_deadlines_and_resolves_what_ended_while_down(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("short", NUMBER_A, "telegram", wait_window=5 * 60)
    core.open_lease("long", NUMBER_B, "whatsapp", wait_window=20 * 60)
    long_deadline = core.store.lease("long").deadline
    short_deadline = core.store.lease("short").deadline
    core.store.close()
    clocks.advance(10 * 60)  # down for ten minutes
    clocks.mono = 5.0  # and the machine rebooted: the monotonic clock started again
    core2 = make_core(db, clocks)
    short = core2.store.lease("short")
    assert short.state is LeaseState.EXPIRED and short.ended_at == pytest.approx(short_deadline)
    long = core2.store.lease("long")
    assert long.state is LeaseState.WAITING and long.deadline == pytest.approx(long_deadline)
    assert core2.engine.get("long").deadline == pytest.approx(clocks.mono + 10 * 60)
    trail = [kind for _, kind, _ in core2.store.audit_trail("short")]
    assert trail == ["opened", "expired"]


def test_wall_clock_jump_while_running_changes_no_window(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    clocks.wall += 86_400  # NTP fixes a Pi that booted in 1970-ish: a day forward
    assert core.tick() == []
    clocks.mono += 19 * 60
    assert core.ingest(part(ICCID_A, pdus("still inside the window")[0])).lease_id == "L1"


def test_wall_clock_set_back_while_down_cannot_stretch_a_lease(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram", wait_window=10 * 60)
    core.store.close()
    clocks.wall -= 30 * 86_400  # the clock went a month back while we were down
    core2 = make_core(db, clocks)
    assert core2.engine.get("L1").deadline - clocks.mono <= 20 * 60


def test_activation_history_survives_restart(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    core.ingest(part(ICCID_A, pdus("code")[0]))
    core.finish("L1")
    core.store.close()
    core2 = make_core(db, clocks)
    assert core2.open_lease("L2", NUMBER_A, "telegram")[-1].code == "number_used_for_service"


def test_lease_audit_trail(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    clocks.advance(60)
    result = core.ingest(part(ICCID_A, pdus("code 42")[0]))
    clocks.advance(60)
    core.repeat("L1")
    clocks.advance(20 * 60)
    core.tick()
    trail = core.store.audit_trail("L1")
    assert [kind for _, kind, _ in trail] == ["opened", "sms", "repeat_waiting", "finished"]
    assert trail[1][2]["msg_id"] == result.message_id


def test_quarantine_purged_from_the_file_itself_after_retention(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    secret = "QUARANTINED-SECRET-TEXT-4711"
    pdu = pdus(secret, ref=9)[0]
    assert core.ingest(part(ICCID_B, pdu, "/dev/ttyUSB1")).quarantined
    clocks.advance(23 * 3600)
    core.purge()
    assert core.store.messages(quarantined=True)
    clocks.advance(3600)
    counts = core.purge()
    assert counts["quarantined"] == 1
    from gateway.store import retention

    retention.compact(core.store)
    core.store.close()
    blob = b"".join(open(f, "rb").read() for f in glob.glob(db + "*"))
    assert secret.encode() not in blob
    assert pdu.encode() not in blob and pdu[-40:].encode() not in blob


def test_delivered_texts_purged_after_message_retention_audit_kept(db):
    clocks = Clocks()
    core = make_core(db, clocks, message_retention=3600.0)
    core.open_lease("L1", NUMBER_A, "telegram")
    core.ingest(part(ICCID_A, pdus("DELIVERED-SECRET-99")[0]))
    clocks.advance(3601)
    core.purge()
    (message,) = core.store.messages()
    assert message.text is None and message.purged_at is not None
    assert [kind for _, kind, _ in core.store.audit_trail("L1")][:2] == ["opened", "sms"]


def test_unknown_number_and_undecodable_pdus_are_quarantined(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    bad = ReceivedPart("/dev/ttyUSB0", ModemIdentity(iccid=ICCID_A), "SM", 3, "0791BAD", None, "truncated",
                       datetime.now(timezone.utc), 0.0)
    assert core.ingest(bad).quarantined and core.ingest(bad).status is IngestStatus.DUPLICATE
    result = core.ingest(part("89709999999999999999", pdus("sim with no known number")[0], "/dev/ttyUSB9"))
    assert result.quarantined


def test_schema_is_versioned(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    assert core.store.schema_version() == len(MIGRATIONS)
    core.store.db.execute("PRAGMA user_version = 99")
    core.store.close()
    with pytest.raises(StoreError, match="newer than this simgw"):
        Store(db).open()


def test_last_part_read_again_after_its_message_was_routed_is_a_duplicate(db):
    """Found by the SIGKILL test: crash after the commit, before the SIM delete of the last part."""
    clocks = Clocks()
    core = make_core(db, clocks)
    parts = pdus("Long message for the re-read case. " * 6)
    for p in parts:
        core.ingest(part(ICCID_A, p))
    assert core.ingest(part(ICCID_A, parts[-1])).status is IngestStatus.DUPLICATE
    assert core.store.pending_parts() == 0 and len(core.store.messages()) == 1


def test_concatenation_reference_reused_by_a_later_message(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    first, second = "First long message. " * 10, "Second long message. " * 10
    for p in pdus(first, ref=77):
        core.ingest(part(ICCID_A, p))
    clocks.advance(3600)
    second_parts = encode_deliver(DeliverSpec("+79161234567", second, concat_ref=77,
                                              timestamp=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)))
    results = [core.ingest(part(ICCID_A, p)) for p in second_parts]
    assert results[-1].status is IngestStatus.ROUTED
    assert sorted(m.text for m in core.store.messages()) == sorted([first, second])


def test_a_waiting_message_whose_reference_is_reused_waits_on_and_is_routed_incomplete_only_when_stale(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    old = pdus("Old message never completed. " * 8, ref=12)
    core.ingest(part(ICCID_A, old[0]))
    new = encode_deliver(DeliverSpec("+79161234567", "New message, same reference. " * 8, concat_ref=12,
                                     timestamp=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)))
    for p in new:
        core.ingest(part(ICCID_A, p))
    assert [m.text[:3] for m in core.store.messages()] == ["New"] and core.store.pending_parts() == 1
    clocks.advance(24 * 3600)
    core.flush_stale_parts()
    messages = {m.text[:3]: m for m in core.store.messages()}
    assert not messages["Old"].complete and messages["New"].complete


@pytest.mark.parametrize("order", sorted(itertools.permutations(("A1", "A2", "B1", "B2"))))
def test_two_messages_sharing_a_reference_read_interleaved_are_both_stored_whole(db, order):
    """Found by the SIGKILL test (1 of 901 SMS lost): the simulator, like a sender whose one-byte
    reference comes round, gave two long SMS on one SIM the same reference; after a restart the
    sweep read their parts interleaved (A1, B1, A2, B2 by free SIM index). B1 found A1 waiting in
    its slot, A was routed cut short, and its text was never stored whole."""
    clocks = Clocks()
    core = make_core(db, clocks)
    a, b = "crash-test #950 " + "long part text " * 12, "crash-test #1205 " + "long part text " * 12
    parts = {}
    for name, text, second in (("A", a, 13), ("B", b, 31)):  # a reference counter came round, 18 s later
        stamp = datetime(2026, 11, 26, 12, 50, second, tzinfo=timezone.utc)
        for number, pdu in enumerate(encode_deliver(DeliverSpec("+79161234567", text, concat_ref=9,
                                                                timestamp=stamp)), 1):
            parts[f"{name}{number}"] = pdu
    assert len(parts) == 4
    for name in order:
        core.ingest(part(ICCID_A, parts[name]))
    for name in order:  # read again (a crash between commit and delete): nothing new
        assert core.ingest(part(ICCID_A, parts[name])).status is IngestStatus.DUPLICATE
    assert sorted(m.text for m in core.store.messages()) == sorted([a, b])
    assert all(m.complete for m in core.store.messages()) and core.store.pending_parts() == 0


def test_past_the_cap_of_waiting_sets_the_oldest_is_routed_incomplete(db):
    """MAX_PART_SETS messages under one sender/reference/count may wait at once; one more routes
    the oldest as it is (incomplete), so the parts table cannot grow without bound there."""
    clocks = Clocks()
    core = make_core(db, clocks)
    firsts = []
    for n in range(MAX_PART_SETS + 1):
        stamp = datetime(2026, 11, 26, 12, n, 0, tzinfo=timezone.utc)
        firsts.append(encode_deliver(DeliverSpec("+79161234567", f"Message {n} " + "waits for part two. " * 9,
                                                 concat_ref=40, timestamp=stamp))[0])
    results = []
    for pdu in firsts:
        results.append(core.ingest(part(ICCID_A, pdu)).status)
        clocks.advance(1)
    assert results == [IngestStatus.PENDING] * (MAX_PART_SETS + 1)
    assert [(m.text[:9], m.complete) for m in core.store.messages()] == [("Message 0", False)]
    assert core.store.pending_parts() == MAX_PART_SETS


def test_migration_from_version_1_keeps_data(db):
    """A database made by the first schema is migrated in place on open."""
    from gateway.store import MIGRATIONS

    raw = sqlite3.connect(db)
    raw.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    raw.execute("INSERT INTO meta (key, value) VALUES ('acked_seq', '41')")
    raw.commit()
    raw.close()
    store = Store(db)
    store.open()
    assert store.schema_version() == len(MIGRATIONS) and store.acked_seq() == 41
    assert store.command_result("nope") is None


def test_routing_does_not_wait_for_the_sim_binding(db):
    """Found by the SIGKILL test: after a restart the startup sweep can deliver a part before the
    modem's state change has bound its SIM; the number travels with the part instead."""
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    core.store.close()
    store = Store(db)
    store.open()
    fresh = GatewayCore(store, LeaseConfig(), mono=lambda: clocks.mono, wall=lambda: clocks.wall)
    fresh.start()  # no bind_sim yet
    early = ReceivedPart("/dev/ttyUSB0", ModemIdentity(iccid=ICCID_A, msisdn=NUMBER_A), "SM", 1, pdus("early")[0],
                         decode_pdu(pdus("early")[0]), None, datetime.now(timezone.utc), 0.0)
    assert fresh.ingest(early).lease_id == "L1"


def test_sms_that_reached_the_sim_before_the_lease_is_not_the_buyers_even_if_read_during_it(db):
    """A lost +CMTI leaves an SMS on the SIM until the next sweep; a lease opened meanwhile must not
    get it. The network's timestamp tells; a timestamp far from our clock is not trusted."""
    clocks = Clocks()
    core = make_core(db, clocks, policy=Policy(held_sms_tolerance=5.0))

    def sent(text: str, seconds_ago: float, ref: int) -> str:
        at = datetime.fromtimestamp(clocks.wall - seconds_ago, timezone.utc).replace(microsecond=0)
        return encode_deliver(DeliverSpec("+79161234567", text, concat_ref=ref, timestamp=at))[0]

    early = sent("sent a minute before the lease", 60, 1)
    core.open_lease("L1", NUMBER_A, "telegram")
    clocks.advance(20)
    assert core.ingest(part(ICCID_A, early)).quarantined
    assert core.ingest(part(ICCID_A, sent("sent just before, within the skew allowed", 22, 2))).lease_id == "L1"
    assert core.ingest(part(ICCID_A, sent("sent during the lease", 5, 3))).lease_id == "L1"
    assert core.ingest(part(ICCID_A, sent("a network clock a day off is not trusted", 86400, 4))).lease_id == "L1"
    row = next(m for m in core.store.messages() if m.text == "sent a minute before the lease")
    assert row.quarantined and row.lease_id is None


def test_a_wall_clock_jump_across_a_restart_on_the_same_boot_changes_no_deadline(db):
    """The monotonic clock runs on across restarts of one boot: leases come back exactly, however
    far the wall clock jumped while the daemon was down. After a reboot only the wall clock is left."""
    clocks = Clocks()

    def core_on(boot_id: str) -> GatewayCore:
        store = Store(db)
        store.open()
        core = GatewayCore(store, LeaseConfig(), mono=lambda: clocks.mono, wall=lambda: clocks.wall, boot_id=boot_id)
        core.start()
        return core

    first = core_on("boot-1")
    first.bind_sim("/dev/ttyUSB0", ICCID_A, NUMBER_A, True)
    deadline = first.open_lease("L1", NUMBER_A, "telegram")[-1].lease.deadline
    first.store.close()
    clocks.advance(60)
    clocks.wall += 3 * 3600  # NTP, or someone, moved the clock three hours on while we were down
    again = core_on("boot-1")
    assert again.engine.get("L1").deadline == deadline and again.engine.get("L1").state is LeaseState.WAITING
    again.store.close()
    rebooted = core_on("boot-2")  # a new boot: the wall clock says three hours passed, so the lease is over
    assert rebooted.engine.get("L1").state is LeaseState.EXPIRED


def test_command_answers_are_bounded_in_rows_and_age(tmp_path):
    from gateway.store import COMMAND_RETENTION

    clocks = Clocks()
    store = Store(str(tmp_path / "simgw.db"), max_commands=100)
    store.open()
    core = GatewayCore(store, LeaseConfig(), mono=lambda: clocks.mono, wall=lambda: clocks.wall)
    core.start()
    for i in range(150):
        assert core.command(f"c{i}", lambda now, i=i: core.engine.finish(f"no-such-{i}", now))["reason"] == "unknown_lease"
    assert store.command_count() == 100
    assert store.command_result("c49") is None and store.command_result("c50") is not None  # the oldest went first
    clocks.advance(COMMAND_RETENTION + 1)
    core.command("fresh", lambda now: core.engine.finish("no-such", now))
    core.purge()
    assert store.command_count() == 1 and store.command_result("fresh") is not None


def test_after_a_purge_no_purged_text_is_in_the_database_its_wal_or_its_shm(db):
    """Must-show 5: the daemon's own purge, its connection still open, no VACUUM by hand; the
    leased SMS was never acknowledged (a marketplace that never acks must not keep it on disk)."""
    clocks = Clocks()
    core = make_core(db, clocks, message_retention=3600.0, quarantine_retention=600.0)
    core.open_lease("L1", NUMBER_A, "telegram")
    leased, quarantined = "LEASED-SECRET-TEXT-4711", "QUARANTINED-SECRET-TEXT-0815"
    assert core.ingest(part(ICCID_A, pdus(leased, ref=3)[0])).lease_id == "L1"
    assert core.ingest(part(ICCID_B, pdus(quarantined, ref=4)[0], "/dev/ttyUSB1")).quarantined
    for i in range(30):  # later traffic, so the texts sit in older WAL frames and pages
        core.ingest(part(ICCID_B, pdus(f"filler {i} " * 20, ref=100 + i)[0], "/dev/ttyUSB1"))
    clocks.advance(3601)
    counts = core.purge()
    assert counts["texts"] >= 1 and counts["quarantined"] >= 1
    for suffix in ("", "-wal", "-shm"):
        try:
            data = open(db + suffix, "rb").read()
        except FileNotFoundError:
            continue
        assert leased.encode() not in data, f"the leased text is still in simgw.db{suffix}"
        assert quarantined.encode() not in data, f"the quarantined text is still in simgw.db{suffix}"
    # what the marketplace gets after the purge: the event, without the text it no longer may have
    (sms,) = [row for row in core.store.outbox() if row[1] == "sms"]
    assert sms[4]["text"] is None and sms[4]["sender"] is None and sms[4]["msg_id"]


def test_migration_4_takes_texts_out_of_stored_outbox_events(db, monkeypatch):
    import json

    import gateway.store.connection as store_module  # where the migrations are run from

    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:3])  # a database as version 3 left it
    store = Store(db)
    store.open()
    with store.transaction():
        store.db.execute("INSERT INTO outbox (kind, message_id, payload, created_at) VALUES ('sms', 'm1', ?, 1)",
                         (json.dumps({"msg_id": "m1", "text": "OLD-SECRET", "sender": "+7916"}),))
    store.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    store.open()
    assert store.schema_version() == len(MIGRATIONS) >= 4
    (payload,) = [row[0] for row in store.db.execute("SELECT payload FROM outbox")]
    assert json.loads(payload) == {"msg_id": "m1"}


def test_the_outbox_is_capped_in_age_and_size_oldest_dropped_first(db, monkeypatch):
    import gateway.store.retention as retention_module

    monkeypatch.setattr(retention_module, "MAX_OUTBOX", 10)
    clocks = Clocks()
    core = make_core(db, clocks)
    for i in range(15):
        core.open_lease(f"L{i}", NUMBER_A, "telegram")
        core.cancel(f"L{i}")
    seqs = [row[0] for row in core.store.outbox()]
    assert len(seqs) == 30
    assert core.purge()["outbox_dropped"] == 20
    assert [row[0] for row in core.store.outbox()] == seqs[-10:]
    clocks.advance(LeaseConfig().claim_window + 1)
    assert core.purge()["outbox_dropped"] == 10 and core.store.outbox() == []
