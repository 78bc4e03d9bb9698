"""Benchmark: flat cost over uptime -- a SIM bank's months of rotation, leases and purges in minutes.

    .venv/bin/python tests/bench/bench_uptime.py [--seconds 300] [--days 90] [--bank 4x32] [--workers 2]
                                                 [--noise 3] [--cooldown 1h|never] [--out bench-results/uptime.json]

The run reported in the README (90 days of wall clock and more than 90 days of 15-minute rotation
on 4 channels, in 25 minutes):

    .venv/bin/python tests/bench/bench_uptime.py --seconds 1500 --days 90 --bank 24x8 --noise 8

gave 40,078 switches (104 days of 15-minute rotation on 4 channels), 7,236 leases, no refusal, no
code lost; first -> last tenth: CPU per SMS 18.08 -> 17.30 ms (0.96), RSS 53.7 -> 54.2 MiB (1.01),
database 0.32 -> 0.32 MB (1.01), load average 2.9 -> 1.9 (1.9-3.7 across the tenths, 2 cores
shared with other benchmarks). With ``--cooldown never --services 512 --seconds 300 --days 18``
the database grew 1.22 in 5 minutes by the activation history (~60 bytes a row, capped at
``MAX_ACTIVATIONS``).

Four processes, as bench_e2e.py: the simulated SIM bank (``SimBank``, the simulator behind
``simgw simulate --bank 4x32 --time-scale 0.01``, on real ptys), the daemon exactly as in
production (``simgw run`` with a config file: drivers, SQLite, uplink), the reference marketplace
(real WebSocket and HTTP on 127.0.0.1), and this script. The config has the shortest rotation and
retention ``check-config`` accepts: ``rotation = "1s"``, ``quarantine_retention = "60s"``,
``message_retention = "1h"``, ``claim_window = "1d"`` and ``reuse_cooldown = "1h"`` (the
activation history's retention; ``--cooldown never`` runs the default policy instead, whose
history is capped at ``MAX_ACTIVATIONS`` rows rather than aged out).

What is compressed, and how:

* Wall-clock time (everything retention and purges are measured in): the daemon runs with the
  fault hook ``SIMGW_FAULT_DIR`` whose ``wall_offset`` file this script moves forward continuously,
  so ``--days`` of wall time pass in ``--seconds``. The simulated network stamps each SMS
  ``STAMP_AHEAD`` real seconds ahead on that clock: the held-SMS rule compares the network's
  timestamp with when the lease opened, through wall time, and at this speed the 0.1 s between
  sending and reading an SMS is an hour; stamped ahead, every SMS counts as sent after its lease
  opened (that rule has its own tests; this benchmark measures cost).
* Purges: the daemon purges every ``gateway.runtime.timers.PURGE_INTERVAL`` (60 s) of its
  monotonic clock, which no hook compresses; the daemon is started through a two-line wrapper
  that sets that interval to one compressed *hour* (one compressed minute would be ~80 purges a
  real second), so its own timer runs its own purge ``--days`` x 24 times (2,160 for 90 days, not
  the 129,600 of 90 days of 60-s purges: each purge's cost is what must not grow, and a purge
  every 0.7 s real is already far more often than production's); rows outlive their retention by
  up to that hour.
* Rotation is *not* compressed: the scheduler rotates each idle channel at the config's minimum
  (``rotation = "1s"`` of the daemon's monotonic clock, untouched), and each switch is a real one
  on the simulator (reset, SIM check, registration: ~0.15 s at ``SCALE``). What grew with uptime
  was state kept per switch, bank-wide (the switch logs), so the measure is the number of
  switches: the script reports them as days of the issue's 15-minute rotation on 4 channels
  (switches / (4 x 96); 90 days = 34,560 switches) and on the bank it ran (switches / (channels x
  96)). A bank rotates about one switch per channel per second plus one per lease, so ~35,000
  switches in 25 minutes take a bank of 24 channels (``--bank 24x8``); each channel then sees a
  sixth of the switches a 4-channel bank would, so a cost growing per *channel* would show here
  at a sixth of its size (the scheduler keeps a fixed set of fields per channel).

Leases: ``--workers`` buyers, each on its own channel, open a lease on that channel's next SIM
through the marketplace, for a service of a ``--services`` catalogue that number was never
activated for (chosen at random: every lease adds to the activation history, and the distinct
services seen stop growing early, as on a real marketplace; with a cool-down, once every service
was used on a number, the catalogue starts again: the cool-down has passed), the network sends
the code, the buyer finishes when the marketplace has it. ``--noise`` SMS/s go to SIMs of the
other channels (held by the network while off air, read when rotation brings them in,
quarantined). The daemon's CPU (user + system, /proc) per SMS it read (its
``simgw_modem_sms_received_total``), its RSS (VmRSS) and the database's size (the main file; the
WAL, bounded by SQLite's checkpoints, is shown apart) are compared between the first and the last
tenth of the run; the ratio last/first is the result (target <= 1.2). The part of the database
that is the activation history is shown apart too, and so are the daemon's share of a core and
the machine's 1-minute load average in each tenth (on shared cores, other work slows the buyers,
which changes the mix of switches and SMS the CPU is divided by). Loopback only; every loop stops
at ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_e2e import TOKEN, _cpu_seconds, _free_port, _get, http_post, market_process  # noqa: E402
from common import write_results  # noqa: E402

from gateway import logs  # noqa: E402

SCALE = 0.01  # the simulated bank's 10 s switch and 5 s registration take 0.1 s and 0.05 s
STAMP_AHEAD = 30.0  # real seconds: how far ahead of the compressed clock the network stamps an SMS
DAEMON = ("import sys, gateway.runtime.timers as timers; assert hasattr(timers, 'PURGE_INTERVAL'); "
          "timers.PURGE_INTERVAL = float(sys.argv[1]); from gateway.cli import main; sys.exit(main(sys.argv[2:]))")


# ------------------------------------------------------------------------------ bank process
def bank_process(channels: int, slots: int, directory: str, commands: mp.Queue, reports: mp.Queue) -> None:
    """The simulated bank; commands are (slot, sender, text, wall time the network stamps)."""
    from drivers.simulator.bank import SimBank
    from drivers.sms.encode import DeliverSpec, encode_deliver

    logs.configure(json_lines=True, level="error")

    async def main() -> None:
        bank = SimBank(channels, slots, time_scale=SCALE, directory=directory)
        await bank.start()
        reports.put(("ready", {"channels": [m.link_path for m in bank.modems], "controller": bank.controller.link_path,
                               "cards": [(c.iccid, c.imsi, c.operator, c.msisdn) for c in bank.cards]}, 0.0))
        loop = asyncio.get_running_loop()
        sent = 0
        while True:
            command = await loop.run_in_executor(None, commands.get)
            if command is None:
                break
            slot, sender, text, wall = command
            card = bank.cards[slot]
            stamp = datetime.fromtimestamp(int(wall), timezone.utc)
            sent += 1
            for pdu in encode_deliver(DeliverSpec(sender=sender, text=text, timestamp=stamp, concat_ref=sent % 255 + 1)):
                channel = next((c for c, m in enumerate(bank.modems) if m.engine.sim is card), None)
                if channel is None:
                    card.held.append(pdu)  # off air: the network holds it until the SIM registers
                else:
                    bank.modems[channel].deliver(pdu)
        await bank.stop()

    asyncio.run(main())


# --------------------------------------------------------------------------- the daemon's side
def write_config(path: str, *, state: str, control: int, ws_port: int, bank: dict, slots: int, cooldown: str) -> None:
    channels = bank["channels"]
    with open(path, "w") as fh:
        fh.write(f'[gateway]\nid = "bench-uptime"\nstate_dir = "{state}"\nlog_level = "warning"\n\n'
                 f'[control]\nlisten = "127.0.0.1:{control}"\n\n'
                 f'[leases]\nquarantine_retention = "60s"\nmessage_retention = "1h"\nclaim_window = "1d"\n'
                 f'reuse_cooldown = "{cooldown}"\n\n'
                 f'[uplink]\nurl = "ws://127.0.0.1:{ws_port}/v1"\ntoken = "{TOKEN}"\n\n'
                 + "".join(f'[[modems]]\nport = "{port}"\n' for port in channels) +
                 f'\n[[banks]]\nname = "bank1"\npreset = "swit"\ncontroller = "{bank["controller"]}"\n'
                 f'channels = {json.dumps(channels)}\nslots = {slots}\nrotation = "1s"\nqueue = 16\n'
                 # the simulator's times, scaled as tests/gateway/bank_env.py scales them
                 'switch_time = 0.15\nok_timeout = 0.3\nsettle_timeout = 5.0\nsim_timeout = 0.5\n'
                 'register_timeout = 1.0\npoll = 0.05\nreset_wait = 0.05\n')


def prefill_inventory(database: str, cards: list[tuple[str, str, str, str]]) -> None:
    """The inventory as ``simgw sims scan`` leaves it (the scan has its own test)."""
    from gateway.domain.banks import SimRow, SimStatus
    from gateway.store import Store

    store = Store(database)
    store.open()
    try:
        with store.transaction():
            for slot, (iccid, imsi, operator, msisdn) in enumerate(cards):
                store.save_sim(SimRow("bank1", slot, SimStatus.OK, iccid, imsi, operator, msisdn, "cnum", None, None,
                                      time.time()))
    finally:
        store.close()


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load1() -> float:
    """The machine's 1-minute load average: other work on the same cores shows in CPU per SMS."""
    with open("/proc/loadavg") as fh:
        return float(fh.read().split()[0])


