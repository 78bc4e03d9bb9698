"""The fault-injection soak, short, in the default run: the full one is
``python -m tests.reliability.soak --seconds 1800`` (see its docstring)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a 30 s fault-injection soak: deselect with -m "not slow"

SECONDS = os.environ.get("SIMGW_SOAK_SECONDS", "30")


def test_soak_with_every_fault_loses_duplicates_misroutes_and_leaks_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tests.reliability.soak", "--seconds", SECONDS, "--seed", "7",
                             "--dir", str(tmp_path), "--drain", "200"], capture_output=True, text=True, timeout=600)
    lines = result.stdout.strip().splitlines()
    print(result.stdout[-3000:])
    assert lines and lines[-1] == "lost=0 duplicated=0 misrouted=0 leaked=0 late=0", \
        result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0
    summary = next(line for line in lines if line.startswith("soak:") and "SMS sent" in line)
    assert "sigkill" in summary or "market_restart" in summary  # faults were injected, not just traffic
    disk = next(line for line in lines if "real disk-full" in line)
    if os.geteuid() == 0:  # root mounts the state directory on a small tmpfs and fills it for real
        assert disk.startswith("soak: real disk-full on a"), disk
    else:
        print(f"real disk-full not exercised: {disk}")
