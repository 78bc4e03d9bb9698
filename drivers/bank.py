"""SIM bank drivers: connect a slot's SIM to a radio and prove the right SIM came up.

A switch is a command, to the bank's own controller port or to the modem itself, in a style
given as data (:data:`PRESETS`, or a template in the config). Whatever the style, bringing a SIM
in is the same procedure (:func:`bring_in`): the modem reads what the outgoing SIM still holds,
the command is sent, the modem is reset, ``+CPIN: READY`` is polled, the ICCID is read back and
compared with the slot's, and registration is awaited. A wrong or missing SIM is reported, never
trusted; a switch that was not acknowledged or brought the wrong SIM is retried.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import structlog

from drivers.channel import AtChannel, CommandTimeout, PortGone
from drivers.modem import Modem, ModemState, ModemUnresponsive, SimSelect
from drivers.serial_port import PortOpenError

log = structlog.get_logger("drivers.bank")


@dataclass(frozen=True, slots=True)
class SwitchStyle:
    """How a bank is told to connect a slot: one subclass per switching kind, which knows where
    the command goes (:meth:`send`) and how its channels reach the slots. The template may use
    ``{channel}`` (1-based), ``{slot}`` (1-based, bank-wide), ``{local}`` (1-based within the
    channel) and ``{value}`` (``values[local - 1]``, for firmware that numbers its SIM
    interfaces oddly). A new kind of bank is a new subclass, not a string checked elsewhere."""

    name: str
    template: str
    expect_ok: bool = True
    values: tuple[str, ...] = ()

    needs_controller: ClassVar[bool] = False  # the bank has a port of its own the config must name
    slots_consecutive: ClassVar[bool] = False  # channel c holds a run of slots (else every n-th, interleaved)

    def command(self, channel: int, slot: int, local: int) -> str:
        value = self.values[local - 1] if 0 < local <= len(self.values) else str(local)
        return self.template.format(channel=channel, slot=slot, local=local, value=value)

    async def send(self, command: str, modem: Modem, controller: BankController | None, timing: SwitchTiming) -> None:
        """Tell the bank to connect the slot; raises :class:`SwitchRefused` when it says no."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ControllerStyle(SwitchStyle):
    """A bank with its own controller port: the command goes there, for any of its radios."""

    needs_controller: ClassVar[bool] = True

    async def send(self, command: str, modem: Modem, controller: BankController | None, timing: SwitchTiming) -> None:
        if controller is None:
            raise SwitchRefused(f"{self.name}: no controller port to send {command} to")
        await controller.send(command, expect_ok=self.expect_ok, timeout=timing.ok_timeout)


@dataclass(frozen=True, slots=True)
class OnModemStyle(SwitchStyle):
    """A multi-SIM modem that switches its own SIM interface: the command goes to the modem."""

    slots_consecutive: ClassVar[bool] = True

    async def send(self, command: str, modem: Modem, controller: BankController | None, timing: SwitchTiming) -> None:
        response = await modem.command(command, timeout=timing.ok_timeout, check=False)
        if self.expect_ok and not response.result.ok:
            raise SwitchRefused(f"{modem.path}: {command}: {response.result.text}")


PRESETS: dict[str, SwitchStyle] = {s.name: s for s in (
    # The widely used open-source rotator; many controllers switch without a word back.
    ControllerStyle("swit", "AT+SWIT{channel:02d}-{slot:04d}", expect_ok=False),
    # Cinterion dual-SIM: interface 0 is SIM 1, interface 3 is SIM 2 (AT^SCFG="SIM/DualMode" on).
    OnModemStyle("cinterion", 'AT^SCFG="SIM/CS","{value}"', values=("0", "3")),
    OnModemStyle("quectel", "AT+QUIMSLOT={local}"),
)}


@dataclass(frozen=True, slots=True)
class SwitchTiming:
    switch_time: float = 10.0  # the bank's mechanical or electrical switch
    ok_timeout: float = 3.0  # how long an acknowledging controller may take to say OK
    start_timeout: float = 30.0  # for the modem to finish the read in hand and take the switch
    settle_timeout: float = 90.0  # for the reset modem to come back and report its SIM state
    sim_timeout: float = 15.0  # for a SIM still initialising to report +CPIN: READY
    register_timeout: float = 90.0
    poll: float = 1.0
    retries: int = 2  # extra attempts after a switch that was not acknowledged or brought the wrong SIM


class Failure(enum.Enum):
    NO_ANSWER = "no_answer"  # the bank or modem did not acknowledge the switch
    WRONG_SIM = "wrong_sim"  # another SIM (or the old one) came up
    EMPTY = "empty"  # no SIM in the slot
    NO_NETWORK = "no_network"  # the SIM never registered
    MODEM_DOWN = "modem_down"  # the channel's modem is not serving


@dataclass(frozen=True, slots=True)
class SwitchReport:
    ok: bool
    failure: Failure | None
    detail: str
    attempts: int
    seconds: float
    iccid: str = ""
    imsi: str = ""
    operator: str | None = None
    msisdn: str = ""


class SwitchRefused(Exception):
    """The bank or modem answered the switch command with an error, or not at all when it should."""


