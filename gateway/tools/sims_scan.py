"""``simgw sims scan``: walk every slot of every bank and record what SIM it holds.

Each channel walks its own slots while the others walk theirs, so a 4x32 bank takes 32 switch
times, not 128. Every slot's result is committed as soon as it is known, tagged with the scan's
run id, so an interrupted scan resumes where it stopped: slots already seen by this run are
skipped until the run completes (``--restart`` begins a new one). SMS that arrive while a SIM is
on air (the network delivers what it held) are stored like the daemon stores them, never dropped.
The scan drives the ports itself, so the daemon must be stopped first.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

import structlog

from drivers.bank import BankController, bring_in, selector
from drivers.modem import Modem, ModemOptions, ReceivedPart, stop_modems
from gateway.domain.banks import LEASABLE, SimStatus
from gateway.config import BankConfig, Config
from gateway.core import GatewayCore
from gateway.runtime.msisdn import discover
from gateway.domain.banks import SimRow
from gateway.store import Store, StoreError

log = structlog.get_logger("gateway.tools.sims_scan")
RUN_KEY, FINISHED_KEY = "scan_run", "scan_finished"


class ScanRefused(RuntimeError):
    """The scan cannot start (the daemon holds the ports, or no bank is configured)."""


@dataclass(slots=True)
class Progress:
    """The progress bar: slots done of the total, failures, and an ETA from this run's pace."""

    total: int
    out: TextIO
    clock: Callable[[], float]
    done: int = 0
    skipped: int = 0
    failed: int = 0
    started: float = 0.0
    width: int = 30

    def __post_init__(self) -> None:
        self.started = self.clock()

    def tick(self, *, failed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        self.draw()

    def resume_from(self, already: int) -> None:
        """Slots an interrupted run already scanned: counted done, not in the pace."""
        self.done += already
        self.skipped += already
        self.draw()

    def eta(self) -> float | None:
        worked = self.done - self.skipped
        if worked <= 0:
            return None
        return (self.clock() - self.started) / worked * (self.total - self.done)

    def draw(self) -> None:
        filled = int(self.width * self.done / max(1, self.total))
        eta = self.eta()
        eta_text = "--" if eta is None else _duration(eta)
        self.out.write(f"\r[{'#' * filled}{'-' * (self.width - filled)}] {self.done}/{self.total} slots"
                       f"  {self.failed} failed  ETA {eta_text} ")
        self.out.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def daemon_running(config: Config) -> bool:
    host, port = config.control_listen
    if port == 0:
        return False
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def scan(config: Config, *, restart: bool = False, out: TextIO = sys.stderr,
               modem_options: ModemOptions | None = None, clock: Callable[[], float] = time.monotonic) -> dict[str, int]:
    """Scan every bank; returns counts by slot status. Cancel it (Ctrl-C) to interrupt."""
    if not config.banks:
        raise ScanRefused(f"{config.path}: no [[banks]] configured: nothing to scan")
    if daemon_running(config):
        host, port = config.control_listen
        raise ScanRefused(f"the daemon is running (control on {host}:{port}) and holds the ports: "
                          "stop it first (systemctl stop simgw)")
    store = Store(config.database)
    store.open()
    core = GatewayCore(store, config.leases, numbers=config.numbers, banks=config.banks)
    core.start()
    run_id = store.meta(RUN_KEY)
    if restart or run_id is None or store.meta(FINISHED_KEY) == run_id:
        run_id = f"{time.time():.0f}"
        with store.transaction():
            store.set_meta(RUN_KEY, run_id)
    seen = {(r.bank, r.slot) for r in store.sims() if r.scan_run == run_id}
    progress = Progress(sum(b.slots for b in config.banks), out, clock)
    progress.resume_from(len(seen))

    async def sink(part: ReceivedPart) -> None:
        core.ingest(part)  # held SMS the network hands over while a SIM is on air: stored, routed, kept

    options = replace(modem_options or ModemOptions(), sweep_interval=3600.0)
    modems = {port: Modem(port, sink, options=_options_for(config, port, options))
              for bank in config.banks for port in bank.channels}
    tasks = [asyncio.create_task(m.run(), name=f"scan:{p}") for p, m in modems.items()]
    controllers: list[BankController] = []
    try:
        walkers = []
        for bank in config.banks:
            controller = BankController(bank.controller, baudrate=bank.controller_baud) \
                if bank.switch.needs_controller and bank.controller else None
            if controller is not None:
                controllers.append(controller)
            for port, slots in bank.reach().items():
                todo = [slot for slot in slots if (bank.name, slot) not in seen]
                walkers.append(_walk(bank, port, todo, modems[port], controller, core, config, run_id, progress))
        await asyncio.gather(*walkers)
        with store.transaction():
            store.set_meta(FINISHED_KEY, run_id)
    finally:
        out.write("\n")
        await stop_modems(list(modems.values()), tasks)
        for controller in controllers:
            controller.close()
        counts: dict[str, int] = {}
        for row in store.sims():
            counts[row.status] = counts.get(row.status, 0) + 1
        store.close()
    return counts


def _options_for(config: Config, port: str, base: ModemOptions) -> ModemOptions:
    """The port's [[modems]] settings, and its bank's boot time after a reset."""
    modem = next((m for m in config.modems if m.port == port), None)
    bank = config.bank_of(port)
    options = base if modem is None else replace(base, baudrate=modem.baud, profile=modem.profile)
    return options if bank is None or bank.reset_wait is None else replace(options, reset_wait=bank.reset_wait)


async def _walk(bank: BankConfig, port: str, slots: list[int], modem: Modem, controller: BankController | None,
                core: GatewayCore, config: Config, run_id: str, progress: Progress) -> None:
    """One channel's share of the scan, slot after slot."""
    timing = bank.timing
    reach = bank.reach()[port]
    channel_no = bank.channels.index(port) + 1
    try:
        await asyncio.wait_for(modem.settled.wait(), timing.settle_timeout)
    except asyncio.TimeoutError:
        pass  # a dead radio: each of its slots is recorded as not answering below
    for slot in slots:
        select = selector(bank.switch, controller, timing, channel=channel_no, slot=slot + 1,
                          local=reach.index(slot) + 1)
        report = await bring_in(modem, select, expected_iccid=None, timing=timing)
        msisdn = source = None
        if report.ok:
            msisdn, source = await discover(modem, rules=config.ussd_numbers, numbers=config.numbers)
            row = SimRow(bank.name, slot, LEASABLE, report.iccid, report.imsi, report.operator, msisdn, source,
                         None if msisdn else "number unknown: no CNUM, USSD rule or config entry", run_id, time.time())
        else:
            status = SimStatus(report.failure.value) if report.failure else SimStatus.UNKNOWN
            row = SimRow(bank.name, slot, status, report.iccid or None, None, None, None, None, report.detail, run_id,
                         time.time())
        try:
            core.save_scanned(row)
        except StoreError as exc:
            log.error("scan.not_saved", bank=bank.name, slot=slot, error=str(exc))
            raise
        log.info("scan.slot", bank=bank.name, slot=slot + 1, status=row.status, source=source)
        progress.tick(failed=not report.ok)
