"""The composition root: modems, the core thread, timers, and the control listeners' wiring.

Everything that touches the store or the lease engine runs on one dedicated thread (the core
thread) through :meth:`Gateway.call`, in submission order; the event loop only moves bytes and
schedules. The modem driver's sink awaits the core, so a part is deleted from the SIM only after
the core thread has committed it.
"""

from __future__ import annotations

import asyncio
import collections
import glob
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import structlog

from drivers.modem import Modem, ModemOptions, ModemState, ReceivedPart, ReceiveMode, stop_modems
from gateway import __version__
from gateway.config import Config
from gateway.control.limits import raise_open_files_limit
from gateway.control.server import ControlRoutes, ControlServer
from gateway.control.unix import socket_path
from gateway.control.views import modems_json
from gateway.core import GatewayCore, Ingested, decisions_json
from gateway.leases import Refusal, Refused
from gateway.banks import SwitchOrder
from gateway.faults import CrashPoints, FaultFiles
from gateway.notify import Notifier, boot_id
from gateway.portcounters import PortCounters
from gateway.store import Store, StoreError
from gateway.supervisor import SupervisionPolicy, Supervisor
from gateway.timers import TIMER_POLL, TIMER_RETRY_MAX, TimerLoop
from gateway.switcher import Switcher
from gateway.uplink.client import UplinkClient, UplinkSettings
from gateway.uplink.protocol import LeaseAction, OpenLease

log = structlog.get_logger("gateway.app")
STOP_TIMEOUT = 5.0  # what has not stopped by then is logged and left behind
T = TypeVar("T")
ONLINE_STATES = frozenset({ModemState.OK, ModemState.DEGRADED})