def _file_mb(path: str) -> float:
    return os.path.getsize(path) / 1e6 if os.path.exists(path) else 0.0


def _activation_kb(database: str) -> float:
    """Bytes of the activation history (table and key), which the policy keeps for ever."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        (size,) = db.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN"
                             " ('activations', 'sqlite_autoindex_activations_1')").fetchone()
        return size / 1e3
    except sqlite3.Error:
        return float("nan")
    finally:
        db.close()


def _sms_read(control: int) -> int | None:
    metrics = _get(control, "/metrics")
    if metrics is None:
        return None
    return int(sum(float(v) for v in re.findall(r"^simgw_modem_sms_received_total\{[^}]*\} (\S+)$", metrics, re.M)))


def _switches(control: int) -> int | None:
    body = _get(control, "/status")
    if body is None:
        return None
    return sum(n for bank in json.loads(body)["banks"] for n in bank["switches"].values())


def _ready(control: int, channels: int) -> bool:
    body = _get(control, "/status")
    if body is None:
        return False
    status = json.loads(body)
    banks = status.get("banks") or [{"channels": []}]
    known = sum(1 for c in banks[0]["channels"] if c["slot"] is not None)
    return known == channels and bool(status["uplink"] and status["uplink"]["connected"])


class CompressedClock:
    """Wall time running ``speed`` times faster from now on, shared with the daemon through the
    fault hook's ``wall_offset`` file (written atomically)."""

    def __init__(self, fault_dir: str, speed: float) -> None:
        self.fault_dir, self.speed = fault_dir, speed
        self.real0, self.mono0 = time.time(), time.monotonic()

    def offset(self) -> float:
        return (time.monotonic() - self.mono0) * (self.speed - 1.0)

    def now(self) -> float:
        return time.time() + self.offset()

    def stamp(self) -> float:
        """The network's timestamp for an SMS sent now (see STAMP_AHEAD)."""
        return self.now() + STAMP_AHEAD * self.speed

    def publish(self) -> None:
        tmp = os.path.join(self.fault_dir, "wall_offset.tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{self.offset():.3f}")
        os.replace(tmp, os.path.join(self.fault_dir, "wall_offset"))


