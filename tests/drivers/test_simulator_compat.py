"""Other AT software must work against the simulator: SMS Server Tools 3 (smsd) and gammu-smsd,
each receiving an injected SMS into its spool. Skipped where the Debian package is missing
(`.ci/run` installs both when it can)."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from drivers.simulator.farm import ModemFarm
from tests.conftest import run

pytestmark = [pytest.mark.external, pytest.mark.slow]  # real daemons polling their spools


async def _drive(farm: ModemFarm, argv: list[str], spool: str, text: str, timeout: float) -> list[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        await asyncio.sleep(3)  # both daemons poll; let them open and initialise the port first
        farm.send_sms(0, "+79161234567", text)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            files = [f for f in glob.glob(os.path.join(spool, "*")) if os.path.isfile(f)]
            if files:
                await asyncio.sleep(0.5)
                return files
            await asyncio.sleep(0.2)
        return []
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.skipif(shutil.which("smsd") is None, reason="smstools (SMS Server Tools 3) not installed")
def test_smstools_receives_from_the_simulator():
    work = tempfile.mkdtemp(prefix="simgw-smstools-")
    for sub in ("outgoing", "checked", "incoming", "failed"):
        os.makedirs(os.path.join(work, sub))

    async def scenario():
        farm = ModemFarm(1, profile="generic", directory=os.path.join(work, "sim"), periodic_interval=None)
        await farm.start()
        conf = os.path.join(work, "smsd.conf")
        with open(conf, "w") as fh:
            fh.write(f"devices = GSM1\noutgoing = {work}/outgoing\nchecked = {work}/checked\n"
                     f"incoming = {work}/incoming\nfailed = {work}/failed\nlogfile = {work}/smsd.log\n"
                     f"loglevel = 7\ninfofile = {work}/smsd.working\npidfile = {work}/smsd.pid\n\n"
                     f"[GSM1]\ndevice = {farm.modems[0].link_path}\nincoming = yes\nbaudrate = 115200\n")
        try:
            files = await _drive(farm, ["smsd", "-c", conf, "-t"], os.path.join(work, "incoming"),
                                 "Code 4711 for smstools", timeout=40)
        finally:
            await farm.stop()
        assert files, "smsd wrote nothing to its incoming spool"
        content = open(files[0], "rb").read()
        assert b"From: 79161234567" in content and b"Code 4711 for smstools" in content
        assert farm.stored_count() == 0  # smsd deleted it after reading

    try:
        run(scenario(), 90)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.skipif(shutil.which("gammu-smsd") is None, reason="gammu-smsd not installed")
def test_gammu_smsd_receives_from_the_simulator():
    work = tempfile.mkdtemp(prefix="simgw-gammu-")
    for sub in ("inbox", "outbox", "sent", "error"):
        os.makedirs(os.path.join(work, sub))

    async def scenario():
        farm = ModemFarm(1, profile="generic", directory=os.path.join(work, "sim"), periodic_interval=None)
        await farm.start()
        conf = os.path.join(work, "smsdrc")
        with open(conf, "w") as fh:
            fh.write(f"[gammu]\ndevice = {farm.modems[0].link_path}\nconnection = at115200\n\n"
                     f"[smsd]\nservice = files\ninboxpath = {work}/inbox/\noutboxpath = {work}/outbox/\n"
                     f"sentsmspath = {work}/sent/\nerrorsmspath = {work}/error/\nlogfile = {work}/smsd.log\n"
                     f"ReceiveFrequency = 1\n")
        try:
            files = await _drive(farm, ["gammu-smsd", "-c", conf], os.path.join(work, "inbox"),
                                 "Code 4712 for gammu", timeout=60)
        finally:
            await farm.stop()
        assert files, "gammu-smsd wrote nothing to its inbox: " + open(os.path.join(work, "smsd.log")).read()[-1500:]
        assert len(files) == 1
        raw = open(files[0], "rb").read()  # gammu's "standard" inbox format: UTF-8, or UTF-16 with a BOM
        text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8")
        assert text.strip() == "Code 4712 for gammu"

    try:
        run(scenario(), 120)
    finally:
        shutil.rmtree(work, ignore_errors=True)
