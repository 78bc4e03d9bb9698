"""Every quirk in the catalogue (drivers/simulator/quirks.toml), played by a simulated modem over a
real pty against the real driver: each SMS arrives exactly once, the identity is right, and the
driver sends no reset the quirk did not call for. The sources of each quirk are cited next to it
in the catalogue; ``test_catalogue_is_well_formed`` keeps the two in step.

Also here: the simulator plays each mechanism as the catalogue says (I/O-free, fake clock), and
``simgw scan`` (drivers.probe) reads the right identity from every catalogue modem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from drivers.modem import Modem, ModemState
from drivers.profiles import BY_NAME
from drivers.simulator.catalogue import QuirkEntry, load_catalogue
from drivers.simulator.engine import SimModem
from drivers.simulator.farm import ModemFarm, sim_identity
from drivers.simulator.profiles import SIM_PROFILES
from drivers.simulator.quirks import QuirkError, mechanisms
from drivers.sms.encode import DeliverSpec, encode_deliver
from tests.conftest import FAST, Harness, run, wait_until

CATALOGUE = load_catalogue()
KEYS = CATALOGUE.keys()
SENDER = "+79161230042"


# ------------------------------------------------------------------------------- the catalogue
def test_catalogue_is_well_formed():
    assert len(CATALOGUE) >= 30, f"only {len(CATALOGUE)} entries"
    independent = CATALOGUE.origins() - {"3GPP"}
    assert len(independent) >= 4, f"sources from only {sorted(independent)}"
    for entry in CATALOGUE:
        assert entry.sources and all(s.ref for s in entry.sources), entry.key
        assert entry.sim, entry.key
        assert entry.does and entry.family, entry.key
        assert entry.profile in SIM_PROFILES, entry.key
        assert entry.expect_profile in BY_NAME, f"{entry.key}: no driver profile {entry.expect_profile!r}"
        assert entry.test == f"tests/drivers/test_quirks.py::test_quirk[{entry.key}]", entry.key
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", entry.key), entry.key
    assert KEYS == [e.key for e in CATALOGUE]  # test_quirk below is parametrized over exactly these


def test_clashing_quirks_are_refused_with_both_names():
    with pytest.raises(QuirkError, match="qualcomm-radio-off-cfun0.*zte-offline-until-zoprt|zte-offline.*qualcomm"):
        CATALOGUE.player(["qualcomm-radio-off-cfun0", "zte-offline-until-zoprt"])
    with pytest.raises(QuirkError, match="no quirk 'no-such-quirk'"):
        CATALOGUE.player(["no-such-quirk"])
    assert not CATALOGUE.compatible(["zte-offline-until-zoprt", "zte-cfun-query-answers-test-form"])
    assert CATALOGUE.compatible(["huawei-rssi-chatter", "huawei-boot-heartbeat", "huawei-sms-index-from-0"])


# ------------------------------------------------------------ the simulator plays each mechanism
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _engine(profile: str, keys: list[str], clock: FakeClock) -> SimModem:
    engine = SimModem(SIM_PROFILES[profile], sim_identity(7), imei="356938035643809")
    engine.quirks = CATALOGUE.player(keys, clock)
    engine.power_on()
    return engine


def _pdu(text: str = "hello") -> str:
    return encode_deliver(DeliverSpec(sender=SENDER, text=text, timestamp=datetime(2026, 11, 26, tzinfo=timezone.utc)))[0]


def _ask(engine: SimModem, command: str) -> bytes:
    engine.receive_data(command.encode() + b"\r")
    return engine.data_to_send()


def test_sim_plays_an_answer_without_final_result():
    engine = _engine("wavecom", ["wavecom-cpin-no-ok"], FakeClock())
    assert _ask(engine, "ATE0") == b"ATE0\r\r\nOK\r\n"
    assert _ask(engine, "AT+CPIN?") == b"\r\n+CPIN: READY\r\n"


def test_sim_injects_urcs_between_command_and_answer():
    engine = _engine("huawei", ["huawei-hwnat-mode-mid-answer"], FakeClock())
    _ask(engine, "ATE0")
    assert _ask(engine, "AT+CGMI") == b"\r\n^MODE:5,4\r\n\r\n^HWNAT:06\r\n\r\nhuawei\r\n\r\nOK\r\n"


def test_sim_busy_gate_opens_after_its_seconds():
    clock = FakeClock()
    engine = _engine("qualcomm", ["qualcomm-sim-busy-at-boot"], clock)
    _ask(engine, "ATE0")
    _ask(engine, "AT+CMEE=2")
    assert _ask(engine, "AT+CPIN?") == b"\r\n+CME ERROR: SIM busy\r\n"
    _ask(engine, "AT+CMEE=1")
    assert _ask(engine, "AT+CSCA?") == b"\r\n+CME ERROR: 14\r\n"
    assert _ask(engine, "AT+CGMI") == b"\r\nQUALCOMM INCORPORATED\r\n\r\nOK\r\n"  # not a SIM command
    clock.now += 4.1
    assert _ask(engine, "AT+CPIN?") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"


def test_sim_radio_off_holds_sms_until_cfun1():
    engine = _engine("quectel", ["quectel-cfun0-sim-failure"], FakeClock())
    _ask(engine, "ATE0")
    _ask(engine, "AT+CMEE=1")
    assert _ask(engine, "AT+CFUN?") == b"\r\n+CFUN: 0\r\n\r\nOK\r\n"
    assert _ask(engine, "AT+CPIN?") == b"\r\n+CME ERROR: 13\r\n"
    assert _ask(engine, "AT+CREG?") == b"\r\n+CREG: 0,0\r\n\r\nOK\r\n"
    assert engine.deliver(_pdu()) is False
    out = _ask(engine, "AT+CFUN=1")
    assert out.startswith(b"\r\nOK\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n")
    assert len(engine.storage) == 1 and not engine.network_queue


def test_sim_sms_stack_refuses_until_ready_then_announces():
    clock = FakeClock()
    engine = _engine("sim7600", ["sim7600-bare-sms-done"], clock)
    _ask(engine, "ATE0")
    assert _ask(engine, "AT+CMGF=0") == b"\r\nERROR\r\n"
    engine.quirk_tick()
    assert engine.data_to_send() == b""
    assert _ask(engine, "AT+CGMM") == b"\r\nSMS DONE\r\n\r\nPB DONE\r\n\r\nSIMCOM_SIM7600E-H\r\n\r\nOK\r\n"
    assert _ask(engine, "AT+CMGF=0") == b"\r\nOK\r\n"
    engine = _engine("quectel", ["quectel-qind-sms-done"], clock)
    _ask(engine, "ATE0")
    assert _ask(engine, "AT+CMGF=0") == b"\r\nERROR\r\n"
    clock.now += 3.0
    engine.quirk_tick()
    assert engine.data_to_send() == b"\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n\r\n+QIND: PB DONE\r\n"
    assert _ask(engine, "AT+CMGF=0") == b"\r\nOK\r\n"


def test_sim_busy_after_trigger_and_verbose_cms_and_index_zero():
    engine = _engine("wavecom", ["wavecom-cfun4-then-busy-515"], FakeClock())
    _ask(engine, "ATE0")
    _ask(engine, "AT+CMEE=1")
    assert _ask(engine, "AT+CFUN=1") == b"\r\nOK\r\n"
    assert _ask(engine, "AT") == b"\r\n+CME ERROR: 515\r\n"
    assert _ask(engine, "AT") == b"\r\n+CME ERROR: 515\r\n"
    assert _ask(engine, "AT") == b"\r\nOK\r\n"
    engine = _engine("simcom", ["cmee2-verbose-cms-errors"], FakeClock())
    _ask(engine, "ATE0")
    _ask(engine, "AT+CMEE=2")
    assert _ask(engine, "AT+CMGR=9") == b"\r\n+CMS ERROR: invalid memory index\r\n"
    engine = _engine("huawei", ["huawei-sms-index-from-0"], FakeClock())
    engine.settings.cnmi = (2, 1, 0, 2, 0)
    engine.deliver(_pdu())
    assert engine.data_to_send() == b'\r\n+CMTI: "SM",0\r\n'


@pytest.mark.parametrize("key", KEYS)
def test_sim_plays_every_entry_without_error(key: str):
    """Each entry's mechanisms build and answer the driver's whole command set without raising."""
    entry = CATALOGUE.get(key)
    clock = FakeClock()
    engine = _engine(entry.profile, [key], clock)
    commands = ["AT", "ATE0", "AT+CMEE=2", "AT+CGMI", "AT+CGMM", "AT+CGMR", "AT+CGSN", "AT+CFUN?", "AT+CPIN?",
                "AT+CIMI", "AT+CCID", "AT+CNUM", "AT+CMGF=0", 'AT+CPMS="SM","SM","SM"', "AT+CNMI=2,1,0,2,0",
                "AT+CSQ", "AT+CREG?", "AT+COPS?", "AT+CMGL=4", "AT+CMGR=1", "AT+CMGD=1", "AT+CFUN=1"]
    for command in commands:
        engine.receive_data(command.encode() + b"\r")
        clock.now += 1.0
        engine.quirk_tick()
    assert engine.data_to_send()


# -------------------------------------------------------- the driver against every catalogue entry
@contextlib.asynccontextmanager
async def driven(h: Harness):
    """Start the farm and the real driver; unlike Harness, do not insist the driver gets ready."""
    await h.farm.start()
    h.modems = [Modem(m.link_path, h.sink, options=h.options) for m in h.farm.modems]
    h._tasks = [asyncio.create_task(m.run(), name=f"test-driver:{m.path}") for m in h.modems]
    try:
        yield h
    finally:
        await h.__aexit__(None, None, None)


async def wait_for(predicate, timeout: float, describe) -> None:
    """Like conftest.wait_until, with the failure text built when it fails (the state then, not before)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {describe()}")
        await asyncio.sleep(0.02)


