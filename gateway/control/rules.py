"""What the control API accepts, I/O-free: lease bodies checked by the marketplace protocol's own
field rules (``gateway/uplink/protocol.py``, the same code that checks a ``lease.open`` frame),
and who may talk to the read-only TCP listener (loopback ``Host``, no foreign ``Origin``).

Nothing here raises on input: a bad body or header becomes a :class:`Refusal` with the status
and one sentence that names the field, and the caller answers it."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.uplink import protocol
from gateway.uplink.protocol import FrameRejected, OpenLease

MAX_BODY = 64 * 1024
LEASE_FIELDS = frozenset({"number", "service", "lease_id", "category", "wait_window"})
NUMBER = re.compile(r"\+?[0-9]{5,15}")  # E.164 digits, as the modems report them (msisdn.number_in)
WAIT_WINDOW = (60.0, 20 * 60.0)  # PROTOCOL.md: lease.open wait_window, seconds
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str


def lease_open(body: bytes, new_id: str) -> OpenLease | Refusal:
    """A control ``POST /leases`` body as the lease the marketplace would have asked for.
    ``new_id`` is used when the body names no ``lease_id``."""
    try:
        fields = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Refusal(400, f"the body is not JSON: {str(exc)[:120]}")
    if not isinstance(fields, dict):
        return Refusal(400, "the body must be a JSON object with 'number' and 'service'")
    unknown = sorted(set(fields) - LEASE_FIELDS)
    if unknown:
        return Refusal(400, f"unknown field {unknown[0][:40]!r}; known: {', '.join(sorted(LEASE_FIELDS))}")
    number = fields.get("number")
    if not isinstance(number, str) or not NUMBER.fullmatch(number):
        return Refusal(400, "'number' must be the SIM's number: an optional '+' and 5..15 ASCII digits")
    for key in ("lease_id", "service", "category"):
        value = fields.get(key)
        if isinstance(value, str) and not value.isprintable():
            return Refusal(400, f"'{key}' must not contain control characters")
    wait = fields.get("wait_window")
    if isinstance(wait, (int, float)) and not isinstance(wait, bool) and not WAIT_WINDOW[0] <= wait <= WAIT_WINDOW[1]:
        return Refusal(400, f"'wait_window' must be {WAIT_WINDOW[0]:g}..{WAIT_WINDOW[1]:g} seconds")
    frame = {**fields, "type": "lease.open", "command_id": "control", "lease_id": fields.get("lease_id") or new_id}
    event = protocol.parse(protocol.encode(frame), gateway_id="control")
    if isinstance(event, FrameRejected):
        return Refusal(400, event.message)
    assert isinstance(event, OpenLease)
    return event


def lease_id(value: str) -> Refusal | None:
    """A lease id named in a URL path, by the rule ``lease.open`` gives it."""
    if not 0 < len(value) <= protocol.MAX_ID:
        return Refusal(400, f"a lease id is 1..{protocol.MAX_ID} characters")
    if not value.isprintable():
        return Refusal(400, "a lease id must not contain control characters")
    return None


def is_loopback_host(authority: str) -> bool:
    """``Host`` (or an origin's authority) names this machine's loopback: ``localhost``,
    ``127.x.x.x`` or ``[::1]``, with or without a port. A DNS name that merely resolves to
    127.0.0.1 (DNS rebinding) is not."""
    host = authority.strip().lower()
    if host.startswith("["):
        host, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
            return False
    elif host.count(":") == 1:
        host, port = host.split(":")
        if not re.fullmatch(r"[0-9]{1,5}", port):
            return False
    elif ":" in host:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_listen_host(authority: str, listen_host: str | None) -> bool:
    """``authority`` names the configured non-loopback listen address (``192.168.1.20`` or
    ``192.168.1.20:8765``), the one other Host a LAN listener answers to."""
    if not listen_host:
        return False
    host = authority.strip().lower()
    name = f"[{listen_host.lower()}]" if ":" in listen_host else listen_host.lower()
    return host == name or bool(re.fullmatch(re.escape(name) + r":[0-9]{1,5}", host))


def tcp_refusal(method: str, host: str | None, origin: str | None, fetch_site: str | None,
                listen_host: str | None = None) -> Refusal | None:
    """Why the read-only TCP listener refuses a request, or None. A browser always sends ``Host``
    and, across sites, ``Origin`` or ``Sec-Fetch-Site``: those are refused before anything is read.
    ``listen_host``: a non-loopback ``[control] listen`` address, allowed as a Host too."""
    allowed = lambda authority: is_loopback_host(authority) or is_listen_host(authority, listen_host)  # noqa: E731
    if host is None or not allowed(host):
        return Refusal(421, "this listener answers only to a loopback Host (localhost, 127.0.0.1, [::1])"
                       + (f" or {listen_host}" if listen_host else ""))
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not allowed(parts.netloc) or \
                parts.netloc.lower() != host.strip().lower():
            return Refusal(403, "cross-origin requests are refused")
    if fetch_site is not None and fetch_site.strip().lower() not in ("same-origin", "none"):
        return Refusal(403, "cross-site requests are refused")
    if method not in ("GET", "HEAD"):
        return Refusal(405, "this listener is read-only: GET /status and GET /metrics; "
                            "lease commands go through the control socket (simgw lease ...)")
    return None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")
