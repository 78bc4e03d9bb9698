"""The marketplace protocol simgw.v1, I/O-free: text frames in, typed events out, frames to send.

One :class:`UplinkSession` per connection. It validates every incoming frame by hand against the
rules of ``PROTOCOL.md`` (the JSON Schemas in ``schemas/`` say the same; the tests hold the two
together) and never raises on input: a bad frame becomes a :class:`FrameRejected` event carrying
the ``error`` frame to send back. It keeps the send window (sequenced events sent but not yet
acknowledged) and the resume cursor (the highest acknowledged seq).
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field

PROTOCOL_VERSION = 1
SUBPROTOCOL = "simgw.v1"
MAX_FRAME = 64 * 1024
MAX_ID = 128
MAX_SEQ = 2 ** 53
COMMAND_RATE = 20.0  # lease commands per second a session may send, sustained ...
COMMAND_BURST = 50  # ... and at once; beyond that each is answered rate_limited, unexecuted


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


def encode(frame: dict[str, object]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def error_frame(reason: ErrorReason, message: str, frame_id: str | None = None) -> str:
    return encode({"type": "error", "frame_id": frame_id, "reason": reason.value, "message": message})


def result_frame(command_id: str, result: dict[str, object]) -> str:
    frame: dict[str, object] = {"type": "result", "command_id": command_id, "ok": bool(result.get("ok"))}
    for key in ("lease_id", "state", "number", "reason", "message", "retry_after"):
        if result.get(key) is not None:
            frame[key] = result[key]
    return encode(frame)


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


def _parse_open(frame: dict) -> OpenLease:
    command_id = _string(frame, "command_id")
    lease_id = _string(frame, "lease_id")
    service = _string(frame, "service", max_len=64)
    category = _string(frame, "category", required=False, max_len=64)
    number = _string(frame, "number", required=False, max_len=32)
    criteria = frame.get("criteria") or {}
    if not isinstance(criteria, dict):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'criteria' must be an object")
    country = _string(criteria, "country", required=False, max_len=8)
    operator = _string(criteria, "operator", required=False, max_len=64)
    prefixes = criteria.get("exclude_prefixes", [])
    if not isinstance(prefixes, list) or len(prefixes) > 1000 or not all(
            isinstance(p, str) and 0 < len(p) <= 32 for p in prefixes):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'exclude_prefixes' must be a list of up to 1000 short strings")
    wait = frame.get("wait_window")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or not math.isfinite(wait)
                             or wait <= 0):
        raise _Invalid(ErrorReason.INVALID_FIELD, "'wait_window' must be a positive number of seconds")
    return OpenLease(command_id, lease_id, service, category, number, country, operator, tuple(prefixes),
                     float(wait) if wait is not None else None)


# ------------------------------------------------------------------------------------ session
@dataclass(slots=True)
class UplinkSession:
    """Per-connection state: the handshake, the send window and the resume cursor."""

    gateway_id: str
    version: str
    acked_seq: int
    window: int = 256
    capabilities: tuple[str, ...] = ("sms", "lease", "inventory", "health", "criteria")
    ready: bool = False
    sent_seq: int = 0  # the highest seq sent on this connection
    stale_acks: int = 0
    max_known_seq: int = MAX_SEQ  # the highest seq this gateway ever assigned
    commands: TokenBucket | None = None  # the rate limit on lease commands; None: unlimited
    throttled: int = 0  # commands answered rate_limited on this connection
    _in_flight: list[int] = field(default_factory=list)

    def hello(self) -> str:
        return encode({"type": "hello", "v": PROTOCOL_VERSION, "gateway_id": self.gateway_id, "version": self.version,
                       "capabilities": list(self.capabilities), "last_acked_seq": self.acked_seq})

    def receive(self, data: str | bytes, now: float = 0.0) -> Event:
        """One frame as received at ``now`` (seconds, any monotonic clock: the rate limit's)."""
        event = parse(data, gateway_id=self.gateway_id)
        if isinstance(event, (OpenLease, LeaseAction)) and self.commands is not None \
                and not self.commands.take(now):
            self.throttled += 1
            return rate_limited(event, self.commands.retry_after())
        if isinstance(event, Welcomed):
            if self.ready:
                return _rejected(ErrorReason.UNEXPECTED, "welcome already received on this connection")
            if event.last_acked_seq > self.max_known_seq:
                # Believing it would prune events the marketplace never had.
                return _rejected(ErrorReason.BAD_ACK, f"welcome claims seq {event.last_acked_seq}; "
                                                      f"the highest this gateway assigned is {self.max_known_seq}")
            self.ready = True
            # The marketplace's word on what it holds wins; we resend everything after it.
            self.acked_seq = event.last_acked_seq
            self.sent_seq = event.last_acked_seq
        elif isinstance(event, Acked):
            if event.seq > self.sent_seq:
                return _rejected(ErrorReason.BAD_ACK, f"ack {event.seq} for a seq never sent (highest {self.sent_seq})")
            if event.seq <= self.acked_seq:
                self.stale_acks += 1
            else:
                self.acked_seq = event.seq
                self._in_flight = [s for s in self._in_flight if s > event.seq]
        return event

    @property
    def room(self) -> int:
        """How many more sequenced frames may be sent before an ack."""
        return max(0, self.window - len(self._in_flight)) if self.ready else 0

    def sequenced_frame(self, seq: int, kind: str, payload: dict[str, object]) -> str:
        """Build the frame for outbox row ``seq`` and count it in flight."""
        frame = {"type": kind, "seq": seq, **payload}
        self._in_flight.append(seq)
        self.sent_seq = max(self.sent_seq, seq)
        return encode(frame)


def rate_limited(command: Command, retry_after: float) -> Throttled:
    """The answer to a command refused for the rate: unexecuted, to be sent again."""
    wait = round(max(0.05, retry_after), 2)
    return Throttled(command.command_id, wait, result_frame(command.command_id, {
        "ok": False, "lease_id": command.lease_id, "reason": "rate_limited", "retry_after": wait,
        "message": f"over {COMMAND_RATE:g} commands/s (burst {COMMAND_BURST}); not executed, send it again"}))


def _rejected(reason: ErrorReason, message: str) -> FrameRejected:
    return FrameRejected(reason, message, None, error_frame(reason, message))
