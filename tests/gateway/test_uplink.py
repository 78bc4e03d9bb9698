"""The uplink over real WebSockets on loopback: the whole path, schemas, reconnects, resume."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import run, wait_until
from tests.gateway.uplink_env import Rig, validate_frames


def test_leased_sms_reaches_the_marketplace_and_unleased_never_does(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 3, health_interval=0.3) as rig:
            numbers = rig.numbers()
            result = await rig.open("deal-1", numbers[0])
            assert result["ok"] and result["state"] == "waiting", result
            by_criteria = await rig.open("deal-2", service="whatsapp", country="RU", exclude_prefixes=[numbers[0]])
            assert by_criteria["ok"] and by_criteria["number"] == numbers[1], by_criteria
            refused = await rig.open("deal-3", numbers[2], service="sberbank", category="banking")
            assert not refused["ok"] and refused["reason"] == "service_denied"
            rig.farm.send_sms(0, "Telegram", "Telegram code 11111 😀 " * 5, shuffle=True)
            rig.farm.send_sms(2, "+79161234567", "this number has no lease")
            await wait_until(lambda: len(rig.market.sms()) == 1, 10, "the leased SMS at the marketplace")
            await asyncio.sleep(0.5)
            (sms,) = rig.market.sms()
            assert sms["lease_id"] == "deal-1" and sms["text"] == "Telegram code 11111 😀 " * 5 and sms["parts"] == 2
            assert all("no lease" not in (s["text"] or "") for s in rig.market.sms())
            # one frame per SMS: the lease's new state and count ride in the sms frame, no lease frame follows
            (deal_1,) = [l for l in rig.market.leases() if l["lease_id"] == "deal-1"]
            assert (deal_1["state"], deal_1["sms_count"]) == ("received", 1), deal_1
            assert [f.get("event") for f in rig.market.frames_in if f.get("lease_id") == "deal-1"
                    and f["type"] in ("sms", "lease")] == ["opened", None]
            finish = await rig.market.handle_http(_post("/leases/deal-1/finish"))
            assert finish[1]["ok"] and finish[1]["state"] == "finished"
            await wait_until(lambda: any(l["lease_id"] == "deal-1" and l["state"] == "finished"
                                         for l in rig.market.leases()), 5, "lease state at the marketplace")
            await wait_until(lambda: any(f["type"] == "health" for f in rig.market.frames_in), 5, "a health frame")
            await wait_until(lambda: rig.gateway.read(lambda s: s.acked_seq()) > 0, 5, "acks to be persisted")
            seen = validate_frames(rig.market.frames_in) | validate_frames(rig.market.frames_out)
            assert {"hello", "inventory", "sms", "lease", "result", "health", "welcome", "ack", "lease.open",
                    "lease.finish"} <= seen
            inventories = [f for f in rig.market.frames_in if f["type"] == "inventory"]
            assert inventories[0]["full"] is True
            assert any(f["capacity"] == {"RU/SimNet": 3} for f in inventories)
            busy = [n for f in inventories for n in f["numbers"] if n["state"] == "busy"]
            assert {n["msisdn"] for n in busy} >= {numbers[0], numbers[1]}  # deltas follow the leases

    run(scenario(), 60)


def test_commands_are_idempotent_by_command_id(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            number = rig.numbers()[0]
            frame = {"type": "lease.open", "command_id": "cmd-42", "lease_id": "deal-x", "service": "telegram",
                     "number": number}
            first = await rig.market.command(dict(frame))
            again = await rig.market.command(dict(frame))
            assert first == again and first["ok"]
            other = await rig.market.command({**frame, "command_id": "cmd-43"})
            assert not other["ok"] and other["reason"] == "duplicate_lease"

    run(scenario(), 60)


def test_a_burst_is_acknowledged_by_one_ack_and_the_gateway_drops_an_event_only_once_acked(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            await rig.open("deal-b", rig.numbers()[0])
            await rig.market.stop()
            for n in range(20):
                rig.farm.send_sms(0, "Service", f"burst #{n}")
            await wait_until(lambda: len(rig.gateway.store_messages()) == 20, 15, "SMS stored locally")
            held = rig.gateway.read(lambda s: [row[0] for row in s.outbox() if row[1] == "sms"])
            assert len(held) == 20  # no ack yet: every event is still in the outbox
            await rig.restart_market()
            await wait_until(lambda: len(rig.market.sms("deal-b")) == 20, 15, "the replay")
            # the gateway takes each ack for every seq up to it: nothing is held or resent after
            await wait_until(lambda: rig.gateway.read(lambda s: s.acked_seq()) == max(held), 5, "acks persisted")
            # the replay arrives in one go: the marketplace stores it in bursts, one ack for several
            assert 1 <= rig.market.acks_sent < 20, rig.market.acks_sent
            acks = [f["seq"] for f in rig.market.frames_out if f["type"] == "ack"][-rig.market.acks_sent:]
            assert acks == sorted(acks) and acks[-1] == max(held)
            assert rig.gateway.read(lambda s: [row for row in s.outbox() if row[1] == "sms"]) == []
            assert all(s["deliveries"] == 1 for s in rig.market.sms())

    run(scenario(), 60)


def test_the_reference_marketplace_acks_what_came_together_once_and_only_once_it_is_stored(tmp_path):
    """A raw gateway: three sequenced frames sent at once (one of them as a gateway queued it
    before the lease rode in the sms frame) get one ack for the highest seq, after all three are
    in the marketplace's database; a frame sent after the ack gets its own."""
    import json

    from websockets.asyncio.client import connect

    from gateway.tools.market import Market
    from gateway.uplink.protocol import SUBPROTOCOL
    from tests.gateway.uplink_env import TOKEN

    market = Market(str(tmp_path / "market.db"), TOKEN, ack_delay=0.5)  # longer than sending three frames takes

    def sms(seq: int, lease: dict | None) -> str:
        frame = {"type": "sms", "seq": seq, "msg_id": f"m{seq}", "lease_id": "L1", "number": "+79161234567",
                 "sender": "Svc", "text": f"code {seq}", "parts": 1, "complete": True, "encoding": "gsm7",
                 "network_time": None, "received_at": 1764000000.0 + seq}
        return json.dumps(frame | ({"lease": lease} if lease else {}))

    async def scenario():
        await market.start("127.0.0.1", 0)
        url = f"ws://127.0.0.1:{market.address[1]}/v1"
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with connect(url, subprotocols=[SUBPROTOCOL], additional_headers=headers) as ws:
                await ws.send(json.dumps({"type": "hello", "v": 1, "gateway_id": "raw", "version": "t",
                                          "capabilities": ["sms"], "last_acked_seq": 0}))
                assert json.loads(await ws.recv()) == {"type": "welcome", "last_acked_seq": 0}
                await ws.send(json.dumps({"type": "lease", "seq": 1, "lease_id": "L1", "state": "waiting",
                                          "event": "opened", "number": "+79161234567", "service": "telegram",
                                          "at": 1764000000.0, "opened_at": 1764000000.0, "deadline": 1764000300.0,
                                          "ended_at": None, "sms_count": 0}))
                await ws.send(sms(2, None))  # as queued before 2026-11-26: no lease in it
                await ws.send(sms(3, {"state": "received", "sms_count": 2, "deadline": 1764000903.0}))
                assert json.loads(await ws.recv()) == {"type": "ack", "seq": 3}
                assert [s["seq"] for s in market.sms()] == [2, 3] and market.gateway_state("raw")["acked_seq"] == 3
                (lease,) = market.leases()
                assert (lease["state"], lease["sms_count"]) == ("received", 2)
                await ws.send(sms(4, {"state": "received", "sms_count": 3, "deadline": 1764000904.0}))
                assert json.loads(await ws.recv()) == {"type": "ack", "seq": 4}
                assert market.acks_sent == 2
        finally:
            await market.stop()
            market.close()

    run(scenario(), 30)


