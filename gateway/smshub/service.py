"""The hub's side of the daemon, wired: the desk on the core thread, the agent endpoint and the
PUSH_SMS sender on the event loop. The Gateway gives it three things only: a way to run a
function on the core thread, a way to start an owned long-lived task, and a coroutine to run
after each decision (bank switches, timers, the simgw.v1 inventory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from gateway.config import Config
from gateway.core import GatewayCore
from gateway.smshub.agent import HubAgent
from gateway.smshub.desk import HubDesk
from gateway.smshub.push import HubPusher

log = structlog.get_logger("gateway.smshub")
Spawn = Callable[[str, Callable[[], Coroutine[Any, Any, None]]], object]


class HubService:
    def __init__(self, config: Config, core: GatewayCore, call: Callable[..., Awaitable[Any]],
                 after_change: Callable[[], Awaitable[None]]) -> None:
        assert config.smshub is not None
        self.settings = config.smshub
        self.desk = HubDesk(core, self.settings.names, self.settings.activation_cap, mono=core._mono, wall=core._wall)
        self._after_change = after_change

        async def call_then_follow(fn: Callable[..., Any], *args: Any) -> Any:
            result = await call(fn, *args)
            if fn in (self.desk.get_number, self.desk.finish):
                await after_change()
            return result

        self.agent = HubAgent(self.settings, self.desk, call_then_follow)
        self.pusher = HubPusher(self.settings, self.desk, call, claim_window=config.leases.claim_window, wall=core._wall)

    async def start(self, spawn: Spawn) -> None:
        self.desk.on_push_queued = self.pusher.wake_threadsafe(asyncio.get_running_loop())
        await self.agent.start()
        spawn("smshub-push", self.pusher.run)
        log.info("smshub.started", flavour=self.settings.flavour.value, services=len(self.settings.names.services))

    async def stop(self) -> None:
        await self.agent.stop()

    def status(self) -> dict[str, object]:
        return {"listen": f"{self.agent.address[0]}:{self.agent.address[1]}" if self.agent.address else None,
                "answered": dict(self.agent.answered), "refused": dict(self.agent.refused),
                "pushed": self.pusher.delivered, "push_failures": self.pusher.failures,
                "push_last_error": self.pusher.last_error}

    def metrics(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """For /metrics: the hub's requests by action, refusals by HTTP status, pushes and their failures."""
        answered = CounterMetricFamily("simgw_smshub_requests_total", "hub requests answered, by action",
                                       labels=["action"])
        for action, count in sorted(self.agent.answered.items()):
            answered.add_metric([action], float(count))
        refused = CounterMetricFamily("simgw_smshub_refused_total", "hub requests refused, by HTTP status",
                                      labels=["status"])
        for reason, count in sorted(self.agent.refused.items()):
            refused.add_metric([reason], float(count))
        pushed = CounterMetricFamily("simgw_smshub_pushed_total", "PUSH_SMS the hub answered SUCCESS")
        pushed.add_metric([], float(self.pusher.delivered))
        failed = CounterMetricFamily("simgw_smshub_push_failures_total", "PUSH_SMS attempts not answered SUCCESS")
        failed.add_metric([], float(self.pusher.failures))
        yield from (answered, refused, pushed, failed)
