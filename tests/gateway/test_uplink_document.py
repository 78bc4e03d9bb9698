"""What PROTOCOL.md answers for a marketplace engineer, each held by a test: the lease words, the
deadline, msg_id collapse, incomplete SMS, numbers and criteria, the deny list and case of
service names, the value sets in the schemas, a bad welcome, keepalive and a second connection.
Core-level tests use a real SQLite file and fake clocks; the rest a real WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from drivers.sms.encode import DeliverSpec, encode_deliver
from gateway.core import decisions_json
from gateway.domain.leases import LeaseState, Policy, Trigger
from gateway.domain.messages import IngestStatus
from gateway.uplink.frames import LEASE_EVENTS, LEGACY_LEASE_EVENTS
from gateway.uplink.protocol import CAPABILITIES, SUBPROTOCOL, ErrorReason, FrameRejected, OpenLease, parse
from tests.conftest import run, wait_until
from tests.gateway.core.test_core import ICCID_A, NUMBER_A, Clocks, make_core, part, pdus
from tests.gateway.uplink_env import TOKEN, Rig, schemas, validate_frames


def _lease_frames(core, lease_id: str) -> list[dict]:
    return [row[4] for row in core.store.outbox() if row[1] == "lease" and row[4]["lease_id"] == lease_id]


def _sms(text: str, second: int, sender: str = "+79161234567") -> str:
    (pdu,) = encode_deliver(DeliverSpec(sender, text, timestamp=datetime(2026, 11, 22, 10, 0, second,
                                                                         tzinfo=timezone.utc)))
    return pdu


# ---------------------------------------------------------------------------- lease frames
def test_a_lease_frame_says_the_lease_state_the_result_gives_and_each_sms_frame_moves_the_deadline(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    answer = decisions_json(core.open_lease("L1", NUMBER_A, "telegram"))
    (opened,) = _lease_frames(core, "L1")
    assert answer["state"] == opened["state"] == "waiting" and opened["event"] == "opened"
    assert opened["deadline"] == pytest.approx(clocks.wall + Policy().wait_window)
    finish_after = Policy().finish_after
    for n, second in enumerate((5, 9), start=1):
        clocks.advance(30)
        assert core.ingest(part(ICCID_A, _sms(f"code {n}", second))).status is IngestStatus.ROUTED
        sms = [row[4] for row in core.store.outbox() if row[1] == "sms"][-1]
        assert (sms["lease"]["state"], sms["lease"]["sms_count"]) == ("received", n)
        assert sms["lease"]["deadline"] == pytest.approx(clocks.wall + finish_after)  # the auto-finish time
    sms_frames = [row for row in core.store.outbox() if row[1] == "sms"]
    assert len(sms_frames) == 2 and len(_lease_frames(core, "L1")) == 1  # one frame per SMS: no lease frame
    validate_frames([{"type": "sms", "seq": row[0], **row[4]} for row in sms_frames])
    answer = decisions_json(core.finish("L1"))
    finished = _lease_frames(core, "L1")[-1]
    assert answer["state"] == finished["state"] == "finished" and finished["event"] == "finish"
    assert finished["ended_at"] == finished["deadline"] == pytest.approx(clocks.wall)  # ended before its deadline
    validate_frames([{"type": "lease", "seq": 1, **f} for f in _lease_frames(core, "L1")])


def test_events_queued_before_the_lease_rode_in_the_sms_frame_are_still_valid_frames_when_replayed():
    """PROTOCOL.md: a gateway upgraded with unacknowledged events replays them as queued: an sms
    frame without ``lease``, then a lease frame ``event: sms``. The schemas accept both; the
    gateway no longer makes either (LEASE_EVENTS)."""
    legacy_sms = {"type": "sms", "seq": 7, "msg_id": "m7", "lease_id": "L1", "number": "+79161234567",
                  "sender": "Telegram", "text": "code 1", "parts": 1, "complete": True, "encoding": "gsm7",
                  "network_time": None, "received_at": 1764000000.0}
    legacy_lease = {"type": "lease", "seq": 8, "lease_id": "L1", "state": "received", "event": "sms",
                    "number": "+79161234567", "service": "telegram", "at": 1764000000.0,
                    "opened_at": 1763999900.0, "deadline": 1764000900.0, "ended_at": None, "sms_count": 1}
    assert validate_frames([legacy_sms, legacy_lease]) == {"sms", "lease"}
    assert "sms" in LEGACY_LEASE_EVENTS and "sms" not in LEASE_EVENTS


def test_an_expired_lease_frame_keeps_the_deadline_that_passed(db):
    from tests.gateway.core.test_core import NUMBER_B

    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L2", NUMBER_B, "telegram", wait_window=60)
    deadline = _lease_frames(core, "L2")[0]["deadline"]
    clocks.advance(65)
    core.tick()
    expired = _lease_frames(core, "L2")[-1]
    assert (expired["state"], expired["event"]) == ("expired", "deadline")
    assert expired["deadline"] == pytest.approx(deadline) and expired["at"] - expired["deadline"] == pytest.approx(5)


# ---------------------------------------------------------------------------- msg_id, parts
def test_two_identical_sms_in_the_same_second_are_one_message_and_a_second_apart_are_two(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram")
    first = core.ingest(part(ICCID_A, _sms("code 4242", 7)))
    same_second = core.ingest(part(ICCID_A, _sms("code 4242", 7)))
    next_second = core.ingest(part(ICCID_A, _sms("code 4242", 8)))
    assert first.status is IngestStatus.ROUTED and same_second.status is IngestStatus.DUPLICATE
    assert first.message_id != next_second.message_id
    assert [row[4]["text"] for row in core.store.outbox() if row[1] == "sms"] == ["code 4242", "code 4242"]


def test_a_multipart_sms_missing_a_part_is_sent_incomplete_600_s_after_its_first_part(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    core.open_lease("L1", NUMBER_A, "telegram", wait_window=1200)
    parts = pdus("Your code is 5555, the rest of this message never arrives. " * 4)
    assert len(parts) >= 2
    core.ingest(part(ICCID_A, parts[0]))
    clocks.advance(599)
    assert core.flush_stale_parts() == []
    clocks.advance(1)
    (flushed,) = core.flush_stale_parts()
    assert flushed.lease_id == "L1"
    (sms,) = [row[4] for row in core.store.outbox() if row[1] == "sms"]
    assert sms["complete"] is False and sms["parts"] == len(parts) and sms["text"].startswith("Your code is 5555")


# ---------------------------------------------------------------------- numbers and services
def test_a_number_not_on_the_gateway_is_number_offline_and_no_number_is_for_criteria(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    assert decisions_json(core.open_lease("L1", "+10000000000", "telegram"))["reason"] == "number_offline"
    assert core.catalog.choose_number("telegram", clocks.mono, country="ru", operator=None) is not None  # either case
    assert core.catalog.choose_number("telegram", clocks.mono, country="DE", operator=None) is None  # -> no_number, see app


@pytest.mark.parametrize("number, ok", [("+79161234567", True), ("79161234567", True), ("+7 916 123", False),
                                        ("tel:+79161234567", False), ("+7916123456789012", False)])
def test_the_number_of_a_lease_open_is_e164(number, ok):
    frame = {"type": "lease.open", "command_id": "c", "lease_id": "l", "service": "tg", "number": number}
    event = parse(json.dumps(frame), gateway_id="gw")
    assert isinstance(event, OpenLease) is ok, event
    if not ok:
        assert event.reason is ErrorReason.INVALID_FIELD and "E.164" in event.message


@pytest.mark.parametrize("criteria, ok", [({"country": "ru"}, True), ({"country": "RUS"}, False),
                                          ({"exclude_prefixes": ["+7916", "7903"]}, True),
                                          ({"exclude_prefixes": ["+7-916"]}, False)])
def test_criteria_values(criteria, ok):
    frame = {"type": "lease.open", "command_id": "c", "lease_id": "l", "service": "tg", "criteria": criteria}
    event = parse(json.dumps(frame), gateway_id="gw")
    assert isinstance(event, OpenLease) is ok, event
    if ok and "country" in criteria:
        assert event.country == "RU"


def test_service_names_and_the_deny_list_are_case_insensitive(db):
    clocks = Clocks()
    core = make_core(db, clocks)
    assert decisions_json(core.open_lease("L0", NUMBER_A, "WebMoney"))["reason"] == "service_denied"
    assert decisions_json(core.open_lease("L0b", NUMBER_A, "viber", category="Banking"))["reason"] == "service_denied"
    core.open_lease("L1", NUMBER_A, "Telegram")
    clocks.advance(10)
    core.ingest(part(ICCID_A, _sms("code 1", 3)))
    core.finish("L1")
    again = decisions_json(core.open_lease("L2", NUMBER_A, "TELEGRAM"))
    assert again["reason"] == "number_used_for_service", again
    (entry,) = [n for n in core.inventory()["numbers"] if n["msisdn"] == NUMBER_A]
    assert entry["services_used"] == ["telegram"]


# -------------------------------------------------------------------------- value sets
def test_the_schemas_list_exactly_the_values_the_code_uses():
    from drivers.modem import ModemState
    from drivers.sms.pdu import Encoding

    s = schemas()
    lease_states = {state.value for state in LeaseState}
    assert set(s["lease"]["properties"]["state"]["enum"]) == lease_states
    assert set(s["result"]["properties"]["state"]["enum"]) == lease_states
    hub_only = {Trigger.RELEASE.value}  # ends an SMSHub activation, whose leases simgw.v1 never sees
    in_sms_frame = {Trigger.SMS.value}  # an SMS moves its lease: told by the sms frame's lease object
    assert set(LEASE_EVENTS) == {"opened"} | {t.value for t in Trigger} - hub_only - in_sms_frame
    assert set(s["lease"]["properties"]["event"]["enum"]) == set(LEASE_EVENTS) | set(LEGACY_LEASE_EVENTS)
    assert set(s["sms"]["properties"]["lease"]["properties"]["state"]["enum"]) == lease_states
    assert set(s["sms"]["properties"]["encoding"]["enum"]) == {e.value for e in Encoding}
    assert set(s["health"]["properties"]["modems"]["items"]["properties"]["state"]["enum"]) == \
        {m.value for m in ModemState}
    assert set(s["hello"]["properties"]["capabilities"]["items"]["enum"]) == set(CAPABILITIES)
    assert set(s["error"]["properties"]["reason"]["enum"]) == {r.value for r in ErrorReason}


def test_wrong_gateway_is_an_error_frame_with_the_command_id_not_a_refusal():
    frame = {"type": "lease.finish", "command_id": "c9", "lease_id": "l", "gateway_id": "another"}
    event = parse(json.dumps(frame), gateway_id="gw")
    assert isinstance(event, FrameRejected) and event.reason is ErrorReason.WRONG_GATEWAY
    answer = json.loads(event.frame)
    assert answer["type"] == "error" and answer["frame_id"] == "c9" and "result" not in answer
    assert "wrong_gateway" not in schemas()["result"]["properties"]["reason"]["enum"]


# ------------------------------------------------------------------- over a real WebSocket
def test_a_welcome_beyond_any_seq_assigned_closes_the_session_and_reconnects_with_backoff(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 1) as rig:
            await rig.open("deal-1", rig.numbers()[0])
            await rig.market.stop()
            rig.market.store._db.execute("UPDATE gateways SET acked_seq = 1000000")  # the marketplace lost track
            before = rig.market.connections
            seen = len(rig.market.frames_in)
            await rig.restart_market()
            await wait_until(lambda: rig.market.connections >= before + 1, 15, "a refused session")
            rig.farm.send_sms(0, "Telegram", "code 1 while the marketplace is confused")
            await wait_until(lambda: len(rig.gateway.store_messages()) == 1, 10, "the SMS stored on the Pi")
            await wait_until(lambda: rig.market.connections >= before + 3, 15, "three refused sessions")
            bad = [f for f in rig.market.frames_in if f.get("type") == "error" and f["reason"] == "bad_ack"]
            assert bad and "1000000" in bad[0]["message"]
            assert not rig.gateway.uplink.connected.is_set()
            assert "welcome claims seq 1000000" in (rig.gateway.uplink.last_error or ""), rig.gateway.uplink.last_error
            # nothing pruned, nothing sent: the gateway keeps its events for a marketplace that recovers
            assert rig.gateway.read(lambda s: s.max_seq()) > rig.gateway.read(lambda s: s.acked_seq())
            assert not rig.market.sms() and all(f.get("type") in ("hello", "error") for f in rig.market.frames_in[seen:])

    run(scenario(), 60)


@pytest.mark.slow
def test_the_marketplace_keepalive_is_answered_and_no_application_frames_are_needed(tmp_path):
    """The marketplace pings every 0.1 s with 0.5 s to answer; the gateway's own pings are off.
    For 3 s the session holds and every ping got its pong."""
    async def scenario():
        async with Rig(tmp_path, 1, ping_interval=None, ping_timeout=None) as rig:
            await rig.market.stop()
            market = rig.market
            market._server = None
            server = await serve(market._handler, "127.0.0.1", rig.market_port, subprotocols=[SUBPROTOCOL],
                                 process_request=market._check_token, ping_interval=0.1, ping_timeout=0.5)
            try:
                await wait_until(lambda: bool(market.gateways), 10, "the gateway back")
                before = market.connections
                await asyncio.sleep(3.0)
                peer = market._peers[market.gateways[0]]
                assert market.connections == before and rig.gateway.uplink.connected.is_set()
                assert 0 < peer.connection.latency < 0.5  # a pong came back for the pings
            finally:
                server.close()
                await server.wait_closed()

    run(scenario(), 60)


def test_a_second_connection_from_the_same_gateway_replaces_the_first(tmp_path):
    from gateway.tools.market import SUPERSEDED, Market

    async def scenario():
        market = Market(str(tmp_path / "m.db"), TOKEN)
        await market.start("127.0.0.1", 0)
        url = f"ws://127.0.0.1:{market.address[1]}/v1"
        hello = json.dumps({"type": "hello", "v": 1, "gateway_id": "gw-twin", "version": "t", "capabilities": [],
                            "last_acked_seq": 0})
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers) as first:
                await first.send(hello)
                assert json.loads(await first.recv())["type"] == "welcome"
                async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers) as second:
                    await second.send(hello)
                    assert json.loads(await second.recv())["type"] == "welcome"
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(first.recv(), 5)
                    assert closed.value.rcvd.code == SUPERSEDED
                    assert market.gateways == ["gw-twin"] and market._peers["gw-twin"].connection is not None
        finally:
            await market.stop()
            market.close()

    run(scenario(), 30)


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "simgw.db")
