"""Hostile input on the agent endpoint of the real daemon (127.0.0.1): each gets a protocol error
reply ({"status": "ERROR", "error": ...}), nothing else changes, and every other deal keeps
working: a simgw.v1 lease receives its SMS during the flood, and the hub's next real request
is answered."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import aiohttp

import pytest

from gateway.domain.leases import LeaseState
from gateway.smshub import records
from tests.conftest import run, wait_until
from tests.gateway.smshub_env import KEY, HubRig


def state(rig: HubRig) -> tuple:
    """Everything a request could have changed."""
    def read(store):
        db = store.db
        return (db.execute("SELECT COUNT(*) FROM leases").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM hub_activations").fetchone()[0],
                db.execute("SELECT COUNT(*), MAX(status) FROM hub_activations WHERE status IS NOT NULL").fetchone()[:],
                db.execute("SELECT COUNT(*) FROM activations").fetchone()[0],
                db.execute("SELECT COUNT(*) FROM lease_events").fetchone()[0])
    return rig.gateway.read(read)


async def post(session: aiohttp.ClientSession, url: str, data: bytes, *, method: str = "POST",
               headers: dict | None = None) -> tuple[int, dict]:
    async with session.request(method, url, data=data, headers=headers or {}) as response:
        return response.status, json.loads(await response.read())


def test_each_hostile_request_gets_a_protocol_error_and_changes_nothing(tmp_path):
    async def scenario():
        async with HubRig(tmp_path, 2) as rig:
            sold = await rig.hub.get_number("russia", "vk")  # one real activation, to be left alone
            url = rig.hub.agent_url
            before = state(rig)
            bomb = gzip.compress(b" " * (64 * 1024 * 1024))
            cases = [
                ("wrong key", json.dumps({"action": "GET_SERVICES", "key": "guess"}).encode(), {}, "POST", 401),
                ("no key", json.dumps({"action": "GET_NUMBER", "country": "russia", "operator": "any",
                                       "service": "vk"}).encode(), {}, "POST", 401),
                ("wrong bearer", json.dumps({"action": "GET_SERVICES", "key": KEY}).encode(),
                 {"Authorization": "Bearer guess"}, "POST", 401),
                ("GET", b"", {}, "GET", 405),
                ("PUT", json.dumps({"action": "GET_SERVICES", "key": KEY}).encode(), {}, "PUT", 405),
                ("huge body", b"{" + b" " * (2 * 1024 * 1024), {}, "POST", 413),
                ("gzip bomb", bomb, {"Content-Encoding": "gzip"}, "POST", 413),
                ("malformed JSON", b'{"action": "GET_SERVICES", "key": ', {}, "POST", 400),
                ("not UTF-8", b'{"action": "\xff"}', {}, "POST", 400),
                ("wrong types", json.dumps({"action": "FINISH_ACTIVATION", "key": KEY, "status": "3",
                                            "activationId": str(sold["activationId"])}).encode(), {}, "POST", 400),
                ("finish with a bad status", json.dumps({"action": "FINISH_ACTIVATION", "key": KEY, "status": 2,
                                                         "activationId": sold["activationId"]}).encode(), {}, "POST", 400),
                ("unknown action", json.dumps({"action": "DROP_TABLE", "key": KEY}).encode(), {}, "POST", 400),
                ("unknown encoding", b"xx", {"Content-Encoding": "br"}, "POST", 415),
            ]
            async with aiohttp.ClientSession() as session:
                for name, data, headers, method, expected in cases:
                    status, reply = await post(session, url, data, method=method, headers=headers)
                    assert status == expected, (name, status, reply)
                    assert reply["status"] == "ERROR" and isinstance(reply["error"], str) and reply["error"], name
            assert state(rig) == before
            assert rig.gateway.core.engine.get(f"hub-{sold['activationId']}").state is LeaseState.WAITING
            assert (await rig.hub.finish(sold["activationId"], 3)) == {"status": "SUCCESS"}  # still served

    run(scenario())


@pytest.mark.slow
def test_a_flood_is_answered_in_the_protocols_format_while_other_deals_keep_working(tmp_path):
    """A bounded flood (4,000 requests over 64 connections, as fast as this machine sends them):
    every answer is protocol JSON (SUCCESS, or ERROR once past the rate limit); the agent stays
    bounded; a simgw.v1 lease gets its SMS meanwhile, and the hub's next request is answered."""
    async def scenario():
        async with HubRig(tmp_path, 3, rate=100.0) as rig:
            core = rig.gateway.core
            leased = rig.numbers()[0]
            await rig.gateway.call(core.open_lease, "V1", leased, "telegram")
            before = state(rig)
            body = gzip.compress(json.dumps({"action": "GET_SERVICES", "key": KEY}).encode())
            headers = {"Content-Encoding": "gzip"}
            replies: dict[str, int] = {}
            total = 4000
            sent = iter(range(total))
            start = time.monotonic()

            async def worker(session: aiohttp.ClientSession) -> None:
                for _ in sent:
                    try:
                        _, reply = await post(session, rig.hub.agent_url, body, headers=headers)
                        replies[reply["status"]] = replies.get(reply["status"], 0) + 1
                    except aiohttp.ClientError:  # a flooding connection may be closed on it
                        replies["closed"] = replies.get("closed", 0) + 1

            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                flood = asyncio.gather(*(worker(session) for _ in range(64)))
                rig.farm.send_sms(rig.modem_of(leased), "Telegram", "Telegram code during the flood")
                await flood
            elapsed = time.monotonic() - start
            print(f"flood: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s): {replies}")
            assert sum(replies.values()) == total
            assert set(replies) <= {"SUCCESS", "ERROR", "closed"} and replies.get("ERROR", 0) > 0
            assert replies.get("SUCCESS", 0) <= 200 + 100 * elapsed + 1  # the burst, then the rate
            assert rig.gateway.hub.agent.in_flight == 0
            await wait_until(lambda: core.engine.get("V1").sms_count == 1, 10, "the simgw.v1 lease's SMS")
            assert state(rig)[1:3] == before[1:3]  # no activation made or finished by the flood
            await asyncio.sleep(2.5)  # the bucket refills
            assert (await rig.hub.get_number("russia", "vk"))["status"] == "SUCCESS"

    run(scenario())


