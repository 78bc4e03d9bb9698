"""The control API under attack by a local user: a web page in a browser on the Pi (cross-site
`Origin`, foreign `Host`, `text/plain`: no CORS pre-flight), hostile lease bodies, and a flood of
half-sent requests that once exhausted the daemon's file descriptors (issue 12, findings 1, 3, 8)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest
from structlog.testing import capture_logs

from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig
from gateway.control import rules
from gateway.control.client import request
from gateway.control.limits import AcceptErrorLog, HttpLimits
from gateway.control.server import ControlRoutes, ControlServer
from gateway.control.unix import ControlSocketError, client_socket_path
from gateway.uplink.protocol import OpenLease
from tests.conftest import FAST, run, wait_until
from tests.gateway.test_cli import free_port
from tests.gateway.test_daemon import write_toml
from tests.gateway.uplink_env import Rig

EVIL = {"Origin": "http://evil.example", "Content-Type": "text/plain"}


async def raw_http(host: str, port: int, method: str, path: str, *, body: bytes = b"",
                   headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request written byte for byte as a browser would send it (urllib would fix the Host).
    Status 0: the server closed the connection without an answer."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    head = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in (headers or {}).items()),
            f"Content-Length: {len(body)}", "Connection: close", "", ""]
    try:
        writer.write("\r\n".join(head).encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionError, asyncio.TimeoutError):
        answer = b""
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1."):
        return 0, answer
    head_bytes, _, payload = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), payload


async def control(gateway, method: str, path: str, body: object = None) -> tuple[int, object]:
    """A lease command the way the operator's CLI sends it: over the control socket. A ``bytes``
    body goes as it is (the CLI would never send it; a hostile local client might)."""
    if not isinstance(body, bytes):
        return await asyncio.to_thread(request, gateway.control_socket, method, path, body)
    reader, writer = await asyncio.open_unix_connection(gateway.control_socket)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    if not answer.startswith(b"HTTP/1."):
        return 0, None
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_a_web_page_can_neither_open_a_lease_nor_read_the_daemon(tmp_path):
    """Finding 1: the curl from the issue, and its /finish, /leases and /status siblings."""

    async def scenario():
        async with Rig(tmp_path, modems=2) as rig:
            host, port = rig.gateway.control_address
            number, other = rig.numbers()
            foreign = {**EVIL, "Host": f"evil.example:{port}"}
            csrf = json.dumps({"number": number, "service": "x", "lease_id": "CSRF1"}).encode()
            status, _ = await raw_http(host, port, "POST", "/leases", body=csrf, headers=foreign)
            assert status in (403, 404, 405, 421), status
            status, _ = await raw_http(host, port, "POST", "/leases", body=csrf,
                                       headers={**EVIL, "Host": f"127.0.0.1:{port}"})
            assert status in (403, 404, 405), status  # a loopback Host is no pass for a cross-site write
            assert rig.gateway.core.engine.active() == [] and rig.gateway.core.engine.get("CSRF1") is None
            for path in ("/leases", "/status", "/metrics"):
                status, payload = await raw_http(host, port, "GET", path, headers={"Host": f"evil.example:{port}"})
                assert status in (403, 421), (path, status)
                assert number.encode() not in payload and b"modems" not in payload and b"simgw_" not in payload
            # the marketplace opens a real lease on the other number: the uplink is up and forwarding
            assert (await rig.open("REAL1", other))["ok"]
            rig.farm.send_sms(0, "+79161234567", "CSRF secret 4242")
            rig.farm.send_sms(1, "+79161234567", "real code 777")
            await wait_until(lambda: len(rig.market.sms("REAL1")) == 1, 10, "the leased SMS at the marketplace")
            await wait_until(lambda: len(rig.gateway.store_messages()) == 2, 10, "both SMS stored")
            assert [m.text for m in rig.gateway.store_messages() if m.quarantined] == ["CSRF secret 4242"]
            assert all("CSRF" not in (sms["text"] or "") for sms in rig.market.sms())

    run(scenario(), 60)


def test_hostile_lease_bodies_get_a_specific_400_and_store_nothing(tmp_path):
    """Finding 8: the protocol's own field rules on the control API; no traceback, no dropped
    connection, nothing stored or forwarded."""

    async def scenario():
        async with _Daemon(tmp_path) as rig:
            number = rig.farm.info()[0].msisdn
            cases = [
                ({"number": number, "service": "x", "category": ["banking"]}, "category"),
                ({"number": number, "service": "x", "lease_id": "L" * 5000}, "lease_id"),
                ({"number": number, "service": "x", "lease_id": {"id": 1}}, "lease_id"),
                ({"number": number, "service": "s" * 65}, "service"),
                ({"number": "not a number", "service": "x"}, "number"),
                ({"number": number, "service": "x", "wait_window": -5}, "wait_window"),
                ({"number": number, "service": "x", "wait_window": True}, "wait_window"),
                ({"number": number, "service": "x", "wait_window": 5}, "60..1200"),
                ({"number": number, "service": "x", "wait_window": 1e308}, "60..1200"),
                (b"[" * 30000 + b"]" * 30000, "JSON"),
                (b"\xff\xfe not json", "JSON"),
                ([number, "x"], "object"),
            ]
            for body, word in cases:
                status, answer = await control(rig.gateway, "POST", "/leases", body)
                assert status == 400, (str(body)[:60], status, answer)
                assert word in answer["error"], (word, answer)
            status, answer = await control(rig.gateway, "POST", "/leases/" + "L" * 5000 + "/finish")
            assert status in (400, 414) and status != 0, status
            assert rig.gateway.core.engine.active() == []
            assert rig.gateway.read(lambda store: store.leases(active_only=False)) == []
            status, answer = await control(rig.gateway, "POST", "/leases", {"number": number, "service": "x",
                                                                           "lease_id": "OK-1"})
            assert status == 201, answer  # the daemon still serves a well-formed lease

    run(scenario(), 60)


class _Daemon:
    """One simulated modem and the real Gateway (no uplink: nothing here may reach it anyway)."""

    def __init__(self, tmp_path, faults=None) -> None:
        self.farm = ModemFarm(1, profile="generic", periodic_interval=None)
        self.gateway = Gateway(Config(path="<test>", gateway_id="t", state_dir=str(tmp_path / "state"),
                                      modems=(ModemConfig(self.farm.modems[0].link_path),), leases=LeaseConfig(),
                                      control_listen=("127.0.0.1", 0)), modem_options=FAST, faults=faults)

    async def __aenter__(self) -> "_Daemon":
        await self.farm.start()
        await self.gateway.start()
        await wait_until(lambda: len(self.gateway.core.engine._online) == 1, 15, "the number online")
        return self

    async def __aexit__(self, *exc) -> None:
        await self.gateway.stop()
        await self.farm.stop()


# ------------------------------------------------------------------- a hostile user on the Pi
def _listening_tcp_ports(pid: int) -> set[int]:
    """Every TCP port process ``pid`` listens on, from its socket inodes and /proc/net/tcp{,6}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _open_idle(port: int, count: int, within: float = 20.0) -> tuple[list[socket.socket], int]:
    """``count`` connections that each send half a request head and then say nothing (bounded:
    each connect waits at most 0.5 s, all of them ``within`` seconds). Returns the sockets and
    how many the server did not take."""
    held, refused = [], 0
    deadline = time.monotonic() + within
    for _ in range(count):
        if time.monotonic() > deadline:
            refused += 1
            continue
        sock = socket.socket()
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            refused += 1
        held.append(sock)
    return held, refused


