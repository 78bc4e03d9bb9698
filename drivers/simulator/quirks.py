"""Catalogue quirks played by a simulated modem: a few generic mechanisms, driven by data.

Each catalogue entry (``quirks.toml``) carries a ``sim`` table; :func:`merge_behaviours` folds the
tables of the chosen entries into one :class:`QuirkBehaviour`, and a :class:`QuirkPlayer` plays it
for one :class:`~drivers.simulator.engine.SimModem`. The mechanisms are what real firmware does
to an AT parser: answer a command its own way (a prefix, no final ``OK``, a test-form answer),
slip unsolicited lines into an answer, chatter on a timer, refuse commands while the SIM or the
SMS stack is still starting, come up with the radio off, refuse a storage combination, speak
verbose error texts, count storage from 0. The player is I/O-free; time comes from the injected
clock, and the pty shell calls :meth:`QuirkPlayer.tick` a few times a second.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivers.simulator.engine import SimModem

CMS_TEXT: dict[int, str] = {
    300: "ME failure", 301: "SMS service of ME reserved", 302: "operation not allowed",
    303: "operation not supported", 304: "invalid PDU mode parameter", 310: "SIM not inserted",
    311: "SIM PIN required", 313: "SIM failure", 314: "SIM busy", 320: "memory failure",
    321: "invalid memory index", 322: "memory full", 330: "SMSC address unknown",
    340: "no +CNMA acknowledgement expected", 500: "unknown error",
}
"""3GPP TS 27.005 §3.2.5 result texts, as a modem spells them with ``AT+CMEE=2``."""

CME_TEXT: dict[int, str] = {
    3: "operation not allowed", 4: "operation not supported", 10: "SIM not inserted", 11: "SIM PIN required",
    13: "SIM failure", 14: "SIM busy", 15: "SIM wrong", 100: "unknown", 515: "device busy",
}
"""3GPP TS 27.007 §9.2 texts (515 is the vendor code python-gsmmodem documents as 'please wait')."""

SINGULAR = ("busy", "busy_after", "sms_ready", "radio", "cpms", "info_eol", "first_index", "cmgr_format",
            "cmgl_format", "unsupported_reply", "verbose_cms")
"""Mechanisms a modem can only have one setting of: two entries that both set one cannot be combined."""

MERGED = ("answers", "inject", "chatter", "boot_lines", "refuse")
KNOWN = frozenset(SINGULAR + MERGED)


class QuirkError(ValueError):
    """A quirk key that is not in the catalogue, or a set of quirks that cannot be combined."""


@dataclass(frozen=True, slots=True)
class Injection:
    """Unsolicited lines slipped into the answer of ``commands`` (prefixes; ``*`` is every command):
    ``before`` the answer's information lines, or ``after`` them, just before the final result."""

    commands: tuple[str, ...]
    lines: tuple[str, ...]
    at: str = "before"

    def applies(self, command: str) -> bool:
        return "*" in self.commands or command.startswith(self.commands)


@dataclass(frozen=True, slots=True)
class Chatter:
    every: float
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorGate:
    """Answer ``commands`` (prefixes) with error ``code`` until ``seconds`` after boot, or for the
    next ``count`` commands after ``trigger``; then, optionally, announce ``lines``."""

    code: int
    kind: str = "cme"  # "cme", "cms", or "plain" (a bare ERROR whatever +CMEE says)
    commands: tuple[str, ...] = ("*",)
    seconds: float = 0.0
    trigger: str = ""
    count: int = 0
    lines: tuple[str, ...] = ()
    in_answer_of: tuple[str, ...] = ()  # the ready lines land inside the first such answer after `seconds`

    def applies(self, command: str) -> bool:
        return "*" in self.commands or command.startswith(self.commands)


@dataclass(frozen=True, slots=True)
class Radio:
    cfun: int  # the functionality level the modem boots with (0 minimum, 4 flight mode)
    on: tuple[str, ...] = ("AT+CFUN=1",)
    sim_error: int | None = None  # +CME code SIM commands get while the radio is off (Quectel: 13)
    on_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cpms:
    slots: tuple[tuple[str, ...], ...] = ()  # memories allowed for <mem1>, <mem2>, <mem3>
    max_args: int = 3
    pairs_follow_args: bool = False  # answer "used,total" once per memory given (Wavecom), not always three


