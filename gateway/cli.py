"""The ``simgw`` command: one small function per subcommand.

Exit status: 0 success, 1 runtime failure, 2 bad input (a bad PDU, a bad argument, a bad config).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import structlog

from gateway import __version__, logs
from gateway.printable import escape, json_line
from gateway.tables import table as _table
from gateway.tables import when as _when

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CONFIG = "/etc/simgw/simgw.toml"


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not host or not 0 < int(port) < 65536:
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
    from gateway.tools.smsjson import decoded_json

    items = args.pdus
    if items == ["-"]:
        items = [line.strip() for line in sys.stdin if line.strip()]
    status = EXIT_OK
    for item in items:
        try:
            out = decoded_json(decode_pdu(item))
        except PduError as exc:
            out, status = {"error": str(exc), "pdu": item[:400]}, EXIT_BAD_INPUT
        print(json_line(out), flush=True)
    return status


# ------------------------------------------------------------------------------------ simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from drivers.httpjson import serve_json
    from drivers.simulator.control import farm_handler
    from drivers.simulator.farm import ModemFarm

    if args.list_quirks:
        return _list_quirks()
    if args.bank:
        return _simulate_bank(args)
    try:
        farm = ModemFarm(args.modems, profile=args.profile, directory=args.dir, baud=args.baud,
                         capacity=args.capacity, quirks=args.quirk or ())
    except ValueError as exc:  # an unknown profile, an unknown quirk, or two quirks that clash
        print(f"simgw simulate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    async def main(stop: asyncio.Event) -> int:
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


def _list_quirks() -> int:
    from drivers.simulator.catalogue import load_catalogue

    for entry in load_catalogue():
        print(json.dumps({"key": entry.key, "profile": entry.profile, "family": entry.family, "does": entry.does,
                          "sources": [s.url or s.ref for s in entry.sources]}, ensure_ascii=False))
    return EXIT_OK


def _simulate_bank(args: argparse.Namespace) -> int:
    from drivers.simulator.bank import USSD_CODE, SimBank

    try:
        channels, per_channel = (int(x) for x in args.bank.lower().split("x"))
        bank = SimBank(channels, channels * per_channel, style=args.bank_style, profile="generic" if args.profile == "mixed" else args.profile,
                       directory=args.dir, time_scale=args.time_scale, msisdn_mix=True)
    except ValueError as exc:
        print(f"simgw: --bank {args.bank}: expected CHANNELSxSLOTS like 4x32 ({exc})", file=sys.stderr)
        return EXIT_BAD_INPUT

    async def main(stop: asyncio.Event) -> int:
        await bank.start()
        print(json.dumps({"simulator": "ready", "bank": {
            "style": bank.style, "controller": bank.controller.link_path if bank.controller else None,
            "channels": [m.link_path for m in bank.modems], "slots": bank.slots,
            "ussd_code": USSD_CODE, "numbers_for_config": bank.config_numbers()}}), flush=True)
        await stop.wait()
        await bank.stop()
        return EXIT_OK

    return asyncio.run(_until_signal(main))


# ---------------------------------------------------------------------------------------- sims
def cmd_sims(args: argparse.Namespace) -> int:
    if getattr(args, "sims_command", None) == "scan":
        return _sims_scan(args)
    from gateway.domain.numbering import country_of, country_of_imsi

    store = _open_store(args)
    rows = [(r.bank, r.slot + 1, r.status, r.iccid or "-", r.imsi or "-",
             country_of_imsi(r.imsi) or (country_of(r.msisdn) if r.msisdn else None) or "-", r.operator or "-",
             r.msisdn or "?", r.msisdn_source or "-", _when(r.seen_at)) for r in store.sims()]
    _table(("bank", "slot", "status", "iccid", "imsi", "country", "operator", "number", "from", "seen (UTC)"), rows)
    return EXIT_OK


def _sims_scan(args: argparse.Namespace) -> int:
    from gateway.tools.sims_scan import ScanRefused, scan

    config = _config(args)
    if args.log_level == "info":  # the progress bar is the show
        logs.configure(json_lines=True if args.log_json else None, level="warning", redact=not args.no_redact)
    try:
        counts = asyncio.run(scan(config, restart=args.restart))
    except ScanRefused as exc:
        print(f"simgw: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("simgw: scan interrupted; what was scanned is kept: run 'simgw sims scan' again to resume",
              file=sys.stderr)
        return 130
    print(json.dumps({"slots": counts}))
    return EXIT_OK


# -------------------------------------------------------------------------------------- listen
def cmd_listen(args: argparse.Namespace) -> int:
    from drivers.modem import ModemOptions, ReceiveMode
    from gateway.tools.listener import Arrival, Listener
    from gateway.tools.smsjson import assembled_json

    def on_sms(arrival: Arrival) -> None:
        print(json_line(assembled_json(arrival.sms, port=arrival.port, iccid=arrival.iccid)), flush=True)

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
            print(json_line({k: getattr(r, k) for k in r.__slots__}))
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
    _table(columns, rows)
    return EXIT_OK


# -------------------------------------------------------------------------- daemon and leases
def _config(args: argparse.Namespace, *, read_secrets: bool = False):
    """The configuration; the token file is read only by the commands that use it (run,
    check-config), so an operator who may not read it can still ask the daemon."""
    from gateway.config import load

    return load(args.config, read_secrets=read_secrets)


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import config_warnings
    from gateway.control.unix import socket_path

    config = _config(args, read_secrets=True)
    for key, why in config_warnings(config):
        print(f"simgw: warning: {config.path}: {key}: {why}", file=sys.stderr)
    banks = f", {len(config.banks)} SIM bank(s) of {sum(b.slots for b in config.banks)} slots" if config.banks else ""
    if config.smshub is not None:  # selling through an SMSHub-compatible marketplace too
        hub = config.smshub
        banks += f", {hub.flavour.value} agent on {hub.listen[0]}:{hub.listen[1]} ({len(hub.names.services)} services)"
    host, port = config.control_listen
    locked = ", password required" if config.control_password_file else ""
    print(f"{config.path}: ok ({len(config.modems)} modem(s){banks}, database {config.database}, "
          f"control socket {socket_path(config.control_socket, config.state_dir)}, read-only status and dashboard "
          f"on http://{host}:{port}/{locked})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.runtime.daemon import run_daemon
    from gateway.config import config_warnings

    config = _config(args, read_secrets=True)
    if args.log_level == "info" and config.log_level != "info" or config.log_format != "auto" or not config.redact:
        logs.configure(json_lines=True if args.log_json else {"json": True, "console": False}.get(config.log_format),
                       level=config.log_level if args.log_level == "info" else args.log_level,
                       redact=config.redact and not args.no_redact)
    for key, why in config_warnings(config):
        structlog.get_logger("gateway.cli").warning("config.insecure", key=key, detail=why)

    async def main(stop: asyncio.Event) -> int:
        reload = asyncio.Event()
        with contextlib.suppress(NotImplementedError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload.set)
        return await run_daemon(config, stop, reload=reload)

    return asyncio.run(_until_signal(main))


def _control(args: argparse.Namespace, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """One request to the running daemon over its control socket, found from the same config."""
    from gateway.control.client import ControlUnavailable, request
    from gateway.control.unix import client_socket_path

    config = _config(args)
    try:
        return request(client_socket_path(config.control_socket, config.state_dir), method, path, body)  # type: ignore[return-value]
    except ControlUnavailable as exc:
        raise SystemExit(f"simgw: {exc}") from None


def _print_result(status: int, result: dict) -> int:
    print(json_line(result))
    return EXIT_OK if status < 300 else EXIT_FAILURE


def cmd_status(args: argparse.Namespace) -> int:
    while True:
        status, body = _control(args, "GET", "/status")
        if status != 200:
            return _print_result(status, body)
        if args.watch:
            print("\033[2J\033[H", end="")
        uplink = body.get("uplink")
        link = "no uplink configured" if uplink is None else (
            "connected" if uplink["connected"] else f"disconnected ({escape(uplink.get('last_error') or 'connecting')})")
        print(f"gateway {escape(body['gateway'])}: {body['leases_active']} active lease(s); marketplace {link}")
        _table(("port", "state", "number", "signal", "operator", "sms"),
               [(m["port"], m["state"], m["number"] or "-", f"{m['signal_dbm']} dBm" if m["signal_dbm"] is not None
                 else "-", m["operator"] or "-", m["sms_received"]) for m in body["modems"]])
        for bank in body.get("banks", []):
            slots = ", ".join(f"{n} {state}" for state, n in sorted(bank["slots"].items())) or "not scanned"
            switches = ", ".join(f"{n} {outcome}" for outcome, n in sorted(bank["switches"].items())) or "none yet"
            wait = bank.get("lease_wait") or {}
            waited = (f"leases waited for their SIM p50 {wait['p50_s']} s, p90 {wait['p90_s']} s, max {wait['max_s']} s"
                      f" (last {wait['count']})" if wait.get("count") else "no lease has waited for a SIM yet")
            print(f"bank {escape(bank['name'])}: slots {slots}; {bank['queued']} lease(s) waiting for a radio; "
                  f"switches {switches}; {waited}")
            _table(("channel", "slot on air", "switching", "lease"),
                   [(c["port"], c["slot"] or "-", "yes" if c["switching"] else "", c["lease"] or "-")
                    for c in bank["channels"]])
        if not args.watch:
            return EXIT_OK
        time.sleep(args.watch)


def cmd_lease(args: argparse.Namespace) -> int:
    if args.lease_command == "open":
        body: dict[str, object] = {"number": args.number, "service": args.service}
        if args.category:
            body["category"] = args.category
        if args.wait is not None:
            body["wait_window"] = args.wait * 60
        if args.id:
            body["lease_id"] = args.id
        return _print_result(*_control(args, "POST", "/leases", body))
    if args.lease_command == "show":
        return _lease_show(args)
    from urllib.parse import quote

    return _print_result(*_control(args, "POST", f"/leases/{quote(args.lease_id, safe='')}/{args.lease_command}"))


def _open_store(args: argparse.Namespace):
    from gateway.store import Store

    config = _config(args)
    store = Store(config.database)
    store.open()
    return store


def _lease_show(args: argparse.Namespace) -> int:
    store = _open_store(args)
    lease = store.lease(args.lease_id)
    if lease is None:
        print(f"simgw: no lease {escape(args.lease_id)} (or it is older than the claim window)", file=sys.stderr)
        return EXIT_FAILURE
    print(f"lease {escape(lease.id)}: {escape(lease.service)} on {escape(lease.number)}, {lease.state.value}, "
          f"{lease.sms_count} SMS")
    for at, kind, detail in store.audit_trail(lease.id):
        extra = " ".join(f"{k}={v}" for k, v in detail.items())
        print(f"  {_when(at)} UTC  {escape(kind):<10} {escape(extra)}")
    return EXIT_OK


def cmd_leases(args: argparse.Namespace) -> int:
    store = _open_store(args)
    now = time.time()
    rows = [(l.id, l.number, l.service, l.state.value, l.sms_count,
             f"{max(0, l.deadline - now) / 60:.1f} min" if l.state.active else "-")
            for l in store.leases(active_only=not args.all)]
    _table(("id", "number", "service", "state", "sms", "time left"), rows)
    return EXIT_OK


def cmd_messages(args: argparse.Namespace) -> int:
    from gateway.logs import mask_number

    store = _open_store(args)
    rows = []
    for m in store.messages(quarantined=True if args.quarantined else None):
        text = m.text if args.show_text else (None if m.text is None else f"<{len(m.text)} chars>")
        rows.append((m.id, _when(m.received_at), m.number or "?", (m.sender if args.show_text else mask_number(m.sender or "")),
                     m.lease_id or ("quarantine" if m.quarantined else "-"), m.parts, text if text is not None else "(purged)"))
    _table(("id", "received (UTC)", "number", "sender", "lease", "parts", "text"), rows)
    return EXIT_OK


def cmd_purge(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gateway.store import retention
    from gateway.store import Store

    config = _config(args)
    store = Store(config.database)
    store.open()
    leases = replace(config.leases, quarantine_retention=0.0) if args.now else config.leases
    counts = retention.purge(store, leases, time.time())
    retention.compact(store)
    print(json.dumps(counts))
    return EXIT_OK


# ---------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.tools.demo import run_demo

    if args.log_level == "info":  # the demo's own lines are the show; logs only for trouble
        logs.configure(json_lines=True if args.log_json else None, level="warning", redact=not args.no_redact)
    if args.marketplace == "smshub":
        from gateway.tools.hubdemo import run_hub_demo

        return asyncio.run(_until_signal(lambda stop: run_hub_demo(stop, modems=args.modems, duration=args.duration)))
    return asyncio.run(_until_signal(lambda stop: run_demo(stop, modems=args.modems, duration=args.duration)))


def cmd_market(args: argparse.Namespace) -> int:
    from gateway.tools.market import run_market

    from gateway.config import read_token_file

    if args.token is not None:
        print("simgw: market --token would show the token to every local user (ps, /proc/PID/cmdline); "
              "use --token-file FILE (mode 0600) or $SIMGW_MARKET_TOKEN", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.token_file:
        token = read_token_file(args.token_file, "simgw market", "--token-file")
    else:
        token = os.environ.get("SIMGW_MARKET_TOKEN", "")
    if not token:
        print("simgw: market needs --token-file FILE or $SIMGW_MARKET_TOKEN", file=sys.stderr)
        return EXIT_BAD_INPUT
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    return asyncio.run(_until_signal(lambda stop: run_market(stop, listen=args.listen, token=token, db_path=args.db,
                                                              control=args.control, tls=tls)))


def cmd_hub(args: argparse.Namespace) -> int:
    """A reference SMSHub-compatible hub, to try a supplier's [smshub] setup (gateway/tools/hub.py)."""
    from gateway.config import read_token_file
    from gateway.smshub.protocol import Flavour
    from gateway.tools.hub import run_hub

    key = read_token_file(args.key_file, "simgw hub", "--key-file") if args.key_file else \
        os.environ.get("SIMGW_HUB_KEY", "")
    if not key:
        print("simgw: hub needs --key-file FILE (mode 0600) or $SIMGW_HUB_KEY: the agent's protocol key", file=sys.stderr)
        return EXIT_BAD_INPUT
    return asyncio.run(_until_signal(lambda stop: run_hub(stop, agent_url=args.agent, key=key, listen=args.listen,
                                                          control=args.control, flavour=Flavour(args.flavour),
                                                          poll=args.poll or None)))