def test_a_full_window_reopens_on_each_ack_the_sender_waking_on_its_one_event(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 2, window=2) as rig:
            await rig.open("deal-w", rig.numbers()[0])
            await rig.market.stop()
            for n in range(12):
                rig.farm.send_sms(0, "Service", f"window #{n}")
            await wait_until(lambda: len(rig.gateway.store_messages()) == 12, 15, "SMS stored locally")
            await rig.restart_market()
            await wait_until(lambda: len(rig.market.sms("deal-w")) == 12, 15, "the replay, two at a time")
            assert [s["text"] for s in rig.market.sms("deal-w")] == [f"window #{n}" for n in range(12)]
            await wait_until(lambda: rig.gateway.read(lambda s: s.acked_seq() >= s.max_seq()), 5, "all acked")
            assert rig.market.acks_sent >= 6  # never more than two unacknowledged: six windows at least

    run(scenario(), 60)


@pytest.mark.slow
def test_reconnect_replays_unacked_events_in_order_exactly_once(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            number = rig.numbers()[0]
            await rig.open("deal-r", number)
            await rig.market.stop()  # the marketplace goes away...
            for n in range(10):
                rig.farm.send_sms(0, "Service", f"while the marketplace was down #{n}")
            await wait_until(lambda: len(rig.gateway.store_messages()) == 10, 10, "SMS stored locally")
            await rig.restart_market(pause=0.5)  # ...and comes back
            await wait_until(lambda: len(rig.market.sms("deal-r")) == 10, 15, "the replay")
            texts = [s["text"] for s in rig.market.sms("deal-r")]
            assert texts == [f"while the marketplace was down #{n}" for n in range(10)]
            assert all(s["deliveries"] == 1 for s in rig.market.sms())
            await wait_until(lambda: rig.gateway.read(lambda s: s.acked_seq() >= s.max_seq()), 5, "all acked")

    run(scenario(), 60)


def _post(path: str, body: dict | None = None):
    import json

    from drivers.httpjson import HttpRequest

    return HttpRequest("POST", path, json.dumps(body or {}).encode())
