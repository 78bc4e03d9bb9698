"""A simulated SIM bank: many SIM cards behind a few radios, switched by command.

Two styles, as real rigs come:

* ``controller``: a bank controller on its own serial port takes ``AT+SWIT{channel:02d}-{slot:04d}``
  (the open-source rotator's form; channel and slot 1-based) and connects that slot to that
  channel's modem after ``switch_time``. Channel ``c`` of ``n`` reaches slots ``c, c+n, c+2n...``.
  It may answer ``OK`` or nothing (``answers_ok``), as firmware differs.
* ``on_modem``: each modem holds ``slots_per_modem`` SIMs and switches with its own command
  (Cinterion ``AT^SCFG="SIM/CS",...``, Quectel ``AT+QUIMSLOT=...``).

Either way the modem must then be reset; the SIM registers ``register_time`` after the modem has
booted. The network holds SMS for a card that is not registered and hands them over when it
registers. Times are multiplied by ``time_scale``. Faults: a switch that silently does nothing
(:meth:`SimBank.fail_next_switch`), an empty slot (``cards[slot] = None``), a SIM that never
registers (``card.never_registers``).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from drivers.simulator.engine import SimCard, SimModem
from drivers.simulator.farm import sim_identity
from drivers.simulator.profiles import SIM_PROFILES
from drivers.simulator.pty import PtyModem
from drivers.sms.encode import DeliverSpec, encode_deliver

_SWIT = re.compile(r"AT\+SWIT(\d{1,3})-(\d{1,5})")
USSD_CODE = "*111*0887#"
USSD_REPLY = "Vash nomer {msisdn}"


@dataclass(slots=True)
class ControllerEngine:
    """The bank controller's command set, I/O-free, shaped like :class:`SimModem` for the pty."""

    on_switch: Callable[[int, int], bool]  # (channel, slot), 1-based -> accepted
    answers_ok: bool = True
    reboot_requested: bool = False
    _in: bytearray | None = None
    _out: bytearray | None = None

    quirks: None = None  # the pty plays modem quirks; a controller has none

    def __post_init__(self) -> None:
        self._in, self._out = bytearray(), bytearray()

    def power_on(self) -> None:
        """The pty calls this at start for modems' boot quirks; a controller has no radio or SIM."""

    def receive_data(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0D:
                line = self._in.decode("ascii", errors="replace").strip().upper()
                self._in.clear()
                if line:
                    self._execute(line)
            elif byte != 0x0A and len(self._in) < 256:
                self._in.append(byte)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _execute(self, line: str) -> None:
        match = _SWIT.fullmatch(line)
        if line == "AT":
            self._out += b"\r\nOK\r\n"
        elif match and self.on_switch(int(match.group(1)), int(match.group(2))):
            if self.answers_ok:
                self._out += b"\r\nOK\r\n"
        else:
            self._out += b"\r\nERROR\r\n"


class SimBank:
    def __init__(self, channels: int, slots: int, *, style: str = "controller", profile: str = "generic",
                 directory: str | None = None, switch_time: float = 10.0, register_time: float = 5.0,
                 time_scale: float = 1.0, answers_ok: bool = True, first_sim: int = 5000,
                 msisdn_mix: bool = False) -> None:
        if style not in ("controller", "on_modem"):
            raise ValueError(f"unknown bank style {style!r}; controller or on_modem")
        if style == "on_modem" and slots % channels:
            raise ValueError("an on-modem bank has the same number of SIMs in every modem")
        self.style, self.channels, self.slots = style, channels, slots
        self.slots_per_modem = slots // channels
        self.directory = directory or tempfile.mkdtemp(prefix="simgw-bank-")
        os.makedirs(self.directory, exist_ok=True)
        self.switch_time, self.register_time = switch_time, register_time
        self.time_scale = time_scale
        self.cards: list[SimCard | None] = [self._card(first_sim + k, k, msisdn_mix) for k in range(slots)]
        self.active: list[int | None] = [None] * channels
        self._fail_next: set[int] = set()
        self.switch_log: list[tuple[float, int, int | None, int, bool]] = []  # wall time, channel, from, to, done
        self.modems: list[PtyModem] = []
        for c in range(channels):
            engine = SimModem(SIM_PROFILES[profile], None, imei=f"35000000{c:06d}0", seed=c)
            if style == "on_modem":
                engine.slot_select = lambda local, c=c: self._on_modem_select(c, local)
            modem = PtyModem(engine, os.path.join(self.directory, f"channel{c:02d}"), time_scale=time_scale)
            modem.on_boot = lambda c=c: self._booted(c)
            self.modems.append(modem)
            first = self.reach(c)[0]
            engine.swap_sim(self.cards[first])
            engine.register()
            self.active[c] = first
        self.controller: PtyModem | None = None
        if style == "controller":
            engine = ControllerEngine(self._controller_switch, answers_ok=answers_ok)
            self.controller = PtyModem(engine, os.path.join(self.directory, "controller"))  # type: ignore[arg-type]

    @staticmethod
    def _card(n: int, slot: int, mix: bool) -> SimCard:
        card = sim_identity(n)
        card.ussd_number_reply = USSD_REPLY
        if mix:  # a third answer AT+CNUM, a third only the USSD code, a third neither
            card.number_on_sim = slot % 3 == 0
            card.ussd_number_reply = USSD_REPLY if slot % 3 == 1 else None
        return card

    def reach(self, channel: int) -> list[int]:
        """The slots (0-based) channel ``channel`` (0-based) can hold."""
        if self.style == "on_modem":
            return list(range(channel * self.slots_per_modem, (channel + 1) * self.slots_per_modem))
        return list(range(channel, self.slots, self.channels))

    def config_numbers(self) -> dict[str, str]:
        """ICCID -> MSISDN for the cards that know their number neither way (for the config)."""
        return {c.iccid: c.msisdn for c in self.cards if c and not c.number_on_sim and c.ussd_number_reply is None}

    async def start(self) -> None:
        for modem in self.modems:
            await modem.start()
        if self.controller is not None:
            await self.controller.start()

    async def stop(self) -> None:
        for modem in [*self.modems, *([self.controller] if self.controller else [])]:
            await modem.stop()

    # ------------------------------------------------------------------------------ network
    def send_sms(self, slot: int, sender: str, text: str) -> list[str]:
        """The network sends ``text`` to the card in ``slot``: delivered if it is registered on
        a radio, held by the network otherwise."""
        card = self.cards[slot]
        if card is None:
            raise KeyError(f"slot {slot} is empty")
        spec = DeliverSpec(sender=sender, text=text, timestamp=datetime.now(timezone.utc).replace(microsecond=0),
                           concat_ref=(slot * 7 + len(card.held)) % 255 + 1)
        pdus = encode_deliver(spec)
        channel = next((c for c, m in enumerate(self.modems) if m.engine.sim is card), None)
        for pdu in pdus:
            if channel is None:
                card.held.append(pdu)
            else:
                self.modems[channel].deliver(pdu)
        return pdus

    # ------------------------------------------------------------------------------- faults
    def fail_next_switch(self, channel: int) -> None:
        """The next switch on ``channel`` (0-based) is acknowledged but does nothing."""
        self._fail_next.add(channel)

    # ---------------------------------------------------------------------------- switching
    def _controller_switch(self, channel: int, slot: int) -> bool:
        c, k = channel - 1, slot - 1
        if not 0 <= c < self.channels or k not in self.reach(c):
            return False
        self._schedule_switch(c, k)
        return True

    def _on_modem_select(self, channel: int, local: int) -> bool:
        if not 1 <= local <= self.slots_per_modem:
            return False
        self._schedule_switch(channel, self.reach(channel)[local - 1])
        return True

    def _schedule_switch(self, channel: int, slot: int) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.switch_time * self.time_scale, self._switch, channel, slot)

    def _switch(self, channel: int, slot: int) -> None:
        done = channel not in self._fail_next
        self._fail_next.discard(channel)
        self.switch_log.append((time.time(), channel, self.active[channel], slot, done))
        if done:
            modem = self.modems[channel]
            modem.engine.swap_sim(self.cards[slot])
            modem.flush()
            self.active[channel] = slot

    def _booted(self, channel: int) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.register_time * self.time_scale, self._register, channel)

    def _register(self, channel: int) -> None:
        modem = self.modems[channel]
        modem.engine.register()
        modem.flush()
