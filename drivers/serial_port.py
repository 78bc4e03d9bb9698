"""An asyncio serial port over pyserial, without a thread per port.

pyserial opens and configures the device (termios, exclusive lock); after that its file
descriptor is registered with the event loop and read with ``os.read`` when readable, so 64 ports
cost 64 descriptors, not 64 threads. A port that vanishes (EIO when a USB modem is unplugged, EOF
when a pty's other side closes) is reported once through ``on_lost``; it never hangs a reader.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable

import serial

READ_CHUNK = 4096


class PortOpenError(OSError):
    """The device could not be opened (missing, busy, no permission); the message says which."""


class SerialPort:
    def __init__(
        self,
        path: str,
        *,
        baudrate: int = 115200,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[Exception | None], None],
    ) -> None:
        self.path = path
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._serial: serial.Serial | None = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._write_buffer = bytearray()
        self._writer_registered = False
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            port = serial.Serial(self.path, self.baudrate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PortOpenError(f"cannot open {self.path}: {exc}") from None
        self._serial = port
        self._fd = port.fileno()
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._on_readable)

    def write(self, data: bytes) -> None:
        if not data or self._fd is None:
            return
        if self._write_buffer:
            self._write_buffer += data
            return
        try:
            written = os.write(self._fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._lost(exc)
            return
        self.bytes_out += written
        if written < len(data):
            self._write_buffer += data[written:]
            self._register_writer()

    def close(self) -> None:
        """Close without reporting loss (the owner asked for it)."""
        self._teardown()

    # -------------------------------------------------------------------------------- internals
    def _register_writer(self) -> None:
        if not self._writer_registered and self._fd is not None and self._loop is not None:
            self._loop.add_writer(self._fd, self._on_writable)
            self._writer_registered = True

    def _on_writable(self) -> None:
        if self._fd is None:
            return
        try:
            written = os.write(self._fd, self._write_buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        self.bytes_out += written
        del self._write_buffer[:written]
        if not self._write_buffer and self._loop is not None:
            self._loop.remove_writer(self._fd)
            self._writer_registered = False

    def _on_readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc if exc.errno != errno.EIO else OSError(errno.EIO, f"{self.path} vanished (EIO)"))
            return
        if not data:
            self._lost(OSError(errno.ENODEV, f"{self.path}: end of file"))
            return
        self.bytes_in += len(data)
        self._on_data(data)

    def _lost(self, exc: Exception | None) -> None:
        if self._fd is None:
            return
        self._teardown()
        self._on_lost(exc)

    def _teardown(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self._loop is not None:
            self._loop.remove_reader(fd)
            if self._writer_registered:
                self._loop.remove_writer(fd)
                self._writer_registered = False
        self._write_buffer.clear()
        if self._serial is not None:
            try:
                self._serial.close()
            except (OSError, serial.SerialException):
                pass
            self._serial = None
