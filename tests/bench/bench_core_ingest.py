"""Benchmark: the core thread's cost of one ingest, alone (no modems, no event loop, no uplink).

    .venv/bin/python tests/bench/bench_core_ingest.py [--sms 2000] [--numbers 8] [--batch 1] [--pace S] [--dir DIR]

The daemon's :class:`~gateway.core.GatewayCore` over a real SQLite file (WAL, synchronous=FULL, as
in production) in ``--dir`` (default: a temporary directory, which should be on the same disk as
the daemon's state): a lease open on each of ``--numbers`` numbers, then ``--sms`` one-part SMS
round-robin over them, ingested ``--batch`` at a time (``ingest_many``, as the runtime's group
commit does), back to back or with ``--pace`` seconds of sleep after each batch (the daemon's
core thread at 29 SMS/s wakes every ~35 ms, its caches cold: that costs it about twice the CPU). Prints, per SMS: this thread's CPU (``time.thread_time``), the wall time, the SQL
statements executed (SQLite's trace callback, BEGIN and COMMIT included) and the commits. The
bench_e2e ``other threads`` figure is this plus the hand-offs to and from the thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from drivers.modem import ModemIdentity, ReceivedPart  # noqa: E402
from drivers.sms.encode import DeliverSpec, encode_deliver  # noqa: E402
from drivers.sms.pdu import decode_pdu  # noqa: E402
from gateway.config import LeaseConfig  # noqa: E402
from gateway.core import GatewayCore  # noqa: E402
from gateway.store import Store  # noqa: E402


def run(directory: str, sms: int, numbers: int, batch: int, pace: float = 0.0) -> dict[str, float]:
    store = Store(os.path.join(directory, "simgw.db"))
    store.open()
    core = GatewayCore(store, LeaseConfig())
    core.start()
    sims = [(f"/dev/ttyUSB{i}", f"8970100000000000{i:04d}", f"+7900000{i:04d}") for i in range(numbers)]
    for port, iccid, number in sims:
        core.bind_sim(port, iccid, number, True)
        core.open_lease(f"bench-{number}", number, "bench")
    start = datetime.now(timezone.utc).replace(microsecond=0)
    parts = []
    for n in range(sms):
        port, iccid, number = sims[n % numbers]
        pdu = encode_deliver(DeliverSpec("+79161234567", f"Your code is {n:07d}",
                                         timestamp=start + timedelta(seconds=n // numbers)))[0]
        parts.append(ReceivedPart(port, ModemIdentity(iccid=iccid, msisdn=number), "SM", 1 + n % 50, pdu,
                                  decode_pdu(pdu), None, datetime.now(timezone.utc), time.monotonic()))
    statements = 0

    def traced(_sql: str) -> None:
        nonlocal statements
        statements += 1

    store.db.set_trace_callback(traced)
    writes0, cpu0, wall0 = store.writes, time.thread_time(), time.perf_counter()
    slept = 0.0
    for i in range(0, sms, batch):
        core.ingest_many(parts[i:i + batch])
        if pace:
            time.sleep(pace)
            slept += pace
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0 - slept
    store.db.set_trace_callback(None)
    routed = sum(1 for row in store.messages(limit=sms + 1) if row.lease_id)
    store.close()
    return {"cpu_ms": cpu / sms * 1000, "wall_ms": wall / sms * 1000, "statements": statements / sms,
            "commits": (store.writes - writes0) / sms, "routed": routed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sms", type=int, default=2000)
    parser.add_argument("--numbers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--pace", type=float, default=0.0,
                        help="seconds to sleep after each batch (0.035: bench_e2e's 29 SMS/s, caches gone cold)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="simgw-core-bench-", dir=args.dir) as directory:
        result = run(directory, args.sms, args.numbers, args.batch, args.pace)
    print(f"{args.sms} SMS, {args.numbers} leases, batches of {args.batch}: per SMS "
          f"CPU {result['cpu_ms']:.3f} ms, wall {result['wall_ms']:.3f} ms, "
          f"{result['statements']:.2f} SQL statements, {result['commits']:.2f} commits; routed {result['routed']}")
    return 0 if result["routed"] == args.sms else 1


if __name__ == "__main__":
    sys.exit(main())
