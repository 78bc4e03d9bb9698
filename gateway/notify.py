"""The systemd notify protocol, spoken directly (no libsystemd binding needed on a Pi).

READY=1 once the daemon serves, STATUS= lines for ``systemctl status``, WATCHDOG=1 at half the
``WatchdogSec`` interval from the event loop itself (so a wedged loop stops the pings and systemd
restarts us), STOPPING=1 on the way out. Without ``$NOTIFY_SOCKET`` every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("gateway.notify")


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
