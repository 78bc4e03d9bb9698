"""Side by side: simgw, SMS Server Tools 3 and gammu-smsd on the same simulator and load.

    .venv/bin/python tests/bench/bench_vs_daemons.py [--modems 8] [--rate 3.6] [--seconds 30]

Needs Debian's ``smstools`` and ``gammu-smsd`` (``sudo apt-get install smstools gammu-smsd``;
the script says so and skips a daemon that is missing). Each daemon drives the same simulated
modems (real ptys, one process) under the same Poisson load; its latency is measured from the
simulator writing the ``+CMTI`` of an SMS to the SMS's file appearing in the daemon's incoming
spool. simgw's is measured to the ``sms`` frame stored at the reference marketplace, which is
further along than a spool file. CPU is the daemon's own (user + system, all its processes).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import percentile, write_results  # noqa: E402

import bench_e2e  # noqa: E402
from gateway import logs  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def smstools_config(work: str, ports: list[str], fast: bool) -> list[str]:
    os.makedirs(os.path.join(work, "incoming"), exist_ok=True)
    for sub in ("outgoing", "checked", "failed"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    devices = ",".join(f"GSM{i}" for i in range(len(ports)))
    lines = [f"devices = {devices}", f"outgoing = {work}/outgoing", f"checked = {work}/checked",
             f"incoming = {work}/incoming", f"failed = {work}/failed", f"logfile = {work}/smsd.log", "loglevel = 3",
             f"infofile = {work}/smsd.working", f"pidfile = {work}/smsd.pid"]
    if fast:  # the documented knobs for polling faster: check every second, no random start delay
        lines += ["delaytime = 1", "delaytime_mainprocess = 1"]
    for i, port in enumerate(ports):
        lines += ["", f"[GSM{i}]", f"device = {port}", "incoming = yes", "baudrate = 115200"]
    path = os.path.join(work, "smsd.conf")
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return [["smsd", "-c", path, "-t"]]


def gammu_configs(work: str, ports: list[str], fast: bool) -> list[list[str]]:
    commands = []
    inbox = os.path.join(work, "incoming")
    os.makedirs(inbox, exist_ok=True)
    for i, port in enumerate(ports):
        d = os.path.join(work, f"gammu{i}")
        for sub in ("outbox", "sent", "error"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        text = (f"[gammu]\ndevice = {port}\nconnection = at115200\n\n[smsd]\nservice = files\n"
                f"inboxpath = {inbox}/\noutboxpath = {d}/outbox/\nsentsmspath = {d}/sent/\nerrorsmspath = {d}/error/\n"
                f"logfile = {d}/smsd.log\nCheckSecurity = 0\nCheckBattery = 0\nCheckSignal = 0\nCheckNetwork = 0\n")
        if fast:  # poll for SMS on every loop, one loop a second: its fastest setting that does not spin
            text += "ReceiveFrequency = 0\nLoopSleep = 1\n"
        path = os.path.join(d, "smsdrc")
        with open(path, "w") as fh:
            fh.write(text)
        commands.append(["gammu-smsd", "-c", path])
    return commands


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
        except (OSError, IndexError, ValueError):
            pass
    return total


def descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        return out
    for child in children:
        out += descendants(int(child))
    return out


def run_daemon(name: str, make_commands, modems: int, rate: float, seconds: float, fast: bool) -> dict:
    work = tempfile.mkdtemp(prefix=f"simgw-vs-{name}-")
    ctx = mp.get_context("spawn")
    commands_q, reports = ctx.Queue(), ctx.Queue()
    sim = ctx.Process(target=bench_e2e.simulator_process, args=(modems, None, os.path.join(work, "ports"),
                                                                  commands_q, reports))
    sim.start()
    kind, farm_info, _ = reports.get(timeout=60)
    ports = [port for port, _ in farm_info]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
             for cmd in make_commands(work, ports, fast)]
    spool = os.path.join(work, "incoming")
    time.sleep(8)  # let each daemon initialise its modems and settle into its loop
    pids = [p for proc in procs for p in descendants(proc.pid)]
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    rng = random.Random(3)
    sent: list[str] = []
    interval = 1.0 / (rate * modems)
    next_at = t0
    seen: dict[str, float] = {}
    known: set[str] = set()
    first_seen: dict[str, float] = {}

    def poll_spool() -> None:
        for entry in os.scandir(spool):
            if entry.name in known:
                continue
            at = time.monotonic()
            try:
                raw = open(entry.path, "rb").read()
            except OSError:
                continue
            text = raw.decode("utf-16", "replace") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") \
                else raw.decode("utf-8", "replace")
            for line in text.splitlines():
                if line.startswith("Your code is ") and len(line.strip()) == len("Your code is 0000000"):
                    seen.setdefault(line.strip(), first_seen.setdefault(entry.name, at))
                    known.add(entry.name)  # a daemon may still be writing it: read again until whole
            first_seen.setdefault(entry.name, at)

    while time.monotonic() - t0 < seconds:
        text = f"Your code is {len(sent):07d}"
        commands_q.put((rng.randrange(modems), text))
        sent.append(text)
        next_at += interval * rng.expovariate(1.0)
        while time.monotonic() < next_at:
            poll_spool()
            time.sleep(0.002)
    deadline = time.monotonic() + 60
    while len(seen) < len(sent) and time.monotonic() < deadline:
        poll_spool()
        time.sleep(0.002)
    wall = time.monotonic() - t0
    cpu = cpu_seconds([p for proc in procs for p in descendants(proc.pid)]) - cpu0
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    commands_q.put(None)
    sim.join(10)
    cmti: dict[str, float] = {}
    stored: dict[str, float] = {}
    while True:
        try:
            kind, text, at = reports.get_nowait()
        except queue.Empty:
            break
        (cmti if kind == "cmti" else stored)[text] = at
    # The clock starts at the +CMTI; for a daemon that never turns announcements on (smstools
    # polls with CMGL), at the moment the SMS was on the SIM, which is when a +CMTI would be sent.
    start = {**stored, **cmti}
    latencies = [(seen[t] - start[t]) * 1000 for t in seen if t in start]
    shutil.rmtree(work, ignore_errors=True)
    return summary(f"{name} ({'fastest' if fast else 'default'})", sent, latencies, cpu / wall)


def summary(name: str, sent: list, latencies: list[float], cpu: float) -> dict:
    return {"daemon": name, "sent": len(sent), "received": len(latencies),
            "p50_ms": statistics.median(latencies) if latencies else None,
            "p99_ms": percentile(latencies, 99) if latencies else None,
            "max_ms": max(latencies) if latencies else None, "cpu_cores": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, default=8)
    parser.add_argument("--rate", type=float, default=3.6)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", default="bench-results/vs-daemons.json")
    logs.configure(json_lines=True, level="error")
    parser.add_argument("--only", choices=("smstools", "gammu-smsd"), default=None)
    args = parser.parse_args()
    simgw = asyncio.run(bench_e2e.bench(args.modems, args.rate, args.seconds, None, False, idle=0))
    rows = [{"daemon": "simgw (to the marketplace)", "sent": simgw["sent"], "received": simgw["received"],
             "p50_ms": simgw["p50_ms"], "p99_ms": simgw["p99_ms"], "max_ms": simgw["max_ms"],
             "cpu_cores": simgw["gateway_cpu_load"]}]
    for binary, maker, label in (("smsd", smstools_config, "smstools"), ("gammu-smsd", gammu_configs, "gammu-smsd")):
        if args.only and args.only != label:
            continue
        if shutil.which(binary) is None:
            print(f"{label}: not installed; sudo apt-get install {'smstools' if label == 'smstools' else 'gammu-smsd'}")
            continue
        for fast in (False, True):
            rows.append(run_daemon(label, maker, args.modems, args.rate, args.seconds, fast))
    base = rows[0]
    print(f"{args.modems} modems, {args.rate} SMS/s each (Poisson), {args.seconds:.0f} s; latency from +CMTI")
    print(f"{'daemon':<28} {'sent':>5} {'recv':>5} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'CPU':>6} "
          f"{'p99 / simgw':>11} {'CPU / simgw':>11}")
    for r in rows:
        ratio = r["p99_ms"] / base["p99_ms"] if r["p99_ms"] and base["p99_ms"] else float("nan")
        cpu_ratio = r["cpu_cores"] / base["cpu_cores"] if base["cpu_cores"] else float("nan")
        fmt = lambda v: f"{v:9.1f}" if v is not None else "        -"  # noqa: E731
        print(f"{r['daemon']:<28} {r['sent']:>5} {r['received']:>5} {fmt(r['p50_ms'])} {fmt(r['p99_ms'])} "
              f"{fmt(r['max_ms'])} {r['cpu_cores']:6.3f} {ratio:11.1f} {cpu_ratio:11.2f}")
    write_results(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
