"""A simulated GSM modem, I/O-free: AT commands in, responses and URCs out.

It implements the 27.005/27.007 subset that SMS software uses (PDU mode), answers anything else
the way the vendor does (``ERROR``, or Huawei's ``COMMAND NOT SUPPORT``) so probing software such
as gammu carries on, keeps messages in a SIM storage of limited size, and has the network's side:
a message that finds the storage full waits in the network until a slot frees.
"""

from __future__ import annotations

import random
import re
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.simulator.profiles import SimProfile
from drivers.simulator.quirks import QuirkPlayer
from drivers.simulator.general_commands import GeneralCommands
from drivers.simulator.sms_commands import SmsCommands, tpdu_length

CR = b"\r"
CTRL_Z = 0x1A
ESC = 0x1B
MAX_COMMAND = 1024
RESET_LINES = frozenset({"AT+CFUN=1,1", "AT+CFUN=16", "AT^RESET", "AT!RESET", "AT+ZRST", "AT+CFUN=4,1", "AT+CFUN=0,1",
                         "AT+QPOWD", "AT+QPOWD=1", "AT+CPOF", "AT^SMSO"})
"""Command lines that restart (or power off) a modem of some vendor, counted whether this one knows them."""


@dataclass(slots=True)
class SimCard:
    """A SIM. Its SM storage and the SMS the network holds for it travel with it between radios."""

    iccid: str
    imsi: str
    msisdn: str
    operator: str = "SimNet"
    registered: bool = True
    number_on_sim: bool = True  # EF_MSISDN filled in, so AT+CNUM answers; many SIMs leave it empty
    ussd_number_reply: str | None = None  # what the operator's "my number" USSD answers, {msisdn} filled in
    never_registers: bool = False
    storage: dict[int, tuple[int, str]] = field(default_factory=dict)
    held: deque[str] = field(default_factory=deque)


