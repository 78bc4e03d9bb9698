"""Issue 12 finding 11: the shipped unit. ProcSubset=pid hides /proc/sys, so the boot id reaches
the daemon as systemd's %b in $SIMGW_BOOT_ID (and its absence is logged); the unit caps file
descriptors, denies IP traffic except loopback (the marketplace's addresses come from a drop-in:
they cannot be known when the unit is written), and allows UART HAT modems (ttyAMA*, ttyS*)."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys

import pytest
from structlog.testing import capture_logs

from gateway.runtime.notify import BOOT_ID_ENV, boot_id

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "systemd", "simgw.service")
PROC_BOOT_ID = "/proc/sys/kernel/random/boot_id"
EXAMPLE_ID = "6c1b9f0e-2f4a-4d8e-9a0b-1c2d3e4f5a6b"


def unit_settings(path: str = UNIT) -> dict[str, list[str]]:
    """[Service] key -> every value it is given, in order (systemd keys repeat)."""
    settings: dict[str, list[str]] = collections.defaultdict(list)
    section = None
    with open(path) as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            key, _, value = line.partition("=")
            if section == "[Service]":
                settings[key.strip()].append(value.strip())
    return settings


def test_unit_passes_the_boot_id_that_procsubset_hides():
    service = unit_settings()
    assert service["ProcSubset"] == ["pid"]  # kept: the boot id comes another way
    environment = " ".join(service["Environment"]).split()
    assert f"{BOOT_ID_ENV}=%b" in environment


def test_unit_limits_and_network_and_devices():
    service = unit_settings()
    assert service["LimitNOFILE"] == ["8192"]
    assert service["IPAddressDeny"] == ["any"]
    allowed = " ".join(service["IPAddressAllow"]).split()
    assert "localhost" in allowed and "any" not in allowed
    devices = set(service["DeviceAllow"])
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw", "char-ttyS rw"} <= devices
    assert service["RuntimeDirectory"] == ["simgw"] and service["RuntimeDirectoryMode"] == ["0750"]
    assert service["DevicePolicy"] == ["closed"] and service["UMask"] == ["0077"]


def test_boot_id_from_proc_when_readable(tmp_path):
    proc = tmp_path / "boot_id"
    proc.write_text(EXAMPLE_ID + "\n")
    assert boot_id({}, str(proc)) == EXAMPLE_ID


def test_boot_id_under_procsubset_pid_comes_from_the_units_environment(tmp_path):
    hidden = str(tmp_path / "proc-sys-is-hidden" / "boot_id")  # ProcSubset=pid: no /proc/sys at all
    percent_b = EXAMPLE_ID.replace("-", "")  # systemd's %b: the same id without dashes
    with capture_logs() as logs:
        assert boot_id({BOOT_ID_ENV: percent_b}, hidden) == EXAMPLE_ID  # the form stored before: same boot
    assert logs == []


@pytest.mark.skipif(not os.path.exists("/proc/sys/kernel/random/boot_id"), reason="no /proc boot id here")
def test_percent_b_and_proc_give_the_same_id():
    with open("/proc/sys/kernel/random/boot_id") as fh:
        real = fh.read().strip()
    assert boot_id({BOOT_ID_ENV: real.replace("-", "")}, "/nonexistent/boot_id") == boot_id({})


@pytest.mark.parametrize("env", [{}, {BOOT_ID_ENV: ""}, {BOOT_ID_ENV: "%b"}, {BOOT_ID_ENV: "zz" * 16}])
def test_no_boot_id_is_a_loud_warning_not_silence(tmp_path, env):
    with capture_logs() as logs:
        assert boot_id(env, str(tmp_path / "missing")) is None
    warning, = logs
    assert warning["event"] == "boot_id.unavailable" and warning["log_level"] == "warning"
    assert "wall clock" in warning["effect"] and f"{BOOT_ID_ENV}=%b" in warning["hint"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None or not os.path.exists(PROC_BOOT_ID),
                    reason="hiding /proc/sys needs root and unshare(1)")
def test_the_daemons_boot_id_with_proc_sys_really_hidden():
    """What ProcSubset=pid does to the daemon, done for real: a private mount namespace with an
    empty tmpfs over /proc/sys, and the daemon's own reader (gateway.runtime.notify.boot_id)."""
    with open(PROC_BOOT_ID) as fh:
        real = fh.read().strip()
    script = ("import gateway.runtime.notify, gateway.logs; gateway.logs.configure(json_lines=True); "
              "print(gateway.runtime.notify.boot_id())")
    command = ["unshare", "--mount", "sh", "-c",
               f'mount -t tmpfs none /proc/sys && test ! -e {PROC_BOOT_ID} && exec "$0" -c "$1"', sys.executable, script]
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    env = {k: v for k, v in os.environ.items() if k != BOOT_ID_ENV}
    bare = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=root, env=env)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.strip() == "None" and '"event": "boot_id.unavailable"' in bare.stderr, bare
    unit = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=root,
                          env={**env, BOOT_ID_ENV: real.replace("-", "")})  # what %b expands to
    assert unit.returncode == 0 and unit.stdout.strip() == real, unit
