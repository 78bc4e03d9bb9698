"""A hostile marketplace: malformed, oversized, out-of-order, replayed and unauthorised frames.
Each is answered as PROTOCOL.md says, the connection stays up, and the other leases are served."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import run, wait_until
from tests.gateway.uplink_env import Rig, validate_frames


def test_twenty_six_kinds_of_bad_frames(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 3) as rig:
            n0, n1, _ = rig.numbers()
            assert (await rig.open("good", n0))["ok"]
            assert (await rig.open("busy", n1, service="viber"))["ok"]
            rig.farm.send_sms(1, "Viber", "Viber code 1")
            await wait_until(lambda: len(rig.market.sms("busy")) == 1, 10, "an SMS on lease 'busy'")
            connections_before = rig.market.connections
            seen = len(rig.market.frames_in)

            def answers():
                return [f for f in rig.market.frames_in[seen:] if f.get("type") in ("error", "result")]

            long_id = "x" * 200
            cases = [  # (what is sent, what must come back: ("error", reason) or ("result", reason or "ok"))
                ("not json at all", ("error", "invalid_json")),
                ("[1, 2, 3]", ("error", "not_an_object")),
                ('{"command_id": "h3"}', ("error", "missing_type")),
                ('{"type": "lease.explode", "command_id": "h4"}', ("error", "unknown_type")),
                ('{"type": 42}', ("error", "invalid_field")),
                ('{"type": "lease.open", "lease_id": "x6", "service": "tg"}', ("error", "invalid_field")),
                ('{"type": "lease.open", "command_id": 123, "lease_id": "x7", "service": "tg"}', ("error", "invalid_field")),
                ('{"type": "lease.open", "command_id": "h8", "lease_id": "x8", "service": ["tg"]}', ("error", "invalid_field")),
                (json.dumps({"type": "lease.open", "command_id": "h9", "lease_id": "x9", "service": "tg",
                             "wait_window": -5}), ("error", "invalid_field")),
                (json.dumps({"type": "lease.open", "command_id": "h10", "lease_id": "x10", "service": "tg",
                             "number": rig.numbers()[2], "wait_window": 3600}), ("result", "window_out_of_policy")),
                (json.dumps({"type": "lease.open", "command_id": "h11", "pad": "p" * 100_000}), ("error", "frame_too_large")),
                (b"\x00\x01binary", ("error", "binary_frame")),
                ('{"type": "ack", "seq": "7"}', ("error", "invalid_field")),
                ('{"type": "ack", "seq": 1000000}', ("error", "bad_ack")),
                (json.dumps({"type": "lease.open", "command_id": "h15", "lease_id": "x15", "service": "tg",
                             "number": "+10000000000"}), ("result", "number_offline")),
                ('{"type": "lease.finish", "command_id": "h16", "lease_id": "no-such-lease"}', ("result", "unknown_lease")),
                ('{"type": "welcome", "last_acked_seq": 0}', ("error", "unexpected")),
                ("[" * 100_000 + "]" * 100_000, ("error", "frame_too_large")),
                ("[" * 30_000, ("error", "invalid_json")),
                ('{"type": "ack", "seq": NaN}', ("error", "invalid_json")),
                ('{"type": "lease.cancel", "command_id": "h21", "lease_id": "good", "gateway_id": "someone-else"}',
                 ("error", "wrong_gateway")),
                ('{"type": "lease.cancel", "command_id": "h22", "lease_id": "busy"}', ("result", "not_cancellable")),
                (json.dumps({"type": "lease.repeat", "command_id": long_id, "lease_id": "busy"}), ("error", "invalid_field")),
                (json.dumps({"type": "lease.open", "command_id": "h24", "lease_id": "x24", "service": "tg",
                             "criteria": {"exclude_prefixes": "+7"}}), ("error", "invalid_field")),
                ('{"type": "ack", "seq": 1152921504606846976}', ("error", "invalid_field")),
                ('{"type": "lease.open", "command_id": "h26", "lease_id": "x26", "service": "webmoney"}',
                 ("result", "service_denied")),
            ]
            for sent, (kind, reason) in cases:
                before = len(answers())
                await rig.market.send_raw(sent)
                await wait_until(lambda: len(answers()) > before, 5, f"an answer to {str(sent)[:60]!r}")
                answer = answers()[before]
                assert answer["type"] == kind, (sent[:80], answer)
                assert answer.get("reason") == reason, (sent[:80], answer)
            # a replayed command gets the very first answer again and changes nothing
            replay = {"type": "lease.open", "command_id": "h10", "lease_id": "x10b", "service": "tg"}
            before = len(answers())
            await rig.market.send_raw(json.dumps(replay))
            await wait_until(lambda: len(answers()) > before, 5, "the replay's answer")
            assert answers()[before]["reason"] == "window_out_of_policy"
            # a stale ack is ignored without a word
            await rig.market.send_raw('{"type": "ack", "seq": 0}')
            # the connection stayed up, and every lease is still served
            assert rig.market.connections == connections_before
            rig.farm.send_sms(0, "Telegram", "still serving after all that")
            await wait_until(lambda: len(rig.market.sms("good")) == 1, 10, "an SMS on lease 'good'")
            assert len(cases) + 2 >= 20
            validate_frames(rig.market.frames_in)

    run(scenario(), 90)


@pytest.mark.slow
def test_a_command_flood_is_rate_limited_bounded_on_disk_and_the_keepalive_holds(tmp_path):
    """2,000 commands a second for four seconds: the gateway answers each, runs at most the burst
    plus the rate, stores a row only for those, and its keepalive (pings every 0.3 s, 1 s to
    answer) never times out behind the flood."""
    import time

    from gateway.uplink.protocol import COMMAND_BURST, COMMAND_RATE

    async def scenario():
        async with Rig(tmp_path, 1, ping_interval=0.3, ping_timeout=1.0) as rig:
            connections_before = rig.market.connections
            rows_before = rig.gateway.read(lambda store: store.command_count())
            seen = len(rig.market.frames_in)

            def results():
                return [f for f in rig.market.frames_in[seen:] if f.get("type") == "result"
                        and str(f.get("command_id", "")).startswith("flood-")]

            started = time.monotonic()
            flood = 0
            while time.monotonic() - started < 4.0:  # 2,000 commands/s for four seconds (1,400/s were measured)
                for _ in range(100):
                    await rig.market.send_raw(json.dumps({"type": "lease.finish", "command_id": f"flood-{flood}",
                                                          "lease_id": f"no-such-{flood}"}))
                    flood += 1
                await asyncio.sleep(max(0.0, started + flood / 2000 - time.monotonic()))
            await wait_until(lambda: len(results()) >= flood, 30, "an answer to every command of the flood")
            elapsed = time.monotonic() - started
            answers = results()
            limited = [f for f in answers if f.get("reason") == "rate_limited"]
            executed = [f for f in answers if f.get("reason") != "rate_limited"]
            print(f"flood: {flood} commands in {elapsed:.1f} s: {len(executed)} executed, {len(limited)} rate_limited")
            assert len({f["command_id"] for f in answers}) == flood
            assert all(f["reason"] == "unknown_lease" for f in executed)
            assert len(executed) <= COMMAND_BURST + COMMAND_RATE * elapsed + 1, (len(executed), elapsed)
            assert limited and all(not f["ok"] and f["retry_after"] > 0 for f in limited)
            rows = rig.gateway.read(lambda store: store.command_count()) - rows_before
            assert rows == len(executed), "a rate-limited command leaves no row"
            # the keepalive held: no reconnect, and the session still serves
            assert rig.market.connections == connections_before and rig.gateway.uplink.connected.is_set()
            (n0,) = rig.numbers()
            await asyncio.sleep(1.0)  # the bucket refills
            assert (await rig.open("after-flood", n0))["ok"]
            validate_frames(answers)

    run(scenario(), 120)
