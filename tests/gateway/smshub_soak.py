"""Both marketplaces at once on simulated modems, with faults: the SMSHub soak.

The daemon runs as ``simgw run`` in its own process (as in production, so it can be SIGKILLed);
the simulated modems, the simgw.v1 reference marketplace and the reference hub run here. For a
bounded time: the hub polls, buys and finishes (statuses 1/3/4/5, repeats included); the
marketplace opens, finishes and cancels leases; SMS arrive on random numbers, leased or not.
Faults at random: the daemon SIGKILLed and restarted, the hub restarted (away for a while), the
hub answering pushes with errors or HTTP 500, the marketplace dropping. Then the verdict, from
the daemon's database and what each marketplace received.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import random
import socket
import subprocess
import sys
import time

import aiohttp

from drivers.httpjson import HttpError
from drivers.simulator.farm import ModemFarm
from gateway.tools.market import Market
from gateway.tools.hub import RefHub
from gateway.store import Store

TOKEN = "soak-supplier-token-0123456789"
KEY = "soak-hub-key-0123456789"
SERVICES = {"vk": "vk", "whatsapp": "wa", "telegram": "tg", "google": "go"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubSoak:
    def __init__(self, workdir: str, *, modems: int = 8, seconds: float = 60.0, seed: int = 14) -> None:
        self.dir = workdir
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.farm = ModemFarm(modems, profile="generic", periodic_interval=None,
                              directory=os.path.join(workdir, "ports"))
        self.market_port, self.hub_port, self.agent_port = free_port(), free_port(), free_port()
        self.hub = RefHub(f"http://127.0.0.1:{self.agent_port}/smshub", KEY)
        self.market: Market | None = None
        self.daemon: subprocess.Popen | None = None
        self.state_dir = os.path.join(workdir, "state")
        self.sent: dict[str, str] = {}  # text -> the number it was sent to
        self.activations: dict[int, str] = {}  # the hub's open activations: id -> number
        self.faults: collections.Counter[str] = collections.Counter()
        self.counts: collections.Counter[str] = collections.Counter()
        self._ids = itertools.count(1)
        self._stop = asyncio.Event()
        self._log = open(os.path.join(workdir, "daemon.log"), "ab")

    def write_config(self) -> str:
        path = os.path.join(self.dir, "simgw.toml")
        modems = "".join(f'[[modems]]\nport = "{m.link_path}"\n' for m in self.farm.modems)
        services = "".join(f'{ours} = "{code}"\n' for ours, code in SERVICES.items())
        with open(path, "w") as fh:
            fh.write(f'[gateway]\nid = "hubsoak"\nstate_dir = "{self.state_dir}"\n\n'
                     f'[control]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                     f'[uplink]\nurl = "ws://127.0.0.1:{self.market_port}/v1"\ntoken = "{TOKEN}"\nbackoff_max = "2s"\n\n'
                     f'[smshub]\nlisten = "127.0.0.1:{self.agent_port}"\nkey = "{KEY}"\n'
                     f'push_url = "http://127.0.0.1:{self.hub_port}/agent/api/sms"\n\n[smshub.services]\n{services}\n'
                     f'{modems}')
        return path

    def start_daemon(self) -> None:
        self.daemon = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", self.config,
                                        "run"], stdout=self._log, stderr=self._log)

    async def start_market(self) -> None:
        self.market = Market(os.path.join(self.dir, "market.db"), TOKEN)
        await _retry_bind(lambda: self.market.start("127.0.0.1", self.market_port))

    async def stop_market(self) -> None:
        if self.market is not None:
            await self.market.stop()
            self.market.close()
            self.market = None

    # ----------------------------------------------------------------------------------- run
    async def run(self) -> dict:
        try:
            await self.farm.start()
            self.config = self.write_config()
            await self.start_market()
            await _retry_bind(lambda: self.hub.start_push_server("127.0.0.1", self.hub_port))
            self.start_daemon()
            await self._until_agent(30)
            tasks = [asyncio.create_task(c) for c in (self._hub_loop(), self._market_loop(), self._sms_loop(),
                                                      self._fault_loop())]
            await asyncio.sleep(self.seconds)
            self._stop.set()
            await asyncio.gather(*tasks)
            return await self._drain_and_judge()
        finally:
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()
            await self.hub.close()
            await self.stop_market()
            await self.farm.stop()
            self._log.close()

    async def _until_agent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = await self.hub.get_services()
                if reply.get("countryList"):
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            await asyncio.sleep(0.2)
        raise AssertionError("the daemon's agent did not answer")

    async def _hub_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self._hub_step()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                self.counts["hub_request_failed"] += 1  # the daemon is down: the hub tries later
            await asyncio.sleep(self.rng.uniform(0.1, 0.4))

    async def _hub_step(self) -> None:
        roll = self.rng.random()
        if roll < 0.15:
            await self.hub.get_services()
        elif roll < 0.55 or not self.activations:
            reply = await self.hub.get_number("russia", self.rng.choice(sorted(SERVICES.values())))
            if reply.get("status") == "SUCCESS":
                self.activations[reply["activationId"]] = f"+{reply['number']}"
                self.counts["hub_bought"] += 1
        else:
            activation = self.rng.choice(sorted(self.activations))
            status = self.rng.choice([3, 3, 3, 4, 4, 1, 5])
            reply = await self.hub.finish(activation, status)
            assert reply == {"status": "SUCCESS"}, reply
            self.counts["hub_finished"] += 1
            if self.rng.random() < 0.3:  # the hub did not get our answer: it asks again
                assert await self.hub.finish(activation, status) == {"status": "SUCCESS"}
            del self.activations[activation]

    async def _market_loop(self) -> None:
        open_leases: list[str] = []
        while not self._stop.is_set():
            market = self.market
            try:
                if market is not None and (not open_leases or self.rng.random() < 0.6):
                    lease_id = f"deal-{next(self._ids)}"
                    result = await market.command({"type": "lease.open", "lease_id": lease_id,
                                                   "service": self.rng.choice(["telegram", "vk", "uber"])}, timeout=3)
                    if result.get("ok"):
                        open_leases.append(lease_id)
                        self.counts["market_opened"] += 1
                elif market is not None:
                    lease_id = open_leases.pop(self.rng.randrange(len(open_leases)))
                    await market.command({"type": f"lease.{self.rng.choice(['finish', 'cancel'])}",
                                          "lease_id": lease_id}, timeout=3)
            except HttpError:
                self.counts["market_command_failed"] += 1
            await asyncio.sleep(self.rng.uniform(0.2, 0.6))

    async def _sms_loop(self) -> None:
        infos = self.farm.info()
        by_number = {info.msisdn: info.id for info in infos}
        while not self._stop.is_set():
            sold = [n for n in self.activations.values() if n in by_number]
            # half to numbers the hub holds (their SMS must be pushed), half anywhere (leased or not)
            if sold and self.rng.random() < 0.5:
                modem = by_number[self.rng.choice(sold)]
            else:
                modem = self.rng.randrange(len(infos))
            text = f"code {next(self._ids)} for soak"
            self.sent[text] = infos[modem].msisdn
            self.farm.send_sms(modem, self.rng.choice(["VK", "Telegram", "+79161234567"]), text)
            await asyncio.sleep(self.rng.uniform(0.05, 0.25))

    async def _fault_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.rng.uniform(3.0, 7.0))
            if self._stop.is_set():
                return
            fault = self.rng.choice(["sigkill", "hub_restart", "hub_errors", "market_drop"])
            self.faults[fault] += 1
            if fault == "sigkill":
                self.daemon.kill()
                self.daemon.wait()
                await asyncio.sleep(self.rng.uniform(0.1, 1.0))
                self.start_daemon()
            elif fault == "hub_restart":
                await self.hub.stop_push_server()
                await asyncio.sleep(self.rng.uniform(0.5, 3.0))
                await _retry_bind(lambda: self.hub.start_push_server("127.0.0.1", self.hub_port))
            elif fault == "hub_errors":
                self.hub.mode = self.rng.choice(["error", "http500"])
                await asyncio.sleep(self.rng.uniform(1.0, 4.0))
                self.hub.mode = "success"
            else:
                await self.stop_market()
                await asyncio.sleep(self.rng.uniform(0.5, 2.0))
                await self.start_market()

    # ------------------------------------------------------------------------------- verdict
    async def _drain_and_judge(self) -> dict:
        """Everything up and answering SUCCESS: every hub lease's SMS must reach the hub."""
        self.hub.mode = "success"
        if self.hub.push_address is None or self.hub._push_runner is None:
            await _retry_bind(lambda: self.hub.start_push_server("127.0.0.1", self.hub_port))
        await asyncio.sleep(3.0)  # the last SMS stored
        deadline = time.monotonic() + 40.0  # the protocol's 10 s retries, a few times over
        while time.monotonic() < deadline:
            expected = self._hub_messages()
            if expected and {text for text, _ in expected.values()} <= {p.text for p in self.hub.log.accepted.values()}:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.5)  # time for a wrong second push to show
        self.daemon.terminate()
        self.daemon.wait(timeout=30)
        return self.verdict()

    def _read(self, query):
        store = Store(os.path.join(self.state_dir, "simgw.db"))
        store.open()
        try:
            return query(store.db)
        finally:
            store.close()

    def _hub_messages(self) -> dict[str, tuple[str, str]]:
        """msg_id -> (text, number) of every SMS the daemon routed to a hub activation."""
        rows = self._read(lambda db: db.execute("SELECT id, text, number FROM messages WHERE lease_id LIKE 'hub-%'"
                                                " AND quarantined = 0").fetchall())
        return {row[0]: (row[1], row[2]) for row in rows}

    def verdict(self) -> dict:
        leases = self._read(lambda db: db.execute("SELECT id, number, opened_at, ended_at FROM leases"
                                                  " ORDER BY number, opened_at").fetchall())
        overlaps = [(a[0], b[0]) for a, b in zip(leases, leases[1:])
                    if a[1] == b[1] and (a[3] is None or b[2] < a[3])]
        hub_texts = {text: number for text, number in self._hub_messages().values()}
        accepted = {p.text: p for p in self.hub.log.accepted.values()}
        market_texts = {row["text"] for row in self.market_sms()}
        pushed_texts = {p.text for p in self.hub.log.pushes}
        return {
            "seconds": self.seconds, "sms_sent": len(self.sent), "faults": dict(self.faults), "counts": dict(self.counts),
            "hub_leases": sum(1 for lease in leases if lease[0].startswith("hub-")),
            "market_leases": sum(1 for lease in leases if not lease[0].startswith("hub-")),
            "hub_sms": len(hub_texts), "pushes": len(self.hub.log.pushes), "accepted": len(accepted),
            "overlapping_leases": overlaps,
            "never_pushed": sorted(set(hub_texts) - set(accepted)),
            "pushed_after_success": [p.sms_id for p in self.hub.log.after_success],
            "pushed_but_not_a_hub_lease_sms": sorted(pushed_texts - set(hub_texts)),
            "pushed_to_the_wrong_number": sorted(t for t, p in accepted.items()
                                                 if t in self.sent and self.sent[t] != f"+{p.phone}"),
            "hub_sms_at_the_market": sorted(market_texts & set(hub_texts)),
            "violations": self.hub.log.violations[:5],
        }

    def market_sms(self) -> list[dict]:
        market = Market(os.path.join(self.dir, "market.db"), TOKEN)
        try:
            return market.sms()
        finally:
            market.close()


async def _retry_bind(start) -> None:
    for _ in range(50):
        try:
            await start()
            return
        except OSError:
            await asyncio.sleep(0.1)  # the old socket is still closing
    raise RuntimeError("cannot listen")