class Gateway:
    def __init__(self, config: Config, *, modem_options: ModemOptions | None = None,
                 mono: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 crash_points: CrashPoints | None = None, rescan_interval: float = 10.0,
                 faults: FaultFiles | None = None, supervision: SupervisionPolicy = SupervisionPolicy(),
                 timer_poll: float = TIMER_POLL) -> None:
        self.config = config
        self._rescan_interval = rescan_interval
        self._mono, self._wall = mono, wall
        self._modem_options = modem_options or ModemOptions()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simgw-core")
        self.store = Store(config.database, commit_fault=faults.commit_error if faults else None)
        # Outbox rows as they commit, handed to the uplink without asking the core thread again.
        self._fresh_outbox: collections.deque[tuple[int, str, dict]] = collections.deque(maxlen=4096)
        self.store.on_committed = self._hand_to_uplink
        self.core = GatewayCore(self.store, config.leases, mono=mono, wall=wall, numbers=config.numbers,
                                banks=config.banks, boot_id=_boot_id() if mono is time.monotonic else None)
        self.port_counters = PortCounters()  # AT command totals that survive a reopened port
        self.switcher = Switcher(config.banks, self._modem_at, self._switch_done, rules=config.ussd_numbers,
                                 numbers=config.numbers) if config.banks else None
        self.modems: list[Modem] = []
        self.control: ControlServer | None = None
        self.control_socket = socket_path(config.control_socket, config.state_dir)
        self.supervisor = Supervisor(supervision, transient=(StoreError,),
                                     fault=faults.task_fault if faults else None)
        self._wake = asyncio.Event()
        self.timers = TimerLoop(self, self._wake, mono=mono, poll=timer_poll)
        self._crash = crash_points or CrashPoints.from_env(os.environ.get("SIMGW_CRASHPOINTS"))
        self.outbox_changed = asyncio.Event()
        self._ingest_queue: list[tuple[ReceivedPart, asyncio.Future]] = []
        self._configured_msisdn = {m.port: m.msisdn for m in config.modems if m.msisdn}
        self._ingest_ready = asyncio.Event()
        self.inventory_changed = asyncio.Event()
        self.uplink: UplinkClient | None = None
        if config.uplink is not None:
            u = config.uplink
            self.uplink = UplinkClient(UplinkSettings(u.url, u.token, config.gateway_id, __version__,
                                                      allow_insecure=u.allow_insecure, ca_file=u.ca_file,
                                                      window=u.window, backoff_max=u.backoff_max,
                                                      health_interval=u.health_interval),
                                       self, outbox_changed=self.outbox_changed,
                                       inventory_changed=self.inventory_changed, fresh_outbox=self._fresh_outbox)
        self.hub = None  # selling through an SMSHub-compatible marketplace too ([smshub])
        if config.smshub is not None:
            from gateway.smshub.service import HubService

            self.hub = HubService(config, self.core, self.call, self._after_hub_decision)

    def _hand_to_uplink(self, rows: list[tuple[int, str, dict]]) -> None:
        """(core thread) Committed outbox rows, for the uplink to send without a store round trip;
        only while it is connected: otherwise they are read from the store on reconnect, so SMS
        texts do not wait in memory past their retention while the marketplace is away."""
        if self.uplink is not None and self.uplink.connected.is_set():
            self._fresh_outbox.extend(rows)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the core thread, after everything submitted before it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.call(self.store.open)
        resolved = await self.call(self.core.start)
        log.info("gateway.started", leases=len(self.core.engine.active()), resolved_on_start=len(resolved),
                 modems=len(self.config.modems))
        self._rescan()
        self.supervisor.start("port-rescan", self._rescan_loop)
        self.supervisor.start("lease-timers", self.timers.run)
        self.supervisor.start("ingest", self._ingest_loop)
        if self.uplink is not None:
            self.supervisor.start("uplink", self.uplink.run)
        if self.hub is not None:
            await self.hub.start(self.supervisor.start)
        routes = ControlRoutes(self, mono=self._mono, wall=self._wall)
        self.control = ControlServer(routes, listen=self.config.control_listen, socket_path=self.control_socket,
                                     link_from=None if self.config.control_socket else self.config.state_dir)
        await self.control.start()

    def _rescan(self) -> None:
        """Drive every configured port, expanding patterns (``/dev/serial/by-id/*-if02-port0``):
        a modem plugged in later is picked up without a restart. A port that vanishes keeps its
        driver, which reports it gone and reopens it when it comes back under the same name."""
        driven = {modem.path for modem in self.modems}
        for modem_config in self.config.modems:
            for path in _expand(modem_config.port):
                if path in driven:
                    continue
                driven.add(path)
                options = replace(self._modem_options, baudrate=modem_config.baud,
                                  receive_mode=ReceiveMode(modem_config.receive_mode), profile=modem_config.profile)
                bank = self.config.bank_of(path)
                if bank is not None and bank.reset_wait is not None:
                    options = replace(options, reset_wait=bank.reset_wait)
                modem = Modem(path, self._sink, options=options, on_state=self._on_modem_state)
                self.modems.append(modem)
                self.supervisor.start(f"modem:{path}", modem.run)
                log.info("modem.port_added", port=path)

    async def _rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self._rescan_interval)
            self._rescan()

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

    # ---------------------------------------------------------------------------------- modems
    async def _sink(self, part: ReceivedPart) -> None:
        """The driver's receive contract: return only once the part is on disk; raise if not."""
        self._crash.maybe_crash("before_ingest")
        if not part.identity.msisdn and part.port in self._configured_msisdn:
            part = replace(part, identity=replace(part.identity, msisdn=self._configured_msisdn[part.port]))
        future: asyncio.Future[Ingested] = asyncio.get_running_loop().create_future()
        self._ingest_queue.append((part, future))
        self._ingest_ready.set()
        result = await future
        if result.status == "failed":
            raise StoreError(f"not stored: {result.error}")
        self._crash.maybe_crash("after_ingest")
        log.info("sms.stored", port=part.port, status=result.status, msg_id=result.message_id,
                 lease=result.lease_id, quarantined=result.quarantined)
        if result.lease_id:
            due = self.core.due_at
            if due is not None and due < self.timers.wake_at:
                self._wake.set()  # a deadline now comes before the timer's next wake-up
            self.outbox_changed.set()
            await self._dispatch_switches()

    async def _ingest_loop(self) -> None:
        """Hand the core thread everything that queued while it was busy: group commit, so 64
        modems do not cost 64 fsyncs when their SMS arrive together. Every waiting driver gets
        an answer, an error included, so no part is deleted from a SIM unstored."""
        while True:
            await self._ingest_ready.wait()
            self._ingest_ready.clear()
            while self._ingest_queue:
                batch, self._ingest_queue = self._ingest_queue, []
                try:
                    results = await self.call(self.core.ingest_many, [part for part, _ in batch])
                except BaseException as exc:
                    error = exc if isinstance(exc, Exception) else StoreError("the daemon is stopping")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)

    def _on_modem_state(self, modem: Modem) -> None:
        self.port_counters.totals(modem.path, modem.channel)  # every session's counts, before its channel closes
        identity = modem.identity
        if self.switcher is not None and self.core.banks.bank_of(modem.path) is not None:
            if modem.path not in self.switcher.switching and modem.health.state in (*ONLINE_STATES, ModemState.NO_SIM):
                operator = modem.health.operator
                self.supervisor.start(f"observe:{modem.path}",
                                      lambda: self._observe(modem.path, identity.iccid, operator))
            return
        if not identity.iccid:
            return
        modem_config = next((m for m in self.config.modems if m.port == modem.path), None)
        msisdn = identity.msisdn or (modem_config.msisdn if modem_config else None)
        online = modem.health.state in ONLINE_STATES
        operator = modem.health.operator
        self.supervisor.start(f"bind:{modem.path}",
                              lambda: self._bind(modem.path, identity.iccid, msisdn, online, operator))

    async def _bind(self, port: str, iccid: str, msisdn: str | None, online: bool, operator: str | None) -> None:
        await self.call(self.core.set_operator, port, operator)
        await self.call(self.core.bind_sim, port, iccid, msisdn, online)
        self.inventory_changed.set()

    # ------------------------------------------------------------------------------- SIM banks
    def _modem_at(self, port: str) -> Modem | None:
        return next((m for m in self.modems if m.path == port), None)

    async def _observe(self, port: str, iccid: str, operator: str | None) -> None:
        await self.call(self.core.set_operator, port, operator)
        await self.call(self.core.observe_channel, port, iccid)
        await self._after_bank_change()

    async def _switch_done(self, order: SwitchOrder, report, msisdn: str | None, source: str | None) -> None:
        await self.call(self.core.switch_done, order, report, msisdn, source)
        await self._after_bank_change()

    async def _after_bank_change(self) -> None:
        self._wake.set()
        self.outbox_changed.set()
        self.inventory_changed.set()
        await self._dispatch_switches()

    async def _after_hub_decision(self) -> None:
        """A hub's GET_NUMBER or FINISH_ACTIVATION committed: switches, deadlines, the other market."""
        await self._dispatch_switches()
        self._wake.set()
        self.inventory_changed.set()

    async def _dispatch_switches(self, orders: list[SwitchOrder] | None = None) -> None:
        """Hand the switcher what committed transactions decided."""
        if self.switcher is None:
            return
        if orders is None:
            orders = await self.call(self.core.take_switch_orders)
        for order in orders:
            self.switcher.start(order)

    # ------------------------------------------------------------------------- the uplink's port
    async def acked_seq(self) -> int:
        return await self.call(self.store.acked_seq)

    async def max_seq(self) -> int:
        return await self.call(self.store.max_seq)

    async def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]]:
        return await self.call(self.core.outbox_after, seq, limit)

    async def acked(self, seq: int) -> None:
        """Record the marketplace's ack; if the store cannot commit, a later ack records it (until
        then a restart resends those events, which the marketplace knows by seq and msg_id)."""
        try:
            await self.call(self.core.ack, seq)
        except StoreError as exc:
            log.warning("uplink.ack_not_saved", seq=seq, error=str(exc))

    async def command(self, command: OpenLease | LeaseAction) -> dict[str, object]:
        """Run a marketplace command; a store that cannot commit answers ``unavailable`` (nothing
        was done, nothing stored: the marketplace sends the same command again)."""
        try:
            result = await self.call(self.core.command, command.command_id, self._command_step(command))
        except StoreError as exc:
            log.warning("uplink.command_unavailable", command=type(command).__name__, lease=command.lease_id,
                        error=str(exc))
            return {"ok": False, "lease_id": command.lease_id, "reason": "unavailable", "retry_after": TIMER_RETRY_MAX,
                    "message": "the gateway cannot commit now (disk full or read-only); send it again"}
        await self._dispatch_switches()
        self._wake.set()
        self.outbox_changed.set()
        self.inventory_changed.set()
        log.info("uplink.command", command=type(command).__name__, lease=command.lease_id, ok=result.get("ok"),
                 number=result.get("number"), reason=result.get("reason"))
        return result

    def _command_step(self, command: OpenLease | LeaseAction):
        """The engine call a marketplace command stands for, run on the core thread."""
        core, engine = self.core, self.core.engine
        if isinstance(command, LeaseAction):
            action = getattr(engine, command.action)
            return lambda now: action(command.lease_id, now)

        def open_lease(now: float):
            number = command.number or core.choose_number(command.service, country=command.country,
                                                           operator=command.operator,
                                                           exclude_prefixes=command.exclude_prefixes)
            if number is None:
                return [*engine.tick(now), Refused(Refusal.NO_NUMBER, command.lease_id)]
            return core.open_step(command.lease_id, number, command.service, now, category=command.category,
                                  wait_window=command.wait_window)

        return open_lease

    async def inventory(self) -> dict[str, object]:
        return await self.call(self.core.inventory)

    async def health(self) -> dict[str, object]:
        return {"at": self._wall(), "modems": modems_json(self)}

    # ------------------------------------------------------------------------------ control API
    async def local_command(self, step: Callable[..., list], *args: Any, **kwargs: Any) -> dict[str, object]:
        """A lease command from the control socket: decided on the core thread, then handed to
        the switcher, the timers and the uplink like any other decision."""
        decisions = await self.call(step, *args, **kwargs)
        await self._dispatch_switches()
        self._wake.set()
        self.outbox_changed.set()
        return decisions_json(decisions)

    @property
    def control_address(self) -> tuple[str, int] | None:
        """The read-only TCP listener's address (port 0 in the config: the one the kernel chose)."""
        return self.control.address if self.control is not None else None

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


