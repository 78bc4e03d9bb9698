"""The AT protocol core: command correlation and URC dispatch, I/O-free.

Bytes go in with :meth:`AtProtocol.receive_data`; events come out of
:meth:`AtProtocol.events_received`; bytes to write come out of :meth:`AtProtocol.data_to_send`.
One command is in flight at a time (AT is half-duplex). Each command declares the response
prefixes it expects and the shape of its answer (:mod:`drivers.at.answers`); any other line with a
``+X:``/``^X:`` prefix or a known status text is unsolicited even when it arrives in the middle of
a response (python-gsmmodem appends such lines to the pending response, which is how a ``^RSSI``
ends up parsed as the answer to ``AT+CMGR``), and a bare line without the answer's shape is stray.

Every response is bounded: at most ``max_response_lines`` lines and ``max_response_bytes`` bytes
(defaults :data:`MAX_RESPONSE_LINES`, :data:`MAX_RESPONSE_BYTES`), each line at most the framer's
``max_line``. At a cap the response is abandoned as garbage: its lines are dropped, one
:class:`BadBytes` event says so, :attr:`AtProtocol.overflow_count` counts it, and every further line
of it is dropped until its final result, which completes the command as
:attr:`~drivers.at.results.ResultKind.TOO_LARGE` (or until the caller times out and resyncs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drivers.at.answers import AnswerShape, shape_of
from drivers.at.lines import DEFAULT_MAX_LINE, Garbage, Line, LineFramer, Prompt
from drivers.at.results import FinalResult, ResultKind, parse_final

CTRL_Z = b"\x1a"
MAX_RESPONSE_LINES = 1000
"""Most lines one response may have: a full 255-slot ME storage listed by AT+CMGL is 510 lines."""
MAX_RESPONSE_BYTES = 1 << 20
"""Most bytes one response may have (1 MiB): 510 lines of ~370 characters is under 200 KB."""

# Unsolicited result codes of 3GPP TS 27.005 / 27.007, named by their prefix (up to and including
# the colon). Vendors' own codes live with their profiles (drivers.profiles, ``extra_urcs``) and
# are passed in; a ``+X:``/``^X:`` line nobody listed is unsolicited all the same (see _on_line).
URC_PREFIXES: frozenset[str] = frozenset({
    "+CMTI:", "+CMT:", "+CDS:", "+CDSI:", "+CBM:", "+CBMI:", "+CUSD:", "+CLIP:", "+CRING:",
    "+CREG:", "+CGREG:", "+CEREG:", "+C5GREG:", "+CPIN:", "+CIEV:", "+CFUN:", "+CGEV:",
    "+CTZV:", "+CTZE:", "+CCWA:", "+CUSATP:", "+CUSATEND",
})

URC_LINES: frozenset[str] = frozenset({"RING"})
"""Whole-line unsolicited codes of 27.007 (``RING``); vendors' status lines are in their profiles."""

TWO_LINE_URCS: frozenset[str] = frozenset({"+CMT:", "+CDS:", "+CBM:"})
"""URCs whose second line (the PDU) belongs to them, not to any command in flight."""

