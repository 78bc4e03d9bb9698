"""The uplink's port into the gateway (:class:`gateway.uplink.client.UplinkPort`): every call
goes to the core thread; answers come from the store, the core, or the modems' health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from drivers.modem import Modem
from gateway.control.views import modems_json
from gateway.core import GatewayCore
from gateway.domain.leases import Decision, LeaseEngine
from gateway.runtime.nudges import Nudges
from gateway.runtime.switching import BankSwitching
from gateway.runtime.timers import TIMER_RETRY_MAX
from gateway.store import StoreError
from gateway.uplink.protocol import LeaseAction, OpenLease

log = structlog.get_logger("gateway.app")
CoreCall = Callable[..., Awaitable[Any]]
LEASE_ACTIONS: dict[str, Callable[[LeaseEngine, str, float], list[Decision]]] = {
    "repeat": LeaseEngine.repeat, "finish": LeaseEngine.finish, "cancel": LeaseEngine.cancel}


def command_step(core: GatewayCore, command: OpenLease | LeaseAction) -> Callable[[float], list[Decision]]:
    """The core's step a marketplace command stands for, run on the core thread."""
    if isinstance(command, LeaseAction):
        action = LEASE_ACTIONS[command.action]
        return lambda now: action(core.engine, command.lease_id, now)
    return lambda now: core.open_chosen_step(
        command.lease_id, command.service, now, number=command.number, country=command.country,
        operator=command.operator, exclude_prefixes=command.exclude_prefixes, category=command.category,
        wait_window=command.wait_window)


class CorePort:
    def __init__(self, core: GatewayCore, call: CoreCall, nudges: Nudges, switching: BankSwitching,
                 modems: Callable[[], list[Modem]], wall: Callable[[], float]) -> None:
        self._core, self._call, self._nudges, self._switching = core, call, nudges, switching
        self._modems, self._wall = modems, wall

    async def acked_seq(self) -> int:
        return await self._call(self._core.store.acked_seq)

    async def max_seq(self) -> int:
        return await self._call(self._core.store.max_seq)

    async def outbox_after(self, seq: int, limit: int) -> list[tuple[int, str, dict]]:
        return await self._call(self._core.outbox_after, seq, limit)

    async def acked(self, seq: int) -> None:
        """Record the marketplace's ack; if the store cannot commit, a later ack records it (until
        then a restart resends those events, which the marketplace knows by seq and msg_id)."""
        try:
            await self._call(self._core.ack, seq)
        except StoreError as exc:
            log.warning("uplink.ack_not_saved", seq=seq, error=str(exc))

    async def command(self, command: OpenLease | LeaseAction) -> dict[str, object]:
        """Run a marketplace command; a store that cannot commit answers ``unavailable`` (nothing
        was done, nothing stored: the marketplace sends the same command again)."""
        try:
            result = await self._call(self._core.command, command.command_id, command_step(self._core, command))
        except StoreError as exc:
            log.warning("uplink.command_unavailable", command=type(command).__name__, lease=command.lease_id,
                        error=str(exc))
            return {"ok": False, "lease_id": command.lease_id, "reason": "unavailable", "retry_after": TIMER_RETRY_MAX,
                    "message": "the gateway cannot commit now (disk full or read-only); send it again"}
        await self._switching.dispatch()
        self._nudges.decided(inventory=True)
        log.info("uplink.command", command=type(command).__name__, lease=command.lease_id, ok=result.get("ok"),
                 number=result.get("number"), reason=result.get("reason"))
        return result

    async def inventory(self) -> dict[str, object]:
        return await self._call(self._core.inventory)

    async def health(self) -> dict[str, object]:
        return {"at": self._wall(), "modems": modems_json(self._modems())}