def _boot_id() -> str | None:
    """This boot's id: while it holds, time.monotonic() runs on across our restarts."""
    return boot_id()  # /proc/sys, or $SIMGW_BOOT_ID where the unit hides it; logged when neither


def _expand(port: str) -> list[str]:
    """A port path, or every path a glob pattern matches right now."""
    if not any(ch in port for ch in "*?["):
        return [port]
    return sorted(glob.glob(port))


async def run_daemon(config: Config, stop: asyncio.Event, *, reload: asyncio.Event | None = None) -> int:
    """The daemon's life: start, tell systemd, serve until ``stop``, reload on ``reload``. Returns
    the exit status: 0 when asked to stop, 1 when a supervised task kept failing (the watchdog
    stopped being pinged at that moment; systemd restarts us)."""
    notifier = Notifier.from_env()
    faults = FaultFiles.from_env()
    raise_open_files_limit()
    gateway = Gateway(config, wall=faults.wall, faults=faults) if faults.directory else Gateway(config)
    try:
        await gateway.start()
    except BaseException:
        await gateway.stop()  # what did start (modems, the core thread) stops before the error is told
        raise
    host, port = gateway.control_address or ("?", 0)
    log.info("gateway.ready", control=gateway.control_socket, status=f"{host}:{port}", modems=len(config.modems))
    notifier.ready(f"serving {len(config.modems)} modem(s); control on {gateway.control_socket}, "
                   f"status on {host}:{port}")
    watchdog = asyncio.create_task(notifier.watchdog(gateway.supervisor.healthy), name="watchdog")
    reload = reload or asyncio.Event()
    gave_up = gateway.supervisor.gave_up
    try:
        while not stop.is_set() and not gave_up.is_set():
            waiters = [asyncio.ensure_future(e.wait()) for e in (stop, reload, gave_up)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if reload.is_set() and not stop.is_set() and not gave_up.is_set():
                reload.clear()
                await gateway.reload()
    finally:
        notifier.stopping()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        await gateway.stop()
    if gave_up.is_set():
        notifier.status(f"failed: {gateway.supervisor.reason}")
        log.critical("gateway.exiting", reason=gateway.supervisor.reason, status=1)
        return 1
    return 0
