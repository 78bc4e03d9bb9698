"""The WebSocket client to the marketplace: the asyncio shell around :class:`UplinkSession`.

One outbound connection (the Pi is behind NAT). Reconnects with tenacity: exponential backoff
with jitter up to a cap; a refused token waits the full cap every time and says so, since
retrying a wrong token fast helps nobody. Keepalive pings find a dead link within
``ping_interval + ping_timeout``. It only moves bytes: :class:`UplinkSession` decides what is
sent and in which order (``hello``, the ``welcome``, the full ``inventory``, then every outbox
event after the acknowledged seq, within a window); the tasks here feed it and write
:meth:`UplinkSession.data_to_send` under one lock.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential, wait_random
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from gateway.uplink.protocol import (
    COMMAND_BURST,
    COMMAND_RATE,
    SUBPROTOCOL,
    Acked,
    Command,
    FrameRejected,
    LeaseAction,
    OpenLease,
    SessionState,
    Throttled,
    TokenBucket,
    UplinkSession,
    Welcomed,
)
from gateway.uplink.url import redact_urls, url_problem

log = structlog.get_logger("gateway.uplink")
HARD_MAX_SIZE = 1024 * 1024  # beyond this websockets closes (1009); below it we answer with an error frame
ACK_COALESCE = 0.5  # seconds acks gather before one commit records them all
READ_TURN = 16  # frames read in a row before the reader lets other tasks run (an ack each: not after every one)
THROTTLE_LOG_EVERY = 10.0  # a flood of rate-limited commands is one log line per this many seconds


class UplinkConfigError(ValueError):
    """The uplink cannot work as configured (bad URL, insecure scheme to a remote host)."""


class AuthRejected(Exception):
    """The marketplace refused our token (HTTP 401/403 at the handshake)."""


class WelcomeRefused(ConnectionError):
    """The marketplace's welcome claimed a seq this gateway never assigned: we said ``bad_ack``,
    closed, and back off as for a failed attempt (its state needs a person, not a fast retry)."""


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    url: str
    token: str
    gateway_id: str
    version: str
    allow_insecure: bool = False
    ca_file: str | None = None
    window: int = 256
    ping_interval: float = 10.0
    ping_timeout: float = 10.0
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    health_interval: float = 30.0


class UplinkPort(Protocol):
    """What the client needs from the gateway; every async call may go to the core thread. The
    two plain calls answer at once from the event loop's side: outbox rows as they committed,
    which the port holds only while :meth:`keep_fresh` is on (a session is up)."""

    def fresh_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]] | None: ...
    def keep_fresh(self, on: bool) -> None: ...
    async def acked_seq(self) -> int: ...
    async def max_seq(self) -> int: ...
    async def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]]: ...
    async def acked(self, seq: int) -> None: ...
    async def command(self, command: OpenLease | LeaseAction) -> dict[str, object]: ...
    async def inventory(self) -> dict[str, object]: ...
    async def health(self) -> dict[str, object]: ...


def check_url(settings: UplinkSettings) -> None:
    problem = url_problem(settings.url, allow_insecure=settings.allow_insecure)  # the rule check-config applies
    if problem is not None:
        raise UplinkConfigError(f"uplink.url: expected {problem}, found {redact_urls(settings.url)}")


class UplinkClient:
    def __init__(self, settings: UplinkSettings, port: UplinkPort, *, outbox_changed: asyncio.Event,
                 inventory_changed: asyncio.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        check_url(settings)
        self.settings = settings
        self._port = port
        self._outbox_changed = outbox_changed  # the sender's one wake-up: new rows (set by the gateway), room (acks)
        self._inventory_changed = inventory_changed or asyncio.Event()
        self._clock = clock
        self.attempts = 0
        self.connected = asyncio.Event()
        self.sessions = 0
        self.last_error: str | None = None
        self._logged_rejections: set[str] = set()
        self._ack_to_persist = 0
        self._ack_arrived = asyncio.Event()
        self.throttled = 0  # commands answered rate_limited, all sessions
        self._throttle_logged: tuple[float, int] = (-1e9, 0)  # when the last flood line was logged, and the count then

    # ------------------------------------------------------------------------------- reconnect
    async def run(self) -> None:
        """Keep a session up until cancelled. A session that ended after its welcome resets the
        backoff; every failure before that backs off."""
        while True:
            retrying = AsyncRetrying(wait=self._wait, retry=retry_if_exception(self._retryable),
                                     before_sleep=self._before_sleep, reraise=True)
            async for attempt in retrying:
                with attempt:
                    self.attempts += 1
                    await self._session()
            await asyncio.sleep(self.settings.backoff_initial * 0.2)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, AuthRejected):
            return self.settings.backoff_max
        s = self.settings
        exponential = wait_exponential(multiplier=s.backoff_initial, max=s.backoff_max) + wait_random(0, s.backoff_initial)
        return min(exponential(state), s.backoff_max)

    @staticmethod
    def _retryable(error: BaseException) -> bool:
        return not isinstance(error, (UplinkConfigError, InvalidURI, asyncio.CancelledError))

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.last_error = _describe(error)
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(error, AuthRejected):
            log.error("uplink.auth_rejected", url=self.settings.url, retry_in=round(wait, 1),
                      hint="the marketplace refused the supplier token; check uplink.token")
        elif isinstance(error, PermissionError):  # the unit's IP filter, not the marketplace
            log.warning("uplink.connect_failed", url=self.settings.url, error=self.last_error,
                        attempt=state.attempt_number, retry_in=round(wait, 2),
                        hint="IPAddressAllow= of simgw.service lacks the marketplace; see README Security")
        else:
            log.warning("uplink.connect_failed", url=self.settings.url, error=self.last_error,
                        attempt=state.attempt_number, retry_in=round(wait, 2))

    # --------------------------------------------------------------------------------- session
    def _ssl(self) -> ssl.SSLContext | None:
        if urlsplit(self.settings.url).scheme != "wss":
            return None
        context = ssl.create_default_context(cafile=self.settings.ca_file)
        return context

    async def _session(self) -> None:
        s = self.settings
        try:
            ws = await connect(s.url, subprotocols=[SUBPROTOCOL], additional_headers={"Authorization": f"Bearer {s.token}"},
                               ssl=self._ssl(), ping_interval=s.ping_interval, ping_timeout=s.ping_timeout,
                               max_size=HARD_MAX_SIZE, open_timeout=10, close_timeout=2, proxy=None,
                               compression=None, user_agent_header=f"simgw/{s.version}")
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise AuthRejected(f"HTTP {exc.response.status_code}") from None
            raise
        async with ws:
            session = UplinkSession(s.gateway_id, s.version, await self._port.acked_seq(), window=s.window,
                                    max_known_seq=await self._port.max_seq(),
                                    commands=TokenBucket(COMMAND_RATE, COMMAND_BURST))
            session.send_hello()
            write_lock = asyncio.Lock()
            await self._flush(ws, session, write_lock)
            commands: asyncio.Queue[Command] = asyncio.Queue(COMMAND_BURST)
            flush = (ws, session, write_lock)
            tasks = [asyncio.create_task(self._reader(flush, commands), name="uplink-reader"),
                     asyncio.create_task(self._commands(flush, commands), name="uplink-commands"),
                     asyncio.create_task(self._sender(flush), name="uplink-sender"),
                     asyncio.create_task(self._heartbeat(flush), name="uplink-health"),
                     asyncio.create_task(self._inventory(flush), name="uplink-inventory"),
                     asyncio.create_task(self._acker(), name="uplink-acker")]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    try:
                        task.result()
                    except (ConnectionClosed, ConnectionError, OSError) as exc:
                        if not session.welcomed or isinstance(exc, WelcomeRefused):
                            raise
                        # An established session that dropped is not a failed attempt: reconnect
                        # promptly, with the backoff starting afresh.
                        log.info("uplink.disconnected", url=self.settings.url, error=_describe(exc))
                        return
            finally:
                session.connection_lost()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.connected.clear()
                self._port.keep_fresh(False)  # what was not sent is read from the store next time
        if not session.welcomed:
            raise ConnectionError("closed before the welcome")

    @staticmethod
    async def _flush(ws, session: UplinkSession, lock: asyncio.Lock) -> None:
        """Write what the session queued, in its order. One writer at a time, so that frames
        taken in order are written in order."""
        async with lock:
            while frames := session.data_to_send():
                for frame in frames:
                    await ws.send(frame)

    async def _reader(self, flush, commands: asyncio.Queue[Command]) -> None:
        """Read every frame as it comes, and never wait for a commit here: commands are run by
        :meth:`_commands`, so a flood of them cannot hold up acks or the keepalive's pongs."""
        ws, session, _ = flush
        read = 0
        async for message in ws:
            read += 1
            window_was_full = session.ready and session.room == 0
            event = session.receive(message, self._clock())
            if isinstance(event, Welcomed):
                self.sessions += 1
                self.connected.set()
                self._port.keep_fresh(True)  # rows committed from now on may skip the store
                self.last_error = None
                log.info("uplink.connected", url=self.settings.url, resume_after=event.last_acked_seq)
                await self._port.acked(event.last_acked_seq)  # it holds these: prune what we still had
                self._inventory_changed.set()  # the session sends nothing sequenced before it
            elif isinstance(event, Acked):
                if event.seq == session.acked_seq:
                    self._ack_to_persist = event.seq
                    self._ack_arrived.set()
                if window_was_full:
                    self._outbox_changed.set()  # room again (otherwise the sender is not waiting for room)
            elif isinstance(event, (OpenLease, LeaseAction)):
                try:
                    commands.put_nowait(event)
                except asyncio.QueueFull:  # admitted by the rate, but the commits lag behind
                    session.throttle(event, 1.0)
                    self._count_throttled()
            elif isinstance(event, Throttled):
                self._count_throttled()
            elif isinstance(event, FrameRejected):
                if event.reason.value not in self._logged_rejections:
                    self._logged_rejections.add(event.reason.value)
                    log.warning("uplink.frame_rejected", reason=event.reason.value, error=event.message)
            if session.has_output:
                await self._flush(*flush)
            if session.state is SessionState.FAILED:
                await ws.close(1008, "bad welcome")
                raise WelcomeRefused(event.message if isinstance(event, FrameRejected) else "welcome refused")
            if read % READ_TURN == 0:
                await asyncio.sleep(0)  # a flood of frames: the modems' tasks get a turn in between
        raise ConnectionError(f"connection closed ({ws.close_code} {ws.close_reason or ''})".strip())

    async def _commands(self, flush, commands: asyncio.Queue[Command]) -> None:
        """Run the admitted commands one at a time, in the order they came, and answer each."""
        _, session, _ = flush
        while True:
            command = await commands.get()
            result = await self._port.command(command)
            session.send_result(command.command_id, result)
            await self._flush(*flush)

    def _count_throttled(self) -> None:
        """A flood of ``rate_limited`` answers is logged once per THROTTLE_LOG_EVERY with its count."""
        self.throttled += 1
        now, (logged_at, logged_total) = self._clock(), self._throttle_logged
        if now - logged_at >= THROTTLE_LOG_EVERY:
            log.warning("uplink.rate_limited", commands=self.throttled - logged_total, limit_per_s=COMMAND_RATE,
                        burst=COMMAND_BURST)
            self._throttle_logged = (now, self.throttled)

    async def _sender(self, flush) -> None:
        """Hand outbox rows to the session as its window allows (it takes none before READY).
        One event wakes it, for new rows and for room in the window alike: waiting on two made
        and cancelled two tasks per SMS. Cleared before it looks, so a nudge while it sends is
        never lost; a nudge while the window is full costs one look."""
        _, session, _ = flush
        while True:
            self._outbox_changed.clear()
            limit = session.room
            if limit > 0:
                rows = self._port.fresh_after(session.sent_seq, limit)
                if rows is None:
                    rows = await self._port.outbox_after(session.sent_seq, limit)
                session.send_events(rows)
                await self._flush(*flush)
                if len(rows) == limit:
                    continue  # there may be more; otherwise wait, without another round trip to the store
            await self._outbox_changed.wait()

    async def _acker(self) -> None:
        """Persist acknowledgements, coalesced: under load one commit covers many acks. A late
        persist is safe: at worst an event is resent and the marketplace knows its msg_id."""
        persisted = 0
        while True:
            await self._ack_arrived.wait()
            await asyncio.sleep(ACK_COALESCE)  # let the acks of a busy moment gather into one commit
            self._ack_arrived.clear()
            seq = self._ack_to_persist
            if seq > persisted:
                await self._port.acked(seq)
                persisted = seq

    async def _inventory(self, flush) -> None:
        """The full inventory after each welcome (which opens the window), then the changes."""
        _, session, _ = flush
        while True:
            await self._inventory_changed.wait()
            self._inventory_changed.clear()
            if session.state not in (SessionState.SYNCING, SessionState.READY):
                continue
            syncing = session.state is SessionState.SYNCING
            if session.send_inventory(await self._port.inventory()):
                await self._flush(*flush)
                if syncing:
                    self._outbox_changed.set()  # READY now: replays may follow

    async def _heartbeat(self, flush) -> None:
        _, session, _ = flush
        while True:
            await asyncio.sleep(self.settings.health_interval)
            if session.ready and session.send_health(await self._port.health()):
                await self._flush(*flush)


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate rejected: {error.verify_message or error.reason}"
    if isinstance(error, ConnectionClosed):
        return f"connection closed: {error}"
    return f"{type(error).__name__}: {error}"[:300]

