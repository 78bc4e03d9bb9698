"""The ``simgw`` command: one small function per subcommand.

Exit status: 0 success, 1 runtime failure, 2 bad input (a bad PDU, a bad argument, a bad config).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable

from gateway import __version__, logs

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def _until_signal(main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return await main(stop)


# ---------------------------------------------------------------------------------- pdu decode
def cmd_pdu_decode(args: argparse.Namespace) -> int:
    from drivers.sms.pdu import PduError, decode_pdu
    from gateway.smsjson import decoded_json

    items = args.pdus
    if items == ["-"]:
        items = [line.strip() for line in sys.stdin if line.strip()]
    status = EXIT_OK
    for item in items:
        try:
            out = decoded_json(decode_pdu(item))
        except PduError as exc:
            out, status = {"error": str(exc), "pdu": item[:400]}, EXIT_BAD_INPUT
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return status


# ------------------------------------------------------------------------------------ simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from drivers.simulator.control import farm_handler, serve_json
    from drivers.simulator.farm import ModemFarm

    async def main(stop: asyncio.Event) -> int:
        farm = ModemFarm(args.modems, profile=args.profile, directory=args.dir, baud=args.baud,
                         capacity=args.capacity)
        await farm.start()
        server = None
        if args.control:
            host, port = args.control
            server = await serve_json(farm_handler(farm), host, port)
        print(json.dumps({"simulator": "ready", "control": f"{args.control[0]}:{args.control[1]}" if args.control else None,
                          "modems": [m.as_json() for m in farm.info()]}), flush=True)
        await stop.wait()
        if server is not None:
            server.close()
        await farm.stop()
        return EXIT_OK

    return asyncio.run(_until_signal(main))


# -------------------------------------------------------------------------------------- listen
def cmd_listen(args: argparse.Namespace) -> int:
    from drivers.modem import ModemOptions, ReceiveMode
    from gateway.listener import Arrival, Listener
    from gateway.smsjson import assembled_json

    def on_sms(arrival: Arrival) -> None:
        print(json.dumps(assembled_json(arrival.sms, port=arrival.port, iccid=arrival.iccid), ensure_ascii=False),
              flush=True)

    async def main(stop: asyncio.Event) -> int:
        options = ModemOptions(baudrate=args.baud, receive_mode=ReceiveMode(args.mode))
        listener = Listener(args.port, on_sms, options=options)
        await listener.start()
        await stop.wait()
        await listener.stop()
        return EXIT_OK

    return asyncio.run(_until_signal(main))


# ---------------------------------------------------------------------------------------- scan
def cmd_scan(args: argparse.Namespace) -> int:
    from drivers.probe import DEFAULT_GLOBS, scan

    reports = asyncio.run(scan(args.ports or list(DEFAULT_GLOBS), listen=args.listen))
    if args.json:
        for r in reports:
            print(json.dumps({k: getattr(r, k) for k in r.__slots__}, ensure_ascii=False))
        return EXIT_OK
    columns = ("port", "vendor", "model", "imei", "imsi", "iccid", "signal", "registration", "urcs", "use")
    rows = []
    for r in reports:
        if not r.answers:
            rows.append((r.port, "-", "-", "-", "-", "-", "-", "-", "-", r.error or "no answer"))
            continue
        rows.append((r.port, r.vendor, r.model, r.imei, r.imsi, r.iccid,
                     f"{r.signal_dbm} dBm" if r.signal_dbm is not None else "?", r.registration, str(r.urcs),
                     "<- use this port" if r.recommended else ""))
    if not rows:
        print("no serial ports found", file=sys.stderr)
        return EXIT_FAILURE
    widths = [max(len(str(x)) for x in col) for col in zip(columns, *rows)]
    for row in (columns, *rows):
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return EXIT_OK


# ---------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return asyncio.run(_until_signal(lambda stop: run_demo(stop, modems=args.modems, duration=args.duration)))


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simgw", description="Supplier-side SIM gateway for SMS activations.")
    parser.add_argument("--version", action="version", version=f"simgw {__version__}")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-json", action="store_true", help="JSON log lines even on a terminal")
    parser.add_argument("--no-redact", action="store_true", help="show numbers and texts in logs (debugging only)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run simulated modems and show SMS arriving (no hardware needed)")
    demo.add_argument("--modems", type=int, default=8)
    demo.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="run simulated modems on pseudo-terminals until Ctrl-C")
    sim.add_argument("--modems", type=int, default=8)
    sim.add_argument("--profile", default="mixed", help="mixed, generic, huawei, simcom, quectel, zte, sierra, cinterion")
    sim.add_argument("--control", type=_host_port, default=None, metavar="HOST:PORT", help="HTTP+JSON control API")
    sim.add_argument("--baud", type=int, default=None, help="pace output at this line rate")
    sim.add_argument("--capacity", type=int, default=30, help="SIM storage slots per modem")
    sim.add_argument("--dir", default=None, help="directory for the stable port links")
    sim.set_defaults(func=cmd_simulate)

    listen = sub.add_parser("listen", help="drive modems and print each complete SMS as a JSON line")
    listen.add_argument("--port", action="append", required=True, metavar="PATH")
    listen.add_argument("--baud", type=int, default=115200)
    listen.add_argument("--mode", choices=("store", "direct"), default="store",
                        help="store: +CMTI then read (survives crashes); direct: +CMT with +CNMA")
    listen.set_defaults(func=cmd_listen)

    scan = sub.add_parser("scan", help="probe serial ports and show which modem is where")
    scan.add_argument("--ports", action="append", metavar="GLOB")
    scan.add_argument("--listen", type=float, default=2.0, help="seconds to listen for URCs on each port")
    scan.add_argument("--json", action="store_true")
    scan.set_defaults(func=cmd_scan)

    pdu = sub.add_parser("pdu", help="PDU tools")
    pdu_sub = pdu.add_subparsers(dest="pdu_command", required=True)
    decode = pdu_sub.add_parser("decode", help="decode SMS PDUs (hex, SMSC first); '-' reads one per line from stdin")
    decode.add_argument("pdus", nargs="+", metavar="HEX")
    decode.set_defaults(func=cmd_pdu_decode)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(json_lines=True if args.log_json else None, level=args.log_level, redact=not args.no_redact)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