def _health(modem: Modem) -> str:
    h = modem.health
    return f"state={h.state.value} last_error={h.last_error!r} sim={h.sim_state} cnmi={h.cnmi} profile={h.profile}"


async def play(entry: QuirkEntry) -> None:
    # The safety-net sweep (every 2 s in FAST) would hide a lost +CNMI: here SMS must be announced.
    h = Harness(1, profile=entry.profile, quirks=[entry.key], periodic_interval=None,
                options=replace(FAST, sweep_interval=60.0))
    engine = h.farm.modems[0].engine
    stored_text = f"stored before the driver opened the port ({entry.key})"
    engine.fill_storage(h.farm.pdus_for(SENDER, stored_text))
    async with driven(h):
        modem = h.modems[0]
        await wait_for(lambda: modem.ready.is_set(), 20, lambda: f"{entry.key}: driver ready ({_health(modem)})")
        texts = [f"announced one ({entry.key})", f"announced two, in two parts: {'x' * 170} ({entry.key})"]
        for text in texts:
            h.farm.send_sms(0, SENDER, text)
        h.farm.stale_announcement(0)
        await h.expect([(0, t) for t in [stored_text, *texts]], timeout=20)
        refused = await modem.command("AT+WIND?", check=False)  # a vendor command this firmware lacks
        assert not refused.result.ok
        h.farm.inject_fault(0, "reboot", seconds=1.0)  # a power blip: the quirks play from boot again
        after = f"after the modem restarted by itself ({entry.key})"
        h.farm.send_sms(0, SENDER, after)
        await h.expect([(0, after)], timeout=30)
        played = engine.quirks.fired if engine.quirks is not None else {}
        await wait_for(lambda: all(played.get(m) for m in mechanisms(entry.sim)), 10,
                       lambda: f"{entry.key}: every mechanism to play, idle: "
                               f"{sorted(m for m in mechanisms(entry.sim) if not played.get(m))} (played: {dict(played)})")
        last = f"after every mechanism of the quirk played ({entry.key})"
        h.farm.send_sms(0, SENDER, last)
        await h.expect([(0, last)], timeout=20)
        await wait_until(lambda: not engine.storage and not engine.me_storage and not engine.network_queue, 15,
                         f"{entry.key}: SIM storage empty")
        await wait_for(lambda: modem.health.state is ModemState.OK, 15, lambda: f"{entry.key}: state ok ({_health(modem)})")
        for text in [stored_text, *texts, after, last]:
            assert h.count(0, text) == 1, f"{entry.key}: {text[:40]!r} delivered {h.count(0, text)} times"
        assert not h.bad_parts
        assert modem.profile.name == entry.expect_profile, f"{entry.key}: chose profile {modem.profile.name}"
        sim = engine.sim
        assert sim is not None
        assert (modem.identity.imei, modem.identity.imsi, modem.identity.iccid) == (engine.imei, sim.imsi, sim.iccid)
        assert engine.reset_attempts == entry.expect_resets, \
            f"{entry.key}: {engine.reset_attempts} reset command(s) sent ({engine.resets} the modem knew)"


