"""The fault-injection soak: SMS flow while everything that goes wrong in a cupboard goes wrong.

    .venv/bin/python -m tests.reliability.soak --seconds 1800

For the given time, simulated modems (on real ptys, in this process) receive SMS while leases open
and close through the reference marketplace (in this process, on 127.0.0.1), and the daemon runs
as its own process, as in production. Faults are injected at random: SIGKILL of the daemon and a
restart, marketplace disconnects and restarts, serial garbage, a silent modem, a modem reboot,
unplug and replug, a SIM storage filled behind the daemon's back, a full disk (every commit fails
as SQLite fails on one: the SMS must stay on the SIM until it can be stored), a real full disk
(run as root, the state directory is a small tmpfs the runner mounts, fills with a file and frees;
otherwise that fault is skipped and the first lines say why) and a wall-clock jump. Like systemd
(``Restart=always``), the runner starts the daemon again a second after it exits on its own.
Some leases are opened with the shortest wait window (60 s) and left alone, so their deadline
comes while the faults go on. Then the faults stop, everything drains, and the verdict compares
what the network sent with what the marketplace holds and what the gateway quarantined, and every
lease's end with its deadline. The last line is

    lost=N duplicated=N misrouted=N leaked=N late=N

(``late``: leases that ended more than 5 s after their policy deadline, or not at all) and the exit
status is 0 only when all five are 0. Everything is bounded: the run, the drain (``--drain``),
every wait.

What the runner expects of each SMS is unambiguous by construction: an SMS is sent to a leased
number only after the marketplace had the lease's ``ok`` and before it asked to finish (a buyer
finishes once its SMS arrived); a lease opens only on a number whose SIM holds nothing unread and
whose last unleased SMS is 3 s old. Lease commands that get no answer (the daemon was killed) are
repeated with the same command id until they do: that is what command ids are for.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from drivers.httpjson import HttpError
from drivers.simulator.farm import ModemFarm
from gateway import logs
from gateway.tools.market import Market

TOKEN = "soak-token-0123456789abcdef"
FAULTS = ("sigkill", "market_restart", "market_drop", "garbage", "silence", "reboot", "unplug", "full_storage",
          "disk_full", "disk_fill", "clock_jump")
STATE_TMPFS_MB = 64  # the state directory's size when the runner can mount it (root)
LATE_AFTER = 5.0  # a lease that ends later than this after its deadline is late
DECOY_WAIT = 60.0  # the wait window of leases left to expire (the policy's minimum)


@dataclass(slots=True)
class Number:
    """The runner's view of one modem's number."""

    index: int
    msisdn: str
    lease: str | None = None  # the lease the marketplace had ``ok`` for, not yet asked to end
    busy: bool = False  # a lease command is in flight: send nothing to this number meanwhile
    last_idle_send: float = 0.0
    opened_at: float = 0.0
    sent: list[str] = field(default_factory=list)  # texts sent to the current lease
    decoy: bool = False  # the current lease is left to expire: no SMS, no finish


@dataclass(slots=True)
class Verdict:
    lost: int = 0
    duplicated: int = 0
    misrouted: int = 0
    leaked: int = 0
    late: int = 0
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"lost={self.lost} duplicated={self.duplicated} misrouted={self.misrouted} leaked={self.leaked} "
                f"late={self.late}")

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.misrouted or self.leaked or self.late)


class Soak:
    def __init__(self, workdir: str, *, seconds: float, modems: int = 8, seed: int = 1, sms_per_second: float = 4.0,
                 fault_every: tuple[float, float] = (2.0, 6.0), drain: float = 240.0) -> None:
        self.dir = workdir
        self.seconds, self.drain_limit = seconds, drain
        self.rng = random.Random(seed)
        self.sms_interval = 1.0 / sms_per_second
        self.fault_every = fault_every
        self.farm = ModemFarm(modems, profile="mixed", capacity=30, directory=os.path.join(workdir, "sim"),
                              periodic_interval=5.0, seed=seed)
        self.fault_dir = os.path.join(workdir, "faults")
        os.makedirs(self.fault_dir, exist_ok=True)
        self.market_db = os.path.join(workdir, "market.db")
        self.state_dir = os.path.join(workdir, "state")
        self.market: Market | None = None
        self.market_port = _free_port()
        self.daemon: subprocess.Popen | None = None
        self.expected: dict[str, str | None] = {}  # text -> lease id, or None (must stay on the Pi)
        self.numbers: list[Number] = []
        self.faults = collections.Counter()
        self.lease_frames: dict[str, dict] = {}  # lease id -> its last frame at the marketplace (ended: the first)
        self.decoys: set[str] = set()
        self.daemon_exits = 0  # times the daemon exited by itself and was started again
        self.tmpfs: str | None = None  # the mounted state directory, or None
        self.tmpfs_skipped: str | None = None  # why there is no real disk-full
        self.leases_opened = 0
        self._ids = 0
        self._stop = asyncio.Event()
        self._restarting = False  # a sigkill fault is restarting the daemon itself
        self._inflight: set[asyncio.Task] = set()
        self._log = open(os.path.join(workdir, "daemon.log"), "ab")

    # ------------------------------------------------------------------------------ processes
    def write_config(self) -> str:
        path = os.path.join(self.dir, "simgw.toml")
        modems = "".join(f'[[modems]]\nport = "{m.link_path}"\n' for m in self.farm.modems)
        with open(path, "w") as fh:
            fh.write(f'[gateway]\nid = "soak"\nstate_dir = "{self.state_dir}"\n\n'
                     f'[control]\nlisten = "127.0.0.1:{_free_port()}"\n\n'
                     f'[leases]\nheld_sms_tolerance = "0s"\n\n'
                     f'[uplink]\nurl = "ws://127.0.0.1:{self.market_port}/v1"\ntoken = "{TOKEN}"\n'
                     f'backoff_max = "2s"\n\n{modems}')
        return path

    def start_daemon(self) -> None:
        env = {**os.environ, "SIMGW_FAULT_DIR": self.fault_dir}
        self.daemon = subprocess.Popen([sys.executable, "-m", "gateway.cli", "--log-json", "--config", self.config,
                                        "run"], stdout=self._log, stderr=self._log, env=env)

    async def start_market(self) -> None:
        self.market = Market(self.market_db, TOKEN, on_lease=self._on_lease)
        for _ in range(50):
            try:
                await self.market.start("127.0.0.1", self.market_port)
                return
            except OSError:
                await asyncio.sleep(0.1)  # the old socket is still closing
        raise RuntimeError(f"cannot listen on 127.0.0.1:{self.market_port}")

    async def stop_market(self) -> None:
        if self.market is not None:
            await self.market.stop()
            self.market.close()
            self.market = None

    # ----------------------------------------------------------------------------------- run
    async def run(self) -> Verdict:
        self.tmpfs_skipped = _mount_tmpfs(self.state_dir, STATE_TMPFS_MB)
        self.tmpfs = None if self.tmpfs_skipped else self.state_dir
        print(f"soak: real disk-full on a {STATE_TMPFS_MB} MB tmpfs at {self.state_dir}" if self.tmpfs
              else f"soak: real disk-full skipped: {self.tmpfs_skipped}", flush=True)
        try:
            return await self._run()
        finally:  # never leave a daemon behind: its stale port links would grab the next run's ptys
            self._stop.set()
            if self.daemon is not None and self.daemon.poll() is None:
                self.daemon.kill()
                self.daemon.wait()
            if self.tmpfs:
                _unmount(self.tmpfs)

    async def _systemd(self) -> None:
        """Restart=always, RestartSec=1: a daemon that exited by itself is started again."""
        while not self._stop.is_set():
            await asyncio.sleep(0.5)
            if self.daemon is not None and self.daemon.poll() is not None and not self._restarting:
                self.daemon_exits += 1
                await asyncio.sleep(1.0)
                if self.daemon.poll() is not None and not self._restarting:
                    self.start_daemon()

    def _on_lease(self, frame: dict) -> None:
        previous = self.lease_frames.get(frame["lease_id"])
        if previous is None or previous["state"] in _ACTIVE:  # an end is kept as first seen
            self.lease_frames[frame["lease_id"]] = frame

    async def _run(self) -> Verdict:
        await self.farm.start()
        self.numbers = [Number(i, info.msisdn) for i, info in enumerate(self.farm.info())]
        self.config = self.write_config()
        await self.start_market()
        self.start_daemon()
        started = time.monotonic()
        await self._until(lambda: self.market is not None and "soak" in self.market.gateways, 30, "the daemon up")
        systemd = asyncio.create_task(self._systemd())
        tasks = [asyncio.create_task(coro) for coro in (self._sms_loop(), self._lease_loop(), self._fault_loop())]
        await asyncio.sleep(self.seconds)
        self._stop.set()
        await asyncio.gather(*tasks, systemd)
        print(f"soak: {time.monotonic() - started:.0f} s of traffic, {len(self.expected)} SMS sent, "
              f"{self.leases_opened} leases ({len(self.decoys)} left to expire), "
              f"faults {dict(sorted(self.faults.items()))}, daemon exits {self.daemon_exits}", flush=True)
        await self._settle()
        if self._inflight:  # lease commands still waiting for an answer get one now the daemon is up
            await asyncio.wait(self._inflight, timeout=200)
        drained = await self._drain()
        verdict = self._verdict()
        await self._shutdown()
        if not drained:
            print("soak: the drain did not complete within its bound; what is missing counts as lost", flush=True)
        return verdict

    async def _settle(self) -> None:
        """Faults off, everything plugged in and running."""
        for name in ("disk_full", "wall_offset"):
            _remove(os.path.join(self.fault_dir, name))
        _remove(os.path.join(self.state_dir, "filler"))
        for modem in self.farm.modems:
            modem.replug()
            modem.delay = 0.0
        if self.market is None:
            await self.start_market()
        if self.daemon is None or self.daemon.poll() is not None:
            self.start_daemon()

    async def _drain(self) -> bool:
        """Wait until every leased SMS is at the marketplace and every SIM and network queue is empty."""
        deadline = time.monotonic() + self.drain_limit
        while time.monotonic() < deadline:
            arrived = {row["text"] for row in self.market.sms()}
            pending = [t for t, lease in self.expected.items() if lease is not None and t not in arrived]
            open_decoys = [d for d in self.decoys if self.lease_frames.get(d, {}).get("state", "opened") in _ACTIVE]
            if not pending and not open_decoys and self.farm.stored_count() == 0 and self.farm.held_count() == 0:
                await asyncio.sleep(2.0)  # the last quarantined ones commit
                return True
            await asyncio.sleep(0.5)
        return False

    async def _shutdown(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(15)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        await self.stop_market()
        await self.farm.stop()
        self._log.close()

    # ------------------------------------------------------------------------------- traffic
    def _text(self, kind: str) -> str:
        self._ids += 1
        text = f"{kind} {self._ids}"
        if self.rng.random() < 0.1:  # sometimes three parts
            text += " " + "long message body " * 20
        return text

    async def _sms_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.rng.expovariate(1.0 / self.sms_interval))
            number = self.rng.choice(self.numbers)
            if number.busy or number.decoy:
                continue  # a lease command in flight: whose the SMS is would be a coin toss
            if number.lease is None and self.rng.random() < 0.6:
                continue  # most traffic goes to leased numbers, and idle ones get quiet enough to lease
            if number.lease is not None:
                text = self._text(f"for {number.lease}")
                number.sent.append(text)
                self.expected[text] = number.lease
            else:
                text = self._text("unleased")
                number.last_idle_send = time.monotonic()
                self.expected[text] = None
            self.farm.send_sms(number.index, "+79990001122", text, shuffle=True)

    async def _lease_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(0.3)
            now = time.monotonic()
            for number in self.numbers:
                if number.busy or self._stop.is_set():
                    continue
                modem = self.farm.modems[number.index].engine
                if number.lease is None:
                    quiet = now - number.last_idle_send > 3.0 and not modem.storage and not modem.network_queue
                    if quiet and self.rng.random() < 0.3:
                        number.busy = True
                        self._spawn(self._open(number, decoy=self.rng.random() < 0.2))
                elif number.decoy:
                    if self.lease_frames.get(number.lease, {}).get("state", "opened") not in _ACTIVE:
                        number.lease, number.decoy, number.last_idle_send = None, False, now  # it expired
                elif now - number.opened_at > self.rng.uniform(3, 12) and self._arrived(number):
                    number.busy = True
                    self._spawn(self._end(number))

    def _arrived(self, number: Number) -> bool:
        if self.market is None:
            return False
        at_market = {row["text"] for row in self.market.sms(number.lease)}
        return all(text in at_market for text in number.sent)

    async def _command(self, frame: dict, bound: float = 180.0) -> dict | None:
        """Send until the gateway answers (the same command id every time); None after ``bound`` s."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if self.market is not None:
                try:
                    result = await self.market.command(dict(frame), gateway_id="soak", timeout=5.0)
                    if result.get("reason") not in ("rate_limited", "unavailable"):
                        return result
                    await asyncio.sleep(min(float(result.get("retry_after") or 1.0), 5.0))  # not executed: again
                    continue
                except HttpError:
                    pass
            await asyncio.sleep(0.3)
        return None

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _open(self, number: Number, decoy: bool = False) -> None:
        self._ids += 1
        lease_id = f"S{self._ids}"
        frame = {"type": "lease.open", "command_id": f"open-{lease_id}", "lease_id": lease_id,
                 "service": f"svc{self._ids}", "number": number.msisdn}
        if decoy:
            frame["wait_window"] = DECOY_WAIT
        result = await self._command(frame)
        if result is not None and result.get("ok"):
            number.lease, number.opened_at, number.sent, number.decoy = lease_id, time.monotonic(), [], decoy
            self.leases_opened += 1
            if decoy:
                self.decoys.add(lease_id)
        number.busy = False

    async def _end(self, number: Number) -> None:
        action = "finish" if number.sent else "cancel"
        result = await self._command({"type": f"lease.{action}", "command_id": f"{action}-{number.lease}",
                                      "lease_id": number.lease})
        if result is not None:
            number.lease, number.sent = None, []
            number.last_idle_send = time.monotonic()
        number.busy = False

    # -------------------------------------------------------------------------------- faults
    async def _fault_loop(self) -> None:
        running: set[asyncio.Task] = set()
        while not self._stop.is_set():
            await asyncio.sleep(self.rng.uniform(*self.fault_every))
            if self._stop.is_set():
                break
            kind = self.rng.choice([k for k in FAULTS if k != "disk_fill" or self.tmpfs])
            self.faults[kind] += 1
            task = asyncio.create_task(self._inject(kind))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.gather(*running)

    async def _inject(self, kind: str) -> None:
        rng, farm = self.rng, self.farm
        modem = rng.randrange(len(farm.modems))
        if kind == "sigkill":
            if self.daemon is not None and self.daemon.poll() is None and not self._restarting:
                self._restarting = True
                self.daemon.kill()
                self.daemon.wait()
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                self.start_daemon()
                self._restarting = False
        elif kind == "market_restart":
            if self.market is not None:
                await self.stop_market()
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                await self.start_market()
        elif kind == "market_drop":
            if self.market is not None:
                for peer in list(self.market._peers.values()):
                    await peer.connection.close()
        elif kind in ("garbage", "silence", "reboot"):
            farm.inject_fault(modem, kind, seconds=rng.uniform(0.5, 3.0))
        elif kind == "unplug":
            farm.inject_fault(modem, "unplug")
            await asyncio.sleep(rng.uniform(0.5, 3.0))
            farm.inject_fault(modem, "replug")
        elif kind == "full_storage":
            number = self.numbers[modem]
            if number.busy or number.decoy:  # a lease left to expire gets no SMS
                return
            engine = farm.modems[modem].engine
            texts = [self._text("filled") for _ in range(engine.capacity - len(engine.storage))]
            for text in texts:
                self.expected[text] = number.lease
                if number.lease is not None:
                    number.sent.append(text)
                else:
                    number.last_idle_send = time.monotonic()
            engine.fill_storage([pdu for text in texts for pdu in farm.pdus_for("+79990003344", text)])
        elif kind == "disk_full":
            path = os.path.join(self.fault_dir, "disk_full")
            open(path, "w").close()
            await asyncio.sleep(rng.uniform(1.0, 4.0))
            _remove(path)  # an overlapping fault of the same kind may have ended it already
        elif kind == "disk_fill":  # the real thing: the state directory's file system full
            if self.tmpfs and not os.path.exists(os.path.join(self.state_dir, "filler")):
                filler = os.path.join(self.state_dir, "filler")
                await asyncio.to_thread(_fill, filler)
                await asyncio.sleep(rng.uniform(2.0, 6.0))
                _remove(filler)
        elif kind == "clock_jump":  # hours, either way: beyond what a network timestamp is trusted for
            path = os.path.join(self.fault_dir, "wall_offset")
            with open(path, "w") as fh:
                fh.write(str(rng.choice((-1, 1)) * rng.uniform(3600, 3 * 3600)))
            await asyncio.sleep(rng.uniform(2.0, 6.0))
            _remove(path)

    # ------------------------------------------------------------------------------- verdict
    def _verdict(self) -> Verdict:
        verdict = Verdict()
        ids_by_text: dict[str, set[str]] = collections.defaultdict(set)
        lease_by_text: dict[str, str | None] = {}
        for row in self.market.sms():
            ids_by_text[row["text"]].add(row["msg_id"])
            lease_by_text[row["text"]] = row["lease_id"]
        db = sqlite3.connect(f"file:{os.path.join(self.state_dir, 'simgw.db')}?mode=ro", uri=True)
        quarantined = {text for (text,) in db.execute("SELECT text FROM messages WHERE quarantined = 1")}
        db.close()

        def note(kind: str, text: str) -> None:
            if len(verdict.examples) < 10:
                verdict.examples.append(f"{kind}: {text[:40]!r} expected {self.expected.get(text)}, "
                                        f"marketplace {lease_by_text.get(text)}, quarantined {text in quarantined}")

        for text, lease in self.expected.items():
            at_market = text in ids_by_text
            if len(ids_by_text.get(text, ())) > 1:
                verdict.duplicated += 1
                note("duplicated", text)
            if lease is None and at_market:
                verdict.leaked += 1
                note("leaked", text)
            elif lease is None and text not in quarantined:
                verdict.lost += 1
                note("lost", text)
            elif lease is not None and not at_market:
                verdict.lost += 1
                note("lost", text)
            elif lease is not None and lease_by_text[text] != lease:
                verdict.misrouted += 1
                note("misrouted", text)
        for text in ids_by_text:
            if text not in self.expected:
                verdict.leaked += 1
                note("leaked (never sent)", text)
        self._judge_deadlines(verdict)
        return verdict

    def _judge_deadlines(self, verdict: Verdict) -> None:
        """A lease is late when its end came more than LATE_AFTER after its deadline, as the
        gateway wrote both when it ended it (the same clock); a lease still open is late too."""
        for lease_id, frame in sorted(self.lease_frames.items()):
            if frame["state"] in _ACTIVE:
                late_by = None if lease_id in self.decoys else 0.0  # only decoys are left to expire
            else:
                late_by = frame["at"] - frame["deadline"]
            if late_by is None or late_by > LATE_AFTER:
                verdict.late += 1
                if len(verdict.examples) < 10:
                    verdict.examples.append(f"late: lease {lease_id} {frame['state']} "
                                            f"{'never ended' if late_by is None else f'{late_by:.1f} s after its deadline'}")
        ended = [f for f in self.lease_frames.values() if f["state"] not in _ACTIVE]
        worst = max((f["at"] - f["deadline"] for f in ended if f["state"] == "expired"), default=0.0)
        print(f"soak: {len(ended)} leases ended, {sum(f['state'] == 'expired' for f in ended)} by their deadline, "
              f"the latest {worst:.1f} s after it", flush=True)

    async def _until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)


