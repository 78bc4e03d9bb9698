"""The dashboard's access and privacy rules against the real daemon (simulated modems on ptys,
the marketplace over a real WebSocket, all on 127.0.0.1), and its I/O-free parts: the password
hash, the Host rule of a LAN listener, number masking and the bounded history."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace

import pytest

from gateway.control import rules
from gateway.dashboard import history, password
from gateway.dashboard.snapshot import mask_number, mask_text, signal_bars
from tests.conftest import run, wait_until
from tests.gateway.test_control_security import raw_http
from tests.gateway.uplink_env import Rig

SIMGW = [sys.executable, "-m", "gateway.cli"]
SECRET = "correct horse battery"
PAGES = ("/", "/static/dashboard.js", "/static/dashboard.css", "/dashboard.json", "/dashboard/charts.json",
         "/status", "/metrics", "/events")


class DashboardRig(Rig):
    """A Rig whose [control] table is set by the test (show_numbers, password_file)."""

    def __init__(self, tmp, modems: int = 3, **control) -> None:
        super().__init__(tmp, modems=modems)
        self.control = control

    def config(self, url: str, token: str | None = None):
        config = super().config(url) if token is None else super().config(url, token)
        return replace(config, **self.control)


def make_password_file(tmp_path) -> str:
    path = os.path.join(str(tmp_path), "dashboard.pass")
    result = subprocess.run([*SIMGW, "dashboard-password", "--stdin", path], input=SECRET + "\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return path


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


# ------------------------------------------------------------------------------ I/O-free parts
def test_the_password_file_holds_a_salted_scrypt_hash_not_the_password():
    first, second = password.make(SECRET), password.make(SECRET)
    assert first.salt != second.salt and first.digest != second.digest
    assert SECRET not in first.line() and first.line().startswith("scrypt$16384$8$1$")
    stored = password.parse(first.line())
    assert stored.matches(SECRET) and not stored.matches(SECRET + "!") and not stored.matches("")
    for bad in ("", SECRET, "scrypt$16384$8$1$@@$@@", "scrypt$1000$8$1$c2FsdA==$" + "A" * 44, "bcrypt$1$2$3$4$5"):
        with pytest.raises(password.PasswordFileError):
            password.parse(bad)
    with pytest.raises(ValueError):
        password.make("short")


def test_basic_auth_checks_the_password_and_remembers_only_what_passed():
    auth = password.BasicAuth(password.make(SECRET))
    assert not auth.check(None) and not auth.check("Bearer x") and not auth.check("Basic !!!")
    assert not auth.check(basic("admin", "wrong password")) and not auth.remembered(basic("admin", "wrong password"))
    assert auth.check(basic("anyone", SECRET)) and auth.remembered(basic("anyone", SECRET))
    for n in range(password.REMEMBERED + 1):  # the cap: the oldest is forgotten
        auth.check(basic(f"user{n}", SECRET))
    assert not auth.remembered(basic("anyone", SECRET)) and auth.check(basic("anyone", SECRET))


def test_a_lan_listener_answers_to_its_own_address_and_loopback_only():
    lan = "192.168.1.20"
    assert rules.tcp_refusal("GET", "192.168.1.20:8765", None, None, lan) is None
    assert rules.tcp_refusal("GET", "127.0.0.1:8765", None, None, lan) is None
    assert rules.tcp_refusal("GET", "192.168.1.20:8765", "http://192.168.1.20:8765", "same-origin", lan) is None
    assert rules.tcp_refusal("GET", "evil.example:8765", None, None, lan).status == 421
    assert rules.tcp_refusal("GET", "192.168.1.200:8765", None, None, lan).status == 421
    assert rules.tcp_refusal("GET", "192.168.1.20:8765", "http://evil.example", None, lan).status == 403
    assert rules.tcp_refusal("POST", "192.168.1.20:8765", None, None, lan).status == 405
    assert rules.tcp_refusal("GET", "192.168.1.20:8765", None, None).status == 421  # not configured: refused


def test_numbers_are_masked_to_their_last_digits_everywhere_they_may_appear():
    assert mask_number("+79161234567") == "+" + "•" * 8 + "567"
    assert mask_number("79161234567") == "•" * 8 + "567"
    assert mask_number("12") == "••" and mask_number(None) is None and mask_number("") is None
    assert mask_text("CMS ERROR from +79161234567 and 8 (916) 123-45-67") == \
        "CMS ERROR from +••••••••567 and ••••••••567"
    assert mask_text("timeout after 5 s") == "timeout after 5 s"
    assert [signal_bars(d) for d in (None, -113, -100, -90, -80, -60)] == [None, 0, 1, 2, 3, 4]


def test_history_keeps_one_hour_per_modem_and_a_capped_number_of_modems():
    h = history.History()
    for minute in range(200):  # 200 minutes, 3 samples each; the counter restarts at minute 100
        for _ in range(3):
            total = (minute % 100) * 2 + 2
            h.sample("/dev/a", minute, day=1, signal_dbm=-70 - minute % 5, sms_total=total)
    charts = h.charts(199)["/dev/a"]
    assert len(charts["signal"]) == len(charts["sms"]) == history.MINUTES
    assert charts["signal"][-1] == -74 and charts["sms"][-1] == 2 and charts["sms"][0] == 2
    assert len(h._ports["/dev/a"].points) == history.MINUTES  # the ring buffer's cap
    assert h.today("/dev/a") == 2 + 99 * 2 + 2 + 99 * 2  # every part once, across the counter's restart
    h.sample("/dev/a", 200, day=2, signal_dbm=None, sms_total=202)
    assert h.today("/dev/a") == 2 and h.charts(200)["/dev/a"]["signal"][-1] is None  # a new day counts afresh
    for n in range(history.MAX_PORTS + 5):
        h.sample(f"/dev/p{n}", 0, day=1, signal_dbm=None, sms_total=0)
    assert len(h._ports) == history.MAX_PORTS and h.dropped_ports == 6


# ------------------------------------------------------------------------------------ config
def write_config(tmp_path, control: str) -> str:
    path = os.path.join(str(tmp_path), "simgw.toml")
    with open(path, "w") as fh:
        fh.write(f'[gateway]\nstate_dir = "{tmp_path}/state"\n\n[control]\n{control}\n\n[[modems]]\nport = "/dev/ttyUSB0"\n')
    return path


def check_config(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SIMGW, "check-config", "--config", path], capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_check_config_allows_a_lan_listen_only_with_a_password_file(tmp_path):
    refused = check_config(write_config(tmp_path, 'listen = "0.0.0.0:8765"'))
    assert refused.returncode == 2 and "control.listen" in refused.stderr and "password_file" in refused.stderr
    hashed = make_password_file(tmp_path)
    assert stat.S_IMODE(os.stat(hashed).st_mode) == 0o600 and SECRET not in open(hashed).read()
    allowed = check_config(write_config(tmp_path, f'listen = "192.168.1.20:8765"\npassword_file = "{hashed}"'))
    assert allowed.returncode == 0, allowed.stderr
    assert "http://192.168.1.20:8765/" in allowed.stdout and "password required" in allowed.stdout
    assert "warning" in allowed.stderr and "control.listen" in allowed.stderr and "SSH tunnel" in allowed.stderr
    wildcard = check_config(write_config(tmp_path, f'listen = "0.0.0.0:8765"\npassword_file = "{hashed}"'))
    assert wildcard.returncode == 2 and "LAN IP address" in wildcard.stderr  # the Host rule needs the address
    with open(hashed, "w") as fh:
        fh.write(SECRET + "\n")  # the password itself, not a hash: refused
    broken = check_config(write_config(tmp_path, f'listen = "10.0.0.2:8765"\npassword_file = "{hashed}"'))
    assert broken.returncode == 2 and "control.password_file" in broken.stderr and "dashboard-password" in broken.stderr
    from gateway.config import ConfigError, load

    unreadable = write_config(tmp_path, f'listen = "10.0.0.2:8765"\npassword_file = "{tmp_path}/nowhere.pass"')
    assert load(unreadable, read_secrets=False).control_password_file == f"{tmp_path}/nowhere.pass"  # simgw status
    with pytest.raises(ConfigError, match="cannot read it"):
        load(unreadable)  # run and check-config read it
    relative = check_config(write_config(tmp_path, 'password_file = "dashboard.pass"'))
    assert relative.returncode == 2 and "absolute path" in relative.stderr


# ------------------------------------------------------------------------- the real daemon
async def fetch_all(host: str, port: int, headers: dict[str, str]) -> dict[str, tuple[int, bytes]]:
    return {path: await raw_http(host, port, "GET", path, headers=headers, timeout=15) for path in PAGES}


@pytest.mark.slow
def test_without_the_password_every_route_is_401_and_with_it_the_page_works(tmp_path):
    hashed = make_password_file(tmp_path)

    async def scenario():
        async with DashboardRig(tmp_path, modems=2, control_password_file=hashed) as rig:
            rig.gateway.control.routes.dashboard.stream_seconds = 1.0
            host, port = rig.gateway.control_address
            loopback = {"Host": f"127.0.0.1:{port}"}
            for answers in (await fetch_all(host, port, loopback),
                            await fetch_all(host, port, {**loopback, "Authorization": basic("x", "not it at all")})):
                for path, (status, body) in answers.items():
                    assert status == 401, path
                    assert b"modem" not in body and b"simgw_" not in body
            good = {**loopback, "Authorization": basic("operator", SECRET)}
            answers = await fetch_all(host, port, good)
            assert {path: status for path, (status, _) in answers.items()} == dict.fromkeys(PAGES, 200)
            assert b"<title>simgw dashboard</title>" in answers["/"][1]
            assert b"event: state" in answers["/events"][1] and b"retry: " in answers["/events"][1]
            assert (await raw_http(host, port, "GET", "/", headers={**good, "Host": "evil.example"}))[0] == 421

    run(scenario(), 90)


@pytest.mark.slow
def test_nothing_the_browser_receives_holds_a_full_number_unless_show_numbers(tmp_path):
    """Page, files, JSON, the live stream and /status over TCP: numbers masked. The same check
    with show_numbers finds the numbers, so it can fail."""

    async def leaky(show_numbers: bool) -> set[str]:
        directory = tmp_path / f"shown{int(show_numbers)}"  # short: the control socket path has 107 bytes
        directory.mkdir()
        async with DashboardRig(directory, modems=3, control_show_numbers=show_numbers) as rig:
            rig.gateway.control.routes.dashboard.stream_seconds = 1.5
            numbers = rig.numbers()
            for n, number in enumerate(numbers[:2]):
                assert (await rig.open(f"deal-{n}", number))["ok"]
            await wait_until(lambda: len(rig.gateway.core.engine.active()) == 2, 5, "two leases")
            await rig.gateway.sampler.sample()
            host, port = rig.gateway.control_address
            answers = await fetch_all(host, port, {"Host": f"localhost:{port}"})
            assert all(status == 200 for status, _ in answers.values())
            state = json.loads(answers["/dashboard.json"][1])
            assert len(state["modems"]) == 3 and {lease["id"] for lease in state["leases"]} == {"deal-0", "deal-1"}
            assert state["numbers_masked"] is not show_numbers
            everything = b"".join(body for _, body in answers.values()).decode()
            digits_only = re.sub(r"[^0-9+]", "", everything)
            return {n for n in numbers if n in everything or n.lstrip("+") in digits_only.replace("+", "")}

    assert run(leaky(False), 90) == set()
    assert len(run(leaky(True), 90)) == 3


def test_the_bank_grid_shows_each_slot_leased_idle_standby_or_failed_with_numbers_masked(tmp_path):
    from drivers.simulator.bank import SimBank
    from gateway.domain.banks import SimRow
    from gateway.store import Store
    from tests.gateway.bank_env import SCALE, BankRig, prefill_inventory, rig_config

    bank = SimBank(2, 8, time_scale=SCALE)
    config = rig_config(bank, str(tmp_path))
    prefill_inventory(bank, config)
    store = Store(config.database)
    store.open()
    with store.transaction():
        store.save_sim(SimRow("bank1", 7, "no_answer", None, None, None, None, None, "no +CPIN", None, 0.0))
    store.close()

    async def scenario():
        async with BankRig(bank, config) as rig:
            number = rig.gateway.core.banks.rows[("bank1", 3)].msisdn
            status, result = await asyncio.to_thread(request_lease, rig.gateway.control_socket, number)
            assert status == 201, result
            scheduler = rig.gateway.core.banks.schedulers["bank1"]
            await wait_until(lambda: scheduler.on_air(3), 10, "the leased SIM on air")
            host, port = rig.gateway.control_address
            # the page shows the core's published snapshot, which follows the scheduler a moment later
            for _ in range(200):
                status, body = await raw_http(host, port, "GET", "/dashboard.json",
                                              headers={"Host": f"127.0.0.1:{port}"})
                state = json.loads(body)
                if state["banks"][0]["slots"][3]["on_air"]:
                    break
                await asyncio.sleep(0.05)
            return state, number, [r.msisdn for r in rig.gateway.core.banks.rows.values() if r.msisdn]

    state, number, numbers = run(scenario(), 90)
    (grid,) = state["banks"]
    kinds = {slot["slot"]: slot["kind"] for slot in grid["slots"]}
    assert kinds[4] == "leased" and grid["slots"][3]["lease"] == "bank-lease" and grid["slots"][3]["on_air"]
    assert kinds[8] == "failed" and grid["slots"][7]["detail"] == "no_answer"
    on_air = [slot for slot in grid["slots"] if slot["on_air"]]
    assert len(on_air) == 2 and len({slot["radio"] for slot in on_air}) == 2  # one SIM on air per radio
    assert {kinds[s["slot"]] for s in on_air} == {"leased", "idle"}
    assert set(kinds.values()) == {"leased", "idle", "standby", "failed"}
    text = json.dumps(state)
    assert not any(n in text or n.lstrip("+") in text for n in numbers), "a full number in the dashboard's JSON"
    assert grid["slots"][3]["number"].endswith(number[-3:])


def request_lease(socket_path: str, number: str):
    from gateway.control.client import request

    return request(socket_path, "POST", "/leases", {"number": number, "service": "svc", "lease_id": "bank-lease"})


@pytest.mark.slow
def test_the_live_stream_ends_by_itself_and_at_most_16_run_at_once(tmp_path):
    from gateway.dashboard.web import MAX_STREAMS

    async def scenario():
        async with DashboardRig(tmp_path, modems=2) as rig:
            routes = rig.gateway.control.routes.dashboard
            routes.stream_seconds = 3.0
            host, port = rig.gateway.control_address
            headers = {"Host": f"127.0.0.1:{port}"}
            started = asyncio.get_running_loop().time()
            streams = [asyncio.create_task(raw_http(host, port, "GET", "/events", headers=headers, timeout=10))
                       for _ in range(MAX_STREAMS)]
            await wait_until(lambda: routes.streams == MAX_STREAMS, 5, "16 streams open")
            refused = await raw_http(host, port, "GET", "/events", headers=headers)
            answers = await asyncio.gather(*streams)
            took = asyncio.get_running_loop().time() - started
            after = await raw_http(host, port, "GET", "/events", headers=headers)
            return refused, answers, took, after, routes.streams

    refused, answers, took, after, still_open = run(scenario(), 60)
    assert refused[0] == 503 and b"already open" in refused[1]
    assert took < 6, f"the streams took {took:.1f} s to end by themselves"
    for status, body in answers:
        events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
        assert status == 200 and b"retry: 300\n" in body  # (chunked)
        assert sum(1 for e in events if "modems" in e and "leases" in e) >= 3  # one a second
    assert after[0] == 200 and still_open == 0


def test_both_marketplaces_are_shown_the_session_and_the_smshub_agent(tmp_path):
    from tests.gateway.smshub_env import HubRig

    async def scenario():
        async with HubRig(tmp_path, modems=2, with_market=True) as rig:
            await wait_until(lambda: rig.gateway.uplink.connected.is_set(), 10, "uplink connected")
            assert (await rig.hub.get_number("russia", "wa"))["status"] == "SUCCESS"
            await rig.gateway.sampler.sample()
            host, port = rig.gateway.control_address
            status, body = await raw_http(host, port, "GET", "/dashboard.json", headers={"Host": f"127.0.0.1:{port}"})
            return status, json.loads(body), rig.numbers()

    status, state, numbers = run(scenario(), 90)
    assert status == 200
    session, hub = state["markets"]
    assert session["kind"] == "simgw.v1" and session["connected"] is True and session["since"] is not None
    assert session["outbox_depth"] is not None and session["oldest_unacked_s"] >= 0
    assert hub["kind"] == "smshub" and hub["name"].startswith("SMSHub agent on 127.0.0.1:") and hub["answered"] >= 1
    assert not any(n.lstrip("+") in json.dumps(state) for n in numbers)  # the hub's number is masked too
