"""The agent endpoint: the hub's POSTs (any path) on aiohttp, answered in the protocol's format.

Bounded everywhere: the body (64 KiB on the wire, 256 KiB inflated: a gzip bomb is refused at the
limit), requests a second (a token bucket, 100/s with bursts of 200: the hub polls every 10-20 s
and bursts GET_NUMBER), requests at once (16 answered, 64 more waiting their turn; beyond that
``busy`` at once: the hub's own test sends 30 GET_NUMBER together).
The key is compared in constant time. Every answer, refusals included, is
``{"status": ..., ...}`` JSON; a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gateway.smshub import protocol
from gateway.smshub.desk import HubDesk
from gateway.smshub.settings import SmshubConfig
from gateway.store import StoreError

log = structlog.get_logger("gateway.smshub.agent")
MAX_WAITING = 64  # requests waiting for one of the ``concurrent`` turns


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; clock injected."""

    def __init__(self, rate: float, burst: int, mono: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._mono = rate, burst, mono
        self.tokens, self.at = float(burst), mono()

    def take(self) -> bool:
        now = self._mono()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class HubAgent:
    def __init__(self, settings: SmshubConfig, desk: HubDesk, call: Callable[..., Awaitable[Any]], *,
                 limits: protocol.Limits = protocol.Limits(), mono: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.desk = desk
        self._call = call
        self.limits = limits
        self.bucket = TokenBucket(settings.rate, settings.burst, mono)
        self.in_flight = 0  # answered or waiting
        self._turns = asyncio.Semaphore(settings.concurrent)
        self.refused: dict[str, int] = {}  # HTTP status -> count, for /status and /metrics
        self.answered: dict[str, int] = {}  # action -> count
        self.address: tuple[str, int] | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.limits.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False, keepalive_timeout=30.0)
        await self._runner.setup()
        host, port = self.settings.listen
        site = web.TCPSite(self._runner, host, port, backlog=128)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.address = sockets[0].getsockname()[:2] if sockets else (host, port)
        log.info("smshub.listening", address=f"{self.address[0]}:{self.address[1]}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._refuse(request, protocol.Rejected("only POST is answered", 405))
        if not self.bucket.take():
            return self._refuse(request, protocol.Rejected("rate limited: too many requests a second", 429))
        if self.in_flight >= self.settings.concurrent + MAX_WAITING:
            return self._refuse(request, protocol.Rejected("busy: too many requests at once", 429))
        self.in_flight += 1
        try:
            async with self._turns:
                return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        if isinstance(body, protocol.Rejected):
            return self._refuse(request, body)
        inflated = protocol.inflate(body, request.headers.get("Content-Encoding"), self.limits)
        if isinstance(inflated, protocol.Rejected):
            return self._refuse(request, inflated)
        parsed = protocol.parse_request(inflated, self.settings.key, request.headers.get("Authorization"))
        if isinstance(parsed, protocol.Rejected):
            return self._refuse(request, parsed)
        action = type(parsed).__name__
        try:
            if isinstance(parsed, protocol.GetServices):
                reply = await self._call(self.desk.services)
            elif isinstance(parsed, protocol.GetNumber):
                reply = await self._call(self.desk.get_number, parsed)
            else:
                reply = await self._call(self.desk.finish, parsed)
        except StoreError as exc:  # a full or failing disk: nothing was committed; the hub asks again
            log.error("smshub.request_failed", action=action, error=str(exc))
            return self._reply(request, protocol.error("the agent cannot store this now; try again"), 503)
        self.answered[action] = self.answered.get(action, 0) + 1
        return self._reply(request, reply, 200)

    async def _read(self, request: web.Request) -> bytes | protocol.Rejected:
        """The body, refused as soon as it passes the limit (never buffered past it)."""
        if request.content_length is not None and request.content_length > self.limits.max_body:
            return protocol.Rejected(f"body larger than {self.limits.max_body} bytes", 413)
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(16 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.limits.max_body:
                return protocol.Rejected(f"body larger than {self.limits.max_body} bytes", 413)
            chunks.append(chunk)

    def _refuse(self, request: web.Request, rejected: protocol.Rejected) -> web.Response:
        key = str(rejected.http_status)  # bounded: the error text may quote what the caller sent
        self.refused[key] = self.refused.get(key, 0) + 1
        log.warning("smshub.refused", status=rejected.http_status, error=rejected.error, peer=request.remote)
        response = self._reply(request, protocol.error(rejected.error), rejected.http_status)
        if rejected.http_status in (413, 429):
            response.force_close()  # an oversized or flooding client loses its connection
        return response

    @staticmethod
    def _reply(request: web.Request, reply: dict, status: int) -> web.Response:
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "").lower() or \
            request.headers.get("Content-Encoding", "").lower() == "gzip"
        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        return web.Response(body=protocol.encode(reply, gzipped=gzipped), status=status, headers=headers,
                            content_type="application/json", charset="utf-8")
