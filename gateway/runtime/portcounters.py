"""AT command counters per port that only ever go up, across reopens of the port.

A modem's :class:`~drivers.channel.AtChannel` is replaced each time the port is reopened
(recovery, a SIM switch's reset), and its ``stats`` start again at zero; a Prometheus counter
must not. :class:`PortCounters` keeps, per port, the sum of the channels it saw before and the
channel it saw last (a reference, so a closed channel's final counts can still be read); asked
for a port's totals, it folds a replaced channel into the sum first.

Its memory is one sum and one channel per port. A channel opened and closed between two readings
is not seen, so the totals may undercount it, never go back: read at each scrape, and also from
the modem's state callback (every session ends with a state change, before its channel closes)
to see every channel.
"""

from __future__ import annotations

from typing import Protocol

from drivers.channel import ChannelStats

FIELDS = ("commands", "timeouts", "errors", "garbage")


class HasStats(Protocol):
    stats: ChannelStats


class PortCounters:
    def __init__(self) -> None:
        self._before: dict[str, dict[str, int]] = {}  # port -> the sums of its channels before the last
        self._last: dict[str, HasStats] = {}  # port -> the channel seen last

    def totals(self, port: str, channel: HasStats | None) -> dict[str, int]:
        """The port's counts since the daemon started; ``channel`` is its channel now (None while
        the port is closed)."""
        before = self._before.setdefault(port, dict.fromkeys(FIELDS, 0))
        last = self._last.get(port)
        if channel is not None and channel is not last:
            if last is not None:
                for name in FIELDS:
                    before[name] += getattr(last.stats, name)
            self._last[port] = last = channel
        return {name: before[name] + (getattr(last.stats, name) if last is not None else 0) for name in FIELDS}

    def forget(self, port: str) -> None:
        """A port removed from the configuration: its counters go (a restart of the series)."""
        self._before.pop(port, None)
        self._last.pop(port, None)
