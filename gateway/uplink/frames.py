"""Every frame simgw.v1 sends, built in one place (I/O-free): the session sends them, the core
stores the payloads of sequenced events with them, and the schemas in ``schemas/`` describe them.

Why one place: frames built in the core, the client and the protocol module drifted apart (the
``lease`` frame said ``opened`` while the ``result`` of the same command said ``waiting``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

PROTOCOL_VERSION = 1

# The `lease` frame's `event`: what happened to the lease. Its `state` is always the lease's
# state, the same word a `result` gives (gateway.domain.leases.LeaseState). An SMS moves its
# lease too, but that is told inside the `sms` frame (its `lease` object): one frame per SMS.
LEASE_EVENTS = ("opened", "ready", "repeat", "finish", "cancel", "deadline", "sim_failed")
# Events a gateway no longer makes but may still replay: outbox rows queued before an upgrade
# (a `lease` frame `event: sms` after each `sms` frame, from gateways built before 2026-11-26).
LEGACY_LEASE_EVENTS = ("sms",)


def encode(frame: Mapping[str, object]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def hello_frame(gateway_id: str, version: str, capabilities: tuple[str, ...], last_acked_seq: int) -> str:
    return encode({"type": "hello", "v": PROTOCOL_VERSION, "gateway_id": gateway_id, "version": version,
                   "capabilities": list(capabilities), "last_acked_seq": last_acked_seq})


def error_frame(reason: str, message: str, frame_id: str | None = None) -> str:
    return encode({"type": "error", "frame_id": frame_id, "reason": reason, "message": message})


def result_frame(command_id: str, result: Mapping[str, object]) -> str:
    frame: dict[str, object] = {"type": "result", "command_id": command_id, "ok": bool(result.get("ok"))}
    for key in ("lease_id", "state", "number", "reason", "message", "retry_after"):
        if result.get(key) is not None:
            frame[key] = result[key]
    return encode(frame)


def sequenced_frame(seq: int, kind: str, payload: Mapping[str, object]) -> str:
    return encode({"type": kind, "seq": seq, **payload})


def health_frame(health: Mapping[str, object]) -> str:
    return encode({"type": "health", **health})


def inventory_frame(snapshot: Mapping[str, object], previous: Mapping[str, Mapping] | None) -> tuple[str | None, dict]:
    """The ``inventory`` frame for ``snapshot`` given the numbers sent before on this connection
    (None: nothing yet, so the frame is full), and the numbers now sent. None when nothing changed.
    A number that disappeared is listed once more as ``offline``."""
    numbers = {n["number_id"]: n for n in snapshot["numbers"]}  # type: ignore[index, union-attr]
    if previous is None:
        return encode({"type": "inventory", **snapshot, "full": True}), numbers
    changed = [n for key, n in numbers.items() if previous.get(key) != n]
    gone = [{**n, "state": "offline"} for key, n in previous.items() if key not in numbers]
    if not changed and not gone:
        return None, dict(previous)
    return encode({"type": "inventory", **snapshot, "full": False, "numbers": changed + gone}), numbers


# ------------------------------------------------------------- payloads of sequenced events
def sms_payload(*, msg_id: str, lease_id: str, number: str, sender: str | None, text: str | None, parts: int,
                complete: bool, encoding: str | None, network_time: str | None, received_at: float,
                lease: Mapping[str, object]) -> dict[str, object]:
    """What an ``sms`` frame carries besides ``type`` and ``seq`` (stored in the outbox). ``lease``
    is its lease after this SMS (:func:`sms_lease`): the marketplace learns the new count and
    deadline from the same frame, so an SMS costs one frame and one ack, not two."""
    return {"msg_id": msg_id, "lease_id": lease_id, "number": number, "sender": sender, "text": text,
            "parts": parts, "complete": complete, "encoding": encoding, "network_time": network_time,
            "received_at": received_at, "lease": dict(lease)}


def sms_lease(*, state: str, sms_count: int, deadline: float | None) -> dict[str, object]:
    """The ``sms`` frame's ``lease``: what a ``lease`` frame would have said after the SMS (its
    state, ``received``; its SMS count, this one included; its deadline, the auto-finish time)."""
    return {"state": state, "sms_count": sms_count, "deadline": deadline}


def lease_payload(*, lease_id: str, state: str, event: str, at: float, number: str, service: str,
                  opened_at: float | None, deadline: float | None, ended_at: float | None, sms_count: int,
                  reason: str | None = None) -> dict[str, object]:
    """What a ``lease`` frame carries besides ``type`` and ``seq``. ``state`` is the lease's state
    (the word a ``result`` gives); ``event`` says what moved it. An ended lease's deadline is
    the one that passed (``at - deadline``: how late the end came), or ``ended_at`` if it ended sooner."""
    if event not in LEASE_EVENTS:
        raise ValueError(f"unknown lease event {event!r}; one of {LEASE_EVENTS}")
    payload: dict[str, object] = {
        "lease_id": lease_id, "state": state, "event": event, "at": at, "number": number, "service": service,
        "opened_at": opened_at, "deadline": deadline, "ended_at": ended_at,
        "sms_count": sms_count}
    if reason:
        payload["reason"] = reason
    return payload
