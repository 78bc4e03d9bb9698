"""Shared test helpers: run asyncio code from plain tests, and a farm + driver harness on real ptys."""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from drivers.modem import Modem, ModemOptions, ReceivedPart
from drivers.simulator.farm import ModemFarm
from drivers.sms.assembly import SmsAssembler
from drivers.sms.pdu import SmsDeliver
from gateway import logs

FAST = ModemOptions(command_timeout=1.0, list_timeout=5.0, health_interval=1.0, sweep_interval=2.0,
                    reopen_initial=0.1, reopen_max=0.5, empty_read_retries=(0.05, 0.1, 0.3))


# The longest tests (30-90 s of real-time waiting each), started first so that under pytest-xdist
# (pyproject's addopts) they run side by side from the start instead of one of them ending the run
# alone; a renamed one only loses its place, nothing else.
LONGEST_FIRST = (
    "tests/reliability/test_soak.py",
    "tests/gateway/test_crash.py",
    "tests/gateway/test_uplink_soak.py",
    "tests/gateway/test_smshub_soak.py",
    "tests/gateway/test_hostile_market.py::test_a_command_flood",
    "tests/drivers/test_quirk_soup.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as in a terminal for the commands the tests start and interrupt (``simgw sims scan``).

    A shell without job control starts a background command (``pytest ... &``, nohup, some CI
    runners) with SIGINT ignored, and every child inherits that: the scan would never see its
    Ctrl-C and the test would fail for the way it was started, not for the code."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the run for the parallel workers: the longest tests, each followed by a fast one, then
    the rest marked ``slow``, then the fast ones (each group in its usual order).

    xdist's ``--dist load`` hands every worker its first two tests at once (``--maxschedchunk 1``
    keeps it at two): with a fast test after each long one, the long ones start on different workers.
    """

    def longest_rank(item: pytest.Item) -> int | None:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), None)

    longest = sorted((item for item in items if longest_rank(item) is not None), key=longest_rank)
    slow = [item for item in items if longest_rank(item) is None and item.get_closest_marker("slow")]
    fast = [item for item in items if longest_rank(item) is None and not item.get_closest_marker("slow")]
    paired = [test for i, long in enumerate(longest) for test in (long, *fast[i:i + 1])]
    items[:] = paired + slow + fast[len(longest):]


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs():
    logs.configure(json_lines=True, level="warning")


def run(coro: Awaitable, timeout: float = 120.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(step)


class Harness:
    """A farm of simulated modems with the real driver on each, counting what reaches the sink."""

    def __init__(self, count: int, *, options: ModemOptions = FAST, profile: str = "mixed",
                 sink_hook: Callable[[ReceivedPart], Awaitable[None]] | None = None, **farm_kwargs) -> None:
        self.farm = ModemFarm(count, profile=profile, **farm_kwargs)
        self.options = options
        self.assembler = SmsAssembler()
        self.messages: collections.Counter[tuple[str, str]] = collections.Counter()
        self.arrival_times: dict[tuple[str, str], float] = {}
        self.parts_seen: list[ReceivedPart] = []
        self.bad_parts: list[ReceivedPart] = []
        self._sink_hook = sink_hook
        self.modems: list[Modem] = []
        self._tasks: list[asyncio.Task] = []

    async def sink(self, part: ReceivedPart) -> None:
        if self._sink_hook is not None:
            await self._sink_hook(part)
        self.parts_seen.append(part)
        if not isinstance(part.sms, SmsDeliver):
            self.bad_parts.append(part)
            return
        done = self.assembler.add(part.port, part.sms, time.monotonic())
        if done is not None:
            key = (part.port, done.text)
            self.messages[key] += 1
            self.arrival_times.setdefault(key, time.monotonic())

    async def __aenter__(self) -> "Harness":
        await self.farm.start()
        self.modems = [Modem(m.link_path, self.sink, options=self.options) for m in self.farm.modems]
        self._tasks = [asyncio.create_task(m.run()) for m in self.modems]
        await asyncio.wait_for(asyncio.gather(*(m.ready.wait() for m in self.modems)), 30)
        return self

    async def __aexit__(self, *exc) -> None:
        for modem in self.modems:
            modem.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.farm.stop()

    def port(self, i: int) -> str:
        return self.farm.modems[i].link_path

    def count(self, i: int, text: str) -> int:
        return self.messages[(self.port(i), text)]

    async def expect(self, items: list[tuple[int, str]], timeout: float = 10.0) -> None:
        """Wait until each (modem, text) has arrived, then check it arrived exactly once."""
        await wait_until(lambda: all(self.count(i, t) >= 1 for i, t in items), timeout,
                         f"{sum(1 for i, t in items if self.count(i, t) == 0)} of {len(items)} SMS")
        dupes = [(i, t[:30]) for i, t in items if self.count(i, t) != 1]
        assert not dupes, f"delivered more than once: {dupes[:5]}"
