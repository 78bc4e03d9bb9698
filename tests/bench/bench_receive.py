"""Benchmark: +CMTI written by the simulator -> the part in the driver's handler.

    .venv/bin/python tests/bench/bench_receive.py [--modems 16] [--rate 3.6] [--seconds 10] [--baud 115200]

Simulated modems on real ptys and the real driver run in one process and one event loop, so the
numbers include the simulator's own work (a conservative figure). Latency is measured from the
moment the simulator wrote the ``+CMTI`` line to the pty to the moment the handler received the
decoded part (after ``AT+CMGR``, before ``AT+CMGD``). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import percentile, write_results  # noqa: E402

from drivers.modem import Modem, ModemOptions, ReceivedPart  # noqa: E402
from drivers.simulator.farm import ModemFarm  # noqa: E402
from gateway import logs  # noqa: E402

CMTI_RE = re.compile(r'\+CMTI: "\w+",(\d+)')



async def bench(modems: int, rate: float, seconds: float, baud: int | None, profile: str) -> dict:
    farm = ModemFarm(modems, profile=profile, baud=baud, periodic_interval=None, capacity=50)
    announced: dict[tuple[str, int], float] = {}
    latencies: list[float] = []

    for pty in farm.modems:
        def on_wire(text: str, at: float, port: str = pty.link_path) -> None:
            for match in CMTI_RE.finditer(text):
                announced[(port, int(match.group(1)))] = at
        pty._on_wire = on_wire

    async def sink(part: ReceivedPart) -> None:
        at = time.monotonic()
        start = announced.pop((part.port, part.index), None)
        if start is not None:
            latencies.append((at - start) * 1000)

    await farm.start()
    options = ModemOptions(baudrate=baud or 115200, health_interval=3600, sweep_interval=3600)
    drivers = [Modem(p.link_path, sink, options=options) for p in farm.modems]
    tasks = [asyncio.create_task(d.run()) for d in drivers]
    await asyncio.wait_for(asyncio.gather(*(d.ready.wait() for d in drivers)), 60)
    rng = random.Random(3)
    cpu0 = time.process_time()
    started = time.monotonic()
    sent = 0
    interval = 1.0 / (rate * modems)
    next_at = started
    while time.monotonic() - started < seconds:
        farm.send_sms(rng.randrange(modems), "+79161234567", f"Your code is {rng.randrange(10**6):06d}")
        sent += 1
        next_at += interval * rng.expovariate(1.0)  # Poisson arrivals
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    deadline = time.monotonic() + 10
    while len(latencies) < sent and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu0
    for d in drivers:
        d.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await farm.stop()
    # The wire floor for one SMS at this baud: the +CMTI, the CMGR answer and the CMGD OK.
    sample_pdu_len = len(farm.pdus_for("+79161234567", "Your code is 123456")[0])
    wire_bytes = len('\r\n+CMTI: "SM",12\r\n') + len("AT+CMGR=12\r") + len("\r\n+CMGR: 0,,40\r\n") + sample_pdu_len \
        + len("\r\n\r\nOK\r\n")
    return {
        "modems": modems, "rate_per_modem": rate, "seconds": seconds, "baud": baud, "profile": profile,
        "sent": sent, "received": len(latencies),
        "p50_ms": statistics.median(latencies) if latencies else None,
        "p90_ms": percentile(latencies, 90) if latencies else None,
        "p99_ms": percentile(latencies, 99) if latencies else None,
        "max_ms": max(latencies) if latencies else None,
        "wire_floor_ms": (wire_bytes * 10 / baud * 1000) if baud else 0.0,
        "cpu_cores": cpu / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modems", type=int, nargs="+", default=[16])
    parser.add_argument("--rate", type=float, default=3.6, help="SMS per second per modem")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baud", type=int, default=None)
    parser.add_argument("--profile", default="generic",
                        help="simulated vendor (generic has no quirks that add deliberate delay)")
    parser.add_argument("--out", default="bench-results/receive.json")
    args = parser.parse_args()
    logs.configure(json_lines=True, level="warning")
    results = [asyncio.run(bench(n, args.rate, args.seconds, args.baud, args.profile)) for n in args.modems]
    header = f"{'modems':>6} {'sent':>6} {'recv':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} " \
             f"{'floor ms':>8} {'CPU':>6} {'RSS MB':>7}"
    print("+CMTI at the simulator -> part in the handler (one process, real ptys)")
    print(header)
    for r in results:
        print(f"{r['modems']:>6} {r['sent']:>6} {r['received']:>6} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} {r['wire_floor_ms']:>8.2f} {r['cpu_cores']:>6.2f} "
              f"{r['peak_rss_mb']:>7.1f}")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
