"""A modem session: initialise, identify, probe health, receive SMS, recover.

The receive contract: every stored message is handed to the ``sink`` as a :class:`ReceivedPart`;
only when the sink returns (it has stored the part durably) is the message deleted from the SIM.
A sink that raises leaves the message on the SIM, and the next sweep offers it again, so the sink
must tolerate seeing a part twice. One reader task per modem serialises CMTI reads and sweeps, so a
sweep and a ``+CMTI`` never race to delete the same index.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from drivers.at.parse import (
    AtParseError,
    Registration,
    StoredPdu,
    csq_to_dbm,
    parse_cmgl,
    parse_cmgr,
    parse_cmti,
    parse_cops,
    parse_cpin,
    parse_cpms,
    parse_creg,
    parse_csq,
    parse_cusd,
    parse_identity_line,
    split_args,
    swap_nibbles,
)
from drivers.at.protocol import Urc
from drivers.at.results import CMS_INVALID_INDEX, CMS_MEMORY_FULL
from drivers.channel import AtChannel, AtError, CommandFailed, CommandTimeout, PortGone, Priority
from drivers.profiles import BY_NAME, GENERIC, Profile, select_profile
from drivers.serial_port import PortOpenError
from drivers.sms.pdu import Decoded, PduError, decode_pdu

BOOT_URCS = frozenset({"RDY", "^SYSSTART", "+CFUN:", "SMS Ready", "Call Ready", "+PACSP1", "^BOOT:"})
"""URCs that mean the modem restarted and forgot our settings (CNMI, CMGF, storage)."""
FULL_URCS = frozenset({"^SMMEMFULL:", "+CIEV:"})


class ModemState(enum.Enum):
    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"
    NO_SIM = "no_sim"
    SIM_LOCKED = "sim_locked"
    NOT_REGISTERED = "not_registered"
    UNRESPONSIVE = "unresponsive"
    RESETTING = "resetting"
    SWITCHING = "switching"  # a SIM bank is connecting another SIM; back after the modem's reset
    GONE = "gone"


class ReceiveMode(enum.Enum):
    STORE = "store"  # +CMTI: stored on the SIM, then announced (default; survives our crashes)
    DIRECT = "direct"  # +CMT: routed to us, acknowledged with +CNMA after the sink stored it


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    revision: str = ""
    imei: str = ""
    imsi: str = ""
    iccid: str = ""
    msisdn: str = ""


@dataclass(frozen=True, slots=True)
class ReceivedPart:
    """One message as read from the modem. ``sms`` is None when the PDU did not decode; the raw
    hex and the ``error`` are kept so nothing is silently dropped."""

    port: str
    identity: ModemIdentity
    storage: str | None
    index: int | None
    pdu_hex: str
    sms: Decoded | None
    error: str | None
    received_at: datetime
    received_monotonic: float


PartSink = Callable[[ReceivedPart], Awaitable[None]]


@dataclass(slots=True)
class ModemHealth:
    state: ModemState = ModemState.STARTING
    profile: str = GENERIC.name
    signal_dbm: int | None = None
    rssi: int | None = None
    registration: Registration | None = None
    operator: str | None = None
    sim_state: str | None = None
    storage: str | None = None
    storage_used: int | None = None
    storage_total: int | None = None
    cnmi: str | None = None
    last_error: str | None = None
    last_sms_at: float | None = None
    sms_received: int = 0
    sms_undecodable: int = 0
    sink_failures: int = 0
    recoveries: int = 0
    soft_resets: int = 0


@dataclass(frozen=True, slots=True)
class ModemOptions:
    baudrate: int = 115200
    receive_mode: ReceiveMode = ReceiveMode.STORE
    command_timeout: float = 5.0
    list_timeout: float = 30.0
    health_interval: float = 30.0
    sweep_interval: float = 60.0
    empty_read_retries: tuple[float, ...] = (0.1, 0.3, 1.0)
    reopen_initial: float = 0.2  # first reopen delay; doubles per failure, with jitter
    reopen_max: float = 30.0  # the cap: a modem that is gone is looked for twice a minute
    unresponsive_after: int = 2  # consecutive timeouts before the port is reopened
    soft_reset_after: int = 2  # reopenings of a modem that answers AT but hangs, before a soft reset
    reset_wait: float | None = None  # seconds to let a reset modem boot (None: the profile's figure)
    profile: str | None = None  # force a profile instead of choosing from the identity


class ModemUnresponsive(Exception):
    pass


class _Recover(Exception):
    """The port's life ended without reaching ready; tenacity decides when to try again."""


