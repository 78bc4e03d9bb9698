"""Performs the switches the core decides: the asyncio side of SIM banks.

One task per switch (the scheduler never gives a channel two at once): bring the SIM in with the
bank's driver, find its number if the slot is new, and report to the core, which records the slot
and starts or fails the lease that waited. A channel being switched is marked, so the modem's own
state reports during the switch are not mistaken for what the channel holds.

It keeps no history that grows with uptime: a count of switches per (bank, outcome) for /status
and /metrics, and the last :data:`RECENT_SWITCHES` switches (older ones fall off the end).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import structlog

from drivers.bank import BankController, Failure, SwitchReport, bring_in, selector
from drivers.modem import Modem
from gateway.domain.banks import SwitchOrder
from gateway.config import BankConfig
from gateway.domain.numbering import UssdNumber
from gateway.runtime.msisdn import discover

log = structlog.get_logger("gateway.switcher")
Report = Callable[[SwitchOrder, SwitchReport, str | None, str | None], Awaitable[None]]
RECENT_SWITCHES = 64  # switches kept for a look at what just happened; the oldest falls off


def outcome_of(report: SwitchReport) -> str:
    """``ok``, or the failure's name (``no_answer``, ``wrong_sim``, ...): the counters' label."""
    return "ok" if report.ok else (report.failure.value if report.failure else "failed")


class Switcher:
    def __init__(self, banks: tuple[BankConfig, ...], modem_for: Callable[[str], Modem | None], report: Report, *,
                 rules: tuple[UssdNumber, ...] = (), numbers: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._configs = {b.name: b for b in banks}
        self._controllers = {b.name: BankController(b.controller, baudrate=b.controller_baud)
                             for b in banks if b.switch.needs_controller and b.controller}
        self._modem_for = modem_for
        self._report = report
        self._rules = rules
        self._numbers = dict(numbers or {})
        self._clock = clock
        self.switching: set[str] = set()  # channel ports with a switch under way
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: Counter[tuple[str, str]] = Counter()  # (bank, outcome) -> switches, since start
        self.recent: deque[tuple[float, SwitchOrder, SwitchReport]] = deque(maxlen=RECENT_SWITCHES)

    def start(self, order: SwitchOrder) -> None:
        self.switching.add(order.switch.channel)
        task = asyncio.create_task(self._run(order), name=f"switch:{order.switch.channel}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for controller in self._controllers.values():
            controller.close()

    async def _run(self, order: SwitchOrder) -> None:
        config = self._configs[order.bank]
        port = order.switch.channel
        started = self._clock()
        msisdn = source = None
        try:
            modem = self._modem_for(port)
            if modem is None:
                report = SwitchReport(False, Failure.MODEM_DOWN, f"{port}: no modem driven on this port", 0, 0.0)
            else:
                select = selector(config.switch, self._controllers.get(order.bank), config.timing,
                                  channel=order.channel_no, slot=order.slot_no, local=order.local)
                report = await bring_in(modem, select, expected_iccid=order.expected_iccid, timing=config.timing,
                                        clock=self._clock)
                if report.ok and order.expected_iccid is None:
                    msisdn, source = await discover(modem, rules=self._rules, numbers=self._numbers)
        except Exception as exc:  # a driver bug must not leave the lease waiting for ever
            log.exception("bank.switch_crashed", port=port)
            report = SwitchReport(False, Failure.MODEM_DOWN, f"{type(exc).__name__}: {exc}", 0,
                                  self._clock() - started)
        finally:
            self.switching.discard(port)
        self.counts[(order.bank, outcome_of(report))] += 1
        self.recent.append((self._clock(), order, report))
        log.info("bank.switched", bank=order.bank, channel=order.channel_no, slot=order.slot_no,
                 reason=order.switch.reason, ok=report.ok, failure=report.failure.value if report.failure else None,
                 attempts=report.attempts, seconds=round(report.seconds, 2))
        await self._report(order, report, msisdn, source)
