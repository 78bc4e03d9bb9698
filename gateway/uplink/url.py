"""The marketplace URL: one rule for check-config, ``run`` and the uplink client, and its redaction.

A URL is logged (every failed connect says where it tried) and shown by check-config, so it must
hold no secret: the token travels in the handshake's ``Authorization`` header only. A secret in
the userinfo (``wss://user:TOKEN@host``) or the query (``?token=``, ``?auth=``, any name) is
refused rather than guessed at by name, and the fragment with them: a marketplace URL needs none
of the three. Unencrypted ``ws://`` is for loopback (tests, a local hub) unless the supplier says
``allow_insecure``, which the daemon then warns about at every start.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# scheme, userinfo (up to the last @ of the word: a password may hold '/' or '@'), host, path, query, fragment
_URL_IN_TEXT_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s\"'<>]*@)?([^\s/?#\"'<>]*)([^\s?#\"'<>]*)"
                             r"(\?[^\s#\"'<>]*)?(#[^\s\"'<>]*)?")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, allow_insecure: bool) -> str | None:
    """What is wrong with ``url`` as the marketplace address, as the ``expected ...`` half of a
    config error; ``None`` when it may be used."""
    if "@" in url:
        return "a URL without user:password@ (it is logged; put the token in token_file)"
    if "?" in url or "#" in url:
        return "a URL without ?query or #fragment (it is logged; put the token in token_file)"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [IPv6 bracket
        return "a wss://host/path URL (ws:// only to a loopback address)"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if parts.scheme not in ("ws", "wss") or not parts.hostname or any(ch.isspace() for ch in url):
        return "a wss://host/path URL (ws:// only to a loopback address)"
    if port == 0:
        return "a wss://host[:port]/path URL with a port from 1 to 65535"
    if parts.scheme == "ws" and not allow_insecure and not is_loopback(parts.hostname):
        return (f"wss:// (ws:// to {parts.hostname} would send the token and every SMS unencrypted; "
                "ws:// is for loopback, or set allow_insecure = true)")
    return None


def _redacted(match: re.Match[str]) -> str:
    scheme, userinfo, host, path, query, fragment = match.groups()
    return (scheme + ("***@" if userinfo else "") + host + path + ("?***" if query else "")
            + ("#***" if fragment else ""))


def redact_urls(text: str) -> str:
    """``text`` with the userinfo, query and fragment of every URL in it replaced by ``***``:
    the form a URL may take in a log line or an error message."""
    return _URL_IN_TEXT_RE.sub(_redacted, text) if "://" in text else text