# ----------------------------------------------------------------------------------- the run
class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.channels, per_channel = (int(x) for x in args.bank.lower().split("x"))
        self.slots = self.channels * per_channel
        self.stop = asyncio.Event()
        self.arrived: dict[str, asyncio.Event] = {}
        self.leases = self.refusals = self.lost = self.noise = 0
        self.refused: dict[str, int] = {}  # the daemon's refusal code -> how many
        self.samples: list[dict] = []

    async def drain(self, reports: mp.Queue) -> None:
        """Marketplace arrivals -> the buyer waiting for that text."""
        while not self.stop.is_set():
            try:
                kind, text, _ = reports.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.02)
                continue
            if kind == "sms" and text in self.arrived:
                self.arrived[text].set()

    async def buyer(self, w: int, http_port: int, commands: mp.Queue, clock: CompressedClock, numbers: list[str]) -> None:
        """Lease the SIMs of channel ``w`` in turn, each time for a catalogue service that number
        was never activated for (none left: the number is skipped)."""
        rng = random.Random(w)
        mine = list(range(w, self.slots, self.channels))
        unused = {slot: [f"svc{i}" for i in range(self.args.services)] for slot in mine}
        k = 0
        while not self.stop.is_set() and (self.args.cooldown != "never" or any(unused.values())):
            slot = mine[k % len(mine)]
            lease_id, k = f"b{w}-{k}", k + 1
            if not unused[slot] and self.args.cooldown != "never":  # the cool-down has passed: again
                unused[slot] = [f"svc{i}" for i in range(self.args.services)]
            if not unused[slot]:
                continue
            service = unused[slot].pop(rng.randrange(len(unused[slot])))
            result = await asyncio.to_thread(http_post, http_port, "/leases",
                                             {"service": service, "lease_id": lease_id, "number": numbers[slot]})
            if not result.get("ok"):
                self.refusals += 1
                code = str(result.get("reason") or result.get("error") or "?")[:60]
                self.refused[code] = self.refused.get(code, 0) + 1
                await asyncio.sleep(0.2)
                continue
            text = f"Your code for {lease_id}: {k:06d}"
            self.arrived[text] = asyncio.Event()
            commands.put((slot, "Service", text, clock.stamp()))
            try:
                await asyncio.wait_for(self.arrived[text].wait(), 30)
            except asyncio.TimeoutError:
                self.lost += 1
            del self.arrived[text]
            await asyncio.to_thread(http_post, http_port, f"/leases/{lease_id}/finish", {})
            self.leases += 1

    async def noise_sender(self, commands: mp.Queue, clock: CompressedClock) -> None:
        """SMS to SIMs nobody leases: held while off air, read at rotation, quarantined."""
        idle = [s for s in range(self.slots) if s % self.channels >= self.args.workers]
        n = 0
        while not self.stop.is_set() and idle and self.args.noise > 0:
            commands.put((idle[n % len(idle)], "+79990000000", f"noise {n}", clock.stamp()))
            n += 1
            self.noise = n
            await asyncio.sleep(1.0 / self.args.noise)

    async def sampler(self, pid: int, control: int, state: str, clock: CompressedClock, t0: float) -> None:
        while not self.stop.is_set():
            clock.publish()
            sample = {"t": time.monotonic() - t0, "days": (clock.now() - clock.real0) / 86400,
                      "cpu": _cpu_seconds(pid), "sms": await asyncio.to_thread(_sms_read, control),
                      "rss_mb": _rss_mb(pid), "db_mb": _file_mb(os.path.join(state, "simgw.db")),
                      "wal_mb": _file_mb(os.path.join(state, "simgw.db-wal")),
                      "activations_kb": await asyncio.to_thread(_activation_kb, os.path.join(state, "simgw.db")),
                      "switches": await asyncio.to_thread(_switches, control), "load": _load1()}
            self.samples.append(sample)
            for _ in range(10):
                clock.publish()
                await asyncio.sleep(0.1)


