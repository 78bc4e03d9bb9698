"""A scripted modem on a real pty: answers each AT command from a per-model response table.

Modelled on python-gsmmodem's ``test/fakemodems.py`` (one table per real modem model, recorded
from the field): a test states what a real model sends, byte for byte, and the driver under test
talks to it through a real pseudo-terminal exactly as it talks to ``/dev/ttyUSB0``. The tables here
are written from public recordings; each test names its source next to the table it uses.

An answer is bytes, or a callable taking the peer and returning bytes (for answers that change
over time: a SIM busy for a few seconds, a radio that comes on after ``AT+CFUN=1``). ``None``
means "never answer" (a command the firmware swallows).
"""

from __future__ import annotations

import asyncio
import os
import time
import tty
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from drivers.sms.encode import DeliverSpec, encode_deliver

Answer = bytes | Callable[["ScriptedModem"], bytes | None] | None

OK = b"\r\nOK\r\n"


def ok(*lines: str) -> bytes:
    return b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines) + OK


def pdus(sender: str, text: str) -> list[str]:
    spec = DeliverSpec(sender=sender, text=text, concat_ref=1, ref_bits=8,
                       timestamp=datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc))
    return encode_deliver(spec)


def generic_table() -> dict[str, Answer]:
    """A plain 27.005/27.007 modem: the baseline each model's table overrides."""
    return {
        "AT": OK, "ATE0": OK, "AT+CMEE=2": OK, "AT+CMEE=1": OK,
        "AT+CGMI": ok("Generic"), "AT+CGMM": ok("Modem 1"), "AT+CGMR": ok("1.0"),
        "AT+CGSN": ok("356938035643809"), "AT+CIMI": ok("250991234567890"),
        "AT+CCID": ok("+CCID: 89701990000000000017"), "AT+CNUM": OK,
        "AT+CPIN?": ok("+CPIN: READY"), "AT+CFUN?": ok("+CFUN: 1"), "AT+CFUN=1": OK,
        "AT+CMGF=0": OK, "AT+CNMI=2,1,0,2,0": OK,
        "AT+CSQ": ok("+CSQ: 21,99"), "AT+CREG?": ok("+CREG: 0,1"), "AT+COPS?": ok('+COPS: 0,0,"SimNet",2'),
        "AT+CLAC": b"\r\nERROR\r\n",
    }


class ScriptedModem:
    """The master side of a pty, answering from ``table``; ``storage`` is the SIM's SMS memory."""

    def __init__(self, table: dict[str, Answer]) -> None:
        self.table = table
        self.storage: dict[int, str] = {}
        self.commands: list[str] = []
        self.echo = False  # V.250 echo (E1); ATE0 turns it off, as on a real modem
        self.started = time.monotonic()
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._buffer = bytearray()
        self._pending = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_on = False
        self._stream: Iterator[bytes] | None = None
        self.streamed = 0

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_readable)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.master)
            if self._writer_on:
                self._loop.remove_writer(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def count(self, command: str) -> int:
        return sum(1 for c in self.commands if c == command)

    # ------------------------------------------------------------------------------- the wire
    def send(self, data: bytes) -> None:
        """Write ``data`` to the driver (an unsolicited code, or part of an answer)."""
        self._pending += data
        self._flush()

    def stream(self, chunks: Iterator[bytes]) -> None:
        """Write ``chunks`` as fast as the pty takes them, pulling each only when the previous one
        is written, so that streaming 100 MB costs this process one chunk of memory."""
        self._stream = chunks
        self._refill()
        self._flush()

    def _refill(self) -> None:
        while self._stream is not None and len(self._pending) < 65536:
            chunk = next(self._stream, None)
            if chunk is None:
                self._stream = None
                break
            self.streamed += len(chunk)
            self._pending += chunk

    def _flush(self) -> None:
        while self._pending:
            try:
                written = os.write(self.master, self._pending)
            except BlockingIOError:
                written = 0
            except OSError:
                self._pending.clear()
                return
            del self._pending[:written]
            self._refill()
            if written == 0:
                break
        if self._pending and not self._writer_on and self._loop is not None:
            self._loop.add_writer(self.master, self._flush_writable)
            self._writer_on = True

    def _flush_writable(self) -> None:
        self._flush()
        self._refill()
        self._flush()
        if not self._pending and self._writer_on and self._loop is not None:
            self._loop.remove_writer(self.master)
            self._writer_on = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self._buffer += data
        while b"\r" in self._buffer:
            raw, _, rest = bytes(self._buffer).partition(b"\r")
            self._buffer = bytearray(rest)
            command = raw.decode("ascii", "replace").strip().lstrip("\n")
            if command:
                self._execute(command)

    # ------------------------------------------------------------------------------- commands
    def _execute(self, command: str) -> None:
        self.commands.append(command)
        if self.echo:
            self.send(command.encode() + b"\r")
        if command.upper() == "ATE0":
            self.echo = False
        answer = self.answer(command)
        if answer:
            self.send(answer)

    def answer(self, command: str) -> bytes | None:
        key = command.upper() if command.upper() in self.table else command
        if key in self.table:
            answer = self.table[key]
            return answer(self) if callable(answer) else answer
        if command.upper() == "AT+CMGL=4":
            return self.cmgl()
        if command.upper().startswith("AT+CMGR="):
            return self.cmgr(command)
        if command.upper().startswith("AT+CMGD="):
            self.storage.pop(int(command.split("=")[1].split(",")[0]), None)
            return OK
        if command.upper().startswith("AT+CPMS="):
            return ok(f"+CPMS: {len(self.storage)},30,{len(self.storage)},30,{len(self.storage)},30")
        return b"\r\nERROR\r\n"

    def cmgl(self) -> bytes:
        lines: list[str] = []
        for index, pdu in sorted(self.storage.items()):
            lines += [f"+CMGL: {index},0,,{len(pdu) // 2 - 8}", pdu]
        return ok(*lines)

    def cmgr(self, command: str) -> bytes:
        index = int(command.split("=")[1])
        pdu = self.storage.get(index)
        if pdu is None:
            return b"\r\n+CMS ERROR: 321\r\n"
        return ok(f"+CMGR: 0,,{len(pdu) // 2 - 8}", pdu)

    def store(self, sender: str, text: str, *, announce: bool = True) -> list[int]:
        """Put an SMS into storage as the network would; announce it with ``+CMTI``."""
        indexes = []
        for pdu in pdus(sender, text):
            index = next(i for i in _free(self.storage))
            self.storage[index] = pdu
            indexes.append(index)
            if announce:
                self.send(f'\r\n+CMTI: "SM",{index}\r\n'.encode())
        return indexes


def _free(storage: dict[int, str]) -> Iterator[int]:
    i = 0
    while True:
        if i not in storage:
            yield i
        i += 1


def after(seconds: float, before: Answer, then: Answer) -> Answer:
    """An answer that is ``before`` until ``seconds`` after the peer started, then ``then``."""

    def answer(peer: ScriptedModem) -> bytes | None:
        chosen = before if peer.elapsed() < seconds else then
        return chosen(peer) if callable(chosen) else chosen

    return answer