@pytest.mark.slow
@pytest.mark.parametrize("key", KEYS)
def test_quirk(key: str):
    run(play(CATALOGUE.get(key)), 120)


# ---------------------------------------------------------------- simgw scan reads every identity
def _expected_vendor(entry: QuirkEntry) -> str:
    return SIM_PROFILES[entry.profile].manufacturer


@pytest.mark.slow
def test_scan_reads_every_catalogue_modem():
    """``simgw scan --json``, as a user runs it, against one modem per catalogue entry, all at once,
    right after the modems power up (SIM still busy, radio still off where the quirk says so)."""
    from tests.gateway.test_cli import SIMGW

    async def go() -> list[str]:
        farm = ModemFarm(0, plan=[(e.profile, [e.key]) for e in CATALOGUE], periodic_interval=None)
        await farm.start()
        try:
            ports = [arg for m in farm.modems for arg in ("--ports", m.link_path)]
            proc = await asyncio.create_subprocess_exec(*SIMGW, "scan", "--json", "--listen", "0.2", *ports,
                                                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 90)
        finally:
            await farm.stop()
        assert proc.returncode == 0, err.decode()[-2000:]
        reports = {r["port"]: r for r in map(json.loads, out.decode().splitlines())}
        wrong = []
        for entry, modem in zip(CATALOGUE, farm.modems):
            report, sim = reports[modem.link_path], modem.engine.sim
            got = (report["vendor"], report["imei"], report["imsi"], report["iccid"])
            want = (_expected_vendor(entry), modem.engine.imei, sim.imsi, sim.iccid)
            if got != want:
                wrong.append(f"{entry.key}: got {got}, want {want}")
        return wrong

    wrong = run(go(), 120)
    assert not wrong, f"{len(wrong)} of {len(CATALOGUE)} wrong:\n" + "\n".join(wrong)