def _limit_children_to(soft: int, hard: int):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _browser_attack(tcp_port: int, number: str) -> None:
    """What a page in a browser can send to a loopback port (a simple request needs no CORS
    pre-flight: text/plain POST; a rebound DNS name in Host): every answer a refusal, no data."""
    body = json.dumps({"number": number, "service": "x", "lease_id": "EVIL"}).encode()
    for host in (f"evil.example:{tcp_port}", f"127.0.0.1:{tcp_port}"):
        for method, path in (("POST", "/leases"), ("POST", "/leases/EVIL/finish"), ("PUT", "/leases"),
                             ("DELETE", "/leases/EVIL")):
            status, _ = await raw_http("127.0.0.1", tcp_port, method, path, body=body, headers={**EVIL, "Host": host})
            assert 400 <= status < 500, (tcp_port, method, path, host, status)
        for path in ("/status", "/metrics", "/leases"):
            status, payload = await raw_http("127.0.0.1", tcp_port, "GET", path, headers={**EVIL, "Host": host})
            assert 400 <= status < 500, (tcp_port, path, host, status)
            assert number.encode() not in payload and b"modem" not in payload


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_hostile_local_user(tmp_path):
    """Must-show 3, and finding 3: a browser-like client against every TCP port the daemon
    listens on opens nothing and reads nothing; 1,500 idle connections leave /status answering
    within a second and an unplugged modem recovering. The daemon runs with the 1,024-descriptor
    limit of a default unit (soft = hard, so it cannot raise it: the connection cap is what holds)."""
    idle_connections = 1500
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < idle_connections + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {idle_connections} connections this test opens")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, idle_connections + 200), hard))

    async def scenario():
        farm = ModemFarm(2, profile="generic", periodic_interval=None, directory=str(tmp_path / "ports"))
        await farm.start()
        conf, port = str(tmp_path / "simgw.toml"), free_port()
        write_toml(farm, str(tmp_path / "state"), port, conf)
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", conf, "run"],
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "wb"),
                                preexec_fn=_limit_children_to(1024, 1024))
        held: list[socket.socket] = []

        async def wait_state(i: int, state: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while (seen := await _quiet(_modem_state(port, i))) != state:
                assert time.monotonic() < deadline, f"modem {i} never {state}: {seen}"
                await asyncio.sleep(0.1)

        try:
            await wait_state(0, "ok", 20)
            await wait_state(1, "ok", 10)
            ports = _listening_tcp_ports(proc.pid)
            assert port in ports, ports
            for tcp_port in sorted(ports):
                await _browser_attack(tcp_port, farm.info()[0].msisdn)
            assert _leases_in(tmp_path) == []

            held, refused = await asyncio.to_thread(_open_idle, port, idle_connections)
            daemon_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            started = time.monotonic()
            status, _ = await raw_http("127.0.0.1", port, "GET", "/status", headers={"Host": "localhost"}, timeout=5)
            answered_in = time.monotonic() - started
            print(f"\n{idle_connections} idle connections ({refused} not taken at connect; daemon holds "
                  f"{daemon_fds} descriptors): /status answered {status} in {answered_in * 1000:.0f} ms")
            assert status == 200 and answered_in < 1.0, (status, answered_in)
            farm.inject_fault(0, "unplug")
            await wait_state(0, "gone", 15)
            farm.inject_fault(0, "replug")
            await wait_state(0, "ok", 20)
            assert proc.poll() is None
        finally:
            for sock in held:
                sock.close()
            _stop(proc)
            await farm.stop()
        log_size = os.path.getsize(tmp_path / "daemon.log")
        assert log_size < 2_000_000, f"the daemon wrote {log_size} bytes of log"

    run(scenario(), 150)


async def _modem_state(port: int, i: int) -> str | None:
    code, payload = await raw_http("127.0.0.1", port, "GET", "/status", headers={"Host": f"127.0.0.1:{port}"},
                                   timeout=2)
    return json.loads(payload)["modems"][i]["state"] if code == 200 else None


async def _quiet(coro):
    try:
        return await coro
    except (OSError, asyncio.TimeoutError, ValueError, KeyError):
        return None


def _leases_in(tmp_path) -> list:
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "simgw.db") as conn:
        return conn.execute("SELECT id FROM leases").fetchall()


