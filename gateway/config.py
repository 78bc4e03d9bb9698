"""Configuration: one TOML file into frozen dataclasses, validated with precise errors.

Every error names the file, the key, what was expected and what was found, so a supplier with a
typo in a cupboard-bound Pi gets one line that tells them what to change. Unknown keys are errors:
a misspelt ``wait_windw`` silently ignored would be a policy the supplier thinks is in force.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from drivers.bank import PRESETS, SwitchStyle, SwitchTiming
from gateway.domain.banks import BankLayout
from gateway.domain.leases import LeaseConfig, Policy
from gateway.domain.numbering import UssdNumber
from gateway.uplink.url import is_loopback, redact_urls, url_problem

if TYPE_CHECKING:
    from gateway.smshub.settings import SmshubConfig

DEFAULT_PATH = "/etc/simgw/simgw.toml"
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
_TOKEN_RE = re.compile(r"[\x21-\x7e]{1,4096}")  # goes in an HTTP header: visible ASCII, one line
_TOKEN_EXPECTED = "one line of printable ASCII (the token)"
_TOKEN_FILE_MAX = 4096
UNREAD_TOKEN = "(token-file-not-read)"  # load(read_secrets=False): never sent anywhere
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(ValueError):
    """A configuration problem: ``file: key: expected X, found Y``."""

    def __init__(self, path: str, key: str, expected: str, found: object) -> None:
        found_text = repr(found) if not isinstance(found, str) or found else "nothing"
        super().__init__(f"{path}: {key}: expected {expected}, found {found_text}")
        self.path, self.key = path, key


@dataclass(frozen=True, slots=True)
class ModemConfig:
    port: str
    baud: int = 115200
    profile: str | None = None  # None: chosen from the modem's identity
    receive_mode: str = "store"
    msisdn: str | None = None  # when the SIM does not know its own number


@dataclass(frozen=True, slots=True)
class BankConfig:
    """A SIM bank: ``slots`` SIMs behind the radios in ``channels`` (ports of [[modems]]), switched
    in ``switch`` style with ``timing``, both the bank driver's own types."""

    name: str
    switch: SwitchStyle
    channels: tuple[str, ...]
    slots: int
    timing: SwitchTiming = field(default_factory=SwitchTiming)
    controller: str | None = None
    controller_baud: int = 115200
    rotation: float | None = 15 * 60.0  # None: idle SIMs stay where they are
    queue: int = 16  # leases that may wait for a channel; 0 refuses with no_channel at once
    reset_wait: float | None = None  # the radios' boot time after a reset (None: their vendor's figure)

    @property
    def layout(self) -> BankLayout:
        """What the scheduler and the inventory need of this bank, without the driver's types."""
        return BankLayout(self.name, self.channels, self.slots, consecutive=self.switch.slots_consecutive,
                          rotation=self.rotation, queue=self.queue)

    def reach(self) -> dict[str, tuple[int, ...]]:
        return self.layout.reach()


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    url: str
    token: str = field(repr=False)  # never printed, never logged
    allow_insecure: bool = False
    ca_file: str | None = None
    window: int = 256
    backoff_max: float = 60.0
    health_interval: float = 30.0
    token_file: str | None = None  # None: the token is written in the config file itself


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    gateway_id: str
    state_dir: str
    log_level: str = "info"
    log_format: str = "auto"
    redact: bool = True
    modems: tuple[ModemConfig, ...] = ()
    numbers: dict[str, str] = field(default_factory=dict)  # ICCID -> MSISDN
    leases: LeaseConfig = field(default_factory=LeaseConfig)
    control_listen: tuple[str, int] = ("127.0.0.1", 8765)  # read-only: /status, /metrics
    control_socket: str | None = None  # lease commands; None: gateway.control.unix.socket_path's rule
    uplink: UplinkConfig | None = None
    banks: tuple[BankConfig, ...] = ()
    ussd_numbers: tuple[UssdNumber, ...] = ()
    smshub: SmshubConfig | None = None  # selling through an SMSHub-compatible marketplace too
    control_show_numbers: bool = False  # the dashboard and /status on the TCP listener mask numbers unless set
    control_password_file: str | None = None  # HTTP Basic on the TCP listener; required for a non-loopback listen

    @property
    def database(self) -> str:
        return os.path.join(self.state_dir, "simgw.db")

    def bank_of(self, port: str) -> BankConfig | None:
        """The bank whose radio ``port`` is, if any."""
        return next((bank for bank in self.banks if port in bank.channels), None)