# ------------------------------------------------------- a product feature: simgw simulate --quirk
@pytest.mark.slow
def test_simulate_cli_plays_quirks_and_the_control_api_changes_them():
    import serial

    from tests.gateway.test_cli import SIMGW, free_port, http, read_json_line, stop

    directory = tempfile.mkdtemp(prefix="simgw-quirk-cli-")
    port = free_port()
    bad = subprocess.run([*SIMGW, "simulate", "--quirk", "no-such-quirk"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "no quirk 'no-such-quirk'" in bad.stderr
    listed = subprocess.run([*SIMGW, "simulate", "--list-quirks"], capture_output=True, text=True, timeout=30)
    assert [json.loads(line)["key"] for line in listed.stdout.splitlines()] == KEYS
    sim = subprocess.Popen([*SIMGW, "simulate", "--modems", "1", "--profile", "wavecom", "--quirk", "wavecom-cpin-no-ok",
                            "--quirk", "wavecom-cgmr-error", "--control", f"127.0.0.1:{port}", "--dir", directory],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready = read_json_line(sim, 20)
        assert ready["modems"][0]["quirks"] == ["wavecom-cpin-no-ok", "wavecom-cgmr-error"]
        with serial.Serial(ready["modems"][0]["port"], timeout=0.5) as link:
            link.write(b"ATE0\rAT+CPIN?\r")
            time.sleep(0.3)
            assert link.read(200) == b"ATE0\r\r\nOK\r\n\r\n+CPIN: READY\r\n"  # and no OK, as a Wavecom
        status, catalogue = http("GET", f"http://127.0.0.1:{port}/quirks")
        assert status == 200 and [q["key"] for q in catalogue] == KEYS
        status, body = http("POST", f"http://127.0.0.1:{port}/modems/0/quirks",
                            {"keys": ["qualcomm-radio-off-cfun0", "zte-offline-until-zoprt"]})
        assert status == 400 and "both set" in body["error"]
        status, _ = http("POST", f"http://127.0.0.1:{port}/modems/0/quirks", {"keys": ["wavecom-identity-leading-space"]})
        assert status == 202
        status, modem = http("GET", f"http://127.0.0.1:{port}/modems/0")
        assert modem["quirks"] == ["wavecom-identity-leading-space"]
        time.sleep(1.5)  # it restarts to play the new set from boot
        with serial.Serial(ready["modems"][0]["port"], timeout=0.5) as link:
            link.reset_input_buffer()
            link.write(b"ATE0\rAT+CGMI\r")
            time.sleep(0.3)
            assert link.read(200).endswith(b"\r\n WAVECOM MODEM\r\n\r\nOK\r\n")
    finally:
        assert stop(sim) == 0
        shutil.rmtree(directory, ignore_errors=True)


def test_readme_modems_section_names_every_catalogue_entry():
    import pathlib

    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Modems", 1)[1].split("\n## ", 1)[0]
    missing = [key for key in KEYS if f"`{key}`" not in section]
    assert not missing, f"README 'Modems' does not name {missing}"
    named = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`", section))
    assert named <= set(KEYS), f"README names quirks the catalogue lacks: {sorted(named - set(KEYS))}"


def test_a_reset_to_defaults_answers_ok_and_forgets_the_settings():
    """ATZ and AT&F restore the factory settings (V.250 6.1.1, 6.1.2): the engine answers OK and
    echo, CMEE and CNMI are back to their defaults. Fails before 'simulator: split SimModem' with
    NameError: Settings was never imported where the handler lives."""
    modem = SimModem(SIM_PROFILES["generic"], None)
    for command in (b"ATZ", b"AT&F"):
        modem.receive_data(b"ATE0;+CMEE=2;+CNMI=2,1,0,0,0\r")
        assert modem.data_to_send().endswith(b"\r\nOK\r\n")
        assert (modem.settings.echo, modem.settings.cmee, modem.settings.cnmi[1]) == (False, 2, 1)
        modem.receive_data(command + b"\r")
        assert modem.data_to_send() == b"\r\nOK\r\n"  # echo was off when the command came
        assert (modem.settings.echo, modem.settings.cmee, modem.settings.cnmi[1]) == (True, 0, 0)
