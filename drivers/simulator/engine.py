"""A simulated GSM modem, I/O-free: AT commands in, responses and URCs out.

It implements the 27.005/27.007 subset that SMS software uses (PDU mode), answers anything else
the way the vendor does (``ERROR``, or Huawei's ``COMMAND NOT SUPPORT``) so probing software such
as gammu carries on, keeps messages in a SIM storage of limited size, and has the network's side:
a message that finds the storage full waits in the network until a slot frees.

This module holds the unit's state, the host side (bytes in, the ``> `` prompt, command lines
split and dispatched) and composes the rest, one job a module: :mod:`.general_commands` and
:mod:`.sms_commands` (the handlers), :mod:`.replies` (how answers are spelled),
:mod:`.message_store` (storage and the network's side), :mod:`.life_cycle` (boot, SIM, registration),
:mod:`.state` (the SIM card and the settings a reset forgets).
"""

from __future__ import annotations

import random
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.simulator.general_commands import GeneralCommands
from drivers.simulator.life_cycle import LifeCycle
from drivers.simulator.message_store import MessageStore
from drivers.simulator.profiles import SimProfile
from drivers.simulator.quirks import QuirkPlayer
from drivers.simulator.replies import Replies
from drivers.simulator.sms_commands import SmsCommands
from drivers.simulator.state import Settings, SimCard

CR = b"\r"
CTRL_Z = 0x1A
ESC = 0x1B
MAX_COMMAND = 1024
RESET_LINES = frozenset({"AT+CFUN=1,1", "AT+CFUN=16", "AT^RESET", "AT!RESET", "AT+ZRST", "AT+CFUN=4,1", "AT+CFUN=0,1",
                         "AT+QPOWD", "AT+QPOWD=1", "AT+CPOF", "AT^SMSO"})
"""Command lines that restart (or power off) a modem of some vendor, counted whether this one knows them."""


_TEST_ANSWERS: dict[str, tuple[str, ...]] = {
    "+CSCS=?": ('+CSCS: ("IRA","GSM","UCS2")',),
    "+CMGD=?": ("+CMGD: (1-30),(0-4)",),
    "+CSMS=?": ("+CSMS: (0,1)",),
    "+CREG=?": ("+CREG: (0-2)",),
    "+CMEE=?": ("+CMEE: (0-2)",),
    "+CFUN=?": ("+CFUN: (0,1,4),(0,1)",),
    "+CMGS=?": (),
    "+CMGR=?": (),
    "+CNUM=?": (),
    "+CIMI=?": (),
    "+CGSN=?": (),
}


