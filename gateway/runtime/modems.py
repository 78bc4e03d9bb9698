"""The modems the daemon drives: one supervised driver per configured port (patterns expanded
again every ``rescan_interval``, so a modem plugged in later is picked up), and what each one's
state change means for the core (the SIM it holds, its operator, whether it serves)."""

from __future__ import annotations

import asyncio
import glob
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog

from drivers.modem import Modem, ModemOptions, ModemState, ReceivedPart, ReceiveMode
from gateway.config import Config
from gateway.core import GatewayCore
from gateway.runtime.nudges import Nudges
from gateway.runtime.portcounters import PortCounters
from gateway.runtime.supervisor import Supervisor
from gateway.runtime.switching import BankSwitching

log = structlog.get_logger("gateway.app")
ONLINE_STATES = frozenset({ModemState.OK, ModemState.DEGRADED})
CoreCall = Callable[..., Awaitable[Any]]


class ModemPorts:
    def __init__(self, config: Config, options: ModemOptions, *, core: GatewayCore, call: CoreCall,
                 nudges: Nudges, supervisor: Supervisor, switching: BankSwitching,
                 sink: Callable[[ReceivedPart], Awaitable[None]], rescan_interval: float) -> None:
        self.config = config
        self._options, self._core, self._call, self._nudges = options, core, call, nudges
        self._supervisor, self._switching, self._sink = supervisor, switching, sink
        self._rescan_interval = rescan_interval
        self.counters = PortCounters()  # AT command totals that survive a reopened port
        self.modems: list[Modem] = []

    def modem_at(self, port: str) -> Modem | None:
        return next((m for m in self.modems if m.path == port), None)

    def rescan(self) -> None:
        """Drive every configured port, expanding patterns (``/dev/serial/by-id/*-if02-port0``).
        A port that vanishes keeps its driver, which reports it gone and reopens it when it
        comes back under the same name."""
        driven = {modem.path for modem in self.modems}
        for modem_config in self.config.modems:
            for path in _expand(modem_config.port):
                if path in driven:
                    continue
                driven.add(path)
                options = replace(self._options, baudrate=modem_config.baud,
                                  receive_mode=ReceiveMode(modem_config.receive_mode), profile=modem_config.profile)
                bank = self.config.bank_of(path)
                if bank is not None and bank.reset_wait is not None:
                    options = replace(options, reset_wait=bank.reset_wait)
                modem = Modem(path, self._sink, options=options, on_state=self.on_state)
                self.modems.append(modem)
                self._supervisor.start(f"modem:{path}", modem.run)
                log.info("modem.port_added", port=path)

    async def rescan_loop(self) -> None:
        while True:
            await asyncio.sleep(self._rescan_interval)
            self.rescan()

    def on_state(self, modem: Modem) -> None:
        self.counters.totals(modem.path, modem.channel)  # every session's counts, before its channel closes
        identity, operator = modem.identity, modem.health.operator
        switcher = self._switching.switcher
        if switcher is not None and self.config.bank_of(modem.path) is not None:
            if modem.path not in switcher.switching and modem.health.state in (*ONLINE_STATES, ModemState.NO_SIM):
                self._supervisor.start(f"observe:{modem.path}",
                                       lambda: self._switching.observe(modem.path, identity.iccid, operator))
            return
        if not identity.iccid:
            return
        modem_config = next((m for m in self.config.modems if m.port == modem.path), None)
        msisdn = identity.msisdn or (modem_config.msisdn if modem_config else None)
        online = modem.health.state in ONLINE_STATES
        self._supervisor.start(f"bind:{modem.path}",
                               lambda: self._bind(modem.path, identity.iccid, msisdn, online, operator))

    async def _bind(self, port: str, iccid: str, msisdn: str | None, online: bool, operator: str | None) -> None:
        await self._call(self._core.set_operator, port, operator)
        await self._call(self._core.bind_sim, port, iccid, msisdn, online)
        self._nudges.inventory.set()


def _expand(port: str) -> list[str]:
    """A port path, or every path a glob pattern matches right now."""
    if not any(ch in port for ch in "*?["):
        return [port]
    return sorted(glob.glob(port))
