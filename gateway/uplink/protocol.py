"""The marketplace protocol simgw.v1, I/O-free: text frames in, typed events out, frames to send.

One :class:`UplinkSession` per connection. It validates every incoming frame by hand against the
rules of ``PROTOCOL.md`` (the JSON Schemas in ``schemas/`` say the same; the tests hold the two
together) and never raises on input: a bad frame becomes a :class:`FrameRejected` event and its
``error`` frame is queued. The session is a state machine (:data:`TRANSITIONS`, :data:`MAY_SEND`):
it queues every frame the connection sends, in an order it alone decides (full inventory first,
then replays, then new events), keeps the send window and the resume cursor. Frames themselves
are built in :mod:`gateway.uplink.frames`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass, field

from gateway.uplink.frames import (  # noqa: F401  (PROTOCOL_VERSION, encode: re-exported)
    PROTOCOL_VERSION,
    encode,
    health_frame,
    hello_frame,
    inventory_frame,
    result_frame,
    sequenced_frame,
)
from gateway.uplink.frames import error_frame as _error_frame

SUBPROTOCOL = "simgw.v1"
MAX_FRAME = 64 * 1024
MAX_ID = 128
MAX_SEQ = 2 ** 53
COMMAND_RATE = 20.0  # lease commands per second a session may send, sustained ...
COMMAND_BURST = 50  # ... and at once; beyond that each is answered rate_limited, unexecuted
CAPABILITIES = ("sms", "lease", "inventory", "health", "criteria")  # what hello announces; see PROTOCOL.md


class ErrorReason(enum.Enum):
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_TYPE = "missing_type"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    FRAME_TOO_LARGE = "frame_too_large"
    BINARY_FRAME = "binary_frame"
    BAD_ACK = "bad_ack"
    UNEXPECTED = "unexpected"
    WRONG_GATEWAY = "wrong_gateway"


# ------------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class Welcomed:
    last_acked_seq: int


@dataclass(frozen=True, slots=True)
class Acked:
    seq: int


@dataclass(frozen=True, slots=True)
class OpenLease:
    command_id: str
    lease_id: str
    service: str
    category: str | None = None
    number: str | None = None
    country: str | None = None
    operator: str | None = None
    exclude_prefixes: tuple[str, ...] = ()
    wait_window: float | None = None


@dataclass(frozen=True, slots=True)
class LeaseAction:
    command_id: str
    lease_id: str
    action: str  # repeat | finish | cancel


@dataclass(frozen=True, slots=True)
class Throttled:
    """A command over the session's rate: answered ``rate_limited`` without running it (no
    transaction, nothing stored), so the marketplace may send the same command again later."""

    command_id: str
    retry_after: float
    frame: str  # the result frame to send back


@dataclass(frozen=True, slots=True)
class FrameRejected:
    reason: ErrorReason
    message: str
    frame_id: str | None
    frame: str  # the error frame to send back


Command = OpenLease | LeaseAction
Event = Welcomed | Acked | OpenLease | LeaseAction | Throttled | FrameRejected


@dataclass(slots=True)
class TokenBucket:
    """``rate`` per second sustained, ``burst`` at once. Time is given, never read."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        if self.at is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next command would be admitted."""
        return max(0.0, (1.0 - self.tokens) / self.rate)


