"""The dashboard's routes on the read-only TCP listener: the page and its three files
(``GET /``, ``/static/...``), its data (``/dashboard.json``, ``/dashboard/charts.json``) and its
live stream (``GET /events``, server-sent events), plus HTTP Basic when a password file is set.

The stream is bounded like every other request on the listener: it lasts :data:`STREAM_SECONDS`
(under the listener's 10-s request bound), then ends; the browser's EventSource reconnects by
itself after ``retry`` ms. At most :data:`MAX_STREAMS` streams at once; one more gets 503."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from gateway.dashboard.password import BasicAuth
from gateway.dashboard.snapshot import Snapshots

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC = {"index.html": "text/html", "dashboard.css": "text/css", "dashboard.js": "text/javascript"}
INTERVAL = 1.0  # a change is on the page within about this long
STREAM_SECONDS = 8.0
RETRY_MS = 300
MAX_STREAMS = 16
CHECKS_AT_ONCE = 2  # scrypt runs in flight (each ~16 MiB); more wait their turn
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page loads only its own files and talks only to its own origin: no CDN, nothing inline.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


def _files() -> dict[str, bytes]:
    """The page's files, read once from the package (they ship in it: package-data)."""
    folder = resources.files("gateway.dashboard").joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in STATIC}


class DashboardRoutes:
    def __init__(self, snapshots: Snapshots, *, stream_seconds: float = STREAM_SECONDS,
                 interval: float = INTERVAL) -> None:
        self._snapshots = snapshots
        self._files = _files()
        self.stream_seconds, self.interval = stream_seconds, interval
        self.streams = 0

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/dashboard.json", self.state)
        app.router.add_get("/dashboard/charts.json", self.charts)
        app.router.add_get("/events", self.events)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._files["index.html"], content_type="text/html", charset="utf-8",
                            headers=SECURITY_HEADERS)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC or name == "index.html":
            raise web.HTTPNotFound()
        return web.Response(body=self._files[name], content_type=STATIC[name], charset="utf-8",
                            headers=SECURITY_HEADERS)

    async def state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshots.state(), headers=SECURITY_HEADERS)

    async def charts(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshots.charts(), headers=SECURITY_HEADERS)

    async def events(self, request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream; charset=utf-8"})
        if self.streams >= MAX_STREAMS:
            return web.json_response({"error": f"{MAX_STREAMS} dashboards are already open; retry later"},
                                     status=503, headers={"Retry-After": "5"})
        self.streams += 1
        try:
            return await self._stream(request)
        finally:
            self.streams -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream; charset=utf-8",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        charts_sent = None
        try:
            async with asyncio.timeout(self.stream_seconds + 1.0):  # a reader that stopped reading
                await response.write(f"retry: {RETRY_MS}\n\n".encode())
                loop = asyncio.get_running_loop()  # I/O timing, not the gateway's (injectable) clock
                end = loop.time() + self.stream_seconds
                while True:
                    await response.write(_event("state", self._snapshots.state()))
                    if self._snapshots.charts_version() != charts_sent:  # once a minute, or on a new SMS
                        charts = self._snapshots.charts()
                        await response.write(_event("charts", charts))
                        charts_sent = charts["version"]
                    if loop.time() + self.interval > end:
                        break
                    await asyncio.sleep(self.interval)
                await response.write_eof()
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.close()
        return response


def _event(kind: str, data: object) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def basic_auth_middleware(auth: BasicAuth) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """401 without the password, before any route runs. The slow check runs off the event loop,
    at most :data:`CHECKS_AT_ONCE` at a time."""
    gate = asyncio.Semaphore(CHECKS_AT_ONCE)

    @web.middleware
    async def require_password(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is None or not auth.remembered(header):
            async with gate:
                ok = header is not None and await asyncio.to_thread(auth.check, header)
            if not ok:
                return web.json_response({"error": "this listener needs the dashboard password (HTTP Basic)"},
                                         status=401, headers={"WWW-Authenticate": 'Basic realm="simgw", charset="UTF-8"'})
        return await handler(request)

    return require_password

