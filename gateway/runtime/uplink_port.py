"""The uplink's port into the gateway (:class:`gateway.uplink.client.UplinkPort`): its async
calls go to the core thread; answers come from the store, the core, or the modems' health. The
outbox rows a core call committed come back with that call's answer (:meth:`Gateway.call`) and
wait in :class:`FreshRows`, on the event loop's thread, for the sender to take them."""

from __future__ import annotations

import collections
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
Row = tuple[int, str, dict]  # an outbox event: seq, kind, payload
FRESH_MAX = 4096  # committed rows waiting for the sender; beyond, the oldest go (it reads them from the store)
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


class FreshRows:
    """Outbox rows as they commit, for the sender to take without a round trip to the store.
    Event loop thread only: rows come with the answers of core calls, never from the core thread.
    Held only while a session is up (:meth:`keep`): otherwise they are read from the store on
    reconnect, so SMS texts do not wait in memory past their retention while the marketplace is
    away. At FRESH_MAX the oldest row goes; the sender sees the gap and reads the store."""

    def __init__(self, cap: int = FRESH_MAX) -> None:
        self._rows: collections.deque[Row] = collections.deque(maxlen=cap)
        self._keeping = False

    def keep(self, on: bool) -> None:
        self._keeping = on
        if not on:
            self._rows.clear()  # what was not sent is read from the store next time

    def add(self, rows: list[Row]) -> None:
        if self._keeping:
            self._rows.extend(rows)

    @property
    def rows(self) -> tuple[Row, ...]:
        return tuple(self._rows)

    def after(self, seq: int, limit: int) -> list[Row] | None:
        """Up to ``limit`` rows from ``seq + 1`` on, without a gap; None if the next one is not
        here (after a reconnect, or past the cap): then the store has it."""
        fresh = self._rows
        while fresh and fresh[0][0] <= seq:
            fresh.popleft()
        if not fresh or fresh[0][0] != seq + 1:
            return None
        rows: list[Row] = []
        while fresh and len(rows) < limit and fresh[0][0] == seq + len(rows) + 1:
            rows.append(fresh.popleft())
        return rows


class CorePort:
    def __init__(self, core: GatewayCore, call: CoreCall, nudges: Nudges, switching: BankSwitching,
                 modems: Callable[[], list[Modem]], wall: Callable[[], float]) -> None:
        self._core, self._call, self._nudges, self._switching = core, call, nudges, switching
        self._modems, self._wall = modems, wall
        self.fresh = FreshRows()

    def committed(self, rows: list[Row]) -> None:
        """(event loop) Outbox rows a core call committed, handed on with its answer. No nudge
        here: the caller nudges the sender once it has its answer (a second nudge per SMS sent
        the sender to the store for nothing)."""
        self.fresh.add(rows)

    def fresh_after(self, seq: int, limit: int) -> list[Row] | None:
        return self.fresh.after(seq, limit)

    def keep_fresh(self, on: bool) -> None:
        self.fresh.keep(on)

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
