"""The daemon's two HTTP listeners on aiohttp.

* The control socket (Unix, 0660): ``GET /status``, ``GET /metrics``, ``GET /leases``,
  ``POST /leases`` and ``POST /leases/{id}/repeat|finish|cancel``. Reaching the socket is the
  authentication: only the daemon's user and group can.
* The TCP listener (``[control] listen``, loopback unless a password file is set): ``GET``/``HEAD``
  of ``/status``, ``/metrics`` and the dashboard (:mod:`gateway.dashboard.web`) and nothing else;
  phone numbers masked unless ``[control] show_numbers``. Any local process can reach a loopback port, a web page in a
  browser included, so it refuses a Host that is not a loopback name (DNS rebinding), any
  cross-origin request, and every method but GET/HEAD; it sends no CORS headers.

Both are bounded by :mod:`gateway.control.limits`: 64 connections each, 5 s to send a request
head, 10 s per request, 64 KiB per body, short header lines, few headers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from gateway.control import rules, unix, views
from gateway.control.limits import AcceptErrorLog, ConnectionCap, HttpLimits
from gateway.dashboard import password
from gateway.dashboard.snapshot import Snapshots, mask_number
from gateway.dashboard.web import DashboardRoutes, basic_auth_middleware
from gateway.store import StoreError

if TYPE_CHECKING:
    from gateway.runtime.gateway import Gateway

log = structlog.get_logger("gateway.control")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CAP_KEY = web.AppKey("cap", ConnectionCap)
LISTEN_HOST_KEY = web.AppKey("listen_host", str)  # a non-loopback [control] listen address, or ""


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def _bounded(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection busy while a request is handled (its head arrived) and idle again
    once the answer is written, bounds the request's time, and answers every failure as JSON
    with one sentence: never a traceback, never a dropped connection."""
    cap = request.app[CAP_KEY]
    cap.request_started(request.transport)
    response = await _answer(request, handler, cap.limits)
    if not response.prepared:  # a stream (the dashboard's events) has written and ended itself
        await response.prepare(request)
        await response.write_eof()
    cap.request_done(request.transport)  # a kept-alive connection waits for its next head like a new one
    return response


async def _answer(request: web.Request, handler: Handler, limits: HttpLimits) -> web.StreamResponse:
    try:
        async with asyncio.timeout(limits.request_timeout):
            return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: f"no route {request.method} {request.path[:200]}",
                   405: f"{request.method} is not allowed on {request.path[:200]}",
                   413: f"the body is larger than {limits.max_body} bytes"}.get(exc.status, exc.reason)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return _error(exc.status, message, **allow)
    except TimeoutError:
        unsure = "; a lease command may still complete: see GET /leases" if request.method == "POST" else ""
        return _error(408, f"the request took longer than {limits.request_timeout:g} s{unsure}")
    except StoreError as exc:  # e.g. the disk is full: nothing was decided, the caller may retry
        log.warning("control.store_unavailable", method=request.method, path=request.path[:200], error=str(exc))
        return _error(503, f"unavailable: the store cannot commit ({str(exc)[:200]}); nothing was changed, "
                           f"retry in a few seconds", **{"Retry-After": "5"})
    except Exception:
        log.exception("control.request_failed", method=request.method, path=request.path[:200])
        return _error(500, "internal error; the daemon logged it")


@web.middleware
async def _loopback_reads_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    refusal = rules.tcp_refusal(request.method, request.headers.get("Host"), request.headers.get("Origin"),
                                request.headers.get("Sec-Fetch-Site"), request.app[LISTEN_HOST_KEY] or None)
    if refusal is not None:
        allow = {"Allow": "GET, HEAD"} if refusal.status == 405 else {}
        return _error(refusal.status, refusal.message, **allow)
    return await handler(request)