# --------------------------------------------------------------------- the rules, without I/O
LOOPBACK = ["localhost", "localhost:8765", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:8765", "127.1.2.3:80", "[::1]",
            "[::1]:8765"]
FOREIGN = ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil.example:80", "0.0.0.0:8765",
           "192.168.1.20", "[::2]:80", "::1", "[::1]x", "localhost:abc", "127.0.0.1:1:2", ""]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts_are_recognised(host):
    assert rules.is_loopback_host(host)


@pytest.mark.parametrize("host", FOREIGN)
def test_foreign_hosts_are_not(host):
    assert not rules.is_loopback_host(host)


@pytest.mark.parametrize("method,host,origin,site,status", [
    ("GET", "127.0.0.1:8765", None, None, None),
    ("HEAD", "localhost:8765", None, None, None),
    ("GET", "127.0.0.1:8765", "http://127.0.0.1:8765", "same-origin", None),
    ("GET", None, None, None, 421),
    ("GET", "evil.example:8765", None, None, 421),
    ("GET", "127.0.0.1:8765", "http://evil.example", None, 403),
    ("GET", "127.0.0.1:8765", "http://localhost:3000", None, 403),  # another local site is another origin
    ("GET", "127.0.0.1:8765", "null", None, 403),  # sandboxed frames, file:// pages
    ("GET", "127.0.0.1:8765", None, "cross-site", 403),
    ("POST", "127.0.0.1:8765", None, None, 405),
    ("OPTIONS", "127.0.0.1:8765", None, None, 405),
])
def test_tcp_listener_rules(method, host, origin, site, status):
    refusal = rules.tcp_refusal(method, host, origin, site)
    assert (refusal.status if refusal else None) == status


