"""The ``[smshub]`` section of simgw.toml, read with the same rules and error shape as the rest.

The key file follows the uplink token's rules (0600, a regular file, one printable line). The
push URL follows the uplink URL's rule (gateway.uplink.url): ``https://``, or ``http://`` to a
loopback address only, and no user:password@, ?query or #fragment (it is logged). A ``listen``
that is not loopback exposes the agent: then the key must come from a key file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.config import UNREAD_TOKEN, ConfigError, _host_port, _Reader, read_token_file
from gateway.smshub.names import Names
from gateway.smshub.protocol import Flavour
from gateway.uplink.url import is_loopback, redact_urls, url_problem

DEFAULT_LISTEN = ("127.0.0.1", 8780)


@dataclass(frozen=True, slots=True)
class SmshubConfig:
    push_url: str
    key: str = field(repr=False)  # never printed, never logged
    listen: tuple[str, int] = DEFAULT_LISTEN
    key_file: str | None = None
    flavour: Flavour = Flavour.SMSHUB
    activation_cap: float = 24 * 3600.0  # a safety net for an activation the hub never finishes
    names: Names = field(default_factory=Names)
    push_retry: float = 10.0  # the protocol's "10-seconds delays"
    rate: float = 100.0  # requests a second the agent answers (the hub polls every 10-20 s, bursts GET_NUMBER)
    burst: int = 200
    concurrent: int = 16


def push_url_problem(url: str) -> str | None:
    """The uplink's URL rule, for http(s): what is wrong with ``url``, or None."""
    scheme, sep, rest = url.partition("://")
    mapped = {"https": "wss", "http": "ws"}.get(scheme.lower()) if sep else None
    if mapped is None:
        return "an https://host/path URL (http:// only to a loopback address)"
    problem = url_problem(f"{mapped}://{rest}", allow_insecure=False)
    if problem is None:
        return None
    return (problem.replace("wss://", "https://").replace("ws://", "http://").replace("token_file", "key_file")
            .replace(", or set allow_insecure = true", "").replace("the token", "the key"))


def parse(path: str, raw: Any, *, read_secrets: bool = True) -> SmshubConfig:
    reader = _Reader(path, "smshub", raw)
    listen = _host_port(path, "smshub.listen", reader.get("listen", "127.0.0.1:8780"))
    push_url = reader.string("push_url")
    problem = "an https://host/path URL" if push_url is None else push_url_problem(push_url)
    if problem is not None:
        raise ConfigError(path, "smshub.push_url", problem, redact_urls(push_url or ""))
    key, key_file = reader.get("key", None), reader.string("key_file", None)
    if (key is None) == (key_file is None):
        raise ConfigError(path, "smshub.key_file", "exactly one of key_file or key", "both" if key else "neither")
    if key_file is None and not is_loopback(listen[0]):
        raise ConfigError(path, "smshub.key", f"a key_file (listen {listen[0]} is not loopback)", "an inline key")
    if key_file is not None:
        key = read_token_file(key_file, path, "smshub.key_file") if read_secrets else UNREAD_TOKEN
    elif not isinstance(key, str) or not key.strip() or len(key) > 4096 or not key.isprintable():
        raise ConfigError(path, "smshub.key", "one line of printable text (the protocol key)", "something else")
    flavour = Flavour(reader.string("flavour", "smshub", choices=tuple(f.value for f in Flavour)))
    cap = reader.duration("activation_cap", 24 * 3600.0, 60, 30 * 86400)
    names = Names({k.lower(): v.lower() for k, v in _table(path, "smshub.services", reader.get("services", {})).items()},
                  {k.upper(): v.lower() for k, v in _table(path, "smshub.countries", reader.get("countries", {})).items()},
                  {k.lower(): v.lower() for k, v in _table(path, "smshub.operators", reader.get("operators", {})).items()})
    reader.finish()
    if not names.services:
        raise ConfigError(path, "smshub.services", "at least one service (our name = the hub's code)", "none")
    return SmshubConfig(push_url, key, listen, key_file, flavour, cap, names)  # type: ignore[arg-type]


def _table(path: str, key: str, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
                                            for k, v in raw.items()):
        raise ConfigError(path, key, 'a table of name = "name"', raw)
    return {k.strip(): v.strip() for k, v in raw.items()}
