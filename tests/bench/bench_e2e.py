"""Benchmark: +CMTI at the simulator -> the ``sms`` frame at the reference marketplace.

    .venv/bin/python tests/bench/bench_e2e.py [--modems 1 16 64] [--rate 3.6] [--seconds 10] [--baud 115200]
                                              [--burst] [--count FILE] [--py-spy FILE] [--ack-delay S]

Four processes: the simulated modems (real ptys), the daemon under test exactly as in production
(``simgw run`` with a config file: drivers, SQLite with synchronous=FULL, uplink), the reference
marketplace (real WebSocket on 127.0.0.1, fsync before each ack), and this script. The simulator stamps the moment
it writes the ``+CMTI`` of an SMS's last part, the marketplace the moment the ``sms`` frame is
stored; both read CLOCK_MONOTONIC, which Linux shares between processes. CPU (user + system) and
peak RSS are the daemon process's own, from /proc, as the other daemons are measured; its modem
drivers run with production settings (health probes every 30 s, sweeps every 60 s); idle CPU is
measured over ``--idle`` seconds with leases open and no SMS; commits come from its /metrics.
CPU per SMS is the daemon's CPU over the load window divided by the SMS sent. ``--count`` runs the
daemon under ``daemon_counters.py`` and prints, per SMS, its event-loop wake-ups, thread hand-offs
and tasks; ``--py-spy`` samples every thread of the daemon over the load window (``pip install
py-spy``; ``spy_summary.py`` reads the file). Steady load: Poisson arrivals at ``--rate`` SMS/s per modem. ``--burst``:
every modem receives a 3-part SMS at the same instant, every 2 s. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import atexit
import asyncio
import json
import multiprocessing as mp
import os
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import percentile, write_results  # noqa: E402

from gateway import logs  # noqa: E402

CMTI_RE = re.compile(r'\+CMTI: "\w+",(\d+)')
TOKEN = "bench-token"



# ---------------------------------------------------------------------------- simulator process
def simulator_process(modems: int, baud: int | None, directory: str, commands: mp.Queue, reports: mp.Queue) -> None:
    from drivers.simulator.farm import ModemFarm

    logs.configure(json_lines=True, level="error")

    async def main() -> None:
        farm = ModemFarm(modems, profile="generic", baud=baud, periodic_interval=None, capacity=60, directory=directory)
        pending: dict[tuple[str, int], str] = {}
        for pty in farm.modems:
            def on_wire(text: str, at: float, port: str = pty.link_path) -> None:
                for match in CMTI_RE.finditer(text):
                    key = pending.pop((port, int(match.group(1))), None)
                    if key is not None:
                        reports.put(("cmti", key, at))
            pty._on_wire = on_wire
        await farm.start()
        reports.put(("ready", [(m.port, m.msisdn) for m in farm.info()], 0.0))
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, commands.get)
            if command is None:
                break
            modem, text = command
            engine = farm.modems[modem].engine
            pdus = farm.pdus_for("+79161234567", text)
            free = [i for i in range(1, engine.capacity + 1) if i not in engine.storage]
            if len(free) >= len(pdus):
                pending[(farm.modems[modem].link_path, free[len(pdus) - 1])] = text
            for pdu in pdus:
                farm.modems[modem].deliver(pdu)
            # For daemons that never enable +CMTI (smstools polls): when the SMS was on the SIM.
            reports.put(("stored", text, time.monotonic()))
        await farm.stop()

    asyncio.run(main())


# ----------------------------------------------------------------------------- market process
def market_process(db: str, reports: mp.Queue, ports: mp.Queue, ack_delay: float | None = None) -> None:
    from drivers.httpjson import serve_json
    from gateway.tools.market import Arrival, Market

    logs.configure(json_lines=True, level="error")

    async def main() -> None:
        def on_sms(arrival: Arrival) -> None:
            reports.put(("sms", arrival.text, time.monotonic()))

        market = Market(db, TOKEN, on_sms=on_sms, **({} if ack_delay is None else {"ack_delay": ack_delay}))
        await market.start("127.0.0.1", 0)
        server = await serve_json(market.handle_http, "127.0.0.1", 0)
        ports.put((market.address[1], server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(main())


def http_post(port: int, path: str, body: dict) -> dict:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as refused:  # a refusal (409) is an answer: its body says why
        return json.loads(refused.read() or b"{}")


# ------------------------------------------------------------------------------------ a run
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def _all_ready(control: int, modems: int) -> bool:
    body = _get(control, "/status")
    if body is None:
        return False
    status = json.loads(body)
    return (sum(1 for m in status["modems"] if m["state"] == "ok") == modems
            and bool(status["uplink"] and status["uplink"]["connected"]))


def _commits(control: int) -> int:
    metrics = _get(control, "/metrics") or ""
    match = re.search(r"^simgw_store_commits_total (\S+)$", metrics, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _thread_cpu_seconds(pid: int) -> dict[int, float]:
    """utime + stime of each thread of ``pid`` (the event loop's thread is the one whose id is the pid)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _split_by_thread(pid: int, before: dict[int, float], after: dict[int, float], sent: int) -> dict[str, float]:
    """CPU ms per SMS of the event loop's thread and of all the others (the core thread, executors)."""
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    loop = spent.pop(pid, 0.0)
    return {"loop_thread_ms_per_sms": loop / max(1, sent) * 1000,
            "other_threads_ms_per_sms": sum(spent.values()) / max(1, sent) * 1000}


def _peak_rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _counter_snapshots(path: str, want: int) -> list[dict]:
    """The daemon_counters lines written so far (a SIGUSR1 is answered within a loop iteration)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as fh:
                lines = [json.loads(line) for line in fh if line.strip()]
            if len(lines) >= want:
                return lines
        time.sleep(0.02)
    raise RuntimeError(f"the daemon wrote no counters to {path}")


def _per_sms(before: dict, after: dict, sent: int) -> dict[str, float]:
    return {key: (after.get(key, 0) - before.get(key, 0)) / max(1, sent)
            for key in sorted(set(before) | set(after)) if key != "at"}


def _start_py_spy(path: str, pid: int, seconds: float) -> subprocess.Popen:
    spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return subprocess.Popen([spy if os.path.exists(spy) else "py-spy", "record", "--pid", str(pid), "--rate", "1000",
                             "--nonblocking", "--threads", "--format", "raw", "--output", path,
                             "--duration", str(int(seconds + 1))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def bench(modems: int, rate: float, seconds: float, baud: int | None, burst: bool, idle: float = 31.0,
                profile: str | None = None, count: str | None = None, py_spy: str | None = None,
                ack_delay: float | None = None) -> dict:
    tmp = tempfile.mkdtemp(prefix="simgw-bench-")
    ctx = mp.get_context("spawn")
    commands, reports, ports = ctx.Queue(), ctx.Queue(), ctx.Queue()
    # daemonic, and the daemon below stopped at exit: a bench that fails midway leaves nothing running
    sim = ctx.Process(target=simulator_process, args=(modems, baud, os.path.join(tmp, "ports"), commands, reports),
                      daemon=True)
    market = ctx.Process(target=market_process, args=(os.path.join(tmp, "market.db"), reports, ports, ack_delay),
                         daemon=True)
    sim.start()
    market.start()
    ws_port, http_port = ports.get(timeout=60)
    kind, farm_info, _ = reports.get(timeout=60)
    assert kind == "ready"
    state = os.path.join(tmp, "state")
    control = _free_port()
    conf = os.path.join(tmp, "simgw.toml")
    with open(conf, "w") as fh:  # the daemon as in production: its own process, its config file
        fh.write(f'[gateway]\nid = "bench"\nstate_dir = "{state}"\nlog_level = "warning"\n\n'
                 f'[control]\nlisten = "127.0.0.1:{control}"\n\n'
                 f'[uplink]\nurl = "ws://127.0.0.1:{ws_port}/v1"\ntoken = "{TOKEN}"\n\n'
                 + "".join(f'[[modems]]\nport = "{port}"\nbaud = {baud or 115200}\n' for port, _ in farm_info))
    command = [sys.executable, "-m", "gateway.cli", "--log-json", "--log-level", "warning", "--config", conf, "run"]
    if profile:
        command[1:1] = ["-m", "cProfile", "-o", profile]
    if count:
        command[1:3] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "daemon_counters.py"), count]
    t_start = time.monotonic()
    daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "daemon.log"), "wb"))
    atexit.register(daemon.kill)  # a no-op once it has exited
    while not _all_ready(control, modems):
        if daemon.poll() is not None or time.monotonic() - t_start > 120:
            raise RuntimeError(f"the daemon did not come up; see {tmp}/daemon.log")
        await asyncio.sleep(0.02)
    ready_after = time.monotonic() - t_start
    for i, (_, number) in enumerate(farm_info):
        for _attempt in range(100):  # the gateway takes 20 commands/s (burst 50): resend after retry_after
            result = await asyncio.to_thread(http_post, http_port, "/leases",
                                             {"service": "bench", "lease_id": f"b{i}", "number": number})
            if result.get("reason") != "rate_limited":
                break
            await asyncio.sleep(float(result.get("retry_after", 0.05)))
        assert result.get("ok"), result
    idle_cpu0, idle_t0 = _cpu_seconds(daemon.pid), time.monotonic()
    await asyncio.sleep(idle)  # 31 s: a whole health-probe cycle of every modem falls inside
    idle_cpu = (_cpu_seconds(daemon.pid) - idle_cpu0) / (time.monotonic() - idle_t0) if idle else float("nan")
    commits0 = _commits(control)
    if count:
        os.kill(daemon.pid, signal.SIGUSR1)
    spy = _start_py_spy(py_spy, daemon.pid, seconds) if py_spy else None

    rng = random.Random(3)
    cpu0, t0, sent = _cpu_seconds(daemon.pid), time.monotonic(), 0
    threads0 = _thread_cpu_seconds(daemon.pid)
    if burst:
        for r in range(max(1, int(seconds // 2))):
            for m in range(modems):
                commands.put((m, f"burst {r}/{m} " + "Your verification code is 123456. " * 10))
                sent += 1
            await asyncio.sleep(2.0)
    else:
        interval = 1.0 / (rate * modems)
        next_at = t0
        while time.monotonic() - t0 < seconds:
            commands.put((rng.randrange(modems), f"Your code is {sent:07d}"))
            sent += 1
            next_at += interval * rng.expovariate(1.0)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    cmti: dict[str, float] = {}
    stored: dict[str, float] = {}
    arrived: dict[str, float] = {}
    deadline = time.monotonic() + 30
    quiet_since = None
    # until every SMS has arrived and the simulator's stamps have all been read (both processes
    # share the queue, so the last arrivals can overtake the last stamps)
    while time.monotonic() < deadline:
        try:
            kind, text, at = reports.get_nowait()
            quiet_since = None
        except queue.Empty:
            if len(arrived) >= sent:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 0.5:
                    break
            await asyncio.sleep(0.02)
            continue
        if kind == "cmti":
            cmti[text] = at
        elif kind == "stored":
            stored[text] = at
        else:
            arrived[text] = at
    load_cpu_s = _cpu_seconds(daemon.pid) - cpu0
    by_thread = _split_by_thread(daemon.pid, threads0, _thread_cpu_seconds(daemon.pid), sent)
    load_cpu = load_cpu_s / (time.monotonic() - t0)
    writes = _commits(control) - commits0
    counted = {}
    if count:
        os.kill(daemon.pid, signal.SIGUSR1)
        counted = _per_sms(*_counter_snapshots(count, 2)[-2:], sent)
    if spy is not None:
        spy.wait(60)
    peak_rss = _peak_rss_mb(daemon.pid)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
    commands.put(None)
    sim.join(10)
    market.terminate()
    market.join(10)
    start = {**stored, **cmti}  # the +CMTI where we saw it; else when the SMS was on the SIM (same moment)
    latencies = [(arrived[t] - start[t]) * 1000 for t in arrived if t in start]
    pdu_chars = 2 * 60  # a short single-part SMS as +CMGR shows it, ~60 octets
    floor_bytes = len('\r\n+CMTI: "SM",12\r\n') + len("AT+CMGR=12\r") + len("\r\n+CMGR: 0,,40\r\n") + pdu_chars + 8
    return {
        "modems": modems, "mode": "burst 3-part" if burst else f"steady {rate}/s/modem", "baud": baud,
        "sent": sent, "received": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p90_ms": percentile(latencies, 90) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "wire_floor_ms": floor_bytes * 10 / baud * 1000 if baud else 0.0,
        "gateway_cpu_idle": idle_cpu, "gateway_cpu_load": load_cpu, "cpu_ms_per_sms": load_cpu_s / max(1, sent) * 1000,
        **by_thread, "per_sms": counted,
        "gateway_peak_rss_mb": peak_rss,
        "ready_s": ready_after, "sqlite_commits_per_sms": writes / max(1, sent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--rate", type=float, default=3.6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baud", type=int, default=None)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--idle", type=float, default=31.0, help="seconds of idle CPU measurement (0: skip)")
    parser.add_argument("--out", default="bench-results/e2e.json")
    parser.add_argument("--profile", default=None, metavar="FILE", help="run the daemon under cProfile into FILE")
    parser.add_argument("--count", default=None, metavar="FILE", help="run the daemon under daemon_counters.py")
    parser.add_argument("--py-spy", default=None, metavar="FILE", help="sample the daemon's threads with py-spy")
    parser.add_argument("--ack-delay", type=float, default=None, metavar="S",
                        help="the reference marketplace's ack delay (default: its own, ACK_DELAY; 0: an ack per burst)")
    args = parser.parse_args()
    logs.configure(json_lines=True, level="error")
    results = [asyncio.run(bench(n, args.rate, args.seconds, args.baud, args.burst, args.idle, args.profile,
                                 args.count, args.py_spy, args.ack_delay)) for n in args.modems]
    print("+CMTI at the simulator -> sms frame stored at the marketplace (3 processes, ptys, SQLite, WebSocket)")
    print(f"{'modems':>6} {'mode':>20} {'sent':>5} {'recv':>5} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'floor':>6} {'CPU idle':>8} {'CPU load':>8} {'ms CPU/SMS':>10} {'RSS MB':>6} {'ready s':>7} "
          f"{'commits/SMS':>11}")
    for r in results:
        print(f"{r['modems']:>6} {r['mode']:>20} {r['sent']:>5} {r['received']:>5} {r['p50_ms']:>7.2f} "
              f"{r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['max_ms']:>7.2f} {r['wire_floor_ms']:>6.2f} "
              f"{r['gateway_cpu_idle']:>8.3f} {r['gateway_cpu_load']:>8.3f} {r['cpu_ms_per_sms']:>10.2f} "
              f"{r['gateway_peak_rss_mb']:>6.1f} {r['ready_s']:>7.2f} {r['sqlite_commits_per_sms']:>11.2f}")
        print(f"       CPU ms per SMS: event-loop thread {r['loop_thread_ms_per_sms']:.2f}, "
              f"other threads (core, executors) {r['other_threads_ms_per_sms']:.2f}")
        if r["per_sms"]:
            print("       per SMS (daemon_counters): " + ", ".join(f"{k} {v:.2f}" for k, v in r["per_sms"].items()))
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