def test_a_good_body_becomes_the_lease_the_marketplace_would_ask_for():
    lease = rules.lease_open(b'{"number": "+79000000001", "service": "telegram", "wait_window": 300}', "GEN1")
    assert isinstance(lease, OpenLease)
    assert (lease.lease_id, lease.number, lease.service, lease.wait_window) == ("GEN1", "+79000000001", "telegram", 300)
    refused = rules.lease_open(b'{"number": "+79000000001", "service": "x", "wait": 5}', "GEN2")
    assert isinstance(refused, rules.Refusal) and "unknown field 'wait'" in refused.message
    escaped = rules.lease_open(b'{"number": "+79000000001", "service": "x", "lease_id": "\\u001b]0;pwned\\u0007"}', "G")
    assert isinstance(escaped, rules.Refusal) and "control characters" in escaped.message
    assert rules.lease_id("L" * 129) is not None and rules.lease_id("L-1") is None


# ------------------------------------------------------------ the socket: where, mode, owners
def _bare_config(state_dir, **extra) -> Config:
    return Config(path="<test>", gateway_id="sock", state_dir=str(state_dir), leases=LeaseConfig(),
                  control_listen=("127.0.0.1", 0), **extra)


def test_socket_mode_placement_and_no_collision(tmp_path, monkeypatch):
    async def scenario():
        monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
        first, second = Gateway(_bare_config(tmp_path / "a")), Gateway(_bare_config(tmp_path / "b"))
        await first.start()
        await second.start()  # its own state directory: its own socket
        try:
            assert first.control_socket == str(tmp_path / "a" / "control.sock")
            info = os.stat(first.control_socket)
            assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
            assert (await asyncio.to_thread(request, second.control_socket, "GET", "/status"))[1]["gateway"] == "sock"
            status, metrics = await asyncio.to_thread(request, second.control_socket, "GET", "/metrics")
            assert status == 200 and "# TYPE simgw_store_commits_total counter\nsimgw_store_commits_total " in metrics
            assert "# TYPE simgw_leases_active gauge\nsimgw_leases_active 0.0" in metrics
            same = Gateway(_bare_config(tmp_path / "a"))
            with pytest.raises(ControlSocketError, match="another simgw daemon already serves"):
                await same.start()
            await same.stop()
        finally:
            await first.stop()
            await second.stop()
        assert not os.path.exists(first.control_socket)  # removed on a clean stop

    run(scenario(), 30)


