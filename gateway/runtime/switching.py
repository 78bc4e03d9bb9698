"""SIM-bank switches between the core thread and the switcher: the core decides a switch in a
transaction, this hands it to the :class:`~gateway.runtime.switcher.Switcher` (which performs it
on the event loop), and takes the switcher's report back to the core."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from drivers.bank import SwitchReport
from drivers.modem import Modem
from gateway.config import Config
from gateway.core import GatewayCore
from gateway.domain.banks import SwitchOrder
from gateway.runtime.nudges import Nudges
from gateway.runtime.switcher import Switcher

CoreCall = Callable[..., Awaitable[Any]]


class BankSwitching:
    def __init__(self, config: Config, core: GatewayCore, call: CoreCall, nudges: Nudges,
                 modem_at: Callable[[str], Modem | None]) -> None:
        self._core, self._call, self._nudges = core, call, nudges
        self.switcher = Switcher(config.banks, modem_at, self.switch_done, rules=config.ussd_numbers,
                                 numbers=config.numbers) if config.banks else None

    async def observe(self, port: str, iccid: str, operator: str | None) -> None:
        """A bank channel's modem says which SIM it holds (after a restart, or on its own)."""
        await self._call(self._core.set_operator, port, operator)
        await self._call(self._core.observe_channel, port, iccid)
        await self.changed()

    async def switch_done(self, order: SwitchOrder, report: SwitchReport, msisdn: str | None,
                          source: str | None) -> None:
        await self._call(self._core.switch_done, order, report, msisdn, source)
        await self.changed()

    async def changed(self) -> None:
        self._nudges.decided(inventory=True)
        await self.dispatch()

    async def dispatch(self, orders: list[SwitchOrder] | None = None) -> None:
        """Hand the switcher what committed transactions decided."""
        if self.switcher is None:
            return
        if orders is None:
            orders = await self._call(self._core.take_switch_orders)
        for order in orders:
            self.switcher.start(order)
