"""The systemd notify protocol, spoken directly (no libsystemd binding needed on a Pi).

READY=1 once the daemon serves, STATUS= lines for ``systemctl status``, WATCHDOG=1 at half the
``WatchdogSec`` interval from the event loop itself (so a wedged loop stops the pings and systemd
restarts us), STOPPING=1 on the way out. Without ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("gateway.notify")
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
BOOT_ID_ENV = "SIMGW_BOOT_ID"  # the unit sets it to %b: ProcSubset=pid hides /proc/sys from the daemon
_BOOT_ID_RE = re.compile(r"[0-9a-f]{32}")


def boot_id(env: Mapping[str, str] = os.environ, path: str = BOOT_ID_PATH) -> str | None:
    """This boot's id (the kernel's dashed form): while it holds, time.monotonic() runs on across
    our restarts, so lease clocks restore exactly. Read from ``path``; where the sandbox hides
    /proc/sys, from ``$SIMGW_BOOT_ID`` (systemd's %b: the same id without dashes). Neither: a loud
    warning, and lease clocks after a restart are rebuilt from the wall clock instead."""
    candidates = []
    try:
        with open(path, encoding="ascii") as fh:
            candidates.append(fh.read(64))
    except (OSError, ValueError) as exc:
        unreadable = f"{type(exc).__name__}: {exc}"
    else:
        unreadable = "not a boot id"
    candidates.append(env.get(BOOT_ID_ENV, ""))
    for raw in candidates:
        digits = raw.strip().lower().replace("-", "")
        if _BOOT_ID_RE.fullmatch(digits):
            return "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))
    log.warning("boot_id.unavailable", path=path, error=unreadable, env=BOOT_ID_ENV,
                effect="lease clocks after a restart come from the wall clock, not the monotonic clock",
                hint=f"under systemd with ProcSubset=pid set Environment={BOOT_ID_ENV}=%b (see systemd/simgw.service)")
    return None


class Notifier:
    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self._address = None
        if socket_path:
            self._address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
        self.watchdog_interval = watchdog_usec / 1_000_000 / 2 if watchdog_usec else None
        self.sent: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Notifier":
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isascii() and usec.isdigit() and (not pid or pid == str(os.getpid())) else None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        if self._address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:
            log.warning("notify.failed", error=str(exc))
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping")

    async def watchdog(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """Ping at half the interval while ``healthy()``; stop pinging (and so get restarted)
        when it is not."""
        if self.watchdog_interval is None or self._address is None:
            return
        while True:
            if healthy():
                self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