def test_socket_under_runtime_directory_is_found_by_the_cli_through_the_state_dir(tmp_path, monkeypatch):
    async def scenario():
        runtime = tmp_path / "run"
        runtime.mkdir()
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
        gateway = Gateway(_bare_config(tmp_path / "state"))
        await gateway.start()
        try:
            assert gateway.control_socket == str(runtime / "control.sock")
            monkeypatch.delenv("RUNTIME_DIRECTORY")  # an operator's shell
            found = client_socket_path(None, str(tmp_path / "state"))
            assert found == str(tmp_path / "state" / "control.sock") and os.path.islink(found)
            status, _ = await asyncio.to_thread(request, found, "GET", "/leases")
            assert status == 200
        finally:
            await gateway.stop()

    run(scenario(), 30)


def test_a_dead_socket_is_replaced_and_a_file_is_not_touched(tmp_path, monkeypatch):
    async def scenario():
        monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
        chosen = str(tmp_path / "ctl.sock")
        dead = socket.socket(socket.AF_UNIX)
        dead.bind(chosen)  # a daemon that died without removing its socket
        dead.close()
        gateway = Gateway(_bare_config(tmp_path / "state", control_socket=chosen))
        await gateway.start()
        try:
            assert (await asyncio.to_thread(request, chosen, "GET", "/leases")) == (200, [])
        finally:
            await gateway.stop()
        (tmp_path / "not-a-socket").write_text("keep me")
        other = Gateway(_bare_config(tmp_path / "state", control_socket=str(tmp_path / "not-a-socket")))
        with pytest.raises(ControlSocketError, match="is not a socket"):
            await other.start()
        await other.stop()
        assert (tmp_path / "not-a-socket").read_text() == "keep me"

    run(scenario(), 30)