def window(samples: list[dict], start: float, end: float) -> dict:
    inside = [s for s in samples if start <= s["t"] <= end and s["sms"] is not None]
    first, last = inside[0], inside[-1]
    sms = last["sms"] - first["sms"]
    return {"from_s": round(first["t"], 1), "to_s": round(last["t"], 1), "sms": sms,
            "cpu_ms_per_sms": (last["cpu"] - first["cpu"]) * 1000 / sms if sms else float("nan"),
            "rss_mb": sum(s["rss_mb"] for s in inside) / len(inside), "db_mb": max(s["db_mb"] for s in inside),
            "wal_mb": max(s["wal_mb"] for s in inside), "activations_kb": inside[-1]["activations_kb"],
            "switches": (last["switches"] or 0) - (first["switches"] or 0),
            "daemon_cores": (last["cpu"] - first["cpu"]) / (last["t"] - first["t"]) if last["t"] > first["t"] else 0.0,
            "load": sum(s["load"] for s in inside) / len(inside)}


def oldest_rows(database: str, now: float) -> dict:
    """After the run: how old (compressed days) the oldest row of each purged table is."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        out = {}
        for table, column in (("messages", "received_at"), ("leases", "ended_at"), ("parts", "received_at")):
            oldest, count = db.execute(f"SELECT MIN({column}), COUNT(*) FROM {table}").fetchone()
            out[table] = {"rows": count, "oldest_days": None if oldest is None else round((now - oldest) / 86400, 2)}
        out["activations"] = {"rows": db.execute("SELECT COUNT(*) FROM activations").fetchone()[0]}
        out["outbox"] = {"rows": db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]}
        return out
    finally:
        db.close()


async def bench(args: argparse.Namespace) -> dict:
    run = Run(args)
    tmp = tempfile.mkdtemp(prefix="simgw-uptime-")
    ctx = mp.get_context("spawn")
    commands, reports, ports = ctx.Queue(), ctx.Queue(), ctx.Queue()
    sim = ctx.Process(target=bank_process, args=(run.channels, run.slots, os.path.join(tmp, "ports"), commands,
                                                 reports))
    market = ctx.Process(target=market_process, args=(os.path.join(tmp, "market.db"), reports, ports))
    sim.start()
    market.start()
    daemon = None
    try:
        ws_port, http_port = ports.get(timeout=60)
        kind, bank, _ = reports.get(timeout=60)
        assert kind == "ready", kind
        state, fault_dir = os.path.join(tmp, "state"), os.path.join(tmp, "faults")
        os.makedirs(state)
        os.makedirs(fault_dir)
        prefill_inventory(os.path.join(state, "simgw.db"), bank["cards"])
        control = _free_port()
        conf = os.path.join(tmp, "simgw.toml")
        write_config(conf, state=state, control=control, ws_port=ws_port, bank=bank, slots=run.slots,
                     cooldown=args.cooldown)
        speed = args.days * 86400 / args.seconds
        clock = CompressedClock(fault_dir, 1.0)  # real time until the daemon is up
        clock.publish()
        command = [sys.executable, "-c", DAEMON, str(3600.0 / speed), "--log-json", "--log-level", "warning",
                   "--config", conf, "run"]
        daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "daemon.log"), "wb"),
                                  env={**os.environ, "SIMGW_FAULT_DIR": fault_dir})
        started = time.monotonic()
        while not _ready(control, run.channels):
            if daemon.poll() is not None or time.monotonic() - started > 120:
                raise RuntimeError(f"the daemon did not come up; see {tmp}/daemon.log")
            await asyncio.sleep(0.1)
        clock = CompressedClock(fault_dir, speed)
        numbers = [card[3] for card in bank["cards"]]
        t0 = time.monotonic()
        tasks = [asyncio.create_task(run.drain(reports)),
                 asyncio.create_task(run.sampler(daemon.pid, control, state, clock, t0)),
                 asyncio.create_task(run.noise_sender(commands, clock)),
                 *(asyncio.create_task(run.buyer(w, http_port, commands, clock, numbers))
                   for w in range(min(args.workers, run.channels)))]
        await asyncio.sleep(args.seconds)
        run.stop.set()
        final_wall = clock.now()
        clock.publish()
        for task in tasks:  # a buyer may be waiting for a code: no need to see it now
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        peak = max(s["rss_mb"] for s in run.samples)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
        commands.put(None)
        sim.join(10)
        market.terminate()
        market.join(10)
        if sim.is_alive():
            sim.terminate()
    tenth = args.seconds / 10
    tenths = [window(run.samples, i * tenth, (i + 1) * tenth) for i in range(10)]
    first, last = tenths[0], tenths[-1]
    switches = run.samples[-1]["switches"] or 0
    return {
        "bank": args.bank, "seconds": args.seconds, "compressed_days": round(run.samples[-1]["days"], 1),
        "purges": int(args.seconds * speed / 3600), "leases": run.leases, "lease_refusals": run.refusals,
        "refused": run.refused,
        "codes_lost": run.lost, "noise_sms": run.noise, "switches": switches,
        "rotation_days_at_15m": round(switches / (run.channels * 96), 1),
        "rotation_days_at_15m_on_4": round(switches / (4 * 96), 1), "cooldown": args.cooldown, "peak_rss_mb": peak,
        "first_tenth": first, "last_tenth": last, "load_by_tenth": [w["load"] for w in tenths],
        "cpu_by_tenth": [w["cpu_ms_per_sms"] for w in tenths],
        "rss_by_tenth": [w["rss_mb"] for w in tenths], "db_by_tenth": [w["db_mb"] for w in tenths],
        "ratio": {k: last[k] / first[k] if first[k] else float("nan") for k in ("cpu_ms_per_sms", "rss_mb", "db_mb")},
        "store_after": oldest_rows(os.path.join(state, "simgw.db"), final_wall), "workdir": tmp,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="real run time (default 300)")
    parser.add_argument("--days", type=float, default=90.0, help="wall-clock days compressed into the run")
    parser.add_argument("--bank", default="4x32", help="CHANNELSxSLOTS_PER_CHANNEL (default 4x32)")
    parser.add_argument("--workers", type=int, default=2, help="buyers, one channel each (default 2)")
    parser.add_argument("--noise", type=float, default=3.0, help="SMS/s to SIMs nobody leases (default 3)")
    parser.add_argument("--services", type=int, default=64, help="the marketplace's service catalogue (default 64)")
    parser.add_argument("--cooldown", default="1h",
                        help='reuse_cooldown: the shortest the config allows (1h, default) or "never"')
    parser.add_argument("--out", default="bench-results/uptime.json")
    args = parser.parse_args()
    logs.configure(json_lines=True, level="error")
    r = asyncio.run(bench(args))
    print(f"bank {r['bank']}, reuse_cooldown {r['cooldown']}, {r['seconds']:.0f} s real = {r['compressed_days']} days "
          f"of wall clock ({r['purges']} purges, one per compressed hour); {r['leases']} leases ({r['lease_refusals']} refused, "
          f"{r['codes_lost']} codes lost), {r['noise_sms']} noise SMS; {r['switches']} switches = "
          f"{r['rotation_days_at_15m_on_4']} days of 15-minute rotation on 4 channels "
          f"({r['rotation_days_at_15m']} days on this bank's {r['bank'].split('x')[0]})")
    print(f"{'':>12} {'from s':>7} {'to s':>6} {'SMS':>6} {'CPU ms/SMS':>10} {'RSS MB':>7} {'DB MB':>7} {'WAL MB':>7} "
          f"{'history kB':>10} {'switches':>8} {'daemon core':>11} {'load avg':>8}")
    for name in ("first_tenth", "last_tenth"):
        w = r[name]
        print(f"{name:>12} {w['from_s']:>7.1f} {w['to_s']:>6.1f} {w['sms']:>6} {w['cpu_ms_per_sms']:>10.2f} "
              f"{w['rss_mb']:>7.1f} {w['db_mb']:>7.2f} {w['wal_mb']:>7.2f} {w['activations_kb']:>10.0f} "
              f"{w['switches']:>8} {w['daemon_cores']:>11.3f} {w['load']:>8.2f}")
    ratio = r["ratio"]
    print(f"{'last/first':>12} {'':>7} {'':>6} {'':>6} {ratio['cpu_ms_per_sms']:>10.2f} {ratio['rss_mb']:>7.2f} "
          f"{ratio['db_mb']:>7.2f}   (target <= 1.2 each)")
    print("load average (1 min) per tenth:", " ".join(f"{x:.2f}" for x in r["load_by_tenth"]))
    print("CPU ms/SMS per tenth:          ", " ".join(f"{x:.2f}" for x in r["cpu_by_tenth"]))
    print("RSS MB per tenth:              ", " ".join(f"{x:.1f}" for x in r["rss_by_tenth"]))
    print("database MB per tenth:         ", " ".join(f"{x:.2f}" for x in r["db_by_tenth"]))
    print("refusals by code:", json.dumps(r["refused"]))
    print("store after the run:", json.dumps(r["store_after"]))
    write_results(args.out, [r])
    return 0


if __name__ == "__main__":
    sys.exit(main())