@dataclass(slots=True)
class Settings:
    """What a reset forgets."""

    echo: bool = True
    cmee: int = 0
    cmgf: int = 0
    cnmi: tuple[int, ...] = (0, 0, 0, 0, 0)
    csms: int = 0
    creg_n: int = 0
    storage: str = "SM"  # <mem1>: read and delete
    receive_storage: str = "SM"  # <mem3>: where new messages go


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
class SimModem(GeneralCommands, SmsCommands):
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

    # --------------------------------------------------------------------------- network side
    def deliver(self, pdu_hex: str) -> bool:
        """The network delivers one PDU. Returns False if it had to hold it (storage full)."""
        if self.sim is None or not self.sim.registered or self.booting or \
                (self.quirks is not None and not self.quirks.accepting_sms()):
            self.network_queue.append(pdu_hex)
            return False
        mode, mt = self.settings.cnmi[0], self.settings.cnmi[1]
        if mt == 2 and mode:
            self._urc(f"+CMT: ,{tpdu_length(pdu_hex)}")
            self._out += pdu_hex.encode() + b"\r\n"
            if self.settings.csms == 1:
                self._unacked_cmt += 1
            return True
        memory = self._memory(self.settings.receive_storage)
        index = self._free_index(memory)
        if index is None:
            self.network_queue.append(pdu_hex)
            if self.profile.full_urc:
                self._urc(self.profile.full_urc)
            return False
        memory[index] = (0, pdu_hex)
        if mt == 1 and mode:
            if self.profile.empty_first_read:
                self._fresh.add(index)
            self._urc(f'+CMTI: "{self.settings.receive_storage}",{index}')
        return True

    def release_held(self) -> int:
        """The network retries what it held (a slot freed, or the SIM registered)."""
        released = 0
        while self.network_queue and self.sim is not None and self.sim.registered and not self.booting and \
                (self.quirks is None or self.quirks.accepting_sms()):
            if self._free_index(self._memory(self.settings.receive_storage)) is None and self.settings.cnmi[1] != 2:
                break
            self.deliver(self.network_queue.popleft())
            released += 1
        return released

    def periodic(self) -> None:
        if self.profile.periodic_urc and not self.booting:
            self._urc(self.profile.periodic_urc.format(rssi=self.rssi))

    def emit_garbage(self, data: bytes) -> None:
        self._out += data

    # ---------------------------------------------------------------------------------- quirks
    def power_on(self) -> None:
        """The unit is switched on: quirks that shape the boot (radio off, SIM busy) start now."""
        if self.quirks is not None:
            self.quirks.on_boot(self, announce=False)

    def quirk_tick(self) -> None:
        if self.quirks is not None:
            self.quirks.tick(self)

    def stale_index(self) -> int:
        """The highest free index of the receiving storage (an announcement there finds nothing)."""
        memory = self._memory(self.settings.receive_storage)
        first = self._first_index
        return next((i for i in range(first + self.capacity - 1, first - 1, -1) if i not in memory), first)

    def emit_urc(self, line: str) -> None:
        self._urc(line)

    def raw_line(self, line: str) -> None:
        """An answer line exactly as a quirk spells it (a final result too, if it is one)."""
        self._line(line)

    def final_line(self, text: str) -> None:
        self._final(text)

    # ---------------------------------------------------------------------------------- faults
    def start_reboot(self) -> None:
        self.booting = True
        self.wedged = False
        self.settings = Settings()
        self._in.clear()
        self._prompt = False
        self._fresh.clear()

    def finish_reboot(self) -> None:
        self.booting = False
        for urc in self.profile.boot_urcs:
            self._urc(urc)
        if self.quirks is not None:
            self.quirks.on_boot(self)
        self.release_held()

    def pull_sim(self) -> None:
        self.sim = None
        self._urc("+CPIN: NOT INSERTED")

    def insert_sim(self, sim: SimCard) -> None:
        self.sim = sim
        self._urc("+CPIN: READY")
        self.release_held()

    def swap_sim(self, card: SimCard | None) -> None:
        """A bank or the modem's SIM switch connects another card. The outgoing card takes its SM
        storage and held SMS along; the new one is not registered until the modem restarts."""
        if self.sim is not None:
            self.sim.storage, self.sim.held, self.sim.registered = self.storage, self.network_queue, False
        self.sim = card
        if card is None:
            self.storage, self.network_queue = {}, deque()
        else:
            self.storage, self.network_queue, card.registered = card.storage, card.held, False

    def register(self) -> None:
        """The card in the slot registers with the network, which hands over what it held."""
        if self.sim is not None and not self.sim.never_registers:
            self.sim.registered = True
            self.release_held()

    def fill_storage(self, pdus: list[str]) -> None:
        """Store messages without announcing them, as if they came while nobody listened."""
        for pdu in pdus:
            index = self._free_index(self.storage)
            if index is None:
                self.network_queue.append(pdu)
            else:
                self.storage[index] = (0, pdu)

    # -------------------------------------------------------------------------------- internals
    @property
    def _first_index(self) -> int:
        return self.quirks.behaviour.first_index if self.quirks is not None else 1

    def _valid_index(self, index: int) -> bool:
        first = self._first_index  # SIM record numbers start at 1 on most modems, at 0 on some Huawei
        return first <= index < first + self.capacity

    def _memory(self, name: str) -> dict[int, tuple[int, str]]:
        return self.me_storage if name == "ME" else self.storage  # "MT" reads the SIM first

    def _free_index(self, memory: dict[int, tuple[int, str]]) -> int | None:
        for index in range(self._first_index, self._first_index + self.capacity):
            if index not in memory:
                if index == self._first_index != 1 and self.quirks is not None:
                    self.quirks.fired["first_index"] += 1
                return index
        return None

    def _line(self, line: str) -> None:
        eol = b"\r\n"
        if self.quirks is not None and self.quirks.behaviour.info_eol != "\r\n":
            eol = self.quirks.behaviour.info_eol.encode()
            self.quirks.fired["info_eol"] += 1
        self._out += b"\r\n" + line.encode() + eol

    def _urc(self, line: str) -> None:
        self._out += b"\r\n" + line.encode() + b"\r\n"

    def _final(self, text: str) -> None:
        if self._chained:
            if text == "OK":
                return
            self._chained = False
            self._chain_failed = True
        if self.quirks is not None:
            text = self.quirks.final(self, text)
        if self.drop_terminator_once:
            self.drop_terminator_once = False
            self._out += b"\r\n" + text.encode()
            return
        self._out += b"\r\n" + text.encode() + b"\r\n"

    def _ok(self, *lines: str) -> None:
        for line in lines:
            self._line(line)
        self._final("OK")

    def _cme(self, code: int, text: str) -> None:
        if self.settings.cmee == 0:
            self._final("ERROR")
        elif self.settings.cmee == 1:
            self._final(f"+CME ERROR: {code}")
        else:
            self._final(f"+CME ERROR: {text}")

    def _cms(self, code: int) -> None:
        self._final(f"+CMS ERROR: {code}" if self.settings.cmee else "ERROR")

    def _unsupported(self) -> None:
        reply = self.quirks.behaviour.unsupported_reply if self.quirks is not None else None
        if reply:
            self.quirks.fired["unsupported_reply"] += 1
        self._final(reply or self.profile.unsupported_reply)

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
