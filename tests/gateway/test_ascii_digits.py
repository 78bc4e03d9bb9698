"""Issue 12, strict inputs on the gateway side: a number is ASCII digits. ``str.isdigit()`` also
accepts "²" and other Unicode digits, which ``int()`` then refuses with a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.config import ConfigError, from_dict
from gateway.runtime.notify import Notifier

SIMGW = [sys.executable, "-m", "gateway.cli"]


@pytest.mark.parametrize("listen", ["127.0.0.1:²", "127.0.0.1:8٧65", "127.0.0.1:８７６５"])
def test_config_port_with_unicode_digits_is_a_config_error(listen):
    with pytest.raises(ConfigError, match="control.listen: expected HOST:PORT"):
        from_dict({"control": {"listen": listen}})


def test_cli_host_port_with_unicode_digits_is_a_usage_error():
    result = subprocess.run([*SIMGW, "market", "--listen", "127.0.0.1:²", "--db", "/nonexistent/x.db"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "expected HOST:PORT" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_watchdog_usec_with_unicode_digits_means_no_watchdog():
    assert Notifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "³0000000"}).watchdog_interval is None
    assert Notifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0



@pytest.mark.parametrize("section", [
    {"modems": [{"port": "/dev/ttyUSB0", "msisdn": "+٧٩٠٠١٢٣٤٥٦٧"}]},  # Arabic-Indic digits match \d
    {"numbers": {"89701010000000000001": "+７９００１２３４５６７"}},
    {"numbers": {"89٧01010000000000001": "+79001234567"}},
    {"leases": {"wait_window": "١٠m"}},
])
def test_numbers_and_durations_with_unicode_digits_are_refused(section):
    with pytest.raises(ConfigError):
        from_dict(section)
