"""A scripted modem in its own process that floods the driver during ``AT+CMGL=4``.

Run as ``python -m tests.drivers.flood_modem MEGABYTES``: prints its pty path, then answers like a
generic modem with one SMS stored. The first ``AT+CMGL=4`` is answered with MEGABYTES of garbage
without a line ending, then MEGABYTES of 2 KB ``+CMGL`` lines, then ``OK``; later listings are
normal. The streams are generated chunk by chunk and end by themselves (bounded), and since they
come from another process, the driver's process memory measures the driver alone.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator

from tests.drivers.scripted_modem import OK, ScriptedModem, generic_table

LINE = b"+CMGL: 1,0,,23\r\n" + b"A" * 2030 + b"\r\n"  # a header and a 2 KB line


def flood(megabytes: int) -> Iterator[bytes]:
    garbage = bytes(range(14, 128)) * 576  # ~64 KB without CR or LF
    total = megabytes << 20
    sent = 0
    while sent < total:
        yield garbage
        sent += len(garbage)
    yield b"\r\n"
    block = LINE * 32
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
    yield OK


async def main(megabytes: int) -> None:
    table = generic_table()
    state = {"flooded": False}

    def listing(peer: ScriptedModem) -> bytes | None:
        if state["flooded"]:
            return peer.cmgl()
        state["flooded"] = True
        peer.stream(flood(megabytes))
        return None

    table["AT+CMGL=4"] = listing
    peer = ScriptedModem(table)
    peer.store("+79160000015", "stored under the flood", announce=False)
    peer.start()
    print(peer.path, flush=True)
    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096) and not closed.done():
            closed.set_result(None)  # the test closed our stdin: stop

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await closed
    peer.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