@dataclass(slots=True)
class SimModem(GeneralCommands, SmsCommands, Replies, MessageStore, LifeCycle):
    profile: SimProfile
    sim: SimCard | None
    imei: str = "356938035643809"
    capacity: int = 30
    rssi: int = 21
    seed: int = 0
    settings: Settings = field(default_factory=Settings)
    storage: dict[int, tuple[int, str]] = field(default_factory=dict)  # "SM": index -> (stat, pdu)
    me_storage: dict[int, tuple[int, str]] = field(default_factory=dict)  # "ME", the phone's own memory
    network_queue: deque[str] = field(default_factory=deque)
    booting: bool = False
    wedged: bool = False
    reboot_requested: bool = False  # set by a reset command; the pty shell times the boot
    drop_terminator_once: bool = False
    sent_pdus: list[str] = field(default_factory=list)
    _out: bytearray = field(default_factory=bytearray)
    _in: bytearray = field(default_factory=bytearray)
    _prompt: bool = False
    _fresh: set[int] = field(default_factory=set)
    _unacked_cmt: int = 0
    _chained: bool = False
    _chain_failed: bool = False
    _rng: random.Random = field(default_factory=random.Random)
    slot_select: Callable[[int], bool] | None = None  # an on-modem SIM switch (Cinterion, Quectel dual SIM)
    quirks: QuirkPlayer | None = None  # catalogue quirks this unit plays (drivers/simulator/quirks.toml)
    resets: int = 0  # reset commands executed: a driver should send none that the modem did not call for
    reset_attempts: int = 0  # reset command lines received, known to this firmware or not
    commands: Counter[str] = field(default_factory=Counter)  # command names received ("AT+CMGR"), for tests

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)
        if self.sim is not None:
            self.storage, self.network_queue = self.sim.storage, self.sim.held

    # ------------------------------------------------------------------------------ host side
    def receive_data(self, data: bytes) -> None:
        if self.booting:
            return
        for byte in data:
            if self._prompt:
                self._on_prompt_byte(byte)
                continue
            if byte in (0x0D, 0x0A):
                if byte == 0x0D:
                    line = bytes(self._in).decode("ascii", errors="replace").strip()
                    self._in.clear()
                    if self.settings.echo and line:
                        self._out += line.encode() + CR
                    if line:
                        self._execute(line)
                continue
            if len(self._in) < MAX_COMMAND:
                self._in.append(byte)

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _on_prompt_byte(self, byte: int) -> None:
        if byte == CTRL_Z:
            self._prompt = False
            pdu = bytes(self._in).decode("ascii", errors="replace").strip()
            self._in.clear()
            self.sent_pdus.append(pdu)
            self._ok(f"+CMGS: {len(self.sent_pdus) % 256}")
        elif byte == ESC:
            self._prompt = False
            self._in.clear()
            self._final("OK")
        elif len(self._in) < MAX_COMMAND:
            self._in.append(byte)

    # --------------------------------------------------------------------------------- commands
    def _execute(self, line: str) -> None:
        upper = line.upper()
        self.commands[re.split(r"[=?;]", upper, maxsplit=1)[0]] += 1
        if upper in RESET_LINES or upper in self.profile.reset_commands:
            self.reset_attempts += 1
        if not upper.startswith("AT"):
            self._final("ERROR")
            return
        if self.wedged and upper not in ("AT", *self.profile.reset_commands) and not upper.startswith("AT+CFUN=1,1"):
            return  # hung firmware: answers AT, swallows everything else until reset
        if self.quirks is not None and self.quirks.intercept(self, upper):
            return
        if self.profile.urc_before_response and self.profile.periodic_urc and upper.startswith(("AT+CMGR", "AT+CMGL")):
            self.periodic()  # Huawei: ^RSSI lands between the command and its answer
        bodies = [b.strip() for b in upper[2:].split(";")]  # "AT+CMEE=1;+CREG=2": V.250 chaining
        raws = [r.strip() for r in line[2:].split(";")]
        if len(bodies) > 1 and bodies[-1] == "":
            bodies, raws = bodies[:-1], raws[:-1]
        for position, (raw, body) in enumerate(zip(raws, bodies)):
            last = position == len(bodies) - 1
            self._chained = not last  # an OK in the middle of a chain is not sent
            self._chain_failed = False
            handler = self._dispatch(body) if (body or position == 0) else None
            if handler is None:
                self._chained = False
                self._unsupported()
                return
            handler(raw, body)
            if self._chain_failed:
                return
        self._chained = False

    def _dispatch(self, body: str):
        if body == "":
            return lambda raw, b: self._ok()
        simple = {
            "E0": self._echo, "E1": self._echo, "Z": self._reset_settings, "&F": self._reset_settings,
            "V1": self._noop, "Q0": self._noop, "I": self._ati, "+CGMI": self._cgmi, "+GMI": self._cgmi,
            "+CGMM": self._cgmm, "+GMM": self._cgmm, "+CGMR": self._cgmr, "+GMR": self._cgmr,
            "+CGSN": self._cgsn, "+GSN": self._cgsn, "+CIMI": self._cimi, "+CNUM": self._cnum,
            "+CPIN?": self._cpin, "+CSQ": self._csq, "+CREG?": self._creg_query, "+COPS?": self._cops,
            "+CMGF?": self._cmgf_query, "+CPMS?": self._cpms_query, "+CNMI?": self._cnmi_query,
            "+CSMS?": self._csms_query, "+CNMA": self._cnma, "+CSCA?": self._csca, "+CFUN?": self._cfun_query,
            "+CPMS=?": self._cpms_test, "+CNMI=?": self._cnmi_test, "+CMGL=?": self._cmgl_test,
            "+CMGF=?": lambda raw, b: self._ok("+CMGF: (0,1)"), "+CSCS?": lambda raw, b: self._ok('+CSCS: "GSM"'),
            "+CMEE?": lambda raw, b: self._ok(f"+CMEE: {self.settings.cmee}"),
        }
        if body in simple:
            return simple[body]
        if body in _TEST_ANSWERS:
            return lambda raw, b: self._ok(*_TEST_ANSWERS[b])
        if body.endswith("=?"):
            return None  # a test command we do not model: the vendor's error, as a real modem
        if body == self.profile.iccid_command[2:]:
            return self._iccid
        if any(body == cmd[2:] for cmd in self.profile.reset_commands):
            return self._reboot_command
        prefixed = (
            ("+CMEE=", self._cmee), ("+CMGF=", self._cmgf), ("+CPMS=", self._cpms), ("+CNMI=", self._cnmi),
            ("+CMGR=", self._cmgr), ("+CMGL=", self._cmgl), ("+CMGL", self._cmgl), ("+CMGD=", self._cmgd),
            ("+CSMS=", self._csms), ("+CREG=", self._noop), ("+CSCS=", self._noop), ("+CLIP=", self._noop),
            ("+CSDH=", self._noop), ("+CFUN=", self._cfun), ("+CRSM=", self._crsm), ("+CMGS=", self._cmgs),
            ("+CGREG=", self._noop), ("+CEREG=", self._noop), ("+CMER=", self._noop),
        )
        for prefix, handler in prefixed:
            if body.startswith(prefix):
                return handler
        if body.startswith("+CUSD="):
            return self._cusd
        if self.slot_select is not None and body.startswith(('^SCFG="SIM/CS"', "+QUIMSLOT=")):
            return self._select_slot
        vendor_ok = {"huawei": ("^CURC=",), "quectel": ("+QURCCFG=",)}.get(self.profile.name, ())
        if body.startswith(vendor_ok) if vendor_ok else False:
            return self._noop
        return None