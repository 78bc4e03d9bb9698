"""A reference marketplace: the other side of simgw.v1, small and real.

For suppliers to test their setup and for our tests and demo: it accepts gateways (token in the
handshake header), stores every ``sms`` durably in its own SQLite before acknowledging it, keeps
lease states, and lets a person or a script open/repeat/finish/cancel leases through a tiny
HTTP+JSON control API on loopback. ``drop_every`` makes it hang up on gateways on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import itertools
import json
import re
import sqlite3
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from drivers.httpjson import HttpError, HttpRequest, serve_json
from gateway.printable import escape
from gateway.uplink.protocol import SUBPROTOCOL, encode

log = structlog.get_logger("gateway.tools.market")
SUPERSEDED = 4001  # close code for a gateway's older connection when it connects again
MAX_BURST = 256  # frames stored in one transaction and acknowledged by one ack (the gateway's window)
ACK_DELAY = 0.05  # an ack waits this long for more frames to cover (PROTOCOL.md); 0: at once

SCHEMA = """
CREATE TABLE IF NOT EXISTS gateways (gateway_id TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL DEFAULT 0,
    inventory TEXT, health TEXT, seen_at REAL);
CREATE TABLE IF NOT EXISTS sms (msg_id TEXT PRIMARY KEY, gateway_id TEXT NOT NULL, seq INTEGER NOT NULL,
    lease_id TEXT, number TEXT, sender TEXT, text TEXT, parts INTEGER, received_at REAL, arrived_at REAL NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS leases (lease_id TEXT PRIMARY KEY, gateway_id TEXT, number TEXT, service TEXT,
    state TEXT, sms_count INTEGER, updated_at REAL);
"""


@dataclass(frozen=True, slots=True)
class Arrival:
    gateway_id: str
    msg_id: str
    lease_id: str | None
    sender: str | None
    text: str | None
    parts: int
    latency_ms: float | None
    repeat: bool


@dataclass(slots=True)
class _Peer:
    gateway_id: str
    connection: ServerConnection
    pending: dict[str, asyncio.Future] = field(default_factory=dict)


class MarketStore:
    """What the marketplace holds durably, in its own SQLite. Writes (each an fsync) run on one
    worker thread so they never stall the event loop; quick reads may come from the loop's
    thread, hence ``check_same_thread=False``."""

    def __init__(self, db_path: str) -> None:
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="market-db")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._db.close()

    async def write(self, *statements: tuple[str, tuple]) -> None:
        """Run ``statements`` in one transaction on the writer thread (one fsync for all)."""
        def run() -> None:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

        await asyncio.get_running_loop().run_in_executor(self._writer, run)

    def acked_seq(self, gateway_id: str) -> int:
        row = self._db.execute("SELECT acked_seq FROM gateways WHERE gateway_id = ?", (gateway_id,)).fetchone()
        return row[0] if row else 0

    def deliveries(self, msg_id: str) -> int:
        return self._db.execute("SELECT deliveries FROM sms WHERE msg_id = ?", (msg_id,)).fetchone()[0]

    # ------------------------------------------------------------------ statements for a burst
    @staticmethod
    def seen_sql(gateway_id: str, at: float) -> tuple[str, tuple]:
        return ("INSERT INTO gateways (gateway_id, seen_at) VALUES (?, ?) ON CONFLICT(gateway_id) DO UPDATE"
                " SET seen_at = excluded.seen_at", (gateway_id, at))

    @staticmethod
    def ack_sql(gateway_id: str, seq: int) -> tuple[str, tuple]:
        return ("UPDATE gateways SET acked_seq = MAX(acked_seq, ?) WHERE gateway_id = ?", (seq, gateway_id))

    @staticmethod
    def sms_sql(gateway_id: str, frame: dict, now: float) -> list[tuple[str, tuple]]:
        """The SMS (a resend of a msg_id it holds counts a delivery), and its lease after it."""
        statements = [(
            "INSERT INTO sms (msg_id, gateway_id, seq, lease_id, number, sender, text, parts, received_at, arrived_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(msg_id) DO UPDATE SET deliveries = deliveries + 1",
            (frame["msg_id"], gateway_id, frame["seq"], frame.get("lease_id"), frame.get("number"),
             frame.get("sender"), frame.get("text"), frame.get("parts"), frame.get("received_at"), now))]
        lease = frame.get("lease")
        if isinstance(lease, dict):  # the lease after this SMS (PROTOCOL.md: no lease frame follows)
            statements.append(("UPDATE leases SET state = ?, sms_count = ?, updated_at = ? WHERE lease_id = ?",
                               (lease.get("state"), lease.get("sms_count"), frame.get("received_at"),
                                frame.get("lease_id"))))
        return statements

    @staticmethod
    def lease_sql(gateway_id: str, frame: dict) -> tuple[str, tuple]:
        return ("INSERT INTO leases (lease_id, gateway_id, number, service, state, sms_count, updated_at)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT(lease_id) DO UPDATE SET state=excluded.state,"
                " sms_count=excluded.sms_count, updated_at=excluded.updated_at",
                (frame["lease_id"], gateway_id, frame.get("number"), frame.get("service"), frame["state"],
                 frame.get("sms_count", 0), frame.get("at")))

    @staticmethod
    def report_sql(gateway_id: str, frame: dict) -> tuple[str, tuple]:
        """The gateway's last ``inventory`` or ``health``, as it sent it."""
        column = "inventory" if frame["type"] == "inventory" else "health"
        return (f"UPDATE gateways SET {column} = ? WHERE gateway_id = ?", (json.dumps(frame), gateway_id))

    # ---------------------------------------------------------------------------------- queries
    def sms(self, lease_id: str | None = None) -> list[dict]:
        query = "SELECT msg_id, gateway_id, seq, lease_id, number, sender, text, parts, received_at, arrived_at," \
                " deliveries FROM sms"
        rows = self._db.execute(query + (" WHERE lease_id = ?" if lease_id else "") + " ORDER BY rowid",
                                (lease_id,) if lease_id else ())
        keys = ("msg_id", "gateway_id", "seq", "lease_id", "number", "sender", "text", "parts", "received_at",
                "arrived_at", "deliveries")
        return [dict(zip(keys, row)) for row in rows]

    def leases(self) -> list[dict]:
        keys = ("lease_id", "gateway_id", "number", "service", "state", "sms_count", "updated_at")
        return [dict(zip(keys, row)) for row in self._db.execute(f"SELECT {', '.join(keys)} FROM leases")]

    def lease_gateway(self, lease_id: str) -> str | None:
        row = self._db.execute("SELECT gateway_id FROM leases WHERE lease_id = ?", (lease_id,)).fetchone()
        return row[0] if row else None

    def gateway_state(self, gateway_id: str) -> dict:
        row = self._db.execute("SELECT acked_seq, inventory, health FROM gateways WHERE gateway_id = ?",
                               (gateway_id,)).fetchone()
        if row is None:
            return {}
        return {"acked_seq": row[0], "inventory": json.loads(row[1]) if row[1] else None,
                "health": json.loads(row[2]) if row[2] else None}


@dataclass(slots=True)
class _Burst:
    """What one burst of frames from a gateway asks for: one transaction, then the callbacks
    and command results in the order the frames came; ``acked``: the highest seq in it."""

    statements: list[tuple[str, tuple]] = field(default_factory=list)
    acked: int = 0
    after: list[tuple[str, dict]] = field(default_factory=list)  # (type, frame) once durable and acked


@dataclass(slots=True)
class _Owed:
    """The ack the marketplace owes a gateway: the highest seq stored and not yet acknowledged,
    and when the ack must go (``ack_delay`` after the first of them was stored)."""

    seq: int = 0
    due: float = 0.0


class Market:
    def __init__(self, db_path: str, token: str, *, drop_every: float | None = None,
                 on_sms: Callable[[Arrival], None] | None = None, on_lease: Callable[[dict], None] | None = None,
                 wall: Callable[[], float] = time.time, ack_delay: float = ACK_DELAY) -> None:
        self.store = MarketStore(db_path)
        self.ack_delay = ack_delay
        self._token = token
        self.drop_every = drop_every
        self._on_sms = on_sms
        self._on_lease = on_lease
        self._wall = wall
        self._peers: dict[str, _Peer] = {}
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self.connections = 0
        self.rejected_handshakes = 0
        self.errors_received: list[dict] = []
        self.record = False  # keep every frame received and sent (tests validate them against the schemas)
        self.frames_in: list[dict] = []
        self.frames_out: list[dict] = []
        self.acks_sent = 0
        self.address: tuple[str, int] | None = None

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._server = await serve(self._handler, host, port, subprotocols=[SUBPROTOCOL],
                                   process_request=self._check_token, ssl=ssl_context, max_size=2 * 1024 * 1024,
                                   ping_interval=10, ping_timeout=10, compression=None)
        sock = next(iter(self._server.sockets))
        self.address = sock.getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def close(self) -> None:
        self.store.close()

    def _check_token(self, connection: ServerConnection, request):
        header = request.headers.get("Authorization", "")
        if not hmac.compare_digest(header.encode(), f"Bearer {self._token}".encode()):
            self.rejected_handshakes += 1
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "unknown supplier token\n")
        return None

    # ------------------------------------------------------------------------------ gateways
    async def _handler(self, connection: ServerConnection) -> None:
        self.connections += 1
        try:
            hello = json.loads(await asyncio.wait_for(connection.recv(), 10))
        except (asyncio.TimeoutError, ValueError, ConnectionClosed):
            await connection.close(1002, "expected hello")
            return
        if not isinstance(hello, dict) or hello.get("type") != "hello" or not isinstance(hello.get("gateway_id"), str):
            await connection.close(1002, "expected hello")
            return
        if self.record:
            self.frames_in.append(hello)
        gateway_id = hello["gateway_id"]
        await self.store.write(self.store.seen_sql(gateway_id, self._wall()))
        peer = _Peer(gateway_id, connection)
        older = self._peers.get(gateway_id)
        self._peers[gateway_id] = peer
        if older is not None:  # PROTOCOL.md: the newest connection of a gateway wins
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(older.connection.close(SUPERSEDED, "superseded by a newer connection"), 2)
        await self._send(connection, {"type": "welcome", "last_acked_seq": self.store.acked_seq(gateway_id)})
        dropper = asyncio.create_task(self._drop_later(connection)) if self.drop_every else None
        try:
            await self._serve(peer)
        except ConnectionClosed:
            pass
        finally:
            if dropper is not None:
                dropper.cancel()
            if self._peers.get(gateway_id) is peer:
                del self._peers[gateway_id]
            for future in peer.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("gateway disconnected"))

    async def _send(self, connection: ServerConnection, frame: dict) -> None:
        if self.record:
            self.frames_out.append(frame)
        await connection.send(encode(frame))

    async def _drop_later(self, connection: ServerConnection) -> None:
        await asyncio.sleep(self.drop_every or 0)
        await connection.close(1012, "chaos: the marketplace hangs up")

    async def _serve(self, peer: _Peer) -> None:
        """Take the frames in bursts: whatever arrived while the last burst was being stored is
        stored in one transaction and acknowledged by one cumulative ``ack`` (PROTOCOL.md)."""
        inbox: asyncio.Queue[str | bytes | None] = asyncio.Queue(MAX_BURST)
        reader = asyncio.create_task(_read(peer.connection, inbox), name=f"market-read-{peer.gateway_id}")
        loop, owed = asyncio.get_running_loop(), _Owed()
        try:
            while True:
                try:
                    first = await (asyncio.wait_for(inbox.get(), max(0.0, owed.due - loop.time())) if owed.seq
                                   else inbox.get())
                except asyncio.TimeoutError:  # nothing more came within ack_delay: ack what is stored
                    await self._ack(peer, owed)
                    continue
                burst = [first]
                while not inbox.empty() and len(burst) < MAX_BURST:
                    burst.append(inbox.get_nowait())
                stored = await self._on_burst(peer, [message for message in burst if message is not None])
                if stored:
                    owed.due = owed.due if owed.seq else loop.time() + self.ack_delay
                    owed.seq = stored
                    if loop.time() >= owed.due:
                        await self._ack(peer, owed)
                if None in burst:
                    return  # the connection ended
        finally:
            reader.cancel()

    async def _ack(self, peer: _Peer, owed: _Owed) -> None:
        self.acks_sent += 1
        seq, owed.seq = owed.seq, 0
        await self._send(peer.connection, {"type": "ack", "seq": seq})

    async def _on_burst(self, peer: _Peer, messages: list[str | bytes]) -> int:
        """Store a burst in one transaction; the highest seq in it, now durable (0: none)."""
        burst = _Burst()
        for message in messages:
            frame = _decode(message)
            if frame is None:
                continue
            if self.record:
                self.frames_in.append(frame)
            self._take(peer, frame, burst)
        if burst.statements:
            if burst.acked:
                burst.statements.append(self.store.ack_sql(peer.gateway_id, burst.acked))
            await self.store.write(*burst.statements)  # durable (synchronous=FULL) before we say so
        for kind, frame in burst.after:
            self._after(peer, kind, frame)
        return burst.acked

    def _take(self, peer: _Peer, frame: dict, burst: _Burst) -> None:
        kind, gateway_id = frame.get("type"), peer.gateway_id
        if kind == "sms":
            burst.statements += self.store.sms_sql(gateway_id, frame, self._wall())
        elif kind == "lease":
            burst.statements.append(self.store.lease_sql(gateway_id, frame))
        elif kind in ("inventory", "health"):
            burst.statements.append(self.store.report_sql(gateway_id, frame))
        elif kind not in ("result", "error"):
            return
        if kind in ("sms", "lease"):
            burst.acked = max(burst.acked, frame["seq"])
        burst.after.append((kind, frame))

    def _after(self, peer: _Peer, kind: str, frame: dict) -> None:
        """A frame's consequences once what came before it is durable."""
        if kind == "sms" and self._on_sms is not None:
            received = frame.get("received_at")
            latency = (self._wall() - received) * 1000 if isinstance(received, (int, float)) else None
            self._on_sms(Arrival(peer.gateway_id, frame["msg_id"], frame.get("lease_id"), frame.get("sender"),
                                 frame.get("text"), frame.get("parts") or 1, latency,
                                 self.store.deliveries(frame["msg_id"]) > 1))
        elif kind == "lease" and self._on_lease is not None:
            self._on_lease(frame)
        elif kind == "result":
            future = peer.pending.pop(frame.get("command_id"), None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif kind == "error":
            self.errors_received.append(frame)

    # ------------------------------------------------------------------------------- commands
    async def command(self, frame: dict, *, gateway_id: str | None = None, timeout: float = 10.0) -> dict:
        """Send a ``lease.*`` command to a gateway and wait for its ``result``."""
        peer = self._peers.get(gateway_id) if gateway_id else next(iter(self._peers.values()), None)
        if peer is None:
            raise HttpError(503, "no gateway connected" if gateway_id is None else f"gateway {gateway_id} not connected")
        command_id = frame.setdefault("command_id", f"c{next(self._ids)}-{int(self._wall() * 1000)}")
        future = asyncio.get_running_loop().create_future()
        peer.pending[command_id] = future
        try:
            await self._send(peer.connection, frame)
            return await asyncio.wait_for(future, timeout)
        except (asyncio.TimeoutError, ConnectionError, ConnectionClosed) as exc:
            raise HttpError(504, f"no result from {peer.gateway_id}: {type(exc).__name__}") from None
        finally:
            peer.pending.pop(command_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: a disconnect while we gave up is not an unhandled error

    async def send_raw(self, data: str | bytes, *, gateway_id: str | None = None) -> None:
        """Send anything at all to a gateway (hostile-marketplace tests)."""
        peer = self._peers.get(gateway_id) if gateway_id else next(iter(self._peers.values()), None)
        if peer is None:
            raise ConnectionError("no gateway connected")
        await peer.connection.send(data)

    @property
    def gateways(self) -> list[str]:
        return list(self._peers)

    # --------------------------------------------------------------------------------- queries
    def sms(self, lease_id: str | None = None) -> list[dict]:
        return self.store.sms(lease_id)

    def leases(self) -> list[dict]:
        return self.store.leases()

    def gateway_state(self, gateway_id: str) -> dict:
        return self.store.gateway_state(gateway_id)

    # ------------------------------------------------------------------------------ control API
    async def handle_http(self, request: HttpRequest) -> tuple[int, object]:
        path, method = request.path.rstrip("/"), request.method
        if path == "/leases" and method == "POST":
            body = request.json()
            if not isinstance(body, dict) or not isinstance(body.get("service"), str):
                raise HttpError(400, "give at least 'service'")
            frame = {"type": "lease.open", "lease_id": body.get("lease_id") or f"deal-{next(self._ids)}",
                     "service": body["service"]}
            for key in ("number", "category", "wait_window"):
                if body.get(key) is not None:
                    frame[key] = body[key]
            criteria = {k: body[k] for k in ("country", "operator", "exclude_prefixes") if body.get(k) is not None}
            if criteria:
                frame["criteria"] = criteria
            result = await self.command(frame, gateway_id=body.get("gateway_id"))
            return (201 if result.get("ok") else 409), result
        match = re.fullmatch(r"/leases/([^/]+)/(repeat|finish|cancel)", path)
        if match and method == "POST":
            lease_id, action = match.groups()
            result = await self.command({"type": f"lease.{action}", "lease_id": lease_id},
                                        gateway_id=self.store.lease_gateway(lease_id))
            return (200 if result.get("ok") else 409), result
        if path == "/leases" and method == "GET":
            return 200, self.leases()
        if path == "/sms" and method == "GET":
            return 200, self.sms()
        if path == "/gateways" and method == "GET":
            return 200, {g: self.gateway_state(g) for g in self.gateways}
        raise HttpError(404, f"no route {method} {request.path}")


async def _read(connection: ServerConnection, inbox: asyncio.Queue[str | bytes | None]) -> None:
    """Every frame of ``connection`` into ``inbox`` (it holds MAX_BURST: beyond, this waits and the
    WebSocket's own buffer, then TCP, hold the gateway back), then None for the end."""
    try:
        async for message in connection:
            await inbox.put(message)
    except ConnectionClosed:
        pass
    finally:
        await inbox.put(None)  # the consumer drains the inbox until it sees this, or cancels us


def _decode(message: str | bytes) -> dict | None:
    try:
        frame = json.loads(message)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


async def run_market(stop: asyncio.Event, *, listen: tuple[str, int], token: str, db_path: str,
                     control: tuple[str, int] | None, tls: tuple[str, str] | None = None, out=None) -> int:
    """``simgw market``: serve until stopped, printing each SMS with its end-to-end latency."""
    import sys

    out = out or sys.stdout

    def show(arrival: Arrival) -> None:
        latency = f"{arrival.latency_ms:7.1f} ms" if arrival.latency_ms is not None else "      ?"
        text = escape((arrival.text or "").replace("\n", " ")[:60])  # a gateway's SMS: anyone's bytes
        print(f"{time.strftime('%H:%M:%S')}  sms {escape(arrival.msg_id[:10])} lease {escape(arrival.lease_id)}  {latency}"
              f"{'  (repeat)' if arrival.repeat else ''}  {text}", file=out, flush=True)

    market = Market(db_path, token, on_sms=show)
    context = None
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
    await market.start(*listen, ssl_context=context)
    server = await serve_json(market.handle_http, *control) if control else None
    print(json.dumps({"market": "ready", "listen": f"{market.address[0]}:{market.address[1]}",
                      "control": f"{control[0]}:{control[1]}" if control else None}), file=out, flush=True)
    await stop.wait()
    if server is not None:
        server.close()
    await market.stop()
    with contextlib.suppress(Exception):
        market.close()
    return 0
