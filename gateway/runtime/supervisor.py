"""Owns the daemon's long-lived tasks: none may die silently.

Every task the daemon starts (lease timers, port rescan, a driver per modem, ingest, the uplink,
the HTTP server) runs under :meth:`Supervisor.start`. A failure is logged once, with the task's
name and the error, and the task is started again after a backoff (tenacity's exponential with
jitter, capped at ``backoff_max`` so a retry comes at least that often). A *transient* failure
(the store refused a commit: a full or read-only disk) is retried for as long as it lasts, since
restarting the process cures nothing and the SMS wait on the SIM meanwhile. Any other failure
that comes back ``max_failures`` times within ``window`` seconds means a restart of the task
does not help: the supervisor gives up, :attr:`gave_up` is set, :meth:`healthy` turns false (the
watchdog stops being pinged) and the daemon exits non-zero so systemd restarts it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential, wait_random

log = structlog.get_logger("gateway.supervisor")


class InjectedFault(RuntimeError):
    """A task failure injected on purpose (``SIMGW_FAULT_DIR/fail_task``), for tests and the soak."""


@dataclass(frozen=True, slots=True)
class SupervisionPolicy:
    max_failures: int = 5  # non-transient failures within ``window`` that make the daemon give up
    window: float = 300.0
    backoff_initial: float = 0.5
    backoff_max: float = 5.0  # a failed task is tried again at least this often


class Supervisor:
    def __init__(self, policy: SupervisionPolicy = SupervisionPolicy(), *,
                 transient: tuple[type[BaseException], ...] = (),
                 fault: Callable[[str], str | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._transient = transient
        self._fault = fault  # the fault injection: an error message for a task name, or None
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._serial = 0
        self.failures: collections.Counter[str] = collections.Counter()  # by task name, for /metrics
        self.gave_up = asyncio.Event()
        self.reason: str | None = None  # why it gave up

    def healthy(self) -> bool:
        return not self.gave_up.is_set()

    @property
    def names(self) -> list[str]:
        return list(self._tasks)

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        """Run ``factory()`` until it returns (its work is done) or the supervisor stops; on a
        failure, call it again after a backoff. ``factory`` is called afresh for every try."""
        if name in self._tasks:
            self._serial += 1
            name = f"{name}#{self._serial}"
        task = asyncio.get_running_loop().create_task(self._supervise(name, factory), name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda _: self._tasks.pop(name, None))
        return task

    async def stop(self, timeout: float = 5.0) -> list[str]:
        """Cancel every task and wait up to ``timeout`` for them; a task that swallowed its
        cancellation is cancelled once more, then named in the log and left behind, so stopping
        is bounded. Returns the names of those that did not stop."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if not tasks:
            return []
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            _, pending = await asyncio.wait(pending, timeout=1.0)
        stuck = sorted(task.get_name() for task in pending)
        if stuck:
            log.error("task.did_not_stop", tasks=stuck, timeout_s=timeout,
                      stacks=[_where(task) for task in pending][:5])
        return stuck

    # ------------------------------------------------------------------------------- internals
    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        recent: collections.deque[float] = collections.deque()
        logged: set[str] = set()

        def give_up(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            if error is None or isinstance(error, self._transient):
                return False
            now = self._clock()
            recent.append(now)
            while recent and recent[0] < now - self.policy.window:
                recent.popleft()
            return len(recent) >= self.policy.max_failures

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.failures[name] += 1
            kind = type(error).__name__
            first = kind not in logged  # the traceback once per kind of failure; then one line each
            logged.add(kind)
            event = "task.retrying" if isinstance(error, self._transient) else "task.failed"
            context = {"task": name, "error": f"{kind}: {error}"[:300], "attempt": state.attempt_number,
                       "recent_failures": len(recent),
                       "retry_in": round(state.next_action.sleep, 2) if state.next_action else None}
            if first and not isinstance(error, self._transient):
                context["exc_info"] = error
            log.error(event, **context)

        retrying = AsyncRetrying(wait=self._wait, stop=give_up, before_sleep=before_sleep, reraise=True,
                                 retry=retry_if_exception(lambda e: not isinstance(e, asyncio.CancelledError)))
        try:
            async for attempt in retrying:
                with attempt:
                    await self._run_once(name, factory)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures[name] += 1
            self.reason = f"task {name} failed {len(recent)} times within {self.policy.window:.0f} s: " \
                          f"{type(exc).__name__}: {exc}"[:400]
            log.critical("task.gave_up", task=name, error=f"{type(exc).__name__}: {exc}"[:300],
                         failures=len(recent), window_s=self.policy.window,
                         consequence="the watchdog is no longer pinged; the daemon exits for systemd to restart it")
            self.gave_up.set()

    async def _run_once(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        fault = self._fault(name) if self._fault is not None else None
        if fault is not None:
            raise InjectedFault(fault)
        await factory()

    def _wait(self, state: RetryCallState) -> float:
        """Exponential with jitter, never longer than ``backoff_max``."""
        p = self.policy
        backoff = wait_exponential(multiplier=p.backoff_initial, max=p.backoff_max) + wait_random(0, p.backoff_initial)
        return min(backoff(state), p.backoff_max)


def _where(task: asyncio.Task) -> str:
    """Where a task is suspended: its innermost frame."""
    frames = task.get_stack()
    return f"{task.get_name()}: {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else task.get_name()
