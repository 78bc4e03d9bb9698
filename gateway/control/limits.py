"""Bounds on the daemon's HTTP listeners, which aiohttp leaves to the application.

aiohttp bounds a request's lines, fields, header count and body (``max_line_size``,
``max_field_size``, ``max_headers``, ``client_max_size``) and closes a keep-alive connection idle
after a response (``keepalive_timeout``), but it waits for the *first* request head forever and
accepts every connection the kernel hands it. ~1,100 half-sent requests once took the daemon to
its 1,024-descriptor limit: /status stopped answering, an unplugged modem could not reopen its
port, the uplink could not reconnect. So each listener gets a :class:`ConnectionCap`:

* at most ``max_connections`` at once; at the cap the connection that has waited longest for a
  request head (new, or kept alive after an answer) is closed to make room, and when every
  connection is busy with a request the newcomer is closed at once;
* a connection whose request head is not complete ``head_timeout`` seconds after it opened (or
  after its last answer) is closed; the handler runs under ``request_timeout``, body included;
* accept() failures (EMFILE and kin) are logged once per minute with a count, not per attempt.
"""

from __future__ import annotations

import asyncio
import collections
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("gateway.control")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_connections: int = 64  # per listener
    head_timeout: float = 5.0  # from connect to a complete request head
    request_timeout: float = 10.0  # a handler, body read included
    keepalive_timeout: float = 5.0  # idle after a response
    max_body: int = 64 * 1024
    max_line: int = 4096
    max_field: int = 4096
    max_headers: int = 32
    lingering_time: float = 1.0  # reading what is left of an unread body after an answer

    def runner_options(self) -> dict[str, object]:
        """Keyword arguments for ``web.AppRunner`` (passed on to aiohttp's RequestHandler)."""
        return {"keepalive_timeout": self.keepalive_timeout, "max_line_size": self.max_line,
                "max_field_size": self.max_field, "max_headers": self.max_headers, "access_log": None,
                "lingering_time": self.lingering_time,
                # A client that goes away does not cancel its handler: a lease command runs to its
                # end (bounded by request_timeout) so its decision and follow-up stay together.
                "handler_cancellation": False, "handle_signals": False}


class ConnectionCap:
    """A protocol factory around aiohttp's: counts, caps and times out connections."""

    REPORT_EVERY = 60.0  # seconds between two log lines about closed connections

    def __init__(self, make_protocol: Callable[[], asyncio.Protocol], limits: HttpLimits, name: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make = make_protocol
        self.limits = limits
        self.name = name
        self.waiting: collections.OrderedDict[asyncio.BaseTransport, asyncio.TimerHandle] = collections.OrderedDict()
        self.busy: set[asyncio.BaseTransport] = set()
        self.closed_at_cap = self.timed_out = self.evicted = 0
        self._clock = clock
        self._reported_at: float | None = None

    def __call__(self) -> asyncio.Protocol:
        return _Capped(self)

    @property
    def open(self) -> int:
        return len(self.waiting) + len(self.busy)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if self.open >= self.limits.max_connections:
            if not self.waiting:
                self.closed_at_cap += 1
                self._report()
                return False
            oldest, timer = self.waiting.popitem(last=False)
            timer.cancel()
            self.evicted += 1
            self._report()
            oldest.abort()
        loop = asyncio.get_running_loop()
        self.waiting[transport] = loop.call_later(self.limits.head_timeout, self._expire, transport)
        return True

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """A complete request head arrived (called from the request middleware)."""
        timer = self.waiting.pop(transport, None) if transport is not None else None
        if timer is not None:
            timer.cancel()
            self.busy.add(transport)

    def request_done(self, transport: asyncio.BaseTransport | None) -> None:
        """The answer is written: a kept-alive connection is idle again, evictable and timed."""
        if transport is not None and transport in self.busy and not transport.is_closing():
            self.busy.discard(transport)
            loop = asyncio.get_running_loop()
            self.waiting[transport] = loop.call_later(self.limits.head_timeout, self._expire, transport)

    def released(self, transport: asyncio.BaseTransport) -> None:
        timer = self.waiting.pop(transport, None)
        if timer is not None:
            timer.cancel()
        self.busy.discard(transport)

    def _expire(self, transport: asyncio.BaseTransport) -> None:
        if self.waiting.pop(transport, None) is not None:
            self.timed_out += 1
            self._report()
            transport.abort()

    def _report(self) -> None:
        """One warning a minute while connections are being closed, with the running counts."""
        now = self._clock()
        if self._reported_at is not None and now - self._reported_at < self.REPORT_EVERY:
            return
        self._reported_at = now
        log.warning("http.connections_closed", listener=self.name, open=self.open,
                    max_connections=self.limits.max_connections, idle_evicted=self.evicted,
                    head_timed_out=self.timed_out, refused_all_busy=self.closed_at_cap)

    def close_all(self) -> None:
        for transport in [*self.waiting, *self.busy]:
            transport.abort()


class _Capped(asyncio.Protocol):
    """Hands the connection to aiohttp's protocol only once the cap admitted it."""

    def __init__(self, cap: ConnectionCap) -> None:
        self._cap = cap
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._cap.admit(transport):
            transport.abort()
            return
        self._transport = transport
        self._inner = self._cap._make()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._cap.released(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None


class AcceptErrorLog:
    """An event-loop exception handler that reports accept() failures once per ``every`` seconds
    with how many happened, and passes anything else to the handler it replaced. asyncio logs a
    traceback for each failed accept() (and retries every second per listener)."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self._clock = every, clock
        self.count = 0
        self._last: float | None = None
        self._previous: Callable | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._previous = loop, loop.get_exception_handler()
        loop.set_exception_handler(self)

    def uninstall(self) -> None:
        if self._loop is not None and self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        if not str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            if self._previous is not None:
                self._previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        self.count += 1
        now = self._clock()
        if self._last is None or now - self._last >= self.every:
            log.error("http.accept_failed", error=str(context.get("exception")), failures=self.count,
                      hint="out of file descriptors or memory; accepting is retried every second")
            self._last = now


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (systemd's default soft limit
    is 1,024; modems, the uplink and the listeners share it). Returns (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("process.open_files_limit", soft=soft, hard=hard, raised=False, error=str(exc))
            return soft, soft
    log.info("process.open_files_limit", before=soft, soft=max(soft, target), hard=hard)
    return soft, max(soft, target)
