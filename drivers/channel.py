"""An AT command channel: the asyncio shell around :class:`~drivers.at.protocol.AtProtocol`.

It shuttles bytes between the serial port and the core, runs one command at a time in priority
order (a watchdog probe jumps the queue of SMS reads), registers the waiter before writing and
removes it in ``finally``, and fails every waiter at once with :class:`PortGone` when the port is
lost. After a timeout it lets the line go quiet before the next command, so a late ``OK`` cannot
complete the wrong command.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from drivers.at.protocol import AtProtocol, BadBytes, Command, Response, StrayLine, Urc
from drivers.at.results import FinalResult, ResultKind
from drivers.serial_port import SerialPort

QUIET_AFTER_TIMEOUT = 0.25
MAX_DRAIN = 3.0
IMPLIED_GRACE = 0.4
"""Seconds of silence after an answer that is complete by its shape (a command declared
``implied_final``, e.g. Wavecom's ``+CPIN: READY`` that never gets an ``OK``) before it is taken
as complete. Any byte that arrives meanwhile restarts the wait."""


class Priority(enum.IntEnum):
    URGENT = 0  # resync and watchdog probes
    SMS = 1  # reading and deleting messages
    NORMAL = 2  # identity, configuration
    BACKGROUND = 3  # periodic health probes


class AtError(Exception):
    """Base of every channel error; carries the port and command it happened on."""

    def __init__(self, port: str, command: str, detail: str) -> None:
        super().__init__(f"{port}: {command}: {detail}")
        self.port = port
        self.command = command


class CommandFailed(AtError):
    """The modem answered with an error final result (ERROR, +CME/+CMS ERROR, NOT SUPPORT)."""

    def __init__(self, port: str, command: str, result: FinalResult) -> None:
        super().__init__(port, command, result.text)
        self.result = result

    @property
    def cms(self) -> int | None:
        return self.result.code if self.result.kind is ResultKind.CMS_ERROR else None

    @property
    def cme(self) -> int | None:
        return self.result.code if self.result.kind is ResultKind.CME_ERROR else None


class CommandTimeout(AtError):
    """No final result within the command's timeout."""


class PortGone(AtError):
    """The port vanished (unplugged, EIO) or was closed while the command was waiting."""


@dataclass(slots=True)
class ChannelStats:
    commands: int = 0
    errors: int = 0
    timeouts: int = 0
    garbage: int = 0
    stray_lines: int = 0
    oversized_responses: int = 0  # responses past the protocol's line/byte caps, dropped as garbage
    implied_finals: int = 0  # answers completed by their shape after IMPLIED_GRACE
    echoes: int = 0  # command echoes seen (the modem's echo is on)
    last_response_at: float | None = None
    last_latency: float | None = None


def _expire(waiter: asyncio.Future[Response]) -> None:
    """A command's timer ran out before its answer came."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AtChannel:
    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 115200,
        on_urc: Callable[[Urc], None],
        on_lost: Callable[[Exception | None], None] | None = None,
        extra_urcs: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.path = path
        self._on_urc = on_urc
        self._on_lost_cb = on_lost
        self._clock = clock
        self._log = log or structlog.get_logger("drivers.channel").bind(port=path)
        self._protocol = AtProtocol(extra_urcs=extra_urcs)
        self._port = SerialPort(path, baudrate=baudrate, on_data=self._on_data, on_lost=self._on_lost)
        self._waiter: asyncio.Future[Response] | None = None
        self._busy = False
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._last_byte_at = 0.0
        self._closed_reason: str | None = "not open"
        self._needs_drain = False
        self._grace: asyncio.TimerHandle | None = None
        self.stats = ChannelStats()

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def is_open(self) -> bool:
        return self._closed_reason is None

    def open(self) -> None:
        self._protocol.reset()
        self._port.open()
        self._closed_reason = None

    def close(self) -> None:
        self._port.close()
        self._fail_all("port closed")

    def use_urcs(self, extra_urcs: frozenset[str]) -> None:
        """Recognise a vendor's own unsolicited codes from now on (after its profile was chosen)."""
        self._protocol.use_urcs(extra_urcs)

    # ------------------------------------------------------------------------------- commands
    async def command(
        self,
        text: str,
        *,
        expect: tuple[str, ...] = (),
        payload: str | None = None,
        timeout: float = 5.0,
        priority: Priority = Priority.NORMAL,
        check: bool = True,
        implied_final: bool = False,
    ) -> Response:
        """Run one command; return its response or raise an :class:`AtError` subclass.

        With ``check=False`` an error final result is returned instead of raised. With
        ``implied_final`` an answer complete by its declared shape completes the command after
        :data:`IMPLIED_GRACE` of silence even if no final result follows."""
        await self._acquire(priority, text)
        try:
            if self._closed_reason is not None:
                raise PortGone(self.path, text, self._closed_reason)
            if self._needs_drain:
                await self._drain_quiet()
            command = Command(text, expect, payload, implied_final=implied_final)
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            started = self._clock()
            self._protocol.send(command)
            self._port.write(self._protocol.data_to_send())
            self.stats.commands += 1
            # The timeout fails the waiter itself (not wait_for, which on 3.11 loses a cancellation
            # that races with the answer; not asyncio.timeout, whose bookkeeping costs more than the
            # rest of a command): whichever comes first, answer or timer, settles the waiter, and a
            # cancellation of this task reaches the await untouched.
            timer = loop.call_later(timeout, _expire, waiter)
            try:
                response = await waiter
            except TimeoutError:
                self._abandon()
                self.stats.timeouts += 1
                await self._drain_quiet()
                raise CommandTimeout(self.path, text, f"no final result within {timeout:.1f}s") from None
            except asyncio.CancelledError:
                self._abandon()  # the answer may still come: the next command drains first
                raise
            finally:
                timer.cancel()
            self.stats.last_latency = self._clock() - started
            if check and not response.result.ok:
                self.stats.errors += 1
                raise CommandFailed(self.path, text, response.result)
            return response
        finally:
            self._cancel_grace()
            self._waiter = None
            self._release()

    async def _acquire(self, priority: Priority, text: str) -> None:
        if not self._busy and not self._queue:
            self._busy = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (int(priority), next(self._seq), future)
        heapq.heappush(self._queue, entry)
        try:
            await future
        except BaseException:
            if entry in self._queue:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
            elif future.done() and not future.cancelled() and future.exception() is None:
                self._release()  # we were handed the channel but will not use it
            raise

    def _release(self) -> None:
        while self._queue:
            _, _, future = heapq.heappop(self._queue)
            if not future.done():
                future.set_result(None)
                return
        self._busy = False

    def _abandon(self) -> None:
        """Forget the command in flight; until the line is quiet again it cannot be trusted."""
        if self._protocol.in_flight is not None:
            self._protocol.abort()
            self._port.write(self._protocol.data_to_send())
            self._needs_drain = True

    async def _drain_quiet(self) -> None:
        """Wait until nothing has arrived for QUIET_AFTER_TIMEOUT (at most MAX_DRAIN), then drop
        any partial line, so a late answer cannot complete the next command."""
        deadline = self._clock() + MAX_DRAIN
        while self._closed_reason is None and self._clock() < deadline:
            idle = self._clock() - self._last_byte_at
            if idle >= QUIET_AFTER_TIMEOUT:
                break
            await asyncio.sleep(QUIET_AFTER_TIMEOUT - idle)
        self._protocol.reset()
        self._needs_drain = False

    # ---------------------------------------------------------------------------------- input
    def _on_data(self, data: bytes) -> None:
        self._last_byte_at = self._clock()
        self._protocol.receive_data(data)
        self._port.write(self._protocol.data_to_send())
        self._dispatch(self._protocol.events_received())
        self._cancel_grace()
        if self._protocol.answer_complete:
            self._grace = asyncio.get_running_loop().call_later(IMPLIED_GRACE, self._complete_implied)

    def _complete_implied(self) -> None:
        self._grace = None
        if self._protocol.complete_implied():
            self.stats.implied_finals += 1
            self._dispatch(self._protocol.events_received())

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _dispatch(self, events: list) -> None:
        self.stats.echoes = self._protocol.echo_count
        for event in events:
            if isinstance(event, Response):
                self.stats.last_response_at = self._last_byte_at
                if self._waiter is not None and not self._waiter.done():
                    self._waiter.set_result(event)
            elif isinstance(event, Urc):
                self.stats.last_response_at = self._last_byte_at
                try:
                    self._on_urc(event)
                except Exception:  # an owner bug must not kill the port
                    self._log.exception("at.urc_handler_failed", urc=event.name)
            elif isinstance(event, StrayLine):
                self.stats.stray_lines += 1
                self._log.debug("at.stray_line", line=event.line[:80])
            elif isinstance(event, BadBytes):
                self._on_bad_bytes(event)

    def _on_bad_bytes(self, event: BadBytes) -> None:
        """Count garbage; log it the 1st, 2nd, 4th, 8th... time, so a port that streams junk
        writes a few dozen log lines, not one per kilobyte."""
        self.stats.garbage += 1
        self.stats.oversized_responses = self._protocol.overflow_count
        count = self.stats.garbage
        if count & (count - 1) == 0:
            self._log.info("at.garbage", reason=event.reason, size=len(event.data), total=count)

    def _on_lost(self, exc: Exception | None) -> None:
        reason = str(exc) if exc else "port lost"
        self._log.warning("port.lost", reason=reason)
        self._fail_all(reason)
        if self._on_lost_cb is not None:
            self._on_lost_cb(exc)

    def _fail_all(self, reason: str) -> None:
        self._closed_reason = reason
        if self._waiter is not None and not self._waiter.done():
            command = self._protocol.in_flight
            self._waiter.set_exception(PortGone(self.path, command.text if command else "?", reason))
        self._protocol.reset()