class BankController:
    """The controller's serial port, opened on first use and reopened after it was lost."""

    def __init__(self, path: str, *, baudrate: int = 115200) -> None:
        self.path = path
        self._baudrate = baudrate
        self._channel: AtChannel | None = None
        self._lock = asyncio.Lock()

    async def send(self, command: str, *, expect_ok: bool, timeout: float) -> None:
        async with self._lock:  # one switch command at a time on the controller's line
            if self._channel is None or not self._channel.is_open:
                self._channel = AtChannel(self.path, baudrate=self._baudrate, on_urc=lambda urc: None)
                try:
                    self._channel.open()
                except PortOpenError as exc:
                    self._channel = None
                    raise SwitchRefused(f"bank controller {self.path}: {exc}") from None
            try:
                response = await self._channel.command(command, timeout=timeout, check=False)
            except CommandTimeout:
                if expect_ok:
                    raise SwitchRefused(f"bank controller {self.path}: no answer to {command}") from None
                return  # a controller that switches without answering
            except PortGone as exc:
                self._channel = None
                raise SwitchRefused(f"bank controller {self.path}: {exc}") from None
            if not response.result.ok:
                raise SwitchRefused(f"bank controller {self.path}: {command}: {response.result.text}")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


def selector(style: SwitchStyle, controller: BankController | None, timing: SwitchTiming, *,
             channel: int, slot: int, local: int) -> SimSelect:
    """The :data:`~drivers.modem.SimSelect` for one switch: send the command, wait the switch time."""
    command = style.command(channel, slot, local)

    async def select(modem: Modem) -> None:
        await style.send(command, modem, controller, timing)
        await asyncio.sleep(timing.switch_time)

    return select


async def bring_in(modem: Modem, select: SimSelect, *, expected_iccid: str | None,
                   timing: SwitchTiming, clock: Callable[[], float] = time.monotonic) -> SwitchReport:
    """Connect a SIM to ``modem`` through ``select`` and verify it; retried as :class:`SwitchTiming` says.
    ``expected_iccid`` None accepts whatever SIM comes up (a slot seen for the first time)."""
    started = clock()
    attempts = 0
    report: SwitchReport | None = None
    while attempts <= timing.retries:
        attempts += 1
        report = await _attempt(modem, select, expected_iccid, timing, attempts, started, clock)
        if report.ok or report.failure not in (Failure.NO_ANSWER, Failure.WRONG_SIM):
            break
        log.warning("bank.switch_retry", port=modem.path, attempt=attempts, failure=report.failure.value,
                    detail=report.detail)
    assert report is not None
    return report


async def _attempt(modem: Modem, select: SimSelect, expected: str | None, timing: SwitchTiming, attempts: int,
                   started: float, clock: Callable[[], float]) -> SwitchReport:
    def failed(failure: Failure, detail: str) -> SwitchReport:
        return SwitchReport(False, failure, detail, attempts, clock() - started, modem.identity.iccid)

    modem.settled.clear()
    try:
        await modem.switch_sim(select, timeout=timing.start_timeout)
    except SwitchRefused as exc:
        return failed(Failure.NO_ANSWER, str(exc))
    except (ModemUnresponsive, PortGone, CommandTimeout) as exc:
        return failed(Failure.MODEM_DOWN, str(exc))
    try:
        await asyncio.wait_for(modem.settled.wait(), timing.settle_timeout)
    except asyncio.TimeoutError:
        return failed(Failure.MODEM_DOWN, f"{modem.path}: did not come back within {timing.settle_timeout:g}s of the reset")
    if not await _sim_ready(modem, timing, clock):
        return failed(Failure.EMPTY, f"{modem.path}: no SIM after the switch (SIM state {modem.health.sim_state})")
    iccid = modem.identity.iccid
    if expected and iccid != expected:
        return failed(Failure.WRONG_SIM, f"{modem.path}: expected the slot's SIM, another came up")
    try:
        registered = await modem.wait_registered(timing.register_timeout, timing.poll)
    except (ModemUnresponsive, PortGone, CommandTimeout) as exc:
        return failed(Failure.MODEM_DOWN, str(exc))
    if not registered:
        return failed(Failure.NO_NETWORK, f"{modem.path}: the SIM did not register within {timing.register_timeout:g}s")
    identity = modem.identity
    return SwitchReport(True, None, "ok", attempts, clock() - started, identity.iccid, identity.imsi,
                        modem.health.operator, identity.msisdn)


async def _sim_ready(modem: Modem, timing: SwitchTiming, clock: Callable[[], float]) -> bool:
    """A SIM may still be initialising when the modem is back: poll ``AT+CPIN?`` a while, and
    have the driver initialise again once it says READY."""
    if modem.ready.is_set():
        return True
    deadline = clock() + timing.sim_timeout
    while clock() < deadline:
        if modem.health.state not in (ModemState.NO_SIM, ModemState.SIM_LOCKED):
            await asyncio.sleep(timing.poll)
        else:
            try:
                response = await modem.command("AT+CPIN?", check=False)
            except (PortGone, CommandTimeout):
                return False
            if any("READY" in line for line in response.lines):
                modem.settled.clear()
                modem.request_reinit()
                try:
                    await asyncio.wait_for(modem.settled.wait(), timing.settle_timeout)
                except asyncio.TimeoutError:
                    return False
                return modem.ready.is_set()
            await asyncio.sleep(timing.poll)
        if modem.ready.is_set():
            return True
    return modem.ready.is_set()