def test_a_full_disk_is_an_error_reply_and_the_hub_is_served_again_after(tmp_path):
    """A commit that fails (injected: the error SQLite gives on a full disk) answers GET_NUMBER
    and FINISH_ACTIVATION with a protocol ERROR, leases nothing, and the next request once the
    disk has room is served; a push waiting meanwhile is delivered then."""
    async def scenario():
        async with HubRig(tmp_path, 2, push_retry=0.3) as rig:
            sold = await rig.hub.get_number("russia", "vk")
            before = state(rig)
            rig.gateway.store._commit_fault = lambda: "database or disk is full"
            status, reply = await rig.hub.call("GET_NUMBER", country="russia", operator="any", service="wa")
            assert status == 503 and reply["status"] == "ERROR"
            status, reply = await rig.hub.call("FINISH_ACTIVATION", activationId=sold["activationId"], status=3)
            assert status == 503 and reply["status"] == "ERROR"
            assert len(rig.gateway.core.engine.active()) == 1
            rig.gateway.store._commit_fault = None
            assert state(rig) == before
            assert (await rig.hub.finish(sold["activationId"], 3)) == {"status": "SUCCESS"}
            assert (await rig.hub.get_number("russia", "wa"))["status"] == "SUCCESS"

    run(scenario())


def test_status_and_metrics_show_the_hub(tmp_path):
    """The read-only listener's /status and /metrics count what the agent answered and refused."""
    async def scenario():
        async with HubRig(tmp_path, 1) as rig:
            await rig.hub.get_services()
            async with aiohttp.ClientSession() as session:
                await post(session, rig.hub.agent_url, b'{"action": "GET_SERVICES", "key": "guess"}')
                host, port = rig.gateway.control.address
                async with session.get(f"http://{host}:{port}/status") as response:
                    hub = (await response.json())["smshub"]
                async with session.get(f"http://{host}:{port}/metrics") as response:
                    metrics = await response.text()
            assert hub["answered"] == {"GetServices": 1} and hub["refused"] == {"401": 1}
            assert 'simgw_smshub_requests_total{action="GetServices"} 1.0' in metrics
            assert "simgw_smshub_pushed_total 0.0" in metrics and 'simgw_smshub_refused_total{status="401"} 1.0' in metrics

    run(scenario())
