"""Benchmark: what the dashboard costs the daemon, against the real gateway driving simulated
modems on ptys (all in one process, loopback only).

    .venv/bin/python tests/bench/bench_dashboard.py [--modems 16] [--streams 4] [--seconds 10]

Prints: the time to build one state snapshot as JSON (the work per open dashboard per second),
the state event's and the charts event's size (bytes per second per open dashboard), and the
daemon process's CPU with ``--streams`` dashboards streaming versus none, over ``--seconds``
each. Stops by itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from gateway import logs  # noqa: E402
from tests.gateway.test_control_security import raw_http  # noqa: E402
from tests.gateway.uplink_env import Rig  # noqa: E402


def cpu() -> float:
    times = os.times()
    return times.user + times.system


async def bench(modems: int, streams: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="simgw-bench-dashboard-") as tmp:
        async with Rig(tmp, modems=modems, profile="mixed") as rig:
            snapshots = rig.gateway.control.routes.dashboard._snapshots
            await rig.gateway.sampler.sample()
            runs = 300
            started = time.perf_counter()
            for _ in range(runs):
                state = json.dumps(snapshots.state(), ensure_ascii=False, separators=(",", ":"))
            snapshot_ms = (time.perf_counter() - started) / runs * 1000
            charts = json.dumps(snapshots.charts(), separators=(",", ":"))
            host, port = rig.gateway.control_address

            before = cpu()
            await asyncio.sleep(seconds)
            idle = (cpu() - before) / seconds
            rig.gateway.control.routes.dashboard.stream_seconds = seconds
            before = cpu()
            await asyncio.gather(*(raw_http(host, port, "GET", "/events", headers={"Host": f"127.0.0.1:{port}"},
                                            timeout=seconds + 5) for _ in range(streams)))
            busy = (cpu() - before) / seconds
            return {"modems": modems, "streams": streams, "snapshot_ms": snapshot_ms,
                    "state_bytes": len(state.encode()), "charts_bytes": len(charts.encode()),
                    "cpu_idle_pct": idle * 100, "cpu_streaming_pct": busy * 100}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--modems", type=int, default=16)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logs.configure(json_lines=True, level="warning")
    r = asyncio.run(bench(args.modems, args.streams, args.seconds))
    print(f"dashboard, {r['modems']} modems: one state snapshot as JSON {r['snapshot_ms']:.2f} ms, "
          f"{r['state_bytes']} bytes (sent every second to each open dashboard); charts {r['charts_bytes']} bytes "
          f"(once a minute)")
    print(f"process CPU (simulator + daemon): {r['cpu_idle_pct']:.1f} % with no dashboard open, "
          f"{r['cpu_streaming_pct']:.1f} % with {r['streams']} streaming")


if __name__ == "__main__":
    main()