_PREFIX_RE = re.compile(r"^([+^*!$#%][A-Za-z0-9_]+:?)")
_PREFIXED_LINE_RE = re.compile(r"^([+^*!$#%][A-Za-z0-9_]+:)")
_COMMAND_NAME_RE = re.compile(r"^AT([+^*!$#%][A-Za-z0-9_]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Command:
    """One AT command. ``expect`` lists response prefixes (derived from the name if empty);
    ``payload`` is sent after the ``> `` prompt, followed by Ctrl-Z; ``shape`` is the declared
    shape of the answer (looked up in :data:`drivers.at.answers.SHAPES` if None);
    ``implied_final`` lets an answer complete by its shape alone, with no final result (the
    caller completes it with :meth:`AtProtocol.complete_implied` after a grace)."""

    text: str
    expect: tuple[str, ...] = ()
    payload: str | None = None
    shape: AnswerShape | None = None
    implied_final: bool = False

    def answer_shape(self) -> AnswerShape:
        return self.shape if self.shape is not None else shape_of(self.text)

    def expected_prefixes(self) -> tuple[str, ...]:
        if self.expect:
            return self.expect
        match = _COMMAND_NAME_RE.match(self.text)
        return (match.group(1).upper() + ":",) if match else ()


# ----------------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Response:
    """A command completed; ``lines`` are its intermediate lines in order, echo removed."""

    command: Command
    result: FinalResult
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code. ``name`` is its prefix (``+CMTI:``) or the whole line;
    ``body`` is the second line of two-line URCs (the PDU of ``+CMT``)."""

    name: str
    line: str
    body: str | None = None

    @property
    def args(self) -> str:
        return self.line[len(self.name):].strip() if self.name.endswith(":") else ""


@dataclass(frozen=True, slots=True)
class StrayLine:
    """A line that belongs to no command: a late answer after a timeout, or unknown chatter."""

    line: str


@dataclass(frozen=True, slots=True)
class BadBytes:
    """Garbage dropped by the framer, with the reason."""

    data: bytes
    reason: str


Event = Response | Urc | StrayLine | BadBytes


@dataclass(slots=True)
class _InFlight:
    command: Command
    expected: tuple[str, ...]
    shape: AnswerShape
    lines: list[str] = field(default_factory=list)
    size: int = 0
    prompted: bool = False
    overflowed: bool = False


class ProtocolBusy(RuntimeError):
    """Raised when a caller sends a command while another is in flight (a caller bug, not input)."""


def unknown_urc_name(line: str) -> str | None:
    """The prefix of a line that looks unsolicited although nobody listed it (``^HWNAT:``)."""
    match = _PREFIXED_LINE_RE.match(line)
    return match.group(1) if match else None


def urc_name(line: str, extra_prefixes: frozenset[str] = frozenset()) -> str | None:
    """The URC name of ``line`` if it is a known unsolicited code, else None. ``extra_prefixes``
    holds a vendor's prefixes (``^RSSI:``) and whole status lines (``SMS Ready``)."""
    if line in URC_LINES or line in extra_prefixes:
        return line
    match = _PREFIX_RE.match(line)
    if match is None:
        return None
    prefix = match.group(1)
    candidates = (prefix, prefix.rstrip(":"))
    for candidate in candidates:
        if candidate in URC_PREFIXES or candidate in extra_prefixes:
            return candidate
    return None


class AtProtocol:
    """Correlates AT commands with their responses and separates out URCs."""

    def __init__(self, *, max_line: int = DEFAULT_MAX_LINE, extra_urcs: frozenset[str] = frozenset(),
                 max_response_lines: int = MAX_RESPONSE_LINES, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        self._framer = LineFramer(max_line)
        self._max_lines = max_response_lines
        self._max_bytes = max_response_bytes
        self.overflow_count = 0
        self.echo_count = 0  # command echoes dropped: a modem told ATE0 that echoes has restarted
        self._extra_urcs = extra_urcs
        self._in_flight: _InFlight | None = None
        self._urc_awaiting_body: Urc | None = None
        self._events: list[Event] = []
        self._outgoing = bytearray()
        self.garbage_count = 0
        self.stray_count = 0

    # ------------------------------------------------------------------------------- commands
    @property
    def in_flight(self) -> Command | None:
        return self._in_flight.command if self._in_flight else None

    def send(self, command: Command) -> None:
        """Queue ``command`` for writing; its :class:`Response` event will follow."""
        if self._in_flight is not None:
            raise ProtocolBusy(f"{command.text!r} sent while {self._in_flight.command.text!r} is in flight")
        self._in_flight = _InFlight(command, command.expected_prefixes(), command.answer_shape())
        self._framer.prompt_armed = command.payload is not None
        self._outgoing += command.text.encode("ascii") + b"\r"

    def abort(self) -> Command | None:
        """Forget the command in flight (it timed out). Lines that still arrive for it become
        :class:`StrayLine` events; the caller must let the line go quiet before trusting it."""
        aborted = self._in_flight
        self._in_flight = None
        self._framer.prompt_armed = False
        if aborted and aborted.prompted:
            self._outgoing += b"\x1b"  # ESC cancels a half-entered PDU so the modem is not stuck at "> "
        return aborted.command if aborted else None

    @property
    def answer_complete(self) -> bool:
        """The command in flight may complete without a final result, and its answer has come:
        the caller arms a grace timer and calls :meth:`complete_implied` if nothing follows."""
        flight = self._in_flight
        return (flight is not None and flight.command.implied_final and flight.shape.complete
                and bool(flight.lines) and not flight.overflowed)

    def complete_implied(self) -> bool:
        """Complete the command in flight by the shape of its answer (no final result came)."""
        flight = self._in_flight
        if flight is None or not self.answer_complete:
            return False
        self._complete(flight, FinalResult(ResultKind.OK, "", implied=True))
        return True

    def reset(self) -> None:
        """Start afresh after the port was reopened: nothing is in flight, no partial line."""
        self._in_flight = None
        self._urc_awaiting_body = None
        self._framer.prompt_armed = False
        self._framer.reset()

    def use_urcs(self, extra_urcs: frozenset[str]) -> None:
        """Replace the vendor URC prefixes recognised besides the standard ones."""
        self._extra_urcs = extra_urcs

    # ---------------------------------------------------------------------------------- bytes
    def receive_data(self, data: bytes) -> None:
        for item in self._framer.feed(data):
            if isinstance(item, Line):
                self._on_line(item.text)
            elif isinstance(item, Prompt):
                self._on_prompt()
            elif isinstance(item, Garbage):
                self.garbage_count += 1
                self._events.append(BadBytes(item.data, item.reason))

    def events_received(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # -------------------------------------------------------------------------------- parsing
    def _on_prompt(self) -> None:
        flight = self._in_flight
        if flight is None or flight.command.payload is None or flight.prompted:
            self._stray("> ")
            return
        flight.prompted = True
        self._framer.prompt_armed = False
        self._outgoing += flight.command.payload.encode("ascii") + CTRL_Z

    def _on_line(self, line: str) -> None:
        if self._urc_awaiting_body is not None:
            head, self._urc_awaiting_body = self._urc_awaiting_body, None
            if parse_final(line) is None:
                self._events.append(Urc(head.name, head.line, line))
                return
            self._events.append(head)  # the body never came; fall through with the final result
        flight = self._in_flight
        final = parse_final(line)
        if flight is not None:
            if final is not None:
                if flight.overflowed:
                    final = FinalResult(ResultKind.TOO_LARGE, f"response too large ({final.text})")
                self._complete(flight, final)
                return
            if self._is_echo(flight, line):
                self.echo_count += 1
                return
            if line.startswith(flight.expected):
                value = line[len(next(p for p in flight.expected if line.startswith(p))):]
                if flight.shape.accepts(value):
                    self._answer(flight, line)
                else:
                    self._stray(line)
                return
        name = urc_name(line, self._extra_urcs) or unknown_urc_name(line)
        if name is not None:
            self._on_urc(Urc(name, line))
        elif flight is not None and flight.shape.accepts(line):
            self._answer(flight, line)
        else:
            self._stray(line)

    def _answer(self, flight: _InFlight, line: str) -> None:
        """Add ``line`` to the answer, within the caps; past them the response is garbage."""
        if flight.overflowed:
            return
        flight.size += len(line) + 2
        if len(flight.lines) >= self._max_lines or flight.size > self._max_bytes:
            flight.overflowed = True
            flight.lines.clear()
            self.overflow_count += 1
            self._events.append(BadBytes(line[:64].encode(), f"response to {flight.command.text} passed "
                                         f"{self._max_lines} lines or {self._max_bytes} bytes; dropped"))
            return
        flight.lines.append(line)

    def _on_urc(self, urc: Urc) -> None:
        if urc.name in TWO_LINE_URCS:
            self._urc_awaiting_body = urc
        else:
            self._events.append(urc)

    def _complete(self, flight: _InFlight, final: FinalResult) -> None:
        self._in_flight = None
        self._framer.prompt_armed = False
        self._events.append(Response(flight.command, final, tuple(flight.lines)))

    @staticmethod
    def _is_echo(flight: _InFlight, line: str) -> bool:
        command = flight.command
        if line.upper() == command.text.upper():
            return True
        return command.payload is not None and line.upper() == command.payload.upper()

    def _stray(self, line: str) -> None:
        self.stray_count += 1
        self._events.append(StrayLine(line))
