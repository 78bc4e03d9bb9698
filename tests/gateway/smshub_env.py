"""A rig for the SMSHub agent: simulated modems on real ptys, the real Gateway with [smshub] (its
agent on 127.0.0.1), the reference hub (its PUSH_SMS server on 127.0.0.1), and optionally the
reference simgw.v1 marketplace at the same time, over a real WebSocket."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig, UplinkConfig
from gateway.tools.market import Market
from gateway.smshub.names import Names
from gateway.smshub.protocol import Flavour
from gateway.tools.hub import RefHub
from gateway.smshub.settings import SmshubConfig
from tests.conftest import FAST, wait_until

KEY = "hub-protocol-key-0123456789"
TOKEN = "test-supplier-token-0123456789"
SERVICES = {"vk": "vk", "whatsapp": "wa", "telegram": "tg", "sberbank": "sb", "webmoney": "wm"}


class HubRig:
    def __init__(self, tmp, modems: int = 4, *, with_market: bool = False, push_retry: float = 0.5,
                 flavour: Flavour = Flavour.SMSHUB, cap: float = 24 * 3600.0, rate: float = 100.0,
                 denied: tuple[str, ...] = ("sberbank",)) -> None:
        self.tmp = str(tmp)
        self.farm = ModemFarm(modems, profile="generic", periodic_interval=None)
        self.hub = RefHub("http://127.0.0.1:0/", KEY, flavour=flavour)
        self.market = Market(os.path.join(self.tmp, "market.db"), TOKEN) if with_market else None
        self.push_retry, self.flavour, self.cap, self.rate, self.denied = push_retry, flavour, cap, rate, denied
        self.gateway: Gateway | None = None
        self.agent_port = 0
        self.skew = 0.0  # seconds added to the daemon's clocks: a test jumps ahead in time with it

    def config(self) -> Config:
        leases = LeaseConfig()
        leases = replace(leases, policy=replace(leases.policy, denied_services=leases.policy.denied_services
                                                | frozenset(self.denied)))
        hub = SmshubConfig(self.hub.push_url, KEY, ("127.0.0.1", self.agent_port), None, self.flavour, self.cap,
                           Names(dict(SERVICES)), push_retry=self.push_retry, rate=self.rate)
        uplink = None
        if self.market is not None:
            uplink = UplinkConfig(f"ws://127.0.0.1:{self.market.address[1]}/v1", TOKEN, backoff_max=1.0)
        return Config(path="<test>", gateway_id="gw-hub", state_dir=os.path.join(self.tmp, "state"),
                      modems=tuple(ModemConfig(m.link_path) for m in self.farm.modems), leases=leases,
                      control_listen=("127.0.0.1", 0), uplink=uplink, smshub=hub)

    async def __aenter__(self) -> "HubRig":
        await self.farm.start()
        await self.hub.start_push_server()
        if self.market is not None:
            await self.market.start("127.0.0.1", 0)
        await self.start_gateway()
        return self

    async def start_gateway(self) -> None:
        self.gateway = Gateway(self.config(), modem_options=FAST, mono=lambda: time.monotonic() + self.skew,
                               wall=lambda: time.time() + self.skew)
        if self.gateway.uplink is not None:
            self.gateway.uplink.settings = replace(self.gateway.uplink.settings, backoff_initial=0.05)
        await self.gateway.start()
        assert self.gateway.hub is not None and self.gateway.hub.agent.address is not None
        self.agent_port = self.gateway.hub.agent.address[1]
        self.hub.agent_url = f"http://127.0.0.1:{self.agent_port}/smshub"
        await wait_until(lambda: len(self.gateway.core.engine._online) == len(self.farm.modems), 15, "numbers online")

    async def stop_gateway(self) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
            self.gateway = None

    async def __aexit__(self, *exc) -> None:
        await self.stop_gateway()
        await self.hub.close()
        if self.market is not None:
            await self.market.stop()
            self.market.close()
        await self.farm.stop()

    def numbers(self) -> list[str]:
        return [m.msisdn for m in self.farm.info()]

    def modem_of(self, number: int | str) -> int:
        wanted = str(number).lstrip("+")
        return next(m.id for m in self.farm.info() if m.msisdn.lstrip("+") == wanted)

    async def jump(self, seconds: float) -> None:
        """Move the daemon's clocks ``seconds`` ahead and let its timers see it."""
        self.skew += seconds
        self.gateway.nudges.timers.set()
        await asyncio.sleep(0.3)

    def pushes(self) -> list[tuple]:
        from gateway.smshub import records
        return self.gateway.read(lambda store: records.pushes(store.db))