# -------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="simgw", description="Supplier-side SIM gateway for SMS activations.")
    parser.add_argument("--version", action="version", version=f"simgw {__version__}")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-json", action="store_true", help="JSON log lines even on a terminal")
    parser.add_argument("--no-redact", action="store_true", help="show numbers and texts in logs (debugging only)")
    parser.add_argument("--config", default=os.environ.get("SIMGW_CONFIG", DEFAULT_CONFIG),
                        help=f"configuration file (default: $SIMGW_CONFIG or {DEFAULT_CONFIG})")
    sub = parser.add_subparsers(dest="command", required=True)
    _daemon_commands(sub)
    _tool_commands(sub)
    return parser


def _with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--config", default=argparse.SUPPRESS, help="configuration file")
    return p


def _daemon_commands(sub: argparse._SubParsersAction) -> None:
    """The daemon and what works on its state: run, check, status, leases, messages, purge, sims."""
    with_config = _with_config
    run = with_config(sub.add_parser("run", help="run the gateway daemon"))
    run.set_defaults(func=cmd_run)
    check = with_config(sub.add_parser("check-config", help="validate the configuration and exit (2 on any error)"))
    check.set_defaults(func=cmd_check_config)
    from gateway.dashboard import command as dashboard_command

    dashboard_command.add_parser(sub)

    status = with_config(sub.add_parser("status", help="modems and SIMs of the running daemon, as a table"))
    status.add_argument("--watch", type=float, nargs="?", const=2.0, default=None, metavar="SECONDS",
                        help="refresh every SECONDS (default 2)")
    status.set_defaults(func=cmd_status)

    lease = sub.add_parser("lease", help="drive leases through the running daemon; show a lease's audit trail")
    lease_sub = lease.add_subparsers(dest="lease_command", required=True)
    lease_open = with_config(lease_sub.add_parser("open", help="lease a number for a service"))
    lease_open.add_argument("--number", required=True)
    lease_open.add_argument("--service", required=True)
    lease_open.add_argument("--category", default=None)
    lease_open.add_argument("--wait", type=float, default=None, metavar="MINUTES", help="wait window (<= 20)")
    lease_open.add_argument("--id", default=None, help="lease id (default: generated)")
    for name in ("repeat", "finish", "cancel", "show"):
        action = with_config(lease_sub.add_parser(name))
        action.add_argument("lease_id")
    lease.set_defaults(func=cmd_lease)
    leases = with_config(sub.add_parser("leases", help="table of active leases (--all: with ended ones)"))
    leases.add_argument("--all", action="store_true")
    leases.set_defaults(func=cmd_leases)
    messages = with_config(sub.add_parser("messages", help="stored messages, texts masked unless --show-text"))
    messages.add_argument("--quarantined", action="store_true")
    messages.add_argument("--show-text", action="store_true")
    messages.set_defaults(func=cmd_messages)
    purge = with_config(sub.add_parser("purge", help="delete what is past retention now (--now: all quarantined SMS too)"))
    purge.add_argument("--now", action="store_true")
    purge.set_defaults(func=cmd_purge)

    sims = with_config(sub.add_parser("sims", help="the SIM inventory of the banks, as a table"))
    sims.set_defaults(func=cmd_sims)
    sims_sub = sims.add_subparsers(dest="sims_command")
    sims_scan = with_config(sims_sub.add_parser(
        "scan", help="walk every bank slot: ICCID, IMSI, operator, number; resumable (the daemon must be stopped)"))
    sims_scan.add_argument("--restart", action="store_true", help="scan every slot again instead of resuming")
    sims_scan.set_defaults(func=cmd_sims)


