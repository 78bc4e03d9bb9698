"""The I/O-free simgw.v1 codec: limits that PROTOCOL.md promises, checked without a socket."""

from __future__ import annotations

import json

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
