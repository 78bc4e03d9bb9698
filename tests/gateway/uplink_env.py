"""A whole rig for uplink tests: simulated modems on ptys, the real gateway, and the reference
marketplace over a real WebSocket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace

import jsonschema

from drivers.simulator.farm import ModemFarm
from gateway.runtime.gateway import Gateway
from gateway.config import Config, LeaseConfig, ModemConfig, UplinkConfig
from gateway.tools.market import Market
from tests.conftest import FAST, wait_until

TOKEN = "test-supplier-token-0123456789"
SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "gateway", "uplink", "schemas")


def schemas() -> dict[str, dict]:
    out = {}
    for name in os.listdir(SCHEMA_DIR):
        with open(os.path.join(SCHEMA_DIR, name)) as fh:
            out[name[:-5]] = json.load(fh)
    return out


def validate_frames(frames: list[dict]) -> set[str]:
    """Validate each frame against the schema of its type; return the types seen."""
    all_schemas = schemas()
    seen = set()
    for frame in frames:
        kind = frame.get("type")
        assert kind in all_schemas, f"a frame of a type with no schema: {frame}"
        jsonschema.validate(frame, all_schemas[kind])
        seen.add(kind)
    return seen


class Rig:
    def __init__(self, tmp, modems: int = 4, *, profile: str = "generic", drop_every: float | None = None,
                 window: int = 256, health_interval: float = 30.0, ping_interval: float = 10.0,
                 ping_timeout: float = 10.0, **farm_kwargs) -> None:
        self.tmp = str(tmp)
        self.farm = ModemFarm(modems, profile=profile, periodic_interval=None, **farm_kwargs)
        self.market_db = os.path.join(self.tmp, "market.db")
        self.market = Market(self.market_db, TOKEN, drop_every=drop_every)
        self.market.record = True
        self.window = window
        self.health_interval = health_interval
        self.ping = (ping_interval, ping_timeout)
        self.gateway: Gateway | None = None
        self.market_port = 0

    def config(self, url: str, token: str = TOKEN) -> Config:
        return Config(path="<test>", gateway_id="gw-test", state_dir=os.path.join(self.tmp, "state"),
                      modems=tuple(ModemConfig(m.link_path) for m in self.farm.modems), leases=LeaseConfig(),
                      control_listen=("127.0.0.1", 0),
                      uplink=UplinkConfig(url, token, window=self.window, backoff_max=2.0,
                                          health_interval=self.health_interval))

    async def __aenter__(self) -> "Rig":
        await self.farm.start()
        await self.market.start("127.0.0.1", 0)
        self.market_port = self.market.address[1]
        self.gateway = Gateway(self.config(f"ws://127.0.0.1:{self.market_port}/v1"), modem_options=FAST)
        self.gateway.uplink.settings = replace(self.gateway.uplink.settings, backoff_initial=0.05,
                                               ping_interval=self.ping[0], ping_timeout=self.ping[1])
        await self.gateway.start()
        await wait_until(lambda: len(self.gateway.core.engine._online) == len(self.farm.modems), 15, "numbers online")
        await wait_until(lambda: self.gateway.uplink.connected.is_set(), 10, "uplink connected")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        await self.market.stop()
        self.market.close()
        await self.farm.stop()

    async def restart_market(self, pause: float = 0.0) -> None:
        await self.market.stop()
        self.market.close()
        await asyncio.sleep(pause)
        old = self.market
        self.market = Market(self.market_db, TOKEN, drop_every=old.drop_every)
        self.market.record = True
        self.market.frames_in, self.market.frames_out = old.frames_in, old.frames_out
        self.market.connections = old.connections  # counted across restarts
        await self.market.start("127.0.0.1", self.market_port)

    def numbers(self) -> list[str]:
        return [m.msisdn for m in self.farm.info()]

    async def open(self, lease_id: str, number: str | None = None, service: str = "telegram", **extra) -> dict:
        body = {"service": service, "lease_id": lease_id, **extra}
        if number:
            body["number"] = number
        from drivers.httpjson import HttpRequest

        status, result = await self.market.handle_http(HttpRequest("POST", "/leases", json.dumps(body).encode()))
        return result