def _market_commands(sub: argparse._SubParsersAction) -> None:
    """Reference marketplaces to try a setup against: the demo, the simgw.v1 market, an SMSHub hub."""
    demo = sub.add_parser("demo", help="run simulated modems and show SMS arriving (no hardware needed)")
    demo.add_argument("--modems", type=int, default=8)
    demo.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    demo.add_argument("--marketplace", choices=("simgw", "smshub"), default="simgw",
                      help="simgw: the simgw.v1 reference marketplace; smshub: a reference SMSHub-compatible hub")
    demo.set_defaults(func=cmd_demo)

    market = sub.add_parser("market", help="run the reference marketplace (WebSocket + HTTP control API)")
    market.add_argument("--listen", type=_host_port, required=True, metavar="HOST:PORT")
    market.add_argument("--control", type=_host_port, default=None, metavar="HOST:PORT",
                        help="HTTP+JSON control API: POST /leases, POST /leases/ID/repeat|finish|cancel, GET /leases, GET /sms")
    market.add_argument("--token-file", default=None, metavar="FILE",
                        help="file (mode 0600) holding the supplier token to accept (or $SIMGW_MARKET_TOKEN)")
    market.add_argument("--token", default=None, help=argparse.SUPPRESS)  # refused: argv is public
    market.add_argument("--db", default="market.db", help="its own SQLite file")
    market.add_argument("--tls-cert", default=None)
    market.add_argument("--tls-key", default=None)
    market.set_defaults(func=cmd_market)

    hub = sub.add_parser("hub", help="run a reference SMSHub-compatible hub against an agent ([smshub])")
    hub.add_argument("--agent", required=True, metavar="URL", help="the agent's URL, e.g. http://127.0.0.1:8780/")
    hub.add_argument("--listen", type=_host_port, default=("127.0.0.1", 8781), metavar="HOST:PORT",
                     help="where PUSH_SMS arrive (the agent's push_url: http://HOST:PORT/agent/api/sms)")
    hub.add_argument("--control", type=_host_port, default=None, metavar="HOST:PORT",
                     help="HTTP+JSON control API: GET /state, POST /buy, POST /finish, POST /mode")
    hub.add_argument("--key-file", default=None, metavar="FILE", help="the protocol key (or $SIMGW_HUB_KEY)")
    hub.add_argument("--flavour", choices=("smshub", "onlinesim"), default="smshub")
    hub.add_argument("--poll", type=float, default=15.0, help="GET_SERVICES every SECONDS (0: never)")
    hub.set_defaults(func=cmd_hub)


