"""A simulated SIM bank behind the real daemon: the rig the bank tests and the soak share."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from drivers.bank import PRESETS, SwitchTiming
from drivers.simulator.bank import USSD_CODE, SimBank
from gateway.runtime.gateway import Gateway
from gateway.control.client import request
from gateway.config import BankConfig, Config, LeaseConfig, ModemConfig, UssdNumber
from gateway.domain.leases import Policy
from gateway.domain.banks import SimRow, SimStatus
from gateway.store import Store
from tests.conftest import FAST, wait_until

BANK_OPTIONS = replace(FAST, reset_wait=0.05)
SCALE = 0.01  # the simulated bank's 10 s switch and 5 s registration take 0.1 s and 0.05 s


def bank_config(bank: SimBank, **overrides) -> BankConfig:
    """The bank's config as a supplier would write it, its times scaled like the simulator's.
    ``overrides`` may name any field of BankConfig, SwitchStyle (command, expect_ok, values) or
    SwitchTiming (retries, ...)."""
    style = PRESETS["swit"] if bank.style == "controller" else PRESETS["cinterion"]
    fields = {"command": "template", "expect_ok": "expect_ok", "values": "values"}  # as the config file names them
    style = replace(style, **{fields[k]: overrides.pop(k) for k in list(overrides) if k in fields})
    timing = SwitchTiming(switch_time=bank.switch_time * SCALE * 1.5, ok_timeout=0.3, settle_timeout=5.0,
                          sim_timeout=0.5, register_timeout=1.0, poll=0.05, retries=overrides.pop("retries", 2))
    settings = dict(name="bank1", switch=style, channels=tuple(m.link_path for m in bank.modems), slots=bank.slots,
                    timing=timing, controller=bank.controller.link_path if bank.controller else None, rotation=None,
                    queue=16)
    settings.update(overrides)
    return BankConfig(**settings)


def rig_config(bank: SimBank, state_dir: str, *, policy: Policy | None = None, numbers: dict[str, str] | None = None,
               **bank_overrides) -> Config:
    return Config(path="<test>", gateway_id="bank-test", state_dir=state_dir,
                  modems=tuple(ModemConfig(m.link_path) for m in bank.modems),
                  leases=LeaseConfig(policy or Policy()), control_listen=("127.0.0.1", 0),
                  banks=(bank_config(bank, **bank_overrides),), numbers=dict(numbers or {}),
                  ussd_numbers=(UssdNumber("SimNet", USSD_CODE, r"(\+\d{10,15})"),))


def prefill_inventory(bank: SimBank, config: Config) -> None:
    """The inventory as a completed scan leaves it (the scan itself has its own test)."""
    store = Store(config.database)
    store.open()
    try:
        with store.transaction():
            for slot, card in enumerate(bank.cards):
                if card is not None:
                    store.save_sim(SimRow("bank1", slot, SimStatus.OK, card.iccid, card.imsi, card.operator, card.msisdn,
                                          "cnum", None, None, time.time()))
    finally:
        store.close()


class BankRig:
    """A started simulated bank and a started daemon driving it."""

    def __init__(self, bank: SimBank, config: Config) -> None:
        self.bank, self.config = bank, config
        self.gateway: Gateway | None = None

    async def __aenter__(self) -> "BankRig":
        await self.bank.start()
        self.gateway = Gateway(self.config, modem_options=BANK_OPTIONS)
        await self.gateway.start()
        scheduler = self.gateway.core.banks.schedulers["bank1"]
        await wait_until(lambda: all(scheduler._channels[c].known for c in scheduler.channels), 20,
                         "every channel reporting its SIM")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.gateway is not None:
            await self.gateway.stop()
        await self.bank.stop()

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """A request to the daemon's control socket, as `simgw lease ...` sends it."""
        assert self.gateway is not None
        return await asyncio.to_thread(request, self.gateway.control_socket, method, path, body)

    def lease_state(self, lease_id: str) -> str | None:
        """The state /status and the dashboard show: the core's published snapshot, which follows
        the engine once the transaction committed (an ended lease, gone from it: the engine's)."""
        published = next((lease for lease in self.gateway.core.snapshot.leases if lease.id == lease_id), None)
        lease = published or self.gateway.core.engine.get(lease_id)
        return lease.state.value if lease else None
