"""The ingest hand-off over a real core thread and SQLite file: parts that queue while a batch is
on the core thread go in the next batch (one transaction), every waiting driver hears the answer,
a refusal included, and a core thread that is gone fails the part instead of hanging it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from drivers.modem import ModemIdentity, ReceivedPart
from drivers.sms.encode import DeliverSpec, encode_deliver
from drivers.sms.pdu import decode_pdu
from gateway.config import LeaseConfig
from gateway.core import GatewayCore
from gateway.runtime.faults import CrashPoints
from gateway.runtime.ingest import Ingest
from gateway.runtime.nudges import Nudges
from gateway.store import Store, StoreError

ICCID, NUMBER = "89701000000000000013", "+79000000001"


def part(text: str, second: int) -> ReceivedPart:
    pdu = encode_deliver(DeliverSpec("+79161234567", text, timestamp=datetime(2026, 11, 26, 10, 0, second,
                                                                             tzinfo=timezone.utc)))[0]
    return ReceivedPart("/dev/ttyUSB0", ModemIdentity(iccid=ICCID, msisdn=NUMBER), "SM", 1, pdu, decode_pdu(pdu),
                        None, datetime.now(timezone.utc), 0.0)


class CoreThread:
    """The daemon's core thread (one worker) with Gateway.submit's contract; records each batch and
    can be held, so that parts queue behind the batch in flight."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-core")
        self.batches: list[int] = []
        self.hold = threading.Event()
        self.hold.set()

    def submit(self, fn, args, done) -> None:
        loop = asyncio.get_running_loop()
        self.batches.append(len(args[0]))

        def work() -> None:
            self.hold.wait(10)
            try:
                result, error = fn(*args), None
            except BaseException as exc:
                result, error = None, exc
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, result, error)

        self.executor.submit(work)

    def run(self, fn):
        """``fn()`` on the core thread (the store belongs to it), waited for."""
        return self.executor.submit(fn).result(10)


@pytest.fixture
def thread():
    thread = CoreThread()
    yield thread
    thread.hold.set()
    thread.executor.shutdown()


@pytest.fixture
def core(tmp_path, thread):
    def setup() -> GatewayCore:
        store = Store(str(tmp_path / "simgw.db"))
        store.open()
        core = GatewayCore(store, LeaseConfig())
        core.start()
        core.bind_sim("/dev/ttyUSB0", ICCID, NUMBER, True)
        core.open_lease("L1", NUMBER, "telegram")
        return core

    core = thread.run(setup)
    yield core
    thread.run(core.store.close)


def texts(thread: CoreThread, core: GatewayCore) -> list[str]:
    return sorted(m.text for m in thread.run(core.store.messages))


def make_ingest(core: GatewayCore, thread: CoreThread) -> Ingest:
    async def nothing() -> None:
        return None

    return Ingest(core, thread.submit, Nudges(), CrashPoints({}), configured_msisdn={}, wake_at=lambda: 0.0,
                  after_delivery=nothing)


def test_parts_that_queue_behind_a_batch_go_together_in_the_next_one(core, thread):
    asyncio.run(_parts_that_queue_behind_a_batch_go_together_in_the_next_one(core, thread))


async def _parts_that_queue_behind_a_batch_go_together_in_the_next_one(core, thread):
    ingest = make_ingest(core, thread)
    thread.hold.clear()
    writes = core.store.writes
    first = asyncio.ensure_future(ingest.sink(part("code 0", 0)))
    await asyncio.sleep(0.01)
    rest = [asyncio.ensure_future(ingest.sink(part(f"code {n}", n))) for n in range(1, 6)]
    await asyncio.sleep(0.01)
    assert thread.batches == [1] and not first.done()  # the rest wait for the batch in flight
    thread.hold.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 10)
    assert thread.batches == [1, 5]
    assert core.store.writes - writes == 2  # two transactions for six parts
    assert texts(thread, core) == sorted(f"code {n}" for n in range(6))


def test_a_refused_batch_fails_every_waiting_part_and_the_next_is_stored(core, thread):
    asyncio.run(_a_refused_batch_fails_every_waiting_part_and_the_next_is_stored(core, thread))


async def _a_refused_batch_fails_every_waiting_part_and_the_next_is_stored(core, thread):
    ingest = make_ingest(core, thread)
    thread.run(lambda: core.store.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON messages"
                                             " BEGIN SELECT RAISE(FAIL, 'disk full'); END"))
    thread.hold.clear()
    waiting = [asyncio.ensure_future(ingest.sink(part(f"code {n}", n))) for n in range(3)]
    await asyncio.sleep(0.01)
    thread.hold.set()
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(isinstance(outcome, (StoreError, sqlite3.Error)) for outcome in outcomes), outcomes
    assert texts(thread, core) == []  # not stored, so the drivers keep them on the SIM
    thread.run(lambda: core.store.db.execute("DROP TRIGGER refuse"))
    await asyncio.wait_for(ingest.sink(part("code 9", 9)), 10)  # no task died: the next part goes
    assert texts(thread, core) == ["code 9"]


def test_a_part_for_a_core_thread_that_is_gone_fails_at_once(core, thread):
    asyncio.run(_a_part_for_a_core_thread_that_is_gone_fails_at_once(core, thread))


async def _a_part_for_a_core_thread_that_is_gone_fails_at_once(core, thread):
    gone = CoreThread()
    gone.executor.shutdown()
    ingest = make_ingest(core, gone)
    with pytest.raises(StoreError, match="core thread is gone"):
        await asyncio.wait_for(ingest.sink(part("code 1", 1)), 5)
    assert texts(thread, core) == []
