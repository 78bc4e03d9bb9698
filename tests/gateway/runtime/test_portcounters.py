"""simgw_modem_commands_total and its siblings never go back when a port is reopened."""

from __future__ import annotations

from drivers.channel import AtChannel
from gateway.runtime.portcounters import PortCounters


def _channel(path: str) -> AtChannel:
    return AtChannel(path, on_urc=lambda urc: None)  # never opened: only its stats are read


def test_counts_survive_a_reopen_and_a_closed_port():
    counters = PortCounters()
    first = _channel("/dev/ttyTEST0")
    first.stats.commands, first.stats.timeouts = 10, 1
    assert counters.totals("/dev/ttyTEST0", first)["commands"] == 10
    first.stats.commands = 15  # more commands, then the port is lost
    assert counters.totals("/dev/ttyTEST0", None) == {"commands": 15, "timeouts": 1, "errors": 0, "garbage": 0}
    second = _channel("/dev/ttyTEST0")  # reopened: its stats start at zero
    second.stats.commands, second.stats.errors = 3, 2
    assert counters.totals("/dev/ttyTEST0", second) == {"commands": 18, "timeouts": 1, "errors": 2, "garbage": 0}
    third = _channel("/dev/ttyTEST0")
    assert counters.totals("/dev/ttyTEST0", third)["commands"] == 18  # never below what was reported
    assert counters.totals("/dev/ttyTEST1", None)["commands"] == 0
    counters.forget("/dev/ttyTEST0")
    assert counters.totals("/dev/ttyTEST0", None)["commands"] == 0