class _Invalid(Exception):
    def __init__(self, reason: ErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def error_frame(reason: ErrorReason, message: str, frame_id: str | None = None) -> str:
    return _error_frame(reason.value, message, frame_id)


# --------------------------------------------------------------------------------- validation
def _string(frame: dict, key: str, *, required: bool = True, max_len: int = MAX_ID) -> str | None:
    value = frame.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise _Invalid(ErrorReason.INVALID_FIELD, f"'{key}' must be a string of 1..{max_len} characters")
    return value


def _seq(frame: dict, key: str) -> int:
    value = frame.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
        raise _Invalid(ErrorReason.INVALID_FIELD, f"'{key}' must be an integer from 0 to 2^53")
    return value


def frame_bytes(text: str) -> int:
    """A text frame's size on the wire (UTF-8), which is what the limit is about: counting
    characters let 40,000 Cyrillic ones (80 KB) through a 64 KiB limit."""
    return len(text.encode("utf-8", "surrogatepass"))


def parse(data: str | bytes, *, gateway_id: str) -> Event:
    """One frame as received; never raises."""
    frame_id = None
    try:
        if isinstance(data, (bytes, bytearray)):
            raise _Invalid(ErrorReason.BINARY_FRAME, "simgw.v1 frames are JSON text, not binary")
        size = frame_bytes(data)
        if size > MAX_FRAME:
            raise _Invalid(ErrorReason.FRAME_TOO_LARGE, f"frame of {size} bytes; the limit is {MAX_FRAME} bytes")
        try:
            frame = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise _Invalid(ErrorReason.INVALID_JSON, f"not JSON: {str(exc)[:120]}") from None
        if not isinstance(frame, dict):
            raise _Invalid(ErrorReason.NOT_AN_OBJECT, "a frame must be a JSON object")
        raw_id = frame.get("command_id")
        frame_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_ID else None
        kind = frame.get("type")
        if kind is None:
            raise _Invalid(ErrorReason.MISSING_TYPE, "a frame needs a 'type'")
        if not isinstance(kind, str):
            raise _Invalid(ErrorReason.INVALID_FIELD, "'type' must be a string")
        target = frame.get("gateway_id")
        if target is not None and target != gateway_id and kind.startswith("lease."):
            raise _Invalid(ErrorReason.WRONG_GATEWAY, "the command names another gateway")
        return _parse_kind(kind, frame)
    except _Invalid as exc:
        return FrameRejected(exc.reason, str(exc), frame_id, error_frame(exc.reason, str(exc), frame_id))


def _parse_kind(kind: str, frame: dict) -> Event:
    if kind == "welcome":
        return Welcomed(_seq(frame, "last_acked_seq"))
    if kind == "ack":
        return Acked(_seq(frame, "seq"))
    if kind == "lease.open":
        return _parse_open(frame)
    if kind in ("lease.repeat", "lease.finish", "lease.cancel"):
        return LeaseAction(_string(frame, "command_id"), _string(frame, "lease_id"), kind.split(".", 1)[1])
    raise _Invalid(ErrorReason.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")


NUMBER = re.compile(r"\+?[0-9]{5,15}")  # E.164 with its + (or as the supplier configured it: see PROTOCOL.md)
PREFIX = re.compile(r"\+?[0-9]{1,15}")  # a number prefix, with or without the +
COUNTRY = re.compile(r"[A-Za-z]{2}")  # ISO 3166-1 alpha-2, either case


def _matching(frame: dict, key: str, pattern: re.Pattern[str], what: str, *, max_len: int = 32) -> str | None:
    value = _string(frame, key, required=False, max_len=max_len)
    if value is not None and not pattern.fullmatch(value):
        raise _Invalid(ErrorReason.INVALID_FIELD, f"'{key}' must be {what}")
    return value


def _parse_open(frame: dict) -> OpenLease:
    command_id = _string(frame, "command_id")
    lease_id = _string(frame, "lease_id")
    service = _string(frame, "service", max_len=64)
    category = _string(frame, "category", required=False, max_len=64)
    number = _matching(frame, "number", NUMBER, "a number in E.164 with its + (+79161234567)")
    criteria = frame.get("criteria") or {}
    if not isinstance(criteria, dict):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'criteria' must be an object")
    country = _matching(criteria, "country", COUNTRY, "an ISO 3166-1 alpha-2 code (RU)")
    operator = _string(criteria, "operator", required=False, max_len=64)
    prefixes = criteria.get("exclude_prefixes", [])
    if not isinstance(prefixes, list) or len(prefixes) > 1000 or not all(
            isinstance(p, str) and PREFIX.fullmatch(p) for p in prefixes):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'exclude_prefixes' must be a list of up to 1000 number prefixes")
    wait = frame.get("wait_window")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait)
                             or wait <= 0):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'wait_window' must be a positive number of seconds")
    return OpenLease(command_id, lease_id, service, category, number, country.upper() if country else None, operator,
                     tuple(prefixes), float(wait) if wait is not None else None)