# ------------------------------------------------------------------------------------- helpers
class _Reader:
    """Reads one table, remembering which keys were consumed so leftovers can be refused."""

    def __init__(self, path: str, prefix: str, table: object) -> None:
        if not isinstance(table, dict):
            raise ConfigError(path, prefix or "(top level)", "a table", table)
        self.path, self.prefix, self.table = path, prefix, table
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        return self.table.get(name, default)

    def string(self, name: str, default: str | None = None, *, choices: tuple[str, ...] = ()) -> str | None:
        value = self.get(name, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(self.path, self.key(name), "a non-empty string", value)
        if choices and value not in choices:
            raise ConfigError(self.path, self.key(name), "one of " + ", ".join(choices), value)
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(self.path, self.key(name), f"an integer from {low} to {high}", value)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(self.path, self.key(name), "true or false", value)
        return value

    def duration(self, name: str, default: float | None, low: float, high: float, *,
                 allow_never: bool = False) -> float | None:
        value = self.get(name, None)
        if value is None:
            return default
        if allow_never and value == "never":
            return None
        seconds = parse_duration(value)
        expected = f"a duration like '20m' or '24h' from {_fmt(low)} to {_fmt(high)}" + (" or 'never'" if allow_never else "")
        if seconds is None or not low <= seconds <= high:
            raise ConfigError(self.path, self.key(name), expected, value)
        return seconds

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(self.path, self.key(name), "a list of non-empty strings", value)
        return tuple(v.strip() for v in value)

    def finish(self) -> None:
        extra = sorted(set(self.table) - self.seen)
        if extra:
            raise ConfigError(self.path, self.key(extra[0]), "a known key (see config/simgw.example.toml)", "an unknown key")


def parse_duration(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    return None


def _fmt(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _host_port(path: str, key: str, value: object) -> tuple[str, int]:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            return host.strip("[]"), int(port)
    raise ConfigError(path, key, "HOST:PORT, e.g. '127.0.0.1:8765'", value)


def _loopback(path: str, key: str, address: tuple[str, int], password_file: str | None) -> tuple[str, int]:
    """The TCP listener is read-only and still personal (which modems, which numbers): it binds to
    a loopback address (or ``localhost``); another address only behind a password (``[control]
    password_file``). Lease commands never travel over TCP."""
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    loopback = ip.is_loopback if ip is not None else host == "localhost"
    if not loopback and password_file is None:
        raise ConfigError(path, key, "a loopback address (127.0.0.1:PORT or [::1]:PORT), or [control] password_file "
                                     "set for a LAN address (prefer an SSH tunnel or a TLS reverse proxy); the "
                                     "lease commands use the control socket", f"{host}:{address[1]}")
    if not loopback and (ip is None or ip.is_unspecified):
        # The Host rule (DNS rebinding) lets browsers in only by the address configured here.
        raise ConfigError(path, key, "the Pi's LAN IP address that browsers will use, e.g. '192.168.1.20:8765' "
                                     "(not 0.0.0.0, :: or a name)", f"{host}:{address[1]}")
    return address


def _password_file(path: str, control: _Reader, read_secrets: bool) -> str | None:
    """``[control] password_file``: an absolute path to a hash made by ``simgw dashboard-password``,
    checked by reading it unless ``read_secrets`` is False (like the token file)."""
    from gateway.dashboard.password import PasswordFileError, read_file

    value = control.string("password_file", None)
    if value is None:
        return None
    if not os.path.isabs(value):
        raise ConfigError(path, "control.password_file", "an absolute path like '/etc/simgw/dashboard.pass'", value)
    if not read_secrets:
        return value
    try:
        read_file(value)
    except PasswordFileError as exc:
        raise ConfigError(path, "control.password_file", "a file made by 'simgw dashboard-password'",
                          f"{value}: {exc}") from None
    return value


# -------------------------------------------------------------------------------------- loading
def load(path: str, *, read_secrets: bool = True) -> Config:
    """Read and validate ``path``. Raises :class:`ConfigError` with one precise sentence.
    ``read_secrets=False`` leaves the token file unread (the daemon, not this reader, needs it): the
    CLI's commands that talk to the daemon or read the database need no token, so an operator who
    may not read it (0600, the daemon's user) can still run them."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "a readable TOML file", "no such file") from None
    except PermissionError:
        raise ConfigError(path, "(file)", "a readable TOML file", "permission denied") from None
    except IsADirectoryError:
        raise ConfigError(path, "(file)", "a TOML file", "a directory") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", "valid TOML", str(exc)) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "(file)", "UTF-8 text", "undecodable bytes") from None
    uplink = raw.get("uplink")
    if not read_secrets and isinstance(uplink, dict) and "token_file" in uplink and "token" not in uplink:
        raw["uplink"] = {**{k: v for k, v in uplink.items() if k != "token_file"}, "token": UNREAD_TOKEN}
    return from_dict(raw, path, read_secrets=read_secrets)


def from_dict(raw: dict[str, Any], path: str = "<config>", *, read_secrets: bool = True) -> Config:
    top = _Reader(path, "", raw)
    gateway = _Reader(path, "gateway", top.get("gateway", {}))
    gateway_id = gateway.string("id", "simgw")
    state_dir = gateway.string("state_dir", "/var/lib/simgw")
    log_level = gateway.string("log_level", "info", choices=("debug", "info", "warning", "error"))
    log_format = gateway.string("log_format", "auto", choices=("auto", "json", "console"))
    redact = gateway.boolean("redact", True)
    gateway.finish()

    modems = _modems(path, top.get("modems", []))
    numbers = _numbers(path, top.get("numbers", {}))
    leases = _leases(path, top.get("leases", {}))
    control = _Reader(path, "control", top.get("control", {}))
    password_file = _password_file(path, control, read_secrets)
    listen = _loopback(path, "control.listen", _host_port(path, "control.listen", control.get("listen", "127.0.0.1:8765")),
                       password_file)
    show_numbers = control.boolean("show_numbers", False)
    control_socket = control.string("socket", None)
    if control_socket is not None and not os.path.isabs(control_socket):
        raise ConfigError(path, "control.socket", "an absolute path like '/run/simgw/control.sock'", control_socket)
    control.finish()
    uplink = _uplink(path, top.get("uplink")) if "uplink" in raw else None
    banks = _banks(path, top.get("banks", []), modems)
    ussd = _ussd_numbers(path, top.get("ussd_numbers", []))
    smshub = _smshub(path, top.get("smshub"), read_secrets) if "smshub" in raw else None
    top.finish()
    return Config(path, gateway_id, state_dir, log_level, log_format, redact, modems, numbers, leases, listen,
                  control_socket, uplink, banks, ussd, smshub, control_show_numbers=show_numbers,
                  control_password_file=password_file)


def _smshub(path: str, raw: object, read_secrets: bool) -> SmshubConfig:
    from gateway.smshub.settings import parse  # the hub's section is read where the hub lives

    return parse(path, raw, read_secrets=read_secrets)


def _banks(path: str, raw: object, modems: tuple[ModemConfig, ...]) -> tuple[BankConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "banks", "an array of tables ([[banks]])", raw)
    ports = {m.port for m in modems}
    out: list[BankConfig] = []
    used: dict[str, str] = {}
    for i, item in enumerate(raw):
        reader = _Reader(path, f"banks[{i}]", item)
        name = reader.string("name", f"bank{i + 1}")
        if any(b.name == name for b in out):
            raise ConfigError(path, f"banks[{i}].name", "a name no other bank has", name)
        preset = PRESETS[reader.string("preset", "swit", choices=tuple(PRESETS))]
        command = reader.string("command", preset.template)
        try:
            command.format(channel=1, slot=1, local=1, value="0")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(path, f"banks[{i}].command", "a template using {channel}, {slot}, {local} or {value}",
                              f"{command} ({exc})") from None
        channels = reader.strings("channels")
        if not channels:
            raise ConfigError(path, f"banks[{i}].channels", "the modem ports of the bank's radios", "nothing")
        for port in channels:
            if port not in ports:
                raise ConfigError(path, f"banks[{i}].channels", "ports that are configured in [[modems]]", port)
            if port in used:
                raise ConfigError(path, f"banks[{i}].channels", f"a port not already a channel of {used[port]}", port)
            used[port] = name
        slots = reader.integer("slots", len(channels), len(channels), 4096)
        if preset.slots_consecutive and slots % len(channels):
            raise ConfigError(path, f"banks[{i}].slots", f"a multiple of the {len(channels)} channels (SIMs per modem)",
                              slots)
        controller = reader.string("controller", None)
        if preset.needs_controller and controller is None:
            raise ConfigError(path, f"banks[{i}].controller", "the bank controller's serial port", "nothing")
        default = SwitchTiming()
        timing = SwitchTiming(
            switch_time=reader.duration("switch_time", default.switch_time, 0, 600),
            ok_timeout=reader.duration("ok_timeout", default.ok_timeout, 0.01, 60),
            settle_timeout=reader.duration("settle_timeout", default.settle_timeout, 0.1, 900),
            sim_timeout=reader.duration("sim_timeout", default.sim_timeout, 0.1, 600),
            register_timeout=reader.duration("register_timeout", default.register_timeout, 0.1, 900),
            poll=reader.duration("poll", default.poll, 0.01, 60), retries=reader.integer("retries", default.retries, 0, 10))
        switch = replace(preset, template=command, expect_ok=reader.boolean("expect_ok", preset.expect_ok))
        bank = BankConfig(name, switch, channels, slots, timing, controller,
                          reader.integer("controller_baud", 115200, 1200, 4_000_000),
                          reader.duration("rotation", 15 * 60.0, 1, 7 * 86400, allow_never=True),
                          reader.integer("queue", 16, 0, 10_000), reader.duration("reset_wait", None, 0, 300))
        reader.finish()
        out.append(bank)
    return tuple(out)


def _ussd_numbers(path: str, raw: object) -> tuple[UssdNumber, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "ussd_numbers", "an array of tables ([[ussd_numbers]])", raw)
    out = []
    for i, item in enumerate(raw):
        reader = _Reader(path, f"ussd_numbers[{i}]", item)
        operator = reader.string("operator")
        code = reader.string("code")
        pattern = reader.string("pattern", r"(\+?[0-9]{10,15})")
        if operator is None:
            raise ConfigError(path, f"ussd_numbers[{i}].operator", "the operator's name or MCC+MNC", "nothing")
        if code is None or not re.fullmatch(r"[0-9*#]+", code):
            raise ConfigError(path, f"ussd_numbers[{i}].code", "a USSD code like '*111*0887#'", code or "")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(path, f"ussd_numbers[{i}].pattern", "a regular expression", f"{pattern} ({exc})") from None
        reader.finish()
        out.append(UssdNumber(operator, code, pattern))
    return tuple(out)


def _uplink(path: str, raw: object) -> UplinkConfig:
    reader = _Reader(path, "uplink", raw)
    url = reader.string("url")
    allow_insecure = reader.boolean("allow_insecure", False)
    problem = "a wss://host/path URL" if url is None else url_problem(url, allow_insecure=allow_insecure)
    if problem is not None:
        raise ConfigError(path, "uplink.url", problem, redact_urls(url or ""))
    token = reader.get("token", None)
    token_file = reader.string("token_file", None)
    if (token is None) == (token_file is None):
        raise ConfigError(path, "uplink.token", "exactly one of token or token_file", "both" if token else "neither")
    if token_file is not None:
        token = read_token_file(token_file, path, "uplink.token_file")
    elif not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
        raise ConfigError(path, "uplink.token", _TOKEN_EXPECTED,
                          "other characters" if isinstance(token, str) else f"a {type(token).__name__}")
    ca_file = reader.string("ca_file", None)
    window = reader.integer("window", 256, 1, 10_000)
    backoff_max = reader.duration("backoff_max", 60.0, 1, 3600)
    health = reader.duration("health_interval", 30.0, 1, 3600)
    reader.finish()
    return UplinkConfig(url, token, allow_insecure, ca_file, window, backoff_max, health, token_file)


def read_token_file(token_file: str, path: str, key: str) -> str:
    """The token in ``token_file``, refused unless only its owner may read it (a 0644 token is any
    local user's to impersonate the supplier with), it is a regular file (a FIFO would block the
    start) of at most 4 KiB, and it holds one line fit for an HTTP header."""
    try:
        fd = os.open(token_file, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ConfigError(path, key, "a readable file holding the token", exc.strerror) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(path, key, "a regular file holding the token", "another kind of file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(path, key, f"a file only its owner can read (run: chmod 600 {token_file})",
                              f"mode 0{mode:o}")
        data = fh.read(_TOKEN_FILE_MAX + 1)
    if len(data) > _TOKEN_FILE_MAX:
        raise ConfigError(path, key, f"a token file of at most {_TOKEN_FILE_MAX} bytes", "a larger file")
    token = data.decode("utf-8", "replace").strip()
    if not token:
        raise ConfigError(path, key, "a file holding the token", "an empty file")
    if not _TOKEN_RE.fullmatch(token):
        raise ConfigError(path, key, _TOKEN_EXPECTED, "other characters")
    return token


def config_warnings(config: Config) -> list[tuple[str, str]]:
    """(key, why) for every setting that is allowed but weakens security: ``check-config`` prints
    them and ``run`` logs them at every start, so the choice is never forgotten."""
    out = []
    uplink = config.uplink
    if uplink is not None and uplink.allow_insecure:
        plain = uplink.url.startswith("ws://") and not is_loopback(urlsplit(uplink.url).hostname or "")
        out.append(("uplink.allow_insecure", "set: ws:// to a non-loopback host is allowed, and the token and every SMS "
                    + (f"go unencrypted to {redact_urls(uplink.url)}" if plain else "would go unencrypted over ws://")))
    if uplink is not None and uplink.token_file is None and uplink.token != UNREAD_TOKEN:
        try:
            mode = stat.S_IMODE(os.stat(config.path).st_mode)
        except OSError:
            mode = 0
        if mode & 0o077:
            out.append(("uplink.token", f"written in {config.path}, which others can read (mode 0{mode:o}): move it to "
                        "a token_file only the daemon's user can read"))
    host, port = config.control_listen
    if not is_loopback(host):
        out.append(("control.listen", f"{host}:{port} is reachable from the network over plain HTTP: the dashboard "
                    "password and every page travel unencrypted; prefer an SSH tunnel or a TLS reverse proxy"))
    if config.control_show_numbers:
        out.append(("control.show_numbers", "set: the dashboard and /status over TCP show full phone numbers"))
    return out


def _modems(path: str, raw: object) -> tuple[ModemConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError(path, "modems", "an array of tables ([[modems]])", raw)
    out: list[ModemConfig] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        reader = _Reader(path, f"modems[{i}]", item)
        port = reader.string("port")
        if port is None:
            raise ConfigError(path, f"modems[{i}].port", "a serial device path", "nothing")
        if port in seen:
            raise ConfigError(path, f"modems[{i}].port", f"a port not already used by modems[{seen[port]}]", port)
        seen[port] = i
        baud = reader.integer("baud", 115200, 1200, 4_000_000)
        profile = reader.string("profile", None, choices=("generic", "huawei", "simcom", "quectel", "zte", "sierra", "cinterion"))
        mode = reader.string("receive_mode", "store", choices=("store", "direct"))
        msisdn = reader.string("msisdn", None)
        if msisdn is not None and not re.fullmatch(r"\+?[0-9]{5,15}", msisdn):
            raise ConfigError(path, f"modems[{i}].msisdn", "a phone number like '+79001234567'", msisdn)
        reader.finish()
        out.append(ModemConfig(port, baud, profile, mode, msisdn))
    return tuple(out)


def _numbers(path: str, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ConfigError(path, "numbers", "a table of ICCID = \"MSISDN\"", raw)
    out = {}
    for iccid, msisdn in raw.items():
        if not re.fullmatch(r"89[0-9]{16,20}", iccid):
            raise ConfigError(path, f"numbers.{iccid}", "an ICCID key (19-22 digits starting 89)", iccid)
        if not isinstance(msisdn, str) or not re.fullmatch(r"\+?[0-9]{5,15}", msisdn):
            raise ConfigError(path, f"numbers.{iccid}", "a phone number like '+79001234567'", msisdn)
        out[iccid] = msisdn
    return out


def _leases(path: str, raw: object) -> LeaseConfig:
    reader = _Reader(path, "leases", raw)
    default = Policy()
    wait = reader.duration("wait_window", default.wait_window, 60, default.max_wait_window)
    finish_after = reader.duration("finish_after", default.finish_after, 60, default.finish_after)
    cooldown = reader.duration("reuse_cooldown", None, 3600, 3650 * 86400, allow_never=True)  # absent: never
    prepare = reader.duration("prepare_timeout", default.prepare_timeout, 10, 3600)
    tolerance = reader.duration("held_sms_tolerance", default.held_sms_tolerance, 0, 3600)
    denied_services = default.denied_services | {s.lower() for s in reader.strings("denied_services")}
    denied_categories = default.denied_categories | {s.lower() for s in reader.strings("denied_categories")}
    quarantine = reader.duration("quarantine_retention", 24 * 3600.0, 60, 30 * 86400)
    messages = reader.duration("message_retention", 7 * 24 * 3600.0, 3600, 365 * 86400)
    claim = reader.duration("claim_window", 7 * 24 * 3600.0, 86400, 365 * 86400)
    reader.finish()
    policy = Policy(wait_window=wait, max_wait_window=default.max_wait_window, min_wait_window=default.min_wait_window,
                    finish_after=finish_after, reuse_cooldown=cooldown, prepare_timeout=prepare,
                    held_sms_tolerance=tolerance,
                    denied_services=frozenset(denied_services), denied_categories=frozenset(denied_categories))
    return LeaseConfig(policy, quarantine, messages, claim)
