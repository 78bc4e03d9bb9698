"""The daemon's life: start the gateway, tell systemd, serve until asked to stop, reload on SIGHUP."""

from __future__ import annotations

import asyncio

import structlog

from gateway.config import Config
from gateway.control.limits import raise_open_files_limit
from gateway.runtime.faults import FaultFiles
from gateway.runtime.gateway import Gateway
from gateway.runtime.notify import Notifier

log = structlog.get_logger("gateway.app")


async def run_daemon(config: Config, stop: asyncio.Event, *, reload: asyncio.Event | None = None) -> int:
    """The daemon's life: start, tell systemd, serve until ``stop``, reload on ``reload``. Returns
    the exit status: 0 when asked to stop, 1 when a supervised task kept failing (the watchdog
    stopped being pinged at that moment; systemd restarts us)."""
    notifier = Notifier.from_env()
    faults = FaultFiles.from_env()
    raise_open_files_limit()
    gateway = Gateway(config, wall=faults.wall, faults=faults) if faults.directory else Gateway(config)
    try:
        await gateway.start()
    except BaseException:
        await gateway.stop()  # what did start (modems, the core thread) stops before the error is told
        raise
    host, port = gateway.control_address or ("?", 0)
    log.info("gateway.ready", control=gateway.control_socket, status=f"{host}:{port}", modems=len(config.modems))
    notifier.ready(f"serving {len(config.modems)} modem(s); control on {gateway.control_socket}, "
                   f"status on {host}:{port}")
    watchdog = asyncio.create_task(notifier.watchdog(gateway.supervisor.healthy), name="watchdog")
    reload = reload or asyncio.Event()
    gave_up = gateway.supervisor.gave_up
    try:
        while not stop.is_set() and not gave_up.is_set():
            waiters = [asyncio.ensure_future(e.wait()) for e in (stop, reload, gave_up)]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if reload.is_set() and not stop.is_set() and not gave_up.is_set():
                reload.clear()
                await gateway.reload()
    finally:
        notifier.stopping()
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        await gateway.stop()
    if gave_up.is_set():
        notifier.status(f"failed: {gateway.supervisor.reason}")
        log.critical("gateway.exiting", reason=gateway.supervisor.reason, status=1)
        return 1
    return 0