@web.middleware
async def _no_browsers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser cannot reach a Unix socket; anything that says it is one is refused anyway."""
    if "Origin" in request.headers or "Sec-Fetch-Site" in request.headers:
        return _error(403, "cross-origin requests are refused")
    return await handler(request)


class ControlRoutes:
    """The request handlers, on top of the gateway's lease commands and views."""

    def __init__(self, gateway: Gateway, *, mono: Callable[[], float], wall: Callable[[], float]) -> None:
        self.gateway = gateway
        self._mono, self._wall = mono, wall
        self._registry = views.metrics_registry(gateway)
        config = gateway.config
        self.dashboard = DashboardRoutes(Snapshots(gateway, gateway.sampler, show_numbers=config.control_show_numbers,
                                                   mono=mono, wall=wall))
        try:
            stored = password.read_file(config.control_password_file) if config.control_password_file else None
        except password.PasswordFileError as exc:
            raise unix.ControlSocketError(f"[control] password_file {config.control_password_file}: {exc}") from None
        self._auth = password.BasicAuth(stored) if stored is not None else None

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(views.status_json(self.gateway))

    async def tcp_status(self, request: web.Request) -> web.Response:
        """``/status`` as a browser may read it: numbers masked unless ``show_numbers``."""
        body = views.status_json(self.gateway)
        if not self.gateway.config.control_show_numbers:
            for modem in body["modems"]:  # type: ignore[union-attr]
                modem["number"] = mask_number(modem["number"])
        return web.json_response(body)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=views.metrics_text(self._registry),
                            headers={"Content-Type": views.METRICS_CONTENT_TYPE})

    async def leases(self, request: web.Request) -> web.Response:
        now = self._mono()
        return web.json_response([views.lease_json(lease, now) for lease in self.gateway.core.snapshot.leases])

    async def open_lease(self, request: web.Request) -> web.Response:
        body = await request.read()
        if body and request.content_type != "application/json":
            return _error(415, "send the lease as Content-Type: application/json")
        new_id = f"L{int(self._wall() * 1000):x}{random.randrange(16 ** 4):04x}"
        lease = rules.lease_open(body, new_id)
        if isinstance(lease, rules.Refusal):
            log.info("lease.open_refused", source="control", reason=lease.message)
            return _error(lease.status, lease.message)
        core = self.gateway.core
        # Shielded: a request timeout must not cut a decision off from its follow-up (timers, uplink).
        result = await asyncio.shield(self.gateway.local_command(
            core.open_lease, lease.lease_id, lease.number, lease.service, category=lease.category,
            wait_window=lease.wait_window))
        log.info("lease.open", source="control", lease=lease.lease_id, number=lease.number, service=lease.service,
                 ok=result["ok"], reason=result.get("reason"))
        return web.json_response(result, status=201 if result["ok"] else 409)

    async def lease_action(self, request: web.Request) -> web.Response:
        lease_id, action = request.match_info["lease_id"], request.match_info["action"]
        refusal = rules.lease_id(lease_id)
        if refusal is not None:
            return _error(refusal.status, refusal.message)
        core = self.gateway.core
        step = {"repeat": core.repeat, "finish": core.finish, "cancel": core.cancel}[action]  # the route's three
        result = await asyncio.shield(self.gateway.local_command(step, lease_id))
        return web.json_response(result, status=200 if result["ok"] else 409)

    def socket_app(self, limits: HttpLimits) -> web.Application:
        app = web.Application(middlewares=[_bounded, _no_browsers], client_max_size=limits.max_body)
        app.router.add_get("/status", self.status)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/leases", self.leases)
        app.router.add_post("/leases", self.open_lease)
        app.router.add_post(r"/leases/{lease_id}/{action:repeat|finish|cancel}", self.lease_action)
        return app

    def tcp_app(self, limits: HttpLimits) -> web.Application:
        middlewares = [_bounded, _loopback_reads_only]
        if self._auth is not None:
            middlewares.append(basic_auth_middleware(self._auth))
        app = web.Application(middlewares=middlewares, client_max_size=limits.max_body)
        host = self.gateway.config.control_listen[0]
        app[LISTEN_HOST_KEY] = "" if rules.is_loopback_host(host) or host == "localhost" else host
        app.router.add_get("/status", self.tcp_status)
        app.router.add_get("/metrics", self.metrics)
        self.dashboard.add_to(app)
        return app


class ControlServer:
    """Starts and stops both listeners; owns their sockets, caps and the accept-error log."""

    def __init__(self, routes: ControlRoutes, *, listen: tuple[str, int], socket_path: str,
                 link_from: str | None = None, limits: HttpLimits | None = None) -> None:
        """``link_from``: a state directory to link to the socket from (when the socket lives in
        systemd's runtime directory), or None."""
        self.routes, self.listen, self.socket_path, self.link_from = routes, listen, socket_path, link_from
        self.limits = limits or HttpLimits()
        self.address: tuple[str, int] | None = None
        self.caps: dict[str, ConnectionCap] = {}
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._link: str | None = None
        self._bound = False  # only a socket this server made is removed on stop
        self._accept_errors = AcceptErrorLog()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._accept_errors.install(loop)
        sock = unix.bind(self.socket_path)
        self._bound = True
        try:
            await self._serve("socket", self.routes.socket_app(self.limits),
                              lambda cap: loop.create_unix_server(cap, sock=sock, backlog=128))
        except BaseException:
            sock.close()
            raise
        self._link = unix.link_from_state_dir(self.socket_path, self.link_from) if self.link_from else None
        host, port = self.listen
        try:
            server = await self._serve("tcp", self.routes.tcp_app(self.limits),
                                       lambda cap: loop.create_server(cap, host, port, backlog=128))
        except OSError as exc:
            await self.stop()
            raise unix.ControlSocketError(f"cannot listen on {host}:{port} ([control] listen): "
                                          f"{exc.strerror or exc}; is another simgw daemon using it?") from None
        sockname = server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        log.info("control.listening", socket=self.socket_path, tcp=f"{host}:{self.address[1]}", read_only_tcp=True,
                 max_connections=self.limits.max_connections, head_timeout=self.limits.head_timeout)

    async def _serve(self, name: str, app: web.Application,
                     listen: Callable[[ConnectionCap], Awaitable[asyncio.AbstractServer]]) -> asyncio.AbstractServer:
        runner = web.AppRunner(app, **self.limits.runner_options())
        cap = ConnectionCap(lambda: runner.server(), self.limits, name)  # type: ignore[misc]
        app[CAP_KEY] = cap
        await runner.setup()
        self._runners.append(runner)
        server = await listen(cap)
        self._servers.append(server)
        self.caps[name] = cap
        return server

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for cap in self.caps.values():
            cap.close_all()
        for runner in self._runners:
            await runner.cleanup()
        if self._bound:
            unix.remove(self.socket_path, self._link)
        self._accept_errors.uninstall()
