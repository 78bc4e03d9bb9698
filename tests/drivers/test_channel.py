"""The asyncio channel over a real pty, with the test playing the modem."""

from __future__ import annotations

import asyncio
import os
import time
import tty

import pytest

from drivers.at.protocol import Urc
from drivers.channel import AtChannel, CommandFailed, CommandTimeout, PortGone, Priority
from drivers.serial_port import PortOpenError
from tests.conftest import run


class FakeModemEnd:
    """The master side of a pty: reads what the channel wrote, writes what a modem would."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.received = bytearray()

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def read_until(self, marker: bytes, timeout: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.received:
            try:
                self.received += os.read(self.master, 4096)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"never received {marker!r}; got {bytes(self.received)!r}")
                await asyncio.sleep(0.005)
        head, _, tail = bytes(self.received).partition(marker)
        self.received = bytearray(tail)
        return head + marker

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


def make_channel(end: FakeModemEnd, urcs: list[Urc] | None = None, lost: list | None = None) -> AtChannel:
    channel = AtChannel(end.path, on_urc=(urcs.append if urcs is not None else lambda u: None),
                        on_lost=(lost.append if lost is not None else None))
    channel.open()
    return channel


def test_command_response_and_urc_in_the_middle():
    async def scenario():
        end = FakeModemEnd()
        urcs: list[Urc] = []
        channel = make_channel(end, urcs)
        task = asyncio.create_task(channel.command("AT+CMGR=1"))
        await end.read_until(b"AT+CMGR=1\r")
        end.write(b"\r\n^RSSI: 9\r\n\r\n+CMGR: 0,,5\r\n0011\r\n\r\nOK\r\n")
        response = await task
        assert response.lines == ("+CMGR: 0,,5", "0011")
        assert [u.line for u in urcs] == ["^RSSI: 9"]
        channel.close()
        end.close()

    run(scenario(), 10)


def test_error_result_raises_specific_error_with_port_and_command():
    async def scenario():
        end = FakeModemEnd()
        channel = make_channel(end)
        task = asyncio.create_task(channel.command("AT+CMGD=4"))
        await end.read_until(b"\r")
        end.write(b"\r\n+CMS ERROR: 321\r\n")
        with pytest.raises(CommandFailed) as info:
            await task
        assert info.value.cms == 321 and end.path in str(info.value) and "AT+CMGD=4" in str(info.value)
        channel.close()
        end.close()

    run(scenario(), 10)


def test_timeout_removes_waiter_and_late_ok_never_completes_next_command():
    async def scenario():
        end = FakeModemEnd()
        channel = make_channel(end)
        with pytest.raises(CommandTimeout):
            await channel.command("AT+CMGL=4", timeout=0.2)
        assert channel._waiter is None  # cleaned up in finally
        end.write(b"\r\n+CMGL: 1,0,,3\r\nABCDEF\r\n\r\nOK\r\n")  # the late answer
        await asyncio.sleep(0.05)
        task = asyncio.create_task(channel.command("AT+CSQ", timeout=2.0))
        await end.read_until(b"AT+CSQ\r")
        await asyncio.sleep(0.05)
        assert not task.done(), "a late OK completed the next command"
        end.write(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        response = await task
        assert response.lines == ("+CSQ: 20,99",)
        assert channel.stats.stray_lines >= 1 and channel.stats.timeouts == 1
        channel.close()
        end.close()

    run(scenario(), 10)


def test_port_vanishing_fails_the_waiter_at_once_and_the_queue():
    async def scenario():
        end = FakeModemEnd()
        lost: list = []
        channel = make_channel(end, lost=lost)
        first = asyncio.create_task(channel.command("AT+CSQ", timeout=30))
        second = asyncio.create_task(channel.command("AT+CREG?", timeout=30))
        await end.read_until(b"AT+CSQ\r")
        started = time.monotonic()
        end.close()  # unplug: the slave side now reads EIO
        with pytest.raises(PortGone):
            await first
        with pytest.raises(PortGone):
            await second
        assert time.monotonic() - started < 1.0
        assert len(lost) == 1 and not channel.is_open

    run(scenario(), 10)


def test_priority_order_when_the_channel_frees():
    async def scenario():
        end = FakeModemEnd()
        channel = make_channel(end)
        order: list[str] = []

        async def cmd(text: str, priority: Priority):
            await channel.command(text, priority=priority)
            order.append(text)

        busy = asyncio.create_task(cmd("AT+CGMI", Priority.NORMAL))
        await end.read_until(b"AT+CGMI\r")
        waiting = [asyncio.create_task(cmd(t, p)) for t, p in
                   (("AT+CSQ", Priority.BACKGROUND), ("AT+CMGR=1", Priority.SMS), ("AT", Priority.URGENT))]
        await asyncio.sleep(0.05)
        for expected in (b"AT+CGMI", b"AT", b"AT+CMGR=1", b"AT+CSQ"):
            if expected != b"AT+CGMI":
                await end.read_until(expected + b"\r")
            end.write(b"\r\nOK\r\n")
        await asyncio.gather(busy, *waiting)
        assert order == ["AT+CGMI", "AT", "AT+CMGR=1", "AT+CSQ"]
        channel.close()
        end.close()

    run(scenario(), 10)


def test_cancelled_command_releases_the_channel():
    async def scenario():
        end = FakeModemEnd()
        channel = make_channel(end)
        task = asyncio.create_task(channel.command("AT+COPS?", timeout=30))
        await end.read_until(b"\r")
        queued = asyncio.create_task(channel.command("AT+CSQ", timeout=30))
        await asyncio.sleep(0.02)
        queued.cancel()
        task.cancel()
        await asyncio.gather(task, queued, return_exceptions=True)
        assert channel._waiter is None
        ok = asyncio.create_task(channel.command("AT", timeout=2))
        await end.read_until(b"AT\r")
        end.write(b"\r\nOK\r\n")
        assert (await ok).result.ok
        channel.close()
        end.close()

    run(scenario(), 10)


def test_missing_device_is_a_clear_open_error():
    async def scenario():
        channel = AtChannel("/dev/does-not-exist-simgw", on_urc=lambda u: None)
        with pytest.raises(PortOpenError, match="/dev/does-not-exist-simgw"):
            channel.open()

    run(scenario(), 10)