def _tool_commands(sub: argparse._SubParsersAction) -> None:
    """What is not the daemon: reference marketplaces, the simulator, listen, scan, pdu."""
    _market_commands(sub)
    sim = sub.add_parser("simulate", help="run simulated modems on pseudo-terminals until Ctrl-C")
    sim.add_argument("--modems", type=int, default=8)
    sim.add_argument("--profile", default="mixed", help="mixed, generic, huawei, simcom, sim7600, quectel, zte, sierra, "
                     "wavecom, qualcomm, telit, cinterion")
    sim.add_argument("--quirk", action="append", metavar="KEY",
                     help="play this catalogue quirk on every modem (repeatable; --list-quirks shows them)")
    sim.add_argument("--list-quirks", action="store_true", help="print the quirk catalogue as JSON lines and exit")
    sim.add_argument("--control", type=_host_port, default=None, metavar="HOST:PORT", help="HTTP+JSON control API")
    sim.add_argument("--baud", type=int, default=None, help="pace output at this line rate")
    sim.add_argument("--capacity", type=int, default=30, help="SIM storage slots per modem")
    sim.add_argument("--dir", default=None, help="directory for the stable port links")
    sim.add_argument("--bank", default=None, metavar="CHANNELSxSLOTS",
                     help="simulate a SIM bank instead: 4x32 is 4 radios with 32 SIMs behind each")
    sim.add_argument("--bank-style", choices=("controller", "on_modem"), default="controller")
    sim.add_argument("--time-scale", type=float, default=1.0, help="multiply the bank's switch and boot times")
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(json_lines=True if args.log_json else None, level=args.log_level, redact=not args.no_redact)
    from gateway.config import ConfigError
    from gateway.control.unix import ControlSocketError
    from gateway.store import StoreError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"simgw: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, ControlSocketError) as exc:
        print(f"simgw: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        logs.flush()  # no count of coalesced log lines is lost at exit


if __name__ == "__main__":
    sys.exit(main())
