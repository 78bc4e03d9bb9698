"""The last hour per modem, in memory, I/O-free: one point per minute of signal (the last reading
in that minute) and SMS parts received in it, plus SMS counted today. Drawn by the page's charts.

Caps: :data:`MINUTES` points per modem (the oldest dropped), :data:`MAX_PORTS` modems (a port
beyond the cap is not charted, and :attr:`History.dropped_ports` counts it). At the caps a
16-port pool costs ~2,000 small tuples; nothing here grows with time."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

MINUTES = 60
MAX_PORTS = 256


@dataclass(slots=True)
class _Port:
    points: collections.deque[list] = field(default_factory=lambda: collections.deque(maxlen=MINUTES))
    last_total: int | None = None  # the modem's sms_received counter at the previous sample
    day: int | None = None
    today: int = 0


class History:
    def __init__(self) -> None:
        self._ports: dict[str, _Port] = {}
        self.dropped_ports = 0
        self.version = 0  # grows whenever a chart would change: the page fetches charts only then

    def sample(self, port: str, minute: int, day: int, signal_dbm: int | None, sms_total: int) -> None:
        """One reading of ``port`` at ``minute`` (minutes since the epoch) on local ``day``.
        ``sms_total`` is the driver's counter; a smaller value than before means it restarted."""
        entry = self._ports.get(port)
        if entry is None:
            if len(self._ports) >= MAX_PORTS:
                self.dropped_ports += 1
                return
            entry = self._ports[port] = _Port()
        new = sms_total if entry.last_total is None else (sms_total - entry.last_total if sms_total >= entry.last_total
                                                  else sms_total)
        entry.last_total = sms_total
        if entry.day != day:
            entry.day, entry.today = day, 0
        entry.today += new
        if entry.points and entry.points[-1][0] == minute:
            point = entry.points[-1]
            changed = new > 0 or point[1] != signal_dbm
            point[1] = signal_dbm if signal_dbm is not None else point[1]
            point[2] += new
        else:
            entry.points.append([minute, signal_dbm, new])
            changed = True
        if changed:
            self.version += 1

    def today(self, port: str) -> int:
        entry = self._ports.get(port)
        return entry.today if entry is not None else 0

    def charts(self, now_minute: int) -> dict[str, dict[str, list]]:
        """Per port, the last :data:`MINUTES` minutes ending at ``now_minute``, oldest first:
        ``signal`` (dBm or None where unknown) and ``sms`` (parts per minute, 0 where none)."""
        out = {}
        first = now_minute - MINUTES + 1
        for port, entry in self._ports.items():
            signal: list[int | None] = [None] * MINUTES
            sms = [0] * MINUTES
            for minute, dbm, count in entry.points:
                if first <= minute <= now_minute:
                    signal[minute - first], sms[minute - first] = dbm, count
            out[port] = {"signal": signal, "sms": sms}
        return out