@dataclass(frozen=True, slots=True)
class QuirkBehaviour:
    answers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    inject: tuple[Injection, ...] = ()
    chatter: tuple[Chatter, ...] = ()
    boot_lines: tuple[str, ...] = ()
    refuse: tuple[str, ...] = ()
    busy: ErrorGate | None = None
    busy_after: ErrorGate | None = None
    sms_ready: ErrorGate | None = None
    radio: Radio | None = None
    cpms: Cpms | None = None
    info_eol: str = "\r\n"
    first_index: int = 1
    cmgr_format: str = "+CMGR: {stat},,{length}"
    cmgl_format: str = "+CMGL: {index},{stat},,{length}"
    unsupported_reply: str | None = None
    verbose_cms: bool = False


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else (str(value),)


def _gate(table: Mapping[str, Any]) -> ErrorGate:
    return ErrorGate(code=int(table.get("code", 0)), kind=str(table.get("kind", "cme")),
                     commands=_tuple(table.get("commands", ["*"])), seconds=float(table.get("seconds", 0.0)),
                     trigger=str(table.get("trigger", "")), count=int(table.get("count", 0)),
                     lines=_tuple(table.get("lines", [])),
                     in_answer_of=tuple(c.upper() for c in _tuple(table.get("in_answer_of", []))))


def check_sim_table(key: str, table: Mapping[str, Any]) -> None:
    """Raise :class:`QuirkError` when an entry's ``sim`` table names a mechanism nobody plays."""
    unknown = set(table) - KNOWN
    if unknown:
        raise QuirkError(f"quirk {key!r}: unknown simulator mechanism(s) {sorted(unknown)}; known: {sorted(KNOWN)}")


def mechanisms(table: Mapping[str, Any]) -> set[str]:
    """The names :attr:`QuirkPlayer.fired` counts for an entry's ``sim`` table: one per mechanism,
    one per answered command (``answers[AT+CPIN?]``)."""
    names = {k for k in table if k != "answers"}
    return names | {f"answers[{c.upper()}]" for c in table.get("answers", {})}


def conflicts(a: Mapping[str, Any], b: Mapping[str, Any]) -> set[str]:
    """What two ``sim`` tables both claim: singular mechanisms, or an answer to the same command."""
    clash = {k for k in SINGULAR if k in a and k in b}
    answers_a = {c.upper() for c in a.get("answers", {})}
    answers_b = {c.upper() for c in b.get("answers", {})}
    clash |= {f"answers[{c}]" for c in answers_a & answers_b}
    if ("radio" in a and "AT+CFUN?" in answers_b) or ("radio" in b and "AT+CFUN?" in answers_a):
        clash.add("radio/answers[AT+CFUN?]")
    return clash


def merge_behaviours(tables: Iterable[tuple[str, Mapping[str, Any]]]) -> QuirkBehaviour:
    """One behaviour from several entries' ``sim`` tables; :class:`QuirkError` if two collide."""
    seen: list[tuple[str, Mapping[str, Any]]] = []
    values: dict[str, Any] = {"answers": {}, "inject": [], "chatter": [], "boot_lines": [], "refuse": []}
    for key, table in tables:
        check_sim_table(key, table)
        for other_key, other in seen:
            clash = conflicts(table, other)
            if clash:
                raise QuirkError(f"quirks {other_key!r} and {key!r} both set {sorted(clash)}")
        seen.append((key, table))
        values["answers"].update({cmd.upper(): _tuple(lines) for cmd, lines in table.get("answers", {}).items()})
        values["inject"] += [Injection(tuple(c.upper() for c in _tuple(i["commands"])), _tuple(i["lines"]),
                                       str(i.get("at", "before"))) for i in table.get("inject", [])]
        values["chatter"] += [Chatter(float(c["every"]), _tuple(c["lines"])) for c in table.get("chatter", [])]
        values["boot_lines"] += list(_tuple(table.get("boot_lines", [])))
        values["refuse"] += [c.upper() for c in _tuple(table.get("refuse", []))]
        for name in ("busy", "busy_after", "sms_ready"):
            if name in table:
                values[name] = _gate(table[name])
        if "radio" in table:
            r = table["radio"]
            values["radio"] = Radio(int(r["cfun"]), tuple(c.upper() for c in _tuple(r.get("on", ["AT+CFUN=1"]))),
                                    int(r["sim_error"]) if "sim_error" in r else None, _tuple(r.get("on_lines", [])))
        if "cpms" in table:
            c = table["cpms"]
            values["cpms"] = Cpms(tuple(_tuple(s) for s in c.get("slots", [])), int(c.get("max_args", 3)),
                                  bool(c.get("pairs_follow_args", False)))
        for name in ("info_eol", "cmgr_format", "cmgl_format", "unsupported_reply"):
            if name in table:
                values[name] = str(table[name])
        if "first_index" in table:
            values["first_index"] = int(table["first_index"])
        if "verbose_cms" in table:
            values["verbose_cms"] = bool(table["verbose_cms"])
    for name in ("inject", "chatter", "boot_lines", "refuse"):
        values[name] = tuple(values[name])
    return QuirkBehaviour(**values)


