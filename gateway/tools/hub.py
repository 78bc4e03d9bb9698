"""A reference hub: the SMSHub side of the protocol, for tests and for suppliers to try a setup.

It does what the published document says the hub does: polls GET_SERVICES, buys numbers with
GET_NUMBER, finishes activations with FINISH_ACTIVATION, and receives PUSH_SMS on its own URL,
checking each the way the hub's acceptance tests do (numeric smsId and phone with the country
code, a User-Agent, gzip, the key; a push of an smsId it already answered SUCCESS is recorded as
a failure). It can answer pushes with something other than SUCCESS, or go away, on command.
Not part of the daemon: ``simgw run`` never imports it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from gateway.smshub import protocol
from gateway.smshub.protocol import Flavour

log = structlog.get_logger("gateway.tools.hub")
PUSH_MODES = ("success", "error", "http500", "stop")  # stop: OnlineSim's NO_OPERATION


@dataclass(slots=True)
class SeenPush:
    sms_id: int
    phone: int
    phone_from: str
    text: str
    at: float
    answer: str


@dataclass(slots=True)
class HubLog:
    """What the hub saw; kept across its own restarts (the object outlives its servers)."""

    pushes: list[SeenPush] = field(default_factory=list)
    accepted: dict[int, SeenPush] = field(default_factory=dict)  # smsId -> the push answered SUCCESS
    after_success: list[SeenPush] = field(default_factory=list)  # the hub's test 2: must stay empty
    violations: list[str] = field(default_factory=list)  # the hub's tests 3 and 4, and the headers
    services: dict | None = None  # the last GET_SERVICES answer
    calls: list[tuple[str, int, float]] = field(default_factory=list)  # (action, HTTP status, seconds)


class RefHub:
    def __init__(self, agent_url: str, key: str, *, flavour: Flavour = Flavour.SMSHUB) -> None:
        self.agent_url = agent_url
        self.key = key
        self.flavour = flavour
        self.log = HubLog()
        self.mode = "success"
        self.push_address: tuple[str, int] | None = None
        self._push_runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task | None = None

    # -------------------------------------------------------------------------- PUSH_SMS side
    async def start_push_server(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", self._on_push)
        self._push_runner = web.AppRunner(app, access_log=None)
        await self._push_runner.setup()
        site = web.TCPSite(self._push_runner, host, port)
        await site.start()
        self.push_address = site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]

    async def stop_push_server(self) -> None:
        """The hub goes away: pushes meet a refused connection until it starts again."""
        if self._push_runner is not None:
            await self._push_runner.cleanup()
            self._push_runner = None

    @property
    def push_url(self) -> str:
        assert self.push_address is not None
        return f"http://{self.push_address[0]}:{self.push_address[1]}/agent/api/sms"

    async def _on_push(self, request: web.Request) -> web.Response:
        raw = await request.read()
        push = self._check_push(request, raw)
        if push is None:
            return web.json_response(protocol.error("bad PUSH_SMS"), status=400)
        answer = self.mode
        if answer == "success":
            if push.sms_id in self.log.accepted:
                self.log.after_success.append(push)
            else:
                self.log.accepted[push.sms_id] = push
        push.answer = answer
        self.log.pushes.append(push)
        if answer == "http500":
            return web.Response(status=500, text="hub trouble")
        reply = {"success": protocol.success(), "error": protocol.error("hub says no"),
                 "stop": {"status": "ERROR", "error": "NO_OPERATION"}}[answer]
        return web.Response(body=protocol.encode(reply), headers={"Content-Encoding": "gzip"},
                            content_type="application/json")

    def _check_push(self, request: web.Request, raw: bytes) -> SeenPush | None:
        problems = []
        if not request.headers.get("User-Agent"):
            problems.append("no User-Agent")
        if request.headers.get("Content-Encoding", "").lower() != "gzip":
            problems.append("not gzip")
        try:
            body = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        except (OSError, ValueError):
            self.log.violations.append("PUSH_SMS body is not JSON")
            return None
        if self.flavour is Flavour.ONLINESIM and request.headers.get("Authorization") != f"Bearer {self.key}":
            problems.append("no Bearer key")
        if body.get("key") != self.key or body.get("action") != protocol.PUSH_SMS:
            problems.append("wrong key or action")
        for name, kind in (("smsId", int), ("phone", int), ("phoneFrom", str), ("text", str)):
            value = body.get(name)
            if isinstance(value, bool) or not isinstance(value, kind):
                problems.append(f"{name} is not {kind.__name__}: {type(value).__name__}")
        self.log.violations += problems
        if problems:
            return None
        return SeenPush(body["smsId"], body["phone"], body["phoneFrom"], body["text"], time.monotonic(), "")

    # ----------------------------------------------------------------------------- hub -> agent
    async def call(self, action: str, **fields: Any) -> tuple[int, dict]:
        """One request to the agent as the hub sends it: gzip JSON, a User-Agent, the key."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        body = protocol.encode({"action": action, "key": self.key, **fields})
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip", "Accept-Encoding": "gzip",
                   "User-Agent": "simgw-refhub"}
        if self.flavour is Flavour.ONLINESIM:
            headers["Authorization"] = f"Bearer {self.key}"
        start = time.monotonic()
        async with self._session.post(self.agent_url, data=body, headers=headers) as response:
            reply = await response.json(content_type=None)
            self.log.calls.append((action, response.status, time.monotonic() - start))
            return response.status, reply

    async def get_services(self) -> dict:
        _, reply = await self.call(protocol.GET_SERVICES)
        self.log.services = reply
        return reply

    async def get_number(self, country: str, service: str, operator: str = "any",
                         exclude: list[str] | None = None, amount: float = 10.0, currency: int = 643) -> dict:
        fields: dict[str, Any] = {"country": country, "operator": operator, "service": service, "sum": amount,
                                  "currency": currency}
        if exclude is not None:
            fields["exceptionPhoneSet"] = exclude
        reply = (await self.call(protocol.GET_NUMBER, **fields))[1]
        if reply.get("status") == "SUCCESS":
            for name in ("number", "activationId"):
                if isinstance(reply.get(name), bool) or not isinstance(reply.get(name), int):
                    self.log.violations.append(f"GET_NUMBER {name} is not an integer: {reply.get(name)!r}")
        return reply

    async def finish(self, activation_id: int, status: int) -> dict:
        return (await self.call(protocol.FINISH_ACTIVATION, activationId=activation_id, status=status))[1]

    def available(self, country: str, operator: str, service: str) -> int:
        """The count the last GET_SERVICES gave for this key."""
        for entry in (self.log.services or {}).get("countryList", []):
            if entry.get("country") == country:
                return int(entry.get("operatorMap", {}).get(operator, {}).get(service, 0))
        return 0

    async def poll(self, interval: float) -> None:
        """GET_SERVICES every ``interval`` seconds, as the hub does every 10-20 s."""
        while True:
            try:
                await self.get_services()
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                log.warning("refhub.poll_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    # ---------------------------------------------------------------------------- control API
    async def start_control(self, host: str, port: int) -> tuple[str, int]:
        """HTTP+JSON for tests and people: GET /state; POST /buy {country, service, operator?,
        exclude?}; POST /finish {activationId, status}; POST /mode {push: success|error|http500|stop}."""
        app = web.Application()
        app.router.add_get("/state", self._state)
        app.router.add_post("/buy", self._buy)
        app.router.add_post("/finish", self._finish)
        app.router.add_post("/mode", self._mode)
        self._control_runner = web.AppRunner(app, access_log=None)
        await self._control_runner.setup()
        site = web.TCPSite(self._control_runner, host, port)
        await site.start()
        return site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({"mode": self.mode, "services": self.log.services, "pushes": len(self.log.pushes),
                                  "accepted": sorted(self.log.accepted), "after_success": len(self.log.after_success),
                                  "violations": self.log.violations[-20:]})

    async def _buy(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await self.get_number(body["country"], body["service"], body.get("operator", "any"),
                                                       body.get("exclude")))

    async def _finish(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(await self.finish(int(body["activationId"]), int(body["status"])))

    async def _mode(self, request: web.Request) -> web.Response:
        mode = (await request.json()).get("push")
        if mode not in PUSH_MODES:
            return web.json_response({"error": f"push must be one of {', '.join(PUSH_MODES)}"}, status=400)
        self.mode = mode
        return web.json_response({"mode": mode})

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for runner in (self._push_runner, self._control_runner):
            if runner is not None:
                await runner.cleanup()
        self._push_runner = self._control_runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None


async def run_hub(stop: asyncio.Event, *, agent_url: str, key: str, listen: tuple[str, int],
                  control: tuple[str, int] | None, flavour: Flavour, poll: float | None) -> int:
    """``simgw hub``: serve PUSH_SMS on ``listen``, the control API on ``control``, poll the agent."""
    hub = RefHub(agent_url, key, flavour=flavour)
    await hub.start_push_server(*listen)
    control_address = await hub.start_control(*control) if control else None
    if poll:
        hub._poller = asyncio.create_task(hub.poll(poll), name="refhub-poll")
    print(json.dumps({"hub": "ready", "push_url": hub.push_url, "agent": agent_url,
                      "control": f"{control_address[0]}:{control_address[1]}" if control_address else None}), flush=True)
    try:
        await stop.wait()
    finally:
        await hub.close()
    return 0