_ACTIVE = frozenset({"opened", "preparing", "waiting", "delivered", "received", "repeat_waiting"})


def _mount_tmpfs(path: str, size_mb: int) -> str | None:
    """Mount a tmpfs of ``size_mb`` at ``path``; None when mounted, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root (mounting a small tmpfs for the state directory needs root)"
    os.makedirs(path, exist_ok=True)
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "simgw-soak", path],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"mount failed: {exc}"
    return None if result.returncode == 0 else f"mount failed: {(result.stderr or result.stdout).strip()[:200]}"


def _unmount(path: str) -> None:
    if subprocess.run(["umount", path], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)  # busy: detach it now


def _fill(path: str) -> None:
    """Write zeros to ``path`` until the file system has no room left."""
    with open(path, "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            try:
                while True:
                    fh.write(block)
            except OSError:
                continue


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1800.0, help="how long SMS flow and faults go on")
    parser.add_argument("--modems", type=int, default=8)
    parser.add_argument("--rate", type=float, default=4.0, help="SMS per second, all modems together")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--drain", type=float, default=240.0, help="upper bound on the final drain, seconds")
    parser.add_argument("--dir", default=None, help="work directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    logs.configure(json_lines=True, level="error")
    workdir = args.dir or tempfile.mkdtemp(prefix="simgw-soak-")
    soak = Soak(workdir, seconds=args.seconds, modems=args.modems, seed=args.seed, sms_per_second=args.rate,
                drain=args.drain)
    verdict = asyncio.run(soak.run())
    for example in verdict.examples:
        print(f"soak: {example}")
    print(f"soak: work directory {workdir} (daemon log, both databases)")
    print(verdict.line(), flush=True)
    return 0 if verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
