"""The composition root: the core thread, the modems, timers, ingest, switching, the uplink and
the control listeners, wired together. Wiring only: what each part does is in its own module.

Everything that touches the store or the lease engine runs on one dedicated thread (the core
thread) through :meth:`Gateway.call`, in submission order; the event loop only moves bytes,
schedules, and reads the core's published :class:`~gateway.core.CoreSnapshot`. The modem
driver's sink awaits the core, so a part is deleted from the SIM only after the core thread has
committed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar

import structlog

from drivers.modem import Modem, ModemOptions, stop_modems
from gateway import __version__
from gateway.config import Config
from gateway.control.server import ControlRoutes, ControlServer
from gateway.control.unix import socket_path
from gateway.core import GatewayCore, decisions_json
from gateway.dashboard.sampler import Sampler
from gateway.runtime.faults import CrashPoints, FaultFiles
from gateway.runtime.ingest import Ingest
from gateway.runtime.modems import ModemPorts
from gateway.runtime.notify import boot_id
from gateway.runtime.nudges import Nudges
from gateway.runtime.supervisor import SupervisionPolicy, Supervisor
from gateway.runtime.switching import BankSwitching
from gateway.runtime.switcher import Switcher
from gateway.runtime.timers import TIMER_POLL, TimerLoop
from gateway.runtime.uplink_port import CorePort
from gateway.store import Store, StoreError
from gateway.uplink.client import UplinkClient, UplinkSettings

log = structlog.get_logger("gateway.app")
STOP_TIMEOUT = 5.0  # what has not stopped by then is logged and left behind
T = TypeVar("T")


class CoreAnswer(NamedTuple):
    """What a core call gives back to the loop: its result or error, and the outbox rows it committed."""

    result: Any
    error: BaseException | None
    rows: list[tuple[int, str, dict]]


class Gateway:
    def __init__(self, config: Config, *, modem_options: ModemOptions | None = None,
                 mono: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 crash_points: CrashPoints | None = None, rescan_interval: float = 10.0,
                 faults: FaultFiles | None = None, supervision: SupervisionPolicy = SupervisionPolicy(),
                 timer_poll: float = TIMER_POLL) -> None:
        self.config = config
        self._mono, self._wall = mono, wall
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgw-core")
        self.store = Store(config.database, commit_fault=faults.commit_error if faults else None)
        # (core thread only) outbox rows committed by the core call running now: they go back to
        # the loop with its answer (see call), for the uplink to send without a store round trip.
        self._committed: list[tuple[int, str, dict]] = []
        self.store.on_committed = self._committed.extend
        self.core = GatewayCore(self.store, config.leases, mono=mono, wall=wall, numbers=config.numbers,
                                banks=config.banks, boot_id=boot_id() if mono is time.monotonic else None)
        self.nudges = Nudges()
        self.supervisor = Supervisor(supervision, transient=(StoreError,),
                                     fault=faults.task_fault if faults else None)
        self.switching = BankSwitching(config, self.core, self.call, self.nudges, lambda port: self.ports.modem_at(port))
        self.timers = TimerLoop(self, self.nudges.timers, mono=mono, poll=timer_poll)
        crash = crash_points or CrashPoints.from_env(os.environ.get("SIMGW_CRASHPOINTS"))
        self.ingest = Ingest(self.core, self.submit, self.nudges, crash,
                             configured_msisdn={m.port: m.msisdn for m in config.modems if m.msisdn},
                             wake_at=lambda: self.timers.wake_at, after_delivery=self.switching.dispatch)
        self.ports = ModemPorts(config, modem_options or ModemOptions(), core=self.core, call=self.call,
                                nudges=self.nudges, supervisor=self.supervisor, switching=self.switching,
                                sink=self.ingest.sink, rescan_interval=rescan_interval)
        self.uplink_port = CorePort(self.core, self.call, self.nudges, self.switching, lambda: self.ports.modems,
                                    wall)
        self.control: ControlServer | None = None
        self.control_socket = socket_path(config.control_socket, config.state_dir)
        self.sampler = Sampler(self, mono=mono, wall=wall)  # the dashboard's history and the alert gauges
        self.uplink = self._uplink(config)
        self.hub = None  # selling through an SMSHub-compatible marketplace too ([smshub])
        if config.smshub is not None:
            from gateway.smshub.service import HubService

            self.hub = HubService(config, self.core, self.call, self._after_hub_decision)

    def _uplink(self, config: Config) -> UplinkClient | None:
        if config.uplink is None:
            return None
        u = config.uplink
        return UplinkClient(UplinkSettings(u.url, u.token, config.gateway_id, __version__,
                                           allow_insecure=u.allow_insecure, ca_file=u.ca_file, window=u.window,
                                           backoff_max=u.backoff_max, health_interval=u.health_interval),
                            self.uplink_port, outbox_changed=self.nudges.outbox,
                            inventory_changed=self.nudges.inventory)

    # ------------------------------------------------------------------------- what others read
    @property
    def modems(self) -> list[Modem]:
        return self.ports.modems

    @property
    def switcher(self) -> Switcher | None:
        return self.switching.switcher

    @property
    def outbox_changed(self) -> asyncio.Event:
        return self.nudges.outbox

    @property
    def control_address(self) -> tuple[str, int] | None:
        """The read-only TCP listener's address (port 0 in the config: the one the kernel chose)."""
        return self.control.address if self.control is not None else None

    async def _after_hub_decision(self) -> None:
        """A hub's GET_NUMBER or FINISH_ACTIVATION committed: switches, deadlines, the other market."""
        await self.switching.dispatch()
        self.nudges.timers.set()
        self.nudges.inventory.set()

    def on_core(self, fn: Callable[..., T], args: tuple = (), kwargs: dict | None = None) -> CoreAnswer:
        """(core thread) ``fn``'s answer or error, and the outbox rows it committed meanwhile. Whoever
        submits work to the core thread without :meth:`call` runs it through this and gives the
        answer to :meth:`answered` back on the loop, so committed rows still reach the uplink."""
        try:
            result, error = fn(*args, **(kwargs or {})), None
        except BaseException as exc:  # handed back: whoever waits on the loop must hear of it
            result, error = None, exc
        rows = self._committed.copy()
        self._committed.clear()
        return CoreAnswer(result, error, rows)

    def answered(self, answer: CoreAnswer) -> Any:
        """(event loop) Hand the rows a core call committed to the uplink's port; its result, or raise its error."""
        if answer.rows:
            self.uplink_port.committed(answer.rows)
        if answer.error is not None:
            raise answer.error
        return answer.result

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the core thread, after everything submitted before it. The outbox rows
        it committed come back with its answer (no thread crossing of their own) and are handed
        to the uplink's port here, on the loop's thread."""
        loop = asyncio.get_running_loop()
        return self.answered(await loop.run_in_executor(self._executor, self.on_core, fn, args, kwargs))

    def submit(self, fn: Callable[..., T], args: tuple, done: Callable[[T | None, BaseException | None], None]) -> None:
        """(event loop) Run ``fn(*args)`` on the core thread, after everything submitted before it,
        then ``done(result, error)`` on the loop: one crossing each way, as :meth:`call`, but no
        task or future chain on the loop (the ingest path, once per SMS). The committed rows go
        to the uplink through :meth:`answered` first. Raises RuntimeError when the core thread
        has shut down."""
        loop = asyncio.get_running_loop()

        def work() -> None:
            answer = self.on_core(fn, args)  # catches everything: ``done`` is always called
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(self._answer_to, answer, done)

        self._executor.submit(work)

    def _answer_to(self, answer: CoreAnswer, done: Callable[[Any, BaseException | None], None]) -> None:
        """(event loop) A submitted call's answer: its rows to the uplink, then ``done``."""
        try:
            result, error = self.answered(answer), None
        except BaseException as exc:  # the call's own error, handed on
            result, error = None, exc
        done(result, error)

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.call(self.store.open)
        resolved = await self.call(self.core.start)
        log.info("gateway.started", leases=len(self.core.snapshot.leases), resolved_on_start=len(resolved),
                 modems=len(self.config.modems))
        self.ports.rescan()
        self.supervisor.start("port-rescan", self.ports.rescan_loop)
        self.supervisor.start("lease-timers", self.timers.run)
        self.supervisor.start("dashboard-sampler", self.sampler.run)
        if self.uplink is not None:
            self.supervisor.start("uplink", self.uplink.run)
        if self.hub is not None:
            await self.hub.start(self.supervisor.start)
        routes = ControlRoutes(self, mono=self._mono, wall=self._wall)
        self.control = ControlServer(routes, listen=self.config.control_listen, socket_path=self.control_socket,
                                     link_from=None if self.config.control_socket else self.config.state_dir)
        await self.control.start()

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
        if self.switcher is not None:  # bounded: a switch that swallows its cancel must not hang the stop
            switcher = asyncio.ensure_future(self.switcher.stop())
            if not (await asyncio.wait({switcher}, timeout=STOP_TIMEOUT))[0]:
                log.error("bank.switcher_did_not_stop", timeout_s=STOP_TIMEOUT)
        await stop_modems(self.modems, [])
        await self.supervisor.stop(STOP_TIMEOUT)
        if self.control is not None:
            await self.control.stop()
        await self.call(self.store.close)
        self._executor.shutdown(wait=True)

    async def reload(self) -> None:
        """SIGHUP: apply what is safe to change while running, and say what needs a restart."""
        from gateway import config as config_module
        from gateway import logs

        try:
            new = config_module.load(self.config.path)
        except config_module.ConfigError as exc:
            log.error("config.reload_failed", error=str(exc), kept="the running configuration")
            return
        old = self.config
        needs_restart = [name for name, changed in (
            ("modems", new.modems != old.modems), ("gateway.state_dir", new.state_dir != old.state_dir),
            ("gateway.id", new.gateway_id != old.gateway_id), ("control", (new.control_listen, new.control_socket) != (old.control_listen, old.control_socket)),
            ("uplink", new.uplink != old.uplink), ("numbers", new.numbers != old.numbers),
            ("smshub", new.smshub != old.smshub)) if changed]
        await self.call(self.core.set_lease_config, new.leases)
        logs.configure(json_lines={"json": True, "console": False}.get(new.log_format), level=new.log_level,
                       redact=new.redact)
        self.config = replace(old, leases=new.leases, log_level=new.log_level, log_format=new.log_format,
                              redact=new.redact)
        log.info("config.reloaded", applied="leases, logging", needs_restart=needs_restart or None)

    # ------------------------------------------------------------------------------ control API
    async def local_command(self, step: Callable[..., list], *args: Any, **kwargs: Any) -> dict[str, object]:
        """A lease command from the control socket: decided on the core thread, then handed to
        the switcher, the timers and the uplink like any other decision."""
        decisions = await self.call(step, *args, **kwargs)
        await self.switching.dispatch()
        self.nudges.decided()
        return decisions_json(decisions)

    def read(self, query: Callable[[Store], T]) -> T:
        """Run a read-only ``query`` on a second connection from the calling thread (tests, CLI-like
        views); the core thread's connection stays its own."""
        reader = Store(self.config.database)
        reader.open()
        try:
            return query(reader)
        finally:
            reader.close()

    def store_messages(self):
        return self.read(lambda store: store.messages())