class QuirkPlayer:
    """Plays a :class:`QuirkBehaviour` on one engine: the engine calls :meth:`intercept` for every
    command line, :meth:`final` for every final result, :meth:`on_boot` at power-on and after each
    reboot; the shell calls :meth:`tick`."""

    def __init__(self, keys: tuple[str, ...], behaviour: QuirkBehaviour,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.keys = keys
        self.behaviour = behaviour
        self._clock = clock
        self.booted_at = clock()
        self.cfun = 1
        self.sms_ready = True
        self._busy_left = 0
        self._chatter_due: list[float] = []
        self._after: tuple[str, ...] = ()
        self.fired: Counter[str] = Counter()  # how often each mechanism played: a test can tell it did

    # ------------------------------------------------------------------------------------ boot
    def on_boot(self, engine: SimModem, *, announce: bool = True) -> None:
        """Power-on or reboot: the radio comes up the way the firmware does, timers restart."""
        b = self.behaviour
        now = self._clock()
        self.booted_at = now
        self._busy_left = 0
        self._chatter_due = [now + c.every for c in b.chatter]
        self.sms_ready = b.sms_ready is None
        if b.radio is not None:
            self.cfun = b.radio.cfun
            if engine.sim is not None:
                engine.sim.registered = False
        if announce and b.boot_lines:
            self.fired["boot_lines"] += 1
            for line in b.boot_lines:
                engine.emit_urc(line)

    def tick(self, engine: SimModem) -> None:
        """Emit what is due: chatter, and the SMS stack's "ready" once its start-up time is over."""
        now = self._clock()
        b = self.behaviour
        if engine.booting:
            return
        for i, chatter in enumerate(b.chatter):
            if now >= self._chatter_due[i]:
                self._chatter_due[i] = now + chatter.every
                self.fired["chatter"] += 1
                for line in chatter.lines:
                    engine.emit_urc(line.format(**self._fields(engine)))
        gate = b.sms_ready
        if gate is not None and not self.sms_ready:
            # Announced on its own once its time is up, or (in_answer_of) inside the first such
            # answer; if that command never comes, a little later on its own.
            grace = 3.0 if gate.in_answer_of else 0.0
            if now - self.booted_at >= gate.seconds + grace:
                self._open_sms(engine, gate)

    def _open_sms(self, engine: SimModem, gate: ErrorGate) -> None:
        self.sms_ready = True
        self.fired["sms_ready"] += 1
        for line in gate.lines:
            engine.emit_urc(line)
        engine.release_held()

    def accepting_sms(self) -> bool:
        return self.sms_ready and self.cfun == 1

    # -------------------------------------------------------------------------------- commands
    def intercept(self, engine: SimModem, command: str) -> bool:
        """Called with the upper-cased command line. True when the quirk answered it."""
        b = self.behaviour
        self._after = tuple(line for i in b.inject if i.at == "after" and i.applies(command) for line in i.lines)
        for injection in b.inject:
            if injection.applies(command):
                self.fired["inject"] += 1
            if injection.at == "before" and injection.applies(command):
                for line in injection.lines:
                    engine.emit_urc(line.format(**self._fields(engine)))
        if self._busy_left > 0:
            self._busy_left -= 1
            self.fired["busy_after"] += 1
            self._error(engine, b.busy_after)
            return True
        if b.busy_after is not None and command.startswith(b.busy_after.trigger.upper()):
            self._busy_left = b.busy_after.count  # answered normally below, then the next ones fail
        if b.busy is not None and b.busy.applies(command) and self._clock() - self.booted_at < b.busy.seconds:
            self.fired["busy"] += 1
            self._error(engine, b.busy)
            return True
        if b.radio is not None and self._radio_command(engine, command, b.radio):
            return True
        gate = b.sms_ready
        if gate is not None and not self.sms_ready:
            if gate.in_answer_of and command.startswith(gate.in_answer_of) and \
                    self._clock() - self.booted_at >= gate.seconds:
                self._open_sms(engine, gate)  # the ready lines, then this command's own answer
            elif gate.applies(command):
                self._error(engine, gate)
                return True
        if command in b.refuse:
            self.fired["refuse"] += 1
            engine.final_line(b.unsupported_reply or engine.profile.unsupported_reply)
            return True
        if b.cpms is not None and command.startswith("AT+CPMS=") and not command.endswith("?"):
            if not self._cpms_allowed(command[8:], b.cpms):
                self.fired["cpms"] += 1
                engine.final_line("ERROR")
                return True
        answer = b.answers.get(command)
        if answer is not None and (engine.sim is not None or not _needs_sim(command)):
            fields = self._fields(engine)
            self.fired[f"answers[{command}]"] += 1
            for line in answer:
                engine.raw_line(line.format(**fields))
            return True
        return False

    def final(self, engine: SimModem, text: str) -> str:
        """The final result as this firmware spells it; lines to slip in first are sent here."""
        after, self._after = self._after, ()
        for line in after:
            engine.emit_urc(line.format(**self._fields(engine)))
        if self.behaviour.verbose_cms and engine.settings.cmee == 2 and text.startswith("+CMS ERROR: "):
            code = text[12:].strip()
            if code.isdigit() and int(code) in CMS_TEXT:
                self.fired["verbose_cms"] += 1
                return f"+CMS ERROR: {CMS_TEXT[int(code)]}"
        return text

    # ------------------------------------------------------------------------------- internals
    def _radio_command(self, engine: SimModem, command: str, radio: Radio) -> bool:
        if command == "AT+CFUN?":
            engine.raw_line(f"+CFUN: {self.cfun}")
            engine.final_line("OK")
            return True
        if command in radio.on:
            engine.final_line("OK")
            if self.cfun != 1:
                self.fired["radio"] += 1  # counted when the host switched it on, not when it asked
                self.cfun = 1
                for line in radio.on_lines:
                    engine.emit_urc(line)
                engine.register()
            return True
        if self.cfun != 1 and radio.sim_error is not None and _needs_sim(command):
            self._error(engine, ErrorGate(code=radio.sim_error))
            return True
        return False

    @staticmethod
    def _cpms_allowed(args: str, cpms: Cpms) -> bool:
        mems = [m.strip().strip('"') for m in args.split(",") if m.strip()]
        if len(mems) > cpms.max_args:
            return False
        return all(i >= len(cpms.slots) or mem in cpms.slots[i] for i, mem in enumerate(mems))

    @staticmethod
    def _error(engine: SimModem, gate: ErrorGate | None) -> None:
        assert gate is not None
        cmee = engine.settings.cmee
        if gate.kind == "plain" or cmee == 0:
            engine.final_line("ERROR")
            return
        prefix = "+CMS ERROR: " if gate.kind == "cms" else "+CME ERROR: "
        texts = CMS_TEXT if gate.kind == "cms" else CME_TEXT
        engine.final_line(prefix + (texts.get(gate.code, str(gate.code)) if cmee == 2 else str(gate.code)))

    def _fields(self, engine: SimModem) -> dict[str, object]:
        sim, p = engine.sim, engine.profile
        registered = sim is not None and sim.registered
        return {"imei": engine.imei, "imsi": sim.imsi if sim else "", "iccid": sim.iccid if sim else "",
                "manufacturer": p.manufacturer, "model": p.model, "revision": p.revision, "rssi": engine.rssi,
                "creg_stat": 1 if registered else 0, "creg_roaming": 5 if registered else 0, "cfun": self.cfun}


_SIM_COMMANDS = ("AT+CPIN", "AT+CIMI", "AT+CCID", "AT+QCCID", "AT^ICCID", "AT+ZGETICCID", "AT!ICCID", "AT^SCID",
                 "AT+CRSM", "AT+CNUM", "AT+CPMS", "AT+CMGL", "AT+CMGR", "AT+CMGD", "AT+CSCA")


def _needs_sim(command: str) -> bool:
    return command.startswith(_SIM_COMMANDS)
