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
