"""A simulated modem on a real pseudo-terminal: the asyncio shell around :class:`SimModem`.

The driver opens the pty's slave side with pyserial exactly as it opens ``/dev/ttyUSB0``. A stable
symlink (like ``/dev/serial/by-id/...``) points at the current slave, so an unplug/replug gives a
new ``/dev/pts/N`` behind the same name, as udev does. Timing faults (silence, slow answers,
reboot time, baud-rate pacing) live here, since the engine has no clock.
"""

from __future__ import annotations

import asyncio
import os
import termios
import time
import tty
from collections.abc import Callable

from drivers.simulator.engine import SimModem


class PtyModem:
    def __init__(
        self,
        engine: SimModem,
        link_path: str,
        *,
        baud: int | None = None,
        time_scale: float = 1.0,
        periodic_interval: float | None = None,
        on_wire: Callable[[str, float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.link_path = link_path
        self.baud = baud
        self.time_scale = time_scale
        self.periodic_interval = periodic_interval
        self._on_wire = on_wire
        self._master: int | None = None
        self._slave: int | None = None
        self._held_slave: int | None = None
        self.slave_path: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._silent_until = 0.0
        self.delay = 0.0
        self._out_queue: asyncio.Queue[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._quirk_task: asyncio.Task[None] | None = None
        self.bytes_to_host = 0
        self.on_boot: Callable[[], None] | None = None  # e.g. a bank's SIM registers some time after boot

    @property
    def plugged(self) -> bool:
        return self._master is not None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.power_on()  # quirks that shape the boot (radio off, SIM busy) start their clock now
        self._plug()
        self._out_queue = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._writer(), name=f"sim-writer:{self.link_path}"))
        if self.periodic_interval:
            self._tasks.append(asyncio.create_task(self._periodic(), name=f"sim-periodic:{self.link_path}"))
        self.ensure_quirk_ticks()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        self._quirk_task = None
        self._unplug()
        try:
            os.unlink(self.link_path)
        except FileNotFoundError:
            pass

    # ---------------------------------------------------------------------------- network side
    def deliver(self, pdu_hex: str) -> bool:
        held = self.engine.deliver(pdu_hex)
        self.flush()
        return held

    def flush(self) -> None:
        """Send whatever the engine has produced (responses, URCs)."""
        data = self.engine.data_to_send()
        if data and self._out_queue is not None:
            self._out_queue.put_nowait(data)

    # ---------------------------------------------------------------------------------- faults
    def silence(self, seconds: float) -> None:
        self._silent_until = time.monotonic() + seconds

    def garbage(self, data: bytes) -> None:
        self.engine.emit_garbage(data)
        self.flush()

    def reboot(self, seconds: float | None = None) -> None:
        self.engine.start_reboot()
        self._schedule_boot(seconds)

    def _schedule_boot(self, seconds: float | None) -> None:
        assert self._loop is not None
        delay = (seconds if seconds is not None else 2.0) * self.time_scale
        self._loop.call_later(delay, self._boot_done)

    def _boot_done(self) -> None:
        self.engine.finish_reboot()
        self.flush()
        if self.on_boot is not None:
            self.on_boot()

    def unplug(self) -> None:
        """The device disappears. Its old tty number stays taken until the replug, as the kernel
        keeps ttyUSB0 while the old node is still referenced, so the device comes back as a new
        number behind the same stable name."""
        self._held_slave, self._slave = self._slave, None
        self._unplug()

    def replug(self) -> None:
        if self._master is None:
            self._plug()
        if self._held_slave is not None:
            os.close(self._held_slave)
            self._held_slave = None

    # ------------------------------------------------------------------------------- internals
    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)
        tty.setraw(master, termios.TCSANOW)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        tmp = self.link_path + ".new"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(self.slave_path, tmp)
        os.replace(tmp, self.link_path)
        assert self._loop is not None
        self._loop.add_reader(master, self._on_readable)

    def _unplug(self) -> None:
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        if master is not None:
            if self._loop is not None:
                self._loop.remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no one has the slave open: nothing to read
        if not data or time.monotonic() < self._silent_until:
            return
        self.engine.receive_data(data)
        if self.engine.reboot_requested:
            self.engine.reboot_requested = False
            self.flush()
            self._schedule_boot(None)
        self.flush()

    async def _writer(self) -> None:
        assert self._out_queue is not None
        while True:
            data = await self._out_queue.get()
            if self.delay:
                await asyncio.sleep(self.delay)
            if time.monotonic() < self._silent_until:
                continue
            await self._write_paced(data)

    async def _write_paced(self, data: bytes) -> None:
        chunk = 64 if self.baud else len(data)
        for start in range(0, len(data), chunk):
            piece = data[start:start + chunk]
            if self.baud:
                await asyncio.sleep(len(piece) * 10 / self.baud)  # 8N1: ten bits per byte
            self._write(piece)

    def _write(self, data: bytes) -> None:
        master = self._master
        if master is None:
            return
        view = memoryview(data)
        stalls = 0
        while view:
            try:
                written = os.write(master, view)
            except BlockingIOError:
                stalls += 1
                if stalls > 50:
                    return  # the host stopped reading: overrun, as a real UART drops bytes
                time.sleep(0.001)
                continue
            except OSError:
                return
            view = view[written:]
        self.bytes_to_host += len(data)
        if self._on_wire is not None:
            self._on_wire(data.decode("ascii", errors="replace"), time.monotonic())

    def ensure_quirk_ticks(self) -> None:
        """Start the quirk clock once the engine has quirks (at start, or when given them later)."""
        if self.engine.quirks is not None and self._quirk_task is None and self._loop is not None:
            self._quirk_task = asyncio.create_task(self._quirk_ticks(), name=f"sim-quirks:{self.link_path}")
            self._tasks.append(self._quirk_task)

    async def _quirk_ticks(self) -> None:
        """Catalogue quirks with a clock (chatter, a SIM or SMS stack that needs time) get a tick."""
        while True:
            await asyncio.sleep(0.1)
            if self._master is not None:
                self.engine.quirk_tick()
                self.flush()

    async def _periodic(self) -> None:
        assert self.periodic_interval is not None
        while True:
            await asyncio.sleep(self.periodic_interval)
            if self._master is not None:
                self.engine.periodic()
                self.flush()