# ------------------------------------------------------------------------------------ session
class SessionState(enum.Enum):
    """Where one connection stands. Only READY sends sequenced frames, and only the full
    inventory moves a session from SYNCING to READY: the order of PROTOCOL.md's Session section
    (full inventory, then replays, then new events) is a property of this table."""

    CONNECTING = "connecting"  # the WebSocket is open; hello not sent yet
    AUTHENTICATING = "authenticating"  # hello sent; waiting for the welcome
    SYNCING = "syncing"  # welcomed; the full inventory not sent yet
    READY = "ready"  # full inventory sent: replays and new events flow, within the window
    CLOSING = "closing"  # we are closing the connection; nothing more is sent
    FAILED = "failed"  # the marketplace's welcome was refused (bad_ack): error sent, closing next
    CLOSED = "closed"  # the connection is gone; the next one is a new session


class SessionInput(enum.Enum):
    HELLO_SENT = "hello_sent"
    WELCOMED = "welcomed"
    WELCOME_REFUSED = "welcome_refused"
    FULL_INVENTORY_SENT = "full_inventory_sent"
    CLOSE = "close"
    CONNECTION_LOST = "connection_lost"


_S, _I = SessionState, SessionInput
# The whole session at a glance: (state, input) -> next state. Anything absent is refused.
TRANSITIONS: dict[tuple[SessionState, SessionInput], SessionState] = {
    (_S.CONNECTING, _I.HELLO_SENT): _S.AUTHENTICATING,
    (_S.AUTHENTICATING, _I.WELCOMED): _S.SYNCING,
    (_S.AUTHENTICATING, _I.WELCOME_REFUSED): _S.FAILED,
    (_S.SYNCING, _I.FULL_INVENTORY_SENT): _S.READY,
    **{(state, _I.CLOSE): _S.CLOSING for state in (_S.CONNECTING, _S.AUTHENTICATING, _S.SYNCING, _S.READY,
                                                  _S.FAILED)},
    **{(state, _I.CONNECTION_LOST): _S.CLOSED for state in _S if state is not _S.CLOSED},
}

# Which frames each state may send; a frame not listed is kept back (sequenced events stay in
# the outbox, a health report is skipped, a result is not sent: the marketplace replays it).
MAY_SEND: dict[SessionState, frozenset[str]] = {
    _S.CONNECTING: frozenset({"hello"}),
    _S.AUTHENTICATING: frozenset({"error"}),
    _S.SYNCING: frozenset({"inventory", "result", "error"}),
    _S.READY: frozenset({"inventory", "sms", "lease", "result", "error", "health"}),
    _S.FAILED: frozenset({"error"}),
    _S.CLOSING: frozenset(),
    _S.CLOSED: frozenset(),
}
# Which frames each state acts on; any other is answered `error unexpected` and ignored.
MAY_RECEIVE: dict[SessionState, frozenset[type]] = {
    _S.AUTHENTICATING: frozenset({Welcomed}),
    _S.SYNCING: frozenset({Acked, OpenLease, LeaseAction}),
    _S.READY: frozenset({Acked, OpenLease, LeaseAction}),
}
MAX_UNSEQUENCED = 1024  # frames other than sms/lease waiting to be written; beyond it errors are dropped


class SessionError(RuntimeError):
    """The caller asked for a transition the table does not have (a bug in the shell, not input)."""


