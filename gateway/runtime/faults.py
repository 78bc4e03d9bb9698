"""Faults injected on purpose, for the crash test and the soak. Production never sets the variables.

``SIMGW_CRASHPOINTS="after_ingest:0.05,before_ingest:0.02"`` makes the daemon SIGKILL itself at that
point with that probability. ``SIMGW_FAULT_DIR=/some/dir`` is watched for three files: ``disk_full``
(while it exists, every commit fails as SQLite fails on a full disk), ``wall_offset`` (seconds
added to the wall clock: a clock set wrong, or jumped by NTP) and ``fail_task`` (task names, one
a line: while it lists a supervised task, every start of that task fails, as a persistent bug would).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CrashPoints:
    odds: dict[str, float]

    @classmethod
    def from_env(cls, value: str | None) -> "CrashPoints":
        odds: dict[str, float] = {}
        for item in (value or "").split(","):
            name, _, p = item.partition(":")
            if name.strip() and re.fullmatch(r"0?\.\d+|1(\.0*)?|0", p.strip()):
                odds[name.strip()] = float(p)
        return cls(odds)

    def maybe_crash(self, point: str) -> None:
        if self.odds.get(point, 0.0) > random.random():
            os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True)
class FaultFiles:
    """Reads the fault directory at most every ``refresh`` seconds (it is asked on every commit)."""

    directory: str | None
    refresh: float = 0.2
    _checked_at: float = field(default=-1e9)
    _disk_full: bool = False
    _offset: float = 0.0
    _failing_tasks: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> "FaultFiles":
        return cls(os.environ.get("SIMGW_FAULT_DIR") or None)

    def _update(self) -> None:
        now = time.monotonic()
        if self.directory is None or now - self._checked_at < self.refresh:
            return
        self._checked_at = now
        self._disk_full = os.path.exists(os.path.join(self.directory, "disk_full"))
        try:
            with open(os.path.join(self.directory, "wall_offset")) as fh:
                self._offset = float(fh.read().strip() or 0)
        except (OSError, ValueError):
            self._offset = 0.0
        try:
            with open(os.path.join(self.directory, "fail_task")) as fh:
                self._failing_tasks = frozenset(line.strip() for line in fh if line.strip())
        except OSError:
            self._failing_tasks = frozenset()

    def wall(self) -> float:
        self._update()
        return time.time() + self._offset

    def commit_error(self) -> str | None:
        """The error SQLite gives when the disk is full, while the fault is on."""
        self._update()
        return "database or disk is full" if self._disk_full else None

    def task_fault(self, name: str) -> str | None:
        """The error a supervised task named ``name`` fails with, while the fault is on."""
        self._update()
        return f"fault injected into task {name}" if name in self._failing_tasks else None
