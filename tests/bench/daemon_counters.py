"""Run ``simgw`` with counters of what the process does, for a cost-per-SMS breakdown.

    python tests/bench/daemon_counters.py OUT.jsonl [simgw arguments...]

The counters are bumped by wrappers around asyncio's and concurrent.futures' own methods, so the
daemon's code is untouched: event-loop iterations (one epoll call each), split into
wake-ups (the loop slept, then I/O or a timer woke it) and polls that did not sleep because
callbacks were ready; timers that fired, by who armed them; callbacks run; tasks created; work
handed to another thread (``ThreadPoolExecutor.submit``, by thread-name prefix: ``simgw-core``
is the core thread, ``asyncio`` the default executor of ``to_thread``); the uplink's WebSocket
frames sent and received and the TCP ``send()`` calls; results handed back
(``call_soon_threadsafe``); the self-pipe writes that wake the loop from another thread; and
the core thread's own CPU in ingest calls and in their COMMITs (with the COMMITs' wall time).
Each SIGUSR1 appends one JSON line of the totals so far (and the process's CPU seconds) to
OUT.jsonl; ``bench_e2e.py --count`` takes the difference across its load window and divides by
the SMS sent. The wrappers cost CPU themselves: take CPU per SMS from a run without them.
"""

from __future__ import annotations

import asyncio.base_events
import asyncio.events
import asyncio.selector_events
import collections
import cProfile
import json
import os
import selectors
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class Counters:
    """Totals bumped from any thread (the core thread hands results back through the loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: collections.Counter[str] = collections.Counter()

    def bump(self, key: str, amount: float = 1) -> None:
        with self._lock:
            self.totals[key] += amount

    def wrap(self, owner: type, name: str, key: str) -> None:
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.bump(key)
            return original(*args, **kwargs)

        setattr(owner, name, counted)

    def install(self) -> None:
        self.wrap(asyncio.base_events.BaseEventLoop, "_run_once", "loop_iterations")
        self.wrap(asyncio.events.Handle, "_run", "callbacks_run")
        self.wrap(asyncio.base_events.BaseEventLoop, "create_task", "tasks_created")
        self.wrap(asyncio.base_events.BaseEventLoop, "call_soon_threadsafe", "call_soon_threadsafe")
        self.wrap(asyncio.selector_events.BaseSelectorEventLoop, "_write_to_self", "loop_woken_by_thread")
        submit = ThreadPoolExecutor.submit

        def counted_submit(executor: ThreadPoolExecutor, *args, **kwargs):
            self.bump(f"submit[{executor._thread_name_prefix or 'pool'}]")
            return submit(executor, *args, **kwargs)

        ThreadPoolExecutor.submit = counted_submit  # type: ignore[method-assign]
        select = selectors.EpollSelector.select

        def counted_select(selector: selectors.EpollSelector, timeout: float | None = None):
            ready = select(selector, timeout)
            if timeout is not None and timeout <= 0:
                self.bump("polls_without_sleeping")  # callbacks were ready: the loop did not sleep
            else:
                self.bump("wakeups_io" if ready else "wakeups_timer")
            return ready

        selectors.EpollSelector.select = counted_select  # type: ignore[method-assign]
        timer_run = asyncio.events.TimerHandle._run

        def counted_timer(handle: asyncio.events.TimerHandle):
            self.bump(f"timer[{_timer_owner(handle)}]")
            return timer_run(handle)

        asyncio.events.TimerHandle._run = counted_timer  # type: ignore[method-assign]
        self._count_the_wire()
        self._time_the_core()

    def _count_the_wire(self) -> None:
        """WebSocket frames sent and received by the daemon (the uplink; the control API is HTTP)
        and every TCP ``send()`` call (a system call each; the modems are ptys: ``os.write``)."""
        import socket

        from websockets.asyncio.connection import Connection

        counters, send, recv, sock_send = self, Connection.send, Connection.recv, socket.socket.send

        async def counted_send(connection, message, *args, **kwargs):
            counters.bump("ws_frames_sent")
            return await send(connection, message, *args, **kwargs)

        async def counted_recv(connection, *args, **kwargs):
            message = await recv(connection, *args, **kwargs)
            counters.bump("ws_frames_received")
            return message

        def counted_sock_send(sock, *args, **kwargs):
            if sock.family != socket.AF_UNIX:  # not the loop's self-pipe (loop_woken_by_thread)
                counters.bump("tcp_send_calls")
            return sock_send(sock, *args, **kwargs)

        Connection.send = counted_send  # type: ignore[method-assign]
        Connection.recv = counted_recv  # type: ignore[method-assign]
        socket.socket.send = counted_sock_send  # type: ignore[method-assign]

    def _time_the_core(self) -> None:
        """CPU and wall time of the core thread's ingest calls and of each COMMIT in them (fsync:
        synchronous=FULL), measured with the calling thread's own clock."""
        from gateway.core import GatewayCore
        from gateway.store import Store

        counters, ingest_many, store_open = self, GatewayCore.ingest_many, Store.open
        profile_to = os.environ.get("SIMGW_BENCH_PROFILE_CORE")  # cProfile of the ingest calls alone
        profiler = cProfile.Profile() if profile_to else None

        def timed_ingest(core, parts):
            cpu = time.thread_time()
            if profiler is not None:
                profiler.enable()
            try:
                return ingest_many(core, parts)
            finally:
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile_to)
                counters.bump("core_ingest_cpu_ms", (time.thread_time() - cpu) * 1000)

        def timed_open(store) -> None:
            store_open(store)
            store._db = _TimedCommits(store._db, counters)

        GatewayCore.ingest_many = timed_ingest  # type: ignore[method-assign]
        Store.open = timed_open  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = dict(self.totals)
        out["cpu_ms"] = time.process_time() * 1000  # every thread of the process
        out["at"] = time.monotonic()
        return out


class _TimedCommits:
    """The store's sqlite3 connection, timing COMMIT statements; everything else passes through."""

    def __init__(self, db, counters: Counters) -> None:
        self._db, self._counters = db, counters

    def execute(self, sql, *args):
        if sql != "COMMIT":
            return self._db.execute(sql, *args)
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return self._db.execute(sql, *args)
        finally:
            self._counters.bump("commit_cpu_ms", (time.thread_time() - cpu) * 1000)
            self._counters.bump("commit_wall_ms", (time.perf_counter() - wall) * 1000)

    def __getattr__(self, name: str):
        return getattr(self._db, name)


def _timer_owner(handle: asyncio.events.TimerHandle) -> str:
    """Who armed a timer that fired: its callback, or for a sleep (or a wait_for's timeout) the
    innermost coroutine of the task waiting on it."""
    callback = handle._callback
    name = getattr(callback, "__qualname__", type(callback).__name__)
    future = handle._args[0] if handle._args else None
    for waiter, _ in getattr(future, "_callbacks", None) or ():
        task = getattr(waiter, "__self__", None)
        if isinstance(task, asyncio.Task):
            chain, coro = [], task.get_coro()
            while coro is not None and hasattr(coro, "cr_code"):
                chain.append(coro.cr_code.co_qualname)
                coro = coro.cr_await
            return f"{name} <- " + " > ".join(chain[-2:])
    return name


def main() -> int:
    out_path, argv = sys.argv[1], sys.argv[2:]
    counters = Counters()
    counters.install()

    def dump(signum, frame) -> None:
        with open(out_path, "a") as fh:
            fh.write(json.dumps(counters.snapshot()) + "\n")

    signal.signal(signal.SIGUSR1, dump)
    from gateway.cli import main as simgw

    return simgw(argv)


if __name__ == "__main__":
    sys.exit(main())