@dataclass(slots=True)
class UplinkSession:
    """One connection's state machine: the handshake, the order, the send window, the resume
    cursor. Frames to send are queued here, in the order the state allows, and taken with
    :meth:`data_to_send`; the shell only writes them."""

    gateway_id: str
    version: str
    acked_seq: int
    window: int = 256
    capabilities: tuple[str, ...] = CAPABILITIES
    state: SessionState = SessionState.CONNECTING
    sent_seq: int = 0  # the highest seq sent on this connection
    stale_acks: int = 0
    max_known_seq: int = MAX_SEQ  # the highest seq this gateway ever assigned
    commands: TokenBucket | None = None  # the rate limit on lease commands; None: unlimited
    throttled: int = 0  # commands answered rate_limited on this connection
    errors_dropped: int = 0  # error frames not sent because MAX_UNSEQUENCED were already waiting
    _in_flight: list[int] = field(default_factory=list)
    _outgoing: list[str] = field(default_factory=list)
    _unsequenced: int = 0
    _inventory_sent: dict | None = None
    _welcomed: bool = False

    # ---------------------------------------------------------------------------- transitions
    def _move(self, trigger: SessionInput) -> None:
        target = TRANSITIONS.get((self.state, trigger))
        if target is None:
            raise SessionError(f"{trigger.value} in state {self.state.value}")
        self.state = target

    @property
    def welcomed(self) -> bool:
        """The marketplace accepted this session (it reached SYNCING at some point)."""
        return self._welcomed

    def close(self) -> None:
        if (self.state, SessionInput.CLOSE) in TRANSITIONS:
            self._move(SessionInput.CLOSE)

    def connection_lost(self) -> None:
        if self.state is not SessionState.CLOSED:
            self._move(SessionInput.CONNECTION_LOST)
        self._outgoing.clear()

    # ----------------------------------------------------------------------------- sending
    def _queue(self, kind: str, frame: str) -> bool:
        if kind not in MAY_SEND[self.state]:
            return False
        if kind not in ("sms", "lease"):
            if self._unsequenced >= MAX_UNSEQUENCED and kind == "error":
                self.errors_dropped += 1
                return False
            self._unsequenced += 1
        self._outgoing.append(frame)
        return True

    @property
    def has_output(self) -> bool:
        """Frames are queued (an ack, the commonest frame read, queues none)."""
        return bool(self._outgoing)

    def data_to_send(self) -> list[str]:
        """Every frame queued, in order; the shell writes them as they are."""
        out, self._outgoing, self._unsequenced = self._outgoing, [], 0
        return out

    def send_hello(self) -> None:
        self._queue("hello", hello_frame(self.gateway_id, self.version, self.capabilities, self.acked_seq))
        self._move(SessionInput.HELLO_SENT)

    def hello(self) -> str:
        """The hello frame, sent now (for shells and tests that write it themselves)."""
        self.send_hello()
        return self.data_to_send()[0]

    def send_inventory(self, snapshot: dict[str, object]) -> bool:
        """Queue the inventory: full on this connection's first (SYNCING -> READY), then only
        the numbers that changed. Before the welcome nothing is sent."""
        if self.state not in (SessionState.SYNCING, SessionState.READY):
            return False
        frame, self._inventory_sent = inventory_frame(snapshot, self._inventory_sent)
        if frame is None:
            return False
        self._queue("inventory", frame)
        if self.state is SessionState.SYNCING:
            self._move(SessionInput.FULL_INVENTORY_SENT)
        return True

    def send_events(self, rows: list[tuple[int, str, dict]]) -> int:
        """Queue outbox rows (seq, kind, payload) after ``sent_seq``, within the window; how many
        were taken. Before the full inventory none is: they stay in the outbox."""
        taken = 0
        for seq, kind, payload in rows:
            if seq <= self.sent_seq:
                continue  # already sent on this connection
            if self.room == 0 or not self._queue(kind, sequenced_frame(seq, kind, payload)):
                break
            self._in_flight.append(seq)
            self.sent_seq = seq
            taken += 1
        return taken

    def sequenced_frame(self, seq: int, kind: str, payload: dict[str, object]) -> str | None:
        """One outbox row as a frame, counted in flight; None if the session may not send it now."""
        if not self.send_events([(seq, kind, payload)]):
            return None
        return self._outgoing.pop()

    def throttle(self, command: Command, retry_after: float) -> Throttled:
        """Answer ``command`` rate_limited, unexecuted (over the rate, or the shell's queue full)."""
        self.throttled += 1
        throttled = rate_limited(command, retry_after)
        self._queue("result", throttled.frame)
        return throttled

    def send_result(self, command_id: str, result: dict[str, object]) -> bool:
        return self._queue("result", result_frame(command_id, result))

    def send_health(self, health: dict[str, object]) -> bool:
        return self._queue("health", health_frame(health))

    @property
    def room(self) -> int:
        """How many more sequenced frames may be sent before an ack (none before READY)."""
        return max(0, self.window - len(self._in_flight)) if self.state is SessionState.READY else 0

    @property
    def ready(self) -> bool:
        return self.state is SessionState.READY

    # ---------------------------------------------------------------------------- receiving
    def receive(self, data: str | bytes, now: float = 0.0) -> Event:
        """One frame as received at ``now`` (seconds, any monotonic clock: the rate limit's).
        Answers (errors, rate-limited results) are queued for :meth:`data_to_send`."""
        event = parse(data, gateway_id=self.gateway_id)
        if not isinstance(event, FrameRejected) and type(event) not in MAY_RECEIVE.get(self.state, ()):
            if self.state in (SessionState.CLOSING, SessionState.CLOSED, SessionState.FAILED):
                return self._reject(ErrorReason.UNEXPECTED, "the session is closing", None, answer=False)
            what = "welcome already received on this connection" if isinstance(event, Welcomed) \
                else f"{type(event).__name__} before the welcome"
            return self._reject(ErrorReason.UNEXPECTED, what, getattr(event, "command_id", None))
        if isinstance(event, (OpenLease, LeaseAction)) and self.commands is not None \
                and not self.commands.take(now):
            return self.throttle(event, self.commands.retry_after())
        if isinstance(event, Welcomed):
            return self._welcome(event)
        if isinstance(event, Acked):
            return self._ack(event)
        if isinstance(event, FrameRejected):
            self._queue("error", event.frame)
        return event

    def _welcome(self, event: Welcomed) -> Event:
        if event.last_acked_seq > self.max_known_seq:
            # Believing it would prune events the marketplace never had: say so, then close.
            rejected = self._reject(ErrorReason.BAD_ACK, f"welcome claims seq {event.last_acked_seq}; the highest "
                                                         f"this gateway assigned is {self.max_known_seq}", None)
            self._move(SessionInput.WELCOME_REFUSED)
            return rejected
        self._move(SessionInput.WELCOMED)
        self._welcomed = True
        # The marketplace's word on what it holds wins; we resend everything after it.
        self.acked_seq = event.last_acked_seq
        self.sent_seq = event.last_acked_seq
        return event

    def _ack(self, event: Acked) -> Event:
        if event.seq > self.sent_seq:
            return self._reject(ErrorReason.BAD_ACK, f"ack {event.seq} for a seq never sent (highest {self.sent_seq})",
                                None)
        if event.seq <= self.acked_seq:
            self.stale_acks += 1
        else:
            self.acked_seq = event.seq
            self._in_flight = [s for s in self._in_flight if s > event.seq]
        return event

    def _reject(self, reason: ErrorReason, message: str, frame_id: str | None, *, answer: bool = True) -> FrameRejected:
        rejected = FrameRejected(reason, message, frame_id, error_frame(reason, message, frame_id))
        if answer:
            self._queue("error", rejected.frame)
        return rejected


def rate_limited(command: Command, retry_after: float) -> Throttled:
    """The answer to a command refused for the rate: unexecuted, to be sent again."""
    wait = round(max(0.05, retry_after), 2)
    return Throttled(command.command_id, wait, result_frame(command.command_id, {
        "ok": False, "lease_id": command.lease_id, "reason": "rate_limited", "retry_after": wait,
        "message": f"over {COMMAND_RATE:g} commands/s (burst {COMMAND_BURST}); not executed, send it again"}))