class ModemResetting(Exception):
    """The driver soft-reset the modem; the port is closed until it has had time to boot."""


class SimSwitching(ModemResetting):
    """Another SIM was connected and the modem reset to use it; the port reopens after the boot."""


SimSelect = Callable[["Modem"], Awaitable[None]]
"""What connects the new SIM: a bank controller's command, or one sent on the modem itself."""


@dataclass(order=True, slots=True)
class _Work:
    """A unit of reader work: read one index (after +CMTI) or sweep the whole storage."""

    seq: int
    index: int | None = field(compare=False, default=None)
    storage: str | None = field(compare=False, default=None)
    switch: tuple[SimSelect, asyncio.Future[None]] | None = field(compare=False, default=None)


class Modem:
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
        self._channel: AtChannel | None = None
        self._work: asyncio.Queue[_Work] = asyncio.Queue()
        self._seq = 0
        self._queued_indexes: set[int] = set()
        self._lost = asyncio.Event()
        self._reinit_needed = asyncio.Event()
        self._stopping = False
        self._answered_at = False
        self._half_alive = 0
        self.ready = asyncio.Event()
        self.settled = asyncio.Event()  # set when an initialisation ends, ready or not (no SIM, locked)
        self._ussd: asyncio.Future[tuple[int, str | None]] | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Serve the modem until cancelled, healing it by escalation: resync (the channel drains
        after every timeout), reopen the port, soft-reset a modem that answers ``AT`` but hangs on
        real work, and wait, with backoff, for a port that vanished to come back (reported gone
        meanwhile). Whatever was stored on the SIM meanwhile is read by the sweep after init.
        The backoff is tenacity's exponential with jitter, capped, and starts afresh after every
        session that reached ready; a soft reset waits the modem's boot time instead."""
        while not self._stopping:
            retrying = AsyncRetrying(wait=self._reopen_wait, retry=retry_if_exception_type(_Recover),
                                     reraise=True)
            async for attempt in retrying:
                with attempt:
                    await self._attempt()

    def _reopen_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Recover) and isinstance(error.__cause__, ModemResetting):
            return self.options.reset_wait if self.options.reset_wait is not None else self.profile.reset_time
        backoff = wait_exponential(multiplier=self.options.reopen_initial, max=self.options.reopen_max) \
            + wait_random(0, self.options.reopen_initial)
        return min(backoff(state), self.options.reopen_max)

    async def _attempt(self) -> None:
        """One life of the port: open, initialise, serve. Returns after a session that reached
        ready (so the backoff starts afresh); raises :class:`_Recover` after one that did not."""
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
        finally:
            self.ready.clear()
            if self._channel is not None:
                self._channel.close()
                self._channel = None
        self.health.recoveries += 1
        if failure is None or (reached_ready and not isinstance(failure, ModemResetting)):
            await asyncio.sleep(self.options.reopen_initial)
            return
        raise _Recover(str(failure)) from failure

    def stop(self) -> None:
        self._stopping = True

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

    async def _open_and_initialise(self) -> None:
        self._set_state(ModemState.STARTING)
        self._lost.clear()
        self._reinit_needed.clear()
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
        await self._sync()
        command = self.profile.reset_command
        self._log.warning("modem.soft_reset", command=command, failures=self._half_alive)
        self._half_alive = 0
        self.health.soft_resets += 1
        await self._cmd(command, timeout=3.0, priority=Priority.URGENT, check=False)
        raise ModemResetting(f"{self.path}: soft reset with {command} after repeated hangs")

    async def _initialise(self) -> None:
        await self._sync()
        self._answered_at = True
        await self._cmd("ATE0", check=False)
        if not (await self._cmd("AT+CMEE=2", check=False)).result.ok:
            await self._cmd("AT+CMEE=1", check=False)
        await self._identify()
        for command in self.profile.init_commands:
            await self._cmd(command, check=False)
        sim_ok = await self._check_sim()
        if not sim_ok:
            self.settled.set()
            return
        await self._cmd("AT+CMGF=0")
        await self._choose_storage()
        await self._enable_indications()
        await self.probe_health()
        self._half_alive = 0
        self.ready.set()
        self.settled.set()
        self._enqueue_sweep()

    async def _sync(self) -> None:
        """Get a clean ``OK`` to a bare ``AT``; a booting modem may need a few tries."""
        for attempt in range(4):
            try:
                response = await self._cmd("AT", timeout=1.0 + attempt, priority=Priority.URGENT, check=False)
                if response.result.ok:
                    return
            except CommandTimeout:
                continue
        raise ModemUnresponsive(f"{self.path}: no answer to AT")

    async def _identify(self) -> None:
        manufacturer = await self._identity_value("AT+CGMI", ("+CGMI:",))
        model = await self._identity_value("AT+CGMM", ("+CGMM:",))
        revision = await self._identity_value("AT+CGMR", ("+CGMR:", "Revision:"))
        imei = await self._identity_value("AT+CGSN", ("+CGSN:",))
        if self.options.profile:
            self.profile = BY_NAME[self.options.profile]
        else:
            self.profile = select_profile(manufacturer, model)
        self.health.profile = self.profile.name
        self.identity = ModemIdentity(manufacturer, model, revision, imei)

    async def _identity_value(self, command: str, prefixes: tuple[str, ...]) -> str:
        response = await self._cmd(command, expect=prefixes, check=False)
        if not response.result.ok:
            return ""
        return parse_identity_line(response.lines, prefixes) or ""

    async def _read_iccid(self) -> str:
        for spec in self.profile.iccid_commands:
            response = await self._cmd(spec.command, expect=spec.prefixes, check=False)
            if not response.result.ok:
                continue
            value = parse_identity_line(response.lines, spec.prefixes)
            if not value:
                continue
            if spec.swapped:
                fields = value.split(",")
                if len(fields) < 3 or fields[0] not in ("144", "145"):
                    continue
                value = swap_nibbles(fields[2].strip('"'))
            value = value.rstrip("Ff")
            if value[:2] == "89" and value.isdigit():
                return value
        return ""

    async def _check_sim(self) -> bool:
        response = await self._cmd("AT+CPIN?", check=False)
        sim_state = None
        for line in response.lines:
            if line.startswith("+CPIN:"):
                sim_state = parse_cpin(line)
        if sim_state is None:
            sim_state = "NOT INSERTED" if response.result.code in (10, 13) or "not inserted" in response.result.text.lower() else "UNKNOWN"
        self.health.sim_state = sim_state
        if sim_state != "READY":
            self.identity = replace(self.identity, imsi="", iccid="", msisdn="")
            self._set_state(ModemState.SIM_LOCKED if "PIN" in sim_state or "PUK" in sim_state else ModemState.NO_SIM,
                            f"SIM state {sim_state}")
            return False
        imsi = await self._identity_value("AT+CIMI", ("+CIMI:",))
        iccid = await self._read_iccid()
        msisdn = await self._read_msisdn()
        self.identity = replace(self.identity, imsi=imsi, iccid=iccid, msisdn=msisdn)
        self._log.info("modem.identified", profile=self.profile.name, manufacturer=self.identity.manufacturer,
                       model=self.identity.model, iccid=iccid)
        return True

    async def _read_msisdn(self) -> str:
        response = await self._cmd("AT+CNUM", check=False)
        for line in response.lines:
            if line.startswith("+CNUM:"):
                fields = split_args(line[6:])
                if len(fields) >= 2 and fields[1]:
                    return fields[1]
        return ""

    async def _choose_storage(self) -> None:
        """Use the first storage the modem accepts for reading, writing and receiving."""
        for storage in self.profile.storages:
            response = await self._cmd(f'AT+CPMS="{storage}","{storage}","{storage}"', check=False)
            if response.result.ok:
                self.health.storage = storage
                self._record_cpms(response.lines)
                return
        raise CommandFailed(self.path, "AT+CPMS", response.result)

    def _record_cpms(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CPMS:"):
                try:
                    first = parse_cpms(line)[0]
                except AtParseError:
                    return
                self.health.storage_used, self.health.storage_total = first[1], first[2]

    async def _enable_indications(self) -> None:
        direct = self.options.receive_mode is ReceiveMode.DIRECT
        if direct:
            await self._cmd("AT+CSMS=1", check=False)
        forms = self.profile.cnmi_direct_forms if direct else self.profile.cnmi_forms
        last = None
        for form in forms:
            response = await self._cmd(f"AT+CNMI={form}", check=False)
            if response.result.ok:
                self.health.cnmi = form
                return
            last = response.result
            self._log.info("modem.cnmi_rejected", form=form, result=last.text)
        # No form accepted: we still receive by sweeping, just later. Degraded, not dead.
        self.health.cnmi = None
        self._set_state(ModemState.DEGRADED, f"every AT+CNMI form was rejected (last: {last.text if last else '?'})")

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
                    reader.result()  # re-raise what killed it
                    raise ModemUnresponsive(f"{self.path}: reader stopped")
                if self._reinit_needed.is_set():
                    self._reinit_needed.clear()
                    self._set_state(ModemState.RESETTING, "modem restarted")
                    await self._initialise()
                now = self._clock()
                if now >= next_health:
                    next_health = now + self.options.health_interval
                    await self.probe_health()
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

    async def probe_health(self) -> None:
        timeouts = 0
        for command, apply in (("AT+CSQ", self._apply_csq), ("AT+CREG?", self._apply_creg),
                               ("AT+COPS?", self._apply_cops)):
            try:
                response = await self._cmd(command, priority=Priority.BACKGROUND, check=False)
            except CommandTimeout:
                timeouts += 1
                if timeouts >= self.options.unresponsive_after:
                    raise ModemUnresponsive(f"{self.path}: health probe timed out")
                continue
            if response.result.ok:
                try:
                    apply(response.lines)
                except AtParseError as exc:
                    self._log.info("modem.bad_health_line", error=str(exc))
        self._set_state(self._derived_state())

    def _derived_state(self) -> ModemState:
        if self.health.sim_state not in (None, "READY"):
            return ModemState.SIM_LOCKED if "PIN" in self.health.sim_state or "PUK" in self.health.sim_state \
                else ModemState.NO_SIM
        reg = self.health.registration
        if reg is not None and not reg.registered:
            return ModemState.NOT_REGISTERED
        if self.health.cnmi is None:
            return ModemState.DEGRADED
        return ModemState.OK

    def _apply_csq(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CSQ:"):
                rssi, _ = parse_csq(line)
                self.health.rssi = rssi
                self.health.signal_dbm = csq_to_dbm(rssi)

    def _apply_creg(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+CREG:"):
                self.health.registration = parse_creg(line)

    def _apply_cops(self, lines: tuple[str, ...]) -> None:
        for line in lines:
            if line.startswith("+COPS:"):
                self.health.operator = parse_cops(line)

    # ------------------------------------------------------------------------------------ URCs
    def _on_urc(self, urc: Urc) -> None:
        name = urc.name
        if name == "+CMTI:":
            try:
                storage, index = parse_cmti(urc.args)
            except AtParseError as exc:
                self._log.info("modem.bad_cmti", error=str(exc))
                self._enqueue_sweep()
                return
            self._enqueue_index(index, storage)
        elif name == "+CMT:" and urc.body:
            asyncio.ensure_future(self._on_direct(urc.body))
        elif name in FULL_URCS and ("FULL" in urc.line.upper() or name == "^SMMEMFULL:"):
            self._log.warning("modem.storage_full")
            self._enqueue_sweep()
        elif name in BOOT_URCS and self.ready.is_set():
            self._log.info("modem.boot_urc", urc=name)
            self.ready.clear()
            self._reinit_needed.set()
        elif name == "+CUSD:":
            if self._ussd is not None and not self._ussd.done():
                try:
                    self._ussd.set_result(parse_cusd(urc.line))
                except AtParseError as exc:
                    self._ussd.set_exception(exc)
        elif name == "+CREG:" or name == "+CEREG:":
            try:
                self.health.registration = parse_creg(urc.line)
            except AtParseError:
                pass
        elif name == "+CPIN:":
            self.health.sim_state = parse_cpin(urc.line)
            if self.health.sim_state != "READY":
                self._set_state(ModemState.NO_SIM, f"SIM state {self.health.sim_state}")
            elif self.ready.is_set() is False and self.health.state is ModemState.NO_SIM:
                self._reinit_needed.set()

    def _enqueue_index(self, index: int, storage: str | None) -> None:
        if index in self._queued_indexes:
            return
        self._queued_indexes.add(index)
        self._seq += 1
        self._work.put_nowait(_Work(self._seq, index, storage))

    def _enqueue_sweep(self) -> None:
        self._seq += 1
        self._work.put_nowait(_Work(self._seq))

    # ---------------------------------------------------------------------------------- reader
    async def _reader(self) -> None:
        last_sweep_seq = -1
        while True:
            work = await self._work.get()
            if work.switch is not None:
                await self._switch(*work.switch)
            elif work.index is not None:
                self._queued_indexes.discard(work.index)
                if work.seq < last_sweep_seq:
                    continue  # a sweep issued after this +CMTI has already read it
                await self._read_index(work.index, work.storage)
            else:
                self._seq += 1
                last_sweep_seq = self._seq
                await self.sweep()

    async def _read_index(self, index: int, storage: str | None) -> None:
        for delay in (0.0, *self.options.empty_read_retries):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._cmd(f"AT+CMGR={index}", priority=Priority.SMS)
            except CommandFailed as exc:
                if exc.cms == CMS_INVALID_INDEX:
                    self._log.info("modem.index_vanished", index=index)
                    self._enqueue_sweep()  # whatever was there may have moved: look at everything
                    return
                raise
            try:
                stored = parse_cmgr(response.lines)
            except AtParseError as exc:
                self._log.warning("modem.bad_cmgr", index=index, error=str(exc))
                stored = None
            if stored is not None:
                await self._deliver(StoredPdu(index, stored.status, stored.pdu_hex), storage)
                return
        # Announced but still empty after the retries: some firmware announces before it commits.
        self._log.info("modem.announced_index_empty", index=index)
        self._enqueue_sweep()

    async def _switch(self, select: SimSelect, done: asyncio.Future[None]) -> None:
        """Read what the outgoing SIM holds (it leaves with its identity), connect the new SIM,
        reset the modem so it reads the new card, and end this port session."""
        if done.done():
            return  # the caller gave up waiting
        try:
            await self.sweep()
            await select(self)
        except Exception as exc:
            done.set_exception(exc)
            if isinstance(exc, (PortGone, CommandTimeout)):
                raise
            return
        done.set_result(None)
        self.ready.clear()
        self.settled.clear()
        try:
            await self._cmd(self.profile.reset_command, timeout=3.0, priority=Priority.URGENT, check=False)
        except CommandTimeout:
            pass  # many firmwares reset before they answer
        raise SimSwitching(f"{self.path}: SIM switched, modem reset with {self.profile.reset_command}")

    # ------------------------------------------------------------------------------ SIM banks
    async def switch_sim(self, select: SimSelect, *, timeout: float) -> None:
        """Have ``select`` connect another SIM, between two reads (never in the middle of one).
        Returns once it did; the modem then resets and :attr:`settled` is set when it is back."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        self._work.put_nowait(_Work(self._seq, switch=(select, done)))
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            done.cancel()
            raise ModemUnresponsive(f"{self.path}: not serving, the SIM switch did not start within {timeout:g}s")

    def request_reinit(self) -> None:
        """Initialise again (the SIM became ready after the modem had given up on it)."""
        self.ready.clear()
        self._reinit_needed.set()

    async def wait_registered(self, timeout: float, poll: float = 1.0) -> bool:
        """Probe until the SIM is registered (home or roaming), or ``timeout`` passes."""
        deadline = self._clock() + timeout
        while True:
            await self.probe_health()
            registration = self.health.registration
            if registration is not None and registration.registered:
                return True
            if self._clock() + poll > deadline:
                return False
            await asyncio.sleep(poll)

    async def ussd(self, code: str, timeout: float = 20.0) -> str | None:
        """Send a USSD request and return the network's text (None if it answered nothing, or the
        modem refused the request: busy, no SIM, no network)."""
        self._ussd = asyncio.get_running_loop().create_future()
        try:
            response = await self._cmd(f'AT+CUSD=1,"{code}",15', timeout=timeout, check=False)
            if not response.result.ok:
                self._log.info("modem.ussd_refused", result=response.result.text)
                return None
            status, text = await asyncio.wait_for(asyncio.shield(self._ussd), timeout)
            return text if status in (0, 1) else None
        except asyncio.TimeoutError:
            return None
        finally:
            self._ussd = None

    async def command(self, text: str, *, expect: tuple[str, ...] = (), timeout: float | None = None,
                      check: bool = True):
        """One AT command on this modem's channel, queued with the driver's own work."""
        return await self._cmd(text, expect=expect, timeout=timeout, check=check)

    async def sweep(self) -> int:
        """Read everything stored (``AT+CMGL=4``: all, PDU mode) and hand each to the sink."""
        response = await self._cmd("AT+CMGL=4", timeout=self.options.list_timeout, priority=Priority.SMS,
                                   check=False)
        if not response.result.ok:
            if response.result.code == CMS_MEMORY_FULL:
                self._log.warning("modem.storage_full")
            self._log.info("modem.sweep_failed", result=response.result.text)
            return 0
        try:
            stored = parse_cmgl(response.lines)
        except AtParseError as exc:
            self._log.warning("modem.bad_cmgl", error=str(exc))
            return 0
        for item in stored:
            await self._deliver(item, self.health.storage)
        if stored:
            self._log.info("modem.swept", count=len(stored))
        return len(stored)

    async def _deliver(self, stored: StoredPdu, storage: str | None) -> None:
        part = self._make_part(stored.pdu_hex, storage, stored.index)
        try:
            await self._sink(part)
        except Exception as exc:
            self.health.sink_failures += 1
            self._log.error("modem.sink_failed", index=stored.index, error=f"{type(exc).__name__}: {exc}")
            return  # not stored, so not deleted: the next sweep offers it again
        if stored.index is not None:
            try:
                await self._cmd(f"AT+CMGD={stored.index}", priority=Priority.SMS)
            except CommandFailed as exc:
                if exc.cms != CMS_INVALID_INDEX:
                    raise

    def _make_part(self, pdu_hex: str, storage: str | None, index: int | None) -> ReceivedPart:
        sms: Decoded | None
        try:
            sms = decode_pdu(pdu_hex)
            error = None
        except PduError as exc:
            sms, error = None, str(exc)
            self.health.sms_undecodable += 1
            self._log.warning("modem.undecodable_pdu", index=index, error=error)
        self.health.sms_received += 1
        self.health.last_sms_at = self._clock()
        return ReceivedPart(self.path, self.identity, storage, index, pdu_hex.strip(), sms, error,
                            self._wall_clock(), self._clock())

    async def _on_direct(self, pdu_hex: str) -> None:
        """``+CMT``: the sink stores it, then we acknowledge so the network stops retrying."""
        try:
            await self._sink(self._make_part(pdu_hex, None, None))
        except Exception as exc:
            self.health.sink_failures += 1
            self._log.error("modem.sink_failed", error=f"{type(exc).__name__}: {exc}")
            return  # no +CNMA: the network will redeliver
        try:
            await self._cmd("AT+CNMA", priority=Priority.URGENT, check=False)
        except AtError as exc:
            self._log.info("modem.cnma_failed", error=str(exc))

    # ---------------------------------------------------------------------------------- helpers
    async def _cmd(self, text: str, *, expect: tuple[str, ...] = (), timeout: float | None = None,
                   priority: Priority = Priority.NORMAL, check: bool = True):
        if self._channel is None:
            raise PortGone(self.path, text, "not open")
        return await self._channel.command(text, expect=expect, timeout=timeout or self.options.command_timeout,
                                           priority=priority, check=check)


async def stop_modems(modems: list[Modem], tasks: list[asyncio.Task]) -> None:
    """Stop every driver and wait until each of ``tasks`` has finished; empties ``tasks``."""
    for modem in modems:
        modem.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()
