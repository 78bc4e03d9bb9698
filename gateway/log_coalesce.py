"""A cap on repeated log lines: the same event on the same port more than ``limit`` times in a
``window`` is dropped, and one ``log.coalesced`` line later says how many were.

A flood (a marketplace sending 1,400 commands a second, a modem spewing one bad line in a loop)
must not become 87k journal lines in 40 s on an SD card, nor hide every other line. The first
``limit`` lines of each window still show what is happening; the summary keeps the count honest.

Behaviour at the caps: at most ``limit`` lines per (event, key fields) per window; the summary is
written with the first log line of any kind after that window ends, or by :meth:`flush` (at exit);
at most ``max_keys`` keys are tracked, the least recently seen one forgotten first (its pending
summary written at once), so memory is bounded whatever the events carry.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

COALESCED_EVENT = "log.coalesced"
_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})


@dataclass(slots=True)
class _Window:
    start: float
    fields: dict[str, object]
    level: str  # the summary goes out at the level of the lines it stands for
    count: int = 0
    suppressed: int = 0


class LogCoalescer:
    """A structlog processor; put it first, so a dropped line costs no rendering."""

    def __init__(self, *, limit: int = 10, window: float = 1.0, max_keys: int = 1024,
                 key_fields: tuple[str, ...] = ("port",), clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_keys, self.key_fields = limit, window, max_keys, key_fields
        self._clock = clock
        self._windows: collections.OrderedDict[tuple, _Window] = collections.OrderedDict()
        self._pending: dict[tuple, _Window] = {}  # keys with lines dropped and no summary yet
        self._lock = threading.Lock()  # the core thread and the event loop both log
        self._local = threading.local()  # set while this thread writes a summary: let it through
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._windows)

    def __call__(self, _logger: object, level: str, event: dict[str, object]) -> dict[str, object]:
        if getattr(self._local, "emitting", False):
            return event
        now = self._clock()
        fields = {f: event[f] for f in self.key_fields if f in event}
        key = (str(event.get("event")), *(repr(fields.get(f)) for f in self.key_fields))
        with self._lock:
            due = self._ended(now)
            window = self._windows.get(key)
            if window is None or now - window.start >= self.window:  # a summary due is in ``due`` already
                window = _Window(now, fields, level if level in _LEVELS else "warning")
                due += self._remember(key, window)
            else:
                self._windows.move_to_end(key)
            window.count += 1
            drop = window.count > self.limit
            if drop:
                window.suppressed += 1
                self._pending[key] = window
                self.dropped += 1
        self._write(due)
        if drop:
            raise structlog.DropEvent
        return event

    def flush(self) -> None:
        """Write every pending summary now (at exit, so no count is lost)."""
        with self._lock:
            due = [(key[0], window) for key, window in self._pending.items()]
            self._pending.clear()
        self._write(due)

    def _ended(self, now: float) -> list[tuple[str, _Window]]:
        ended = [key for key, window in self._pending.items() if now - window.start >= self.window]
        return [(key[0], self._pending.pop(key)) for key in ended]

    def _remember(self, key: tuple, window: _Window) -> list[tuple[str, _Window]]:
        self._windows[key] = window
        self._windows.move_to_end(key)
        forgotten = []
        while len(self._windows) > self.max_keys:
            old_key, _ = self._windows.popitem(last=False)
            if old_key in self._pending:
                forgotten.append((old_key[0], self._pending.pop(old_key)))
        return forgotten

    def _write(self, due: list[tuple[str, _Window]]) -> None:
        if not due:
            return
        log = structlog.get_logger("gateway.logs")
        self._local.emitting = True
        try:
            for event, window in due:
                getattr(log, window.level, log.warning)(COALESCED_EVENT, repeated=event, suppressed=window.suppressed, logged=self.limit,
                            window_s=self.window, **window.fields)
        finally:
            self._local.emitting = False