# ------------------------------------------------------------------------------ the limits
@pytest.mark.slow
def test_idle_connections_time_out_and_at_the_cap_the_oldest_idle_one_makes_room(tmp_path, monkeypatch):
    async def scenario():
        monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
        gateway = Gateway(_bare_config(tmp_path / "state"))
        await gateway.start()
        limits = HttpLimits(max_connections=4, head_timeout=0.5, request_timeout=0.5)
        server = ControlServer(ControlRoutes(gateway, mono=time.monotonic, wall=time.time), listen=("127.0.0.1", 0),
                               socket_path=str(tmp_path / "small.sock"), limits=limits)
        await server.start()
        port = server.address[1]
        idle = []
        try:
            for _ in range(4):
                idle.append(await asyncio.open_connection("127.0.0.1", port))
                idle[-1][1].write(b"GET /status HTTP/1.1\r\n")
            await asyncio.sleep(0.05)
            status, _ = await raw_http("127.0.0.1", port, "GET", "/status", headers={"Host": "localhost"})
            assert status == 200 and server.caps["tcp"].evicted == 1
            assert await raw_http("127.0.0.1", port, "HEAD", "/metrics", headers={"Host": "[::1]"}) == (200, b"")
            for origin, answer in ((b"http://localhost", b"http/1.1 200"), (b"http://localhost:3000", b"http/1.1 403")):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)  # no CORS headers, ever
                writer.write(b"GET /status HTTP/1.1\r\nHost: localhost\r\nOrigin: %s\r\nConnection: close\r\n\r\n"
                             % origin)
                head = (await asyncio.wait_for(reader.read(), 2)).partition(b"\r\n\r\n")[0].lower()
                assert head.startswith(answer) and b"access-control-" not in head, head
                writer.close()
            assert await asyncio.wait_for(idle[0][0].read(), 1) == b""  # the oldest idle one was closed
            started = time.monotonic()
            assert await asyncio.wait_for(idle[3][0].read(), 2) == b""  # the head never came: closed
            assert time.monotonic() - started < 0.6 and server.caps["tcp"].timed_out >= 3
            # a kept-alive connection is idle again once answered: timed and evictable like a new one
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert (await asyncio.wait_for(reader.readline(), 2)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.05)
            assert not server.caps["tcp"].busy and len(server.caps["tcp"].waiting) == 1
            assert await asyncio.wait_for(reader.read(), 2)  # the rest of the answer, then closed at 0.5 s
            writer.close()
            # a body that never arrives: answered 408 when the request's time is up
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "small.sock"))
            writer.write(b"POST /leases HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"num")
            answer = await asyncio.wait_for(reader.readline(), 3)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
            assert await asyncio.wait_for(reader.read(), 3)  # the rest, then closed within lingering_time
            writer.close()
            # and a body over 64 KiB: 413, nothing read past the limit
            big = b'{"number": "+79000000001", "service": "' + b"x" * 70_000 + b'"}'
            reader, writer = await asyncio.open_unix_connection(str(tmp_path / "small.sock"))
            writer.write(b"POST /leases HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(big) + big)
            answer = await asyncio.wait_for(reader.readline(), 3)
            assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
            writer.close()
        finally:
            for _, writer in idle:
                writer.close()
            await server.stop()
            await gateway.stop()

    run(scenario(), 30)


def test_accept_failures_are_logged_once_a_minute_with_a_count():
    now = [0.0]
    passed_on = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _, context: passed_on.append(context["message"]))
        handler = AcceptErrorLog(every=60.0, clock=lambda: now[0])
        handler.install(loop)
        context = {"message": "socket.accept() out of system resource", "exception": OSError(24, "Too many open files")}
        with capture_logs() as logged:
            for i in range(1000):
                now[0] = i * 0.01  # 1,000 failures in 10 s
                loop.call_exception_handler(context)
            now[0] = 61.0
            loop.call_exception_handler(context)
            loop.call_exception_handler({"message": "something else"})
        failures = [entry for entry in logged if entry["event"] == "http.accept_failed"]
        assert [entry["failures"] for entry in failures] == [1, 1001]
        assert passed_on == ["something else"]
        handler.uninstall()
    finally:
        loop.close()


def test_the_daemon_raises_its_soft_open_files_limit_to_the_hard_one():
    code = "from gateway.control.limits import raise_open_files_limit as r; print(*r())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                            preexec_fn=_limit_children_to(1024, 4096))
    assert result.stdout.splitlines()[-1].split() == ["1024", "4096"], result  # (the log line comes first)


def test_the_cli_says_where_it_looked_when_no_daemon_answers(tmp_path):
    conf = tmp_path / "simgw.toml"
    conf.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n')
    result = subprocess.run([sys.executable, "-m", "gateway.cli", "--config", str(conf), "lease", "finish", "X1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"simgw: no control socket at {tmp_path / 'state' / 'control.sock'}; "
                                     f"is `simgw run` running with this config?")


def test_a_taken_status_port_stops_the_daemon_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = tmp_path / "simgw.toml"
        conf.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n[control]\nlisten = "127.0.0.1:{port}"\n')
        result = subprocess.run([sys.executable, "-m", "gateway.cli", "--log-level", "warning", "--config", str(conf),
                                 "run"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"simgw: cannot listen on 127.0.0.1:{port}")
    assert not os.path.exists(tmp_path / "state" / "control.sock")  # the socket it had made is gone


def test_a_full_disk_answers_503_and_the_retry_succeeds(tmp_path):
    """A commit that fails (SQLite's own 'database or disk is full', injected) is a 503 with
    Retry-After, not a 500 and a traceback; once the disk has room the same request works."""
    from gateway.runtime.faults import FaultFiles

    async def scenario():
        faults = tmp_path / "faults"
        faults.mkdir()
        async with _Daemon(tmp_path, faults=FaultFiles(str(faults), refresh=0)) as rig:
            body = {"number": rig.farm.info()[0].msisdn, "service": "x", "lease_id": "DISK1"}
            (faults / "disk_full").touch()
            status, answer = await control(rig.gateway, "POST", "/leases", body)
            assert status == 503 and "disk is full" in answer["error"] and "retry" in answer["error"], answer
            (faults / "disk_full").unlink()
            status, answer = await control(rig.gateway, "POST", "/leases", body)
            assert status == 201, answer

    run(scenario(), 60)
