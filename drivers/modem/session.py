"""A modem session: open the port, initialise, serve, and recover, for as long as the daemon runs.

:class:`Modem` is assembled from one mixin per concern (setup, identity, health, URCs, receiving,
operations the gateway asks for); this module holds the life cycle that ties them together.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from drivers.at.protocol import Response
from drivers.channel import AtChannel, CommandFailed, CommandTimeout, PortGone, Priority
from drivers.modem.health import ModemHealthProbes
from drivers.modem.identity import ModemIdentification
from drivers.modem.operations import ModemOperations
from drivers.modem.receive import ModemReceiver
from drivers.modem.setup import ModemSetup
from drivers.modem.types import (
    ModemHealth,
    ModemIdentity,
    ModemOptions,
    ModemResetting,
    ModemState,
    ModemUnresponsive,
    PartSink,
    Recover,
    SimSwitching,
    Work,
)
from drivers.modem.urcs import ModemUrcs
from drivers.profiles import GENERIC, Profile
from drivers.serial_port import PortOpenError

LOG_ONCE_KEYS = 256
"""Distinct repeated events a session remembers having logged; past it, they are logged again."""


class Modem(ModemSetup, ModemIdentification, ModemHealthProbes, ModemUrcs, ModemReceiver, ModemOperations):
    def __init__(
        self,
        path: str,
        sink: PartSink,
        *,
        options: ModemOptions = ModemOptions(),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        on_state: Callable[[Modem], None] | None = None,
    ) -> None:
        self.path = path
        self._sink = sink
        self.options = options
        self._clock = clock
        self._wall_clock = wall_clock
        self._on_state = on_state
        self.identity = ModemIdentity()
        self.profile: Profile = GENERIC
        self.health = ModemHealth()
        self._log = structlog.get_logger("drivers.modem").bind(port=path)
        self._logged: dict[tuple[str, str], int] = {}
        self._channel: AtChannel | None = None
        self._work: asyncio.Queue[Work] = asyncio.Queue()
        self._seq = 0
        self._queued_indexes: set[int] = set()
        self._lost = asyncio.Event()
        self._reinit_needed = asyncio.Event()
        self._sms_ready = asyncio.Event()
        self._stopping = False
        self._answered_at = False
        self._half_alive = 0
        self._reset_refused: set[str] = set()  # reset commands this modem answered with an error
        self._commands: frozenset[str] | None = None  # what AT+CLAC listed (empty: it lists nothing)
        self._echo_watch: int | None = None  # echoes seen at ready, if the modem honoured ATE0
        self.ready = asyncio.Event()
        self.settled = asyncio.Event()  # set when an initialisation ends, ready or not (no SIM, locked)
        self._ussd: asyncio.Future[tuple[int, str | None]] | None = None
        self._direct_tasks: set[asyncio.Task[None]] = set()  # +CMT deliveries in progress

    # ------------------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Serve the modem until cancelled, healing it by escalation: resync (the channel drains
        after every timeout), reopen the port, soft-reset a modem that answers ``AT`` but hangs on
        real work, and wait, with backoff, for a port that vanished to come back (reported gone
        meanwhile). Whatever was stored on the SIM meanwhile is read by the sweep after init.
        The backoff is tenacity's exponential with jitter, capped, and starts afresh after every
        session that reached ready; a soft reset waits the modem's boot time instead."""
        while not self._stopping:
            retrying = AsyncRetrying(wait=self._reopen_wait, retry=retry_if_exception_type(Recover),
                                     reraise=True)
            async for attempt in retrying:
                with attempt:
                    await self._attempt()

    def _reopen_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, Recover) and isinstance(error.__cause__, ModemResetting):
            return self.options.reset_wait if self.options.reset_wait is not None else self.profile.reset_time
        backoff = wait_exponential(multiplier=self.options.reopen_initial, max=self.options.reopen_max) \
            + wait_random(0, self.options.reopen_initial)
        return min(backoff(state), self.options.reopen_max)

    async def _attempt(self) -> None:
        """One life of the port: open, initialise, serve. Returns after a session that reached
        ready (so the backoff starts afresh); raises :class:`Recover` after one that did not.
        No exception ends the driver: one nobody foresaw is logged with its traceback, shown in
        the state, and recovered from like any other (issue 12 finding 4)."""
        reached_ready = False
        failure: Exception | None = None
        try:
            await self._open_and_initialise()
            reached_ready = self.ready.is_set()
            await self._serve()
        except (PortGone, PortOpenError) as exc:
            self._set_state(ModemState.GONE, str(exc))
            failure = exc
        except ModemResetting as exc:
            self._set_state(ModemState.SWITCHING if isinstance(exc, SimSwitching) else ModemState.RESETTING, str(exc))
            failure = exc
        except (ModemUnresponsive, CommandTimeout) as exc:
            if self._answered_at:
                self._half_alive += 1  # answers AT, fails at real work: a soft reset may help
            self._set_state(ModemState.UNRESPONSIVE, str(exc))
            failure = exc
        except CommandFailed as exc:
            self._set_state(ModemState.DEGRADED, str(exc))
            failure = exc
        except Exception as exc:
            self._log.exception("modem.session_failed", error=f"{type(exc).__name__}: {exc}")
            self._set_state(ModemState.DEGRADED, f"{type(exc).__name__}: {exc}")
            failure = exc
        finally:
            self.ready.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None
        self.health.recoveries += 1
        if failure is None or (reached_ready and not isinstance(failure, ModemResetting)):
            await asyncio.sleep(self.options.reopen_initial)
            return
        raise Recover(str(failure)) from failure

    def stop(self) -> None:
        """Stop serving: :meth:`run` returns at the end of this session; +CMT handling stops."""
        self._stopping = True
        for task in list(self._direct_tasks):
            task.cancel()

    @property
    def channel(self) -> AtChannel | None:
        return self._channel

    def _set_state(self, state: ModemState, error: str | None = None) -> None:
        changed = state is not self.health.state
        self.health.state = state
        if error:
            self.health.last_error = error
        if changed:
            self._log.info("modem.state", state=state.value, error=error)
            if self._on_state is not None:
                self._on_state(self)

    def _log_once(self, event: str, **fields: object) -> None:
        """Log a repeated event the first time, then every 100th time, with its count."""
        key = (event, str(fields.get("error", fields.get("result", ""))))
        if len(self._logged) >= LOG_ONCE_KEYS and key not in self._logged:
            self._logged.clear()
        count = self._logged.get(key, 0) + 1
        self._logged[key] = count
        if count == 1 or count % 100 == 0:
            self._log.warning(event, count=count, **fields)

    async def _open_and_initialise(self) -> None:
        self._set_state(ModemState.STARTING)
        self._lost.clear()
        self._reinit_needed.clear()
        self._sms_ready.clear()
        channel = AtChannel(self.path, baudrate=self.options.baudrate, on_urc=self._on_urc,
                            on_lost=lambda exc: self._lost.set(), clock=self._clock,
                            extra_urcs=self.profile.extra_urcs)
        self._channel = channel
        channel.open()
        self._answered_at = False
        if self._half_alive >= self.options.soft_reset_after:
            await self._soft_reset()
        await self._initialise()

    async def _soft_reset(self) -> None:
        """Reset a modem that answers ``AT`` but hangs on real work, with its profile's command.
        A modem that refuses that command does not have it: it is never sent to this modem
        again, and the session carries on without a reset rather than looping on one."""
        await self._sync()
        command = self.profile.reset_command
        self._half_alive = 0
        if command in self._reset_refused or not await self._listed(command):
            return
        self._log.warning("modem.soft_reset", command=command)
        try:
            response = await self._cmd(command, timeout=3.0, priority=Priority.URGENT, check=False)
        except CommandTimeout:
            response = None  # many firmwares reset before they answer
        if response is not None and not response.result.ok:
            self._reset_refused.add(command)
            self._log.warning("modem.reset_refused", command=command, result=response.result.text)
            return
        self.health.soft_resets += 1
        raise ModemResetting(f"{self.path}: soft reset with {command} after repeated hangs")

    async def _listed(self, command: str) -> bool:
        """False only when the modem lists its commands (``AT+CLAC``, 27.007 §8.37) and
        ``command`` is not among them; a modem that does not list them gets the benefit of the
        doubt (and :meth:`_soft_reset` remembers a refusal)."""
        if self._commands is None:
            try:
                response = await self._cmd("AT+CLAC", check=False)
            except CommandTimeout:  # a wedged modem hangs on this too: it is what the reset is for
                response = None
            names = {name.strip().upper() for line in (response.lines if response else ())
                     for name in line.removeprefix("+CLAC:").split(",") if name.strip()}
            self._commands = frozenset(names) if response is not None and response.result.ok else frozenset()
        match = re.match(r"AT([+^!*$#%]?[A-Za-z0-9]+)", command, re.IGNORECASE)
        if not self._commands or match is None or match.group(1).upper() in self._commands:
            return True
        self._reset_refused.add(command)
        self._log.warning("modem.reset_not_listed", command=command)
        return False

    # ----------------------------------------------------------------------------------- serve
    async def _serve(self) -> None:
        reader = asyncio.create_task(self._reader(), name=f"modem-reader:{self.path}")
        try:
            next_health = self._clock() + self.options.health_interval
            next_sweep = self._clock() + self.options.sweep_interval
            while True:
                if self._lost.is_set():
                    raise PortGone(self.path, "-", "port lost")
                if reader.done():
                    raise ModemUnresponsive(f"{self.path}: reader stopped: {reader.exception()!r}") \
                        from reader.exception()
                if self._reinit_needed.is_set():
                    self._reinit_needed.clear()
                    self._set_state(ModemState.RESETTING, "modem restarted")
                    await self._initialise()
                now = self._clock()
                if now >= next_health:
                    next_health = now + self.options.health_interval
                    await self.health_cycle()
                if now >= next_sweep:
                    next_sweep = now + self.options.sweep_interval
                    self._enqueue_sweep()
                wait = max(0.0, min(next_health, next_sweep) - self._clock())
                waiters = [asyncio.ensure_future(self._lost.wait()), asyncio.ensure_future(self._reinit_needed.wait())]
                try:
                    await asyncio.wait([reader, *waiters], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            reader.cancel()
            await asyncio.wait([reader])  # unlike ``await reader``, never swallows our own cancel

    async def _cmd(self, text: str, *, expect: tuple[str, ...] = (), timeout: float | None = None,
                   priority: Priority = Priority.NORMAL, check: bool = True, implied_final: bool = False) -> Response:
        if self._channel is None:
            raise PortGone(self.path, text, "not open")
        implied = implied_final or text.upper() in self.profile.no_final_after
        try:
            return await self._channel.command(text, expect=expect, timeout=timeout or self.options.command_timeout,
                                               priority=priority, check=check, implied_final=implied)
        finally:
            if self.ready.is_set() and self._echo_watch is not None and self._echoes() > self._echo_watch:
                self._log.info("modem.echo_back", command=text)  # V.250: echo is on after a reset
                self._settings_lost()

    def _echoes(self) -> int:
        return self._channel.stats.echoes if self._channel is not None else 0


async def stop_modems(modems: list[Modem], tasks: list[asyncio.Task]) -> None:
    """Stop every driver and wait until each of ``tasks`` has finished; empties ``tasks``."""
    for modem in modems:
        modem.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
