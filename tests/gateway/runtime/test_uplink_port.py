"""The uplink's port: committed outbox rows reach the sender on the event loop's thread, with the
answer of the core call that committed them, and are held only while a session is up."""

from __future__ import annotations

import threading

from gateway.runtime.uplink_port import FreshRows
from tests.conftest import run, wait_until
from tests.gateway.uplink_env import Rig


def _rows(first: int, count: int) -> list[tuple[int, str, dict]]:
    return [(seq, "sms", {"msg_id": f"m{seq}"}) for seq in range(first, first + count)]


def test_fresh_rows_follow_the_sent_seq_without_a_gap_or_send_the_sender_to_the_store():
    fresh = FreshRows(cap=8)
    fresh.add(_rows(1, 3))
    assert fresh.rows == ()  # no session up: nothing held (texts wait on disk only)
    fresh.keep(True)
    fresh.add(_rows(4, 3))
    assert fresh.after(0, 10) is None  # 1..3 are not here: the store has them
    assert [r[0] for r in fresh.after(3, 2)] == [4, 5] and [r[0] for r in fresh.after(5, 10)] == [6]
    fresh.add(_rows(7, 10))  # over the cap: 7 and 8 dropped, oldest first
    assert fresh.after(6, 10) is None and [r[0] for r in fresh.after(8, 10)] == list(range(9, 17))
    fresh.add(_rows(17, 2))
    fresh.keep(False)
    assert fresh.rows == ()  # the session ended: what was not sent is read from the store next time


def test_committed_rows_are_handed_to_the_uplink_on_the_event_loops_thread_not_the_core_thread(tmp_path, monkeypatch):
    threads: list[int] = []
    add = FreshRows.add

    def recorded(fresh: FreshRows, rows: list) -> None:
        threads.append(threading.get_ident())
        add(fresh, rows)

    monkeypatch.setattr(FreshRows, "add", recorded)

    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            loop_thread = threading.get_ident()
            await rig.open("deal-t", rig.numbers()[0])
            for n in range(3):
                rig.farm.send_sms(0, "Service", f"thread #{n}")
            await wait_until(lambda: len(rig.market.sms("deal-t")) == 3, 10, "the SMS at the marketplace")
            assert threads and set(threads) == {loop_thread}, (threads, loop_thread)

    run(scenario(), 60)


def test_while_a_session_is_up_each_sms_reaches_the_sender_without_a_round_trip_to_the_store(tmp_path):
    """The committed rows come back with the answer of the core call that committed them: the
    sender never asks the store for them (one core round trip per SMS saved; a caller that ran
    core work without Gateway.on_core would send the sender to the store every time)."""
    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            port = rig.gateway.uplink_port
            await rig.open("deal-f", rig.numbers()[0])
            rig.farm.send_sms(0, "Service", "warm-up")
            await wait_until(lambda: len(rig.market.sms("deal-f")) == 1, 10, "the first SMS")
            store_reads = []
            outbox_after = port.outbox_after

            async def counted(seq: int, limit: int) -> list:
                store_reads.append(seq)
                return await outbox_after(seq, limit)

            port.outbox_after = counted
            for n in range(5):
                rig.farm.send_sms(0, "Service", f"fresh #{n}")
                await wait_until(lambda: len(rig.market.sms("deal-f")) == n + 2, 10, "the SMS at the marketplace")
            assert store_reads == []

    run(scenario(), 60)
