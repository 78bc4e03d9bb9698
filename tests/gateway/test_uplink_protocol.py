"""The I/O-free simgw.v1 codec: limits that PROTOCOL.md promises, checked without a socket."""

from __future__ import annotations

import json

import pytest

from gateway.uplink.protocol import MAX_FRAME, ErrorReason, FrameRejected, OpenLease, parse


def test_frame_size_is_counted_in_utf8_bytes_not_characters():
    # 40,000 Cyrillic characters are 80,000 bytes on the wire: over the 64 KiB PROTOCOL.md promises
    frame = json.dumps({"type": "lease.open", "command_id": "c1", "lease_id": "l1", "service": "tg",
                        "pad": "ж" * 40_000}, ensure_ascii=False)
    assert len(frame) < MAX_FRAME < len(frame.encode("utf-8"))
    event = parse(frame, gateway_id="gw")
    assert isinstance(event, FrameRejected) and event.reason is ErrorReason.FRAME_TOO_LARGE, event
    assert "bytes" in event.message and str(len(frame.encode("utf-8"))) in event.message
    # just under the limit in bytes is still accepted
    pad = MAX_FRAME - len(frame.encode("utf-8")) + 80_000 - 200
    ok = json.dumps({"type": "lease.open", "command_id": "c2", "lease_id": "l2", "service": "tg",
                     "pad": "ж" * (pad // 2)}, ensure_ascii=False)
    assert len(ok.encode("utf-8")) <= MAX_FRAME
    assert isinstance(parse(ok, gateway_id="gw"), OpenLease)


def test_the_result_schema_lists_every_refusal_the_gateway_can_give():
    from gateway.domain.leases import Refusal
    from tests.gateway.uplink_env import schemas

    reasons = set(schemas()["result"]["properties"]["reason"]["enum"])
    assert {r.code for r in Refusal} | {"rate_limited", "unavailable"} == reasons


def test_commands_over_the_rate_are_answered_rate_limited_unexecuted():
    from gateway.uplink.protocol import COMMAND_BURST, COMMAND_RATE, Throttled, TokenBucket, UplinkSession

    session = UplinkSession("gw", "1", 0, commands=TokenBucket(COMMAND_RATE, COMMAND_BURST))
    session.hello()
    session.receive('{"type": "welcome", "last_acked_seq": 0}', 0.0)

    def finish(i: int) -> str:
        return json.dumps({"type": "lease.finish", "command_id": f"c{i}", "lease_id": f"l{i}"})

    events = [session.receive(finish(i), 0.0) for i in range(COMMAND_BURST + 10)]
    assert sum(not isinstance(e, Throttled) for e in events) == COMMAND_BURST
    throttled = [e for e in events if isinstance(e, Throttled)]
    answer = json.loads(throttled[0].frame)
    assert answer["reason"] == "rate_limited" and not answer["ok"] and answer["command_id"] == "c50"
    assert 0 < answer["retry_after"] <= 1 / COMMAND_RATE + 0.01
    # a second later the rate's worth is admitted again, and no more
    later = [session.receive(finish(1000 + i), 1.0) for i in range(30)]
    assert sum(not isinstance(e, Throttled) for e in later) == COMMAND_RATE
    assert session.throttled == 10 + 10


# ---------------------------------------------------------------------- the session state machine
def _inventory(*states: str) -> dict:
    return {"numbers": [{"number_id": f"8970{i}", "msisdn": f"+7916000000{i}", "country": "RU", "operator": "SimNet",
                         "state": s, "services_used": []} for i, s in enumerate(states)],
            "capacity": {"RU/SimNet": len(states)}, "capacity_by_service": {}, "radios": len(states)}


def _rows(first: int, count: int) -> list[tuple[int, str, dict]]:
    return [(seq, "lease", {"lease_id": f"l{seq}"}) for seq in range(first, first + count)]


def _kinds(frames: list[str]) -> list[str]:
    return [json.loads(f)["type"] for f in frames]


def test_no_sequenced_frame_leaves_before_the_full_inventory():
    from gateway.uplink.protocol import SessionState, UplinkSession

    session = UplinkSession("gw", "1", 3, window=4)
    assert session.send_events(_rows(4, 2)) == 0 and session.room == 0  # before hello: kept in the outbox
    session.send_hello()
    assert session.state is SessionState.AUTHENTICATING
    assert session.send_events(_rows(4, 2)) == 0 and not session.send_health({"at": 0, "modems": []})
    session.receive('{"type": "welcome", "last_acked_seq": 3}')
    assert session.state is SessionState.SYNCING and session.welcomed
    assert session.send_events(_rows(4, 2)) == 0 and session.room == 0  # welcomed, but no inventory yet
    assert session.sequenced_frame(4, "lease", {}) is None
    assert not session.send_health({"at": 0, "modems": []})
    assert session.send_result("c1", {"ok": True, "lease_id": "l", "state": "waiting"})  # answers may go
    assert session.send_inventory(_inventory("online", "busy"))
    assert session.state is SessionState.READY and session.room == 4
    assert session.send_events(_rows(4, 6)) == 4  # the window
    frames = session.data_to_send()
    assert _kinds(frames) == ["hello", "result", "inventory", "lease", "lease", "lease", "lease"]
    assert json.loads(frames[2])["full"] is True
    assert [json.loads(f)["seq"] for f in frames[3:]] == [4, 5, 6, 7]
    session.receive('{"type": "ack", "seq": 5}')
    assert session.room == 2 and session.send_events(_rows(4, 6)) == 2  # seqs already sent are skipped
    assert [json.loads(f)["seq"] for f in session.data_to_send()] == [8, 9]


def test_later_inventories_carry_only_the_changes():
    from gateway.uplink.protocol import UplinkSession

    session = UplinkSession("gw", "1", 0)
    session.send_hello()
    session.receive('{"type": "welcome", "last_acked_seq": 0}')
    session.send_inventory(_inventory("online", "online"))
    assert not session.send_inventory(_inventory("online", "online"))  # nothing changed: nothing sent
    assert session.send_inventory(_inventory("online", "busy"))
    frames = [json.loads(f) for f in session.data_to_send()[1:]]
    assert [f["full"] for f in frames] == [True, False]
    assert [n["state"] for n in frames[1]["numbers"]] == ["busy"]


def test_a_welcome_beyond_any_seq_assigned_fails_the_session_and_nothing_more_is_answered():
    from gateway.uplink.protocol import SessionState, UplinkSession

    session = UplinkSession("gw", "1", 0, max_known_seq=10)
    session.send_hello()
    event = session.receive('{"type": "welcome", "last_acked_seq": 11}')
    assert isinstance(event, FrameRejected) and event.reason is ErrorReason.BAD_ACK
    assert session.state is SessionState.FAILED and not session.welcomed
    finish = '{"type": "lease.finish", "command_id": "c1", "lease_id": "l1"}'
    assert isinstance(session.receive(finish), FrameRejected)  # not run: the session is closing
    assert [json.loads(f)["reason"] for f in session.data_to_send()[1:]] == ["bad_ack"]
    session.close()
    session.connection_lost()
    assert session.state is SessionState.CLOSED


def test_commands_and_acks_before_the_welcome_are_unexpected():
    from gateway.uplink.protocol import UplinkSession

    session = UplinkSession("gw", "1", 0)
    session.send_hello()
    session.data_to_send()
    event = session.receive('{"type": "lease.finish", "command_id": "c1", "lease_id": "l1"}')
    assert isinstance(event, FrameRejected) and event.reason is ErrorReason.UNEXPECTED and event.frame_id == "c1"
    assert isinstance(session.receive('{"type": "ack", "seq": 1}'), FrameRejected)
    assert [json.loads(f)["reason"] for f in session.data_to_send()] == ["unexpected", "unexpected"]


def test_every_session_state_has_a_way_out_and_only_ready_sends_sequenced_frames():
    from gateway.uplink.protocol import MAY_SEND, TRANSITIONS, SessionError, SessionInput, SessionState, UplinkSession

    for state in SessionState:
        if state is not SessionState.CLOSED:
            assert TRANSITIONS[(state, SessionInput.CONNECTION_LOST)] is SessionState.CLOSED
        sends_sequenced = bool({"sms", "lease"} & MAY_SEND[state])
        assert sends_sequenced is (state is SessionState.READY), state
    assert [s for (s, i), t in TRANSITIONS.items() if t is SessionState.READY] == [SessionState.SYNCING]
    with pytest.raises(SessionError, match="full_inventory_sent in state connecting"):
        UplinkSession("gw", "1", 0)._move(SessionInput.FULL_INVENTORY_SENT)


def test_error_answers_waiting_to_be_written_are_capped_and_the_excess_counted():
    from gateway.uplink.protocol import MAX_UNSEQUENCED, UplinkSession

    session = UplinkSession("gw", "1", 0)
    session.send_hello()
    session.data_to_send()
    for _ in range(MAX_UNSEQUENCED + 50):
        session.receive("not json")  # nobody drains: a stalled writer
    assert len(session.data_to_send()) == MAX_UNSEQUENCED and session.errors_dropped == 50
    session.receive("not json")  # drained: answered again
    assert len(session.data_to_send()) == 1


@pytest.mark.parametrize("verb", ["repeat", "finish", "cancel"])
def test_each_lease_verb_parses_to_its_enum_member_and_runs_an_engine_step(verb):
    from gateway.runtime.uplink_port import LEASE_ACTIONS
    from gateway.uplink.protocol import LeaseAction, LeaseVerb

    event = parse(json.dumps({"type": f"lease.{verb}", "command_id": "c1", "lease_id": "L1"}), gateway_id="gw")
    assert event == LeaseAction("c1", "L1", LeaseVerb(verb))
    assert LEASE_ACTIONS[event.action].__name__ == verb  # LeaseEngine.repeat / finish / cancel


def test_an_unknown_lease_verb_is_an_unknown_frame_type():
    event = parse(json.dumps({"type": "lease.extend", "command_id": "c1", "lease_id": "L1"}), gateway_id="gw")
    assert isinstance(event, FrameRejected) and event.reason is ErrorReason.UNKNOWN_TYPE
