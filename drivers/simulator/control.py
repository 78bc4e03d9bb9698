"""The simulator's control API: HTTP+JSON on loopback, on asyncio streams (no framework needed).

``GET /modems``; ``POST /modems/{id}/sms`` with ``{"sender", "text"}`` or ``{"pdu"}`` (201);
``POST /modems/{id}/fault`` with ``{"kind", "seconds"?, "data_hex"?}`` (202);
``GET /modems/{id}`` for storage and held counts.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.simulator.farm import FaultError, ModemFarm
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from None


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[HttpRequest], Awaitable[tuple[int, object]]]
_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 413: "Payload Too Large", 500: "Internal Server Error"}


async def serve_json(handler: Handler, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.1 JSON server: one request per connection, bounded body."""

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, payload = await _handle(reader, handler)
        except HttpError as exc:
            status, payload = exc.status, {"error": str(exc)}
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            status, payload = 400, {"error": f"bad request: {exc}"}
        body = json.dumps(payload, ensure_ascii=False).encode()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        try:
            writer.write(head + body)
            await writer.drain()
            writer.close()
        except ConnectionError:
            pass

    return await asyncio.start_server(on_client, host, port)


async def _handle(reader: asyncio.StreamReader, handler: Handler) -> tuple[int, object]:
    request_line = (await reader.readline()).decode("latin-1").strip()
    parts = request_line.split()
    if len(parts) < 2:
        raise HttpError(400, "bad request line")
    method, path = parts[0].upper(), parts[1].split("?")[0]
    length = 0
    while True:
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length > MAX_BODY:
        raise HttpError(413, f"body larger than {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    return await handler(HttpRequest(method, path, body))


_MODEM_RE = re.compile(r"^/modems/(\d+)(?:/(sms|fault))?$")


def farm_handler(farm: ModemFarm) -> Handler:
    async def handle(request: HttpRequest) -> tuple[int, object]:
        if request.path == "/modems":
            if request.method != "GET":
                raise HttpError(405, "use GET")
            return 200, [info.as_json() for info in farm.info()]
        match = _MODEM_RE.match(request.path)
        if match is None:
            raise HttpError(404, f"no route {request.path}")
        modem_id, action = int(match.group(1)), match.group(2)
        try:
            modem = farm.modem(modem_id)
        except KeyError as exc:
            raise HttpError(404, str(exc.args[0])) from None
        if action is None:
            engine = modem.engine
            return 200, {**farm.info()[modem_id].as_json(), "stored": len(engine.storage),
                         "held": len(engine.network_queue), "plugged": modem.plugged}
        if request.method != "POST":
            raise HttpError(405, "use POST")
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        if action == "sms":
            return 201, _inject_sms(farm, modem_id, body)
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise HttpError(400, "fault needs a string 'kind'")
        seconds = body.get("seconds", 2.0)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise HttpError(400, "'seconds' must be a non-negative number")
        data = None
        if "data_hex" in body:
            try:
                data = bytes.fromhex(str(body["data_hex"]))
            except ValueError:
                raise HttpError(400, "'data_hex' is not hex") from None
        try:
            farm.inject_fault(modem_id, kind, seconds=float(seconds), data=data)
        except FaultError as exc:
            raise HttpError(400, str(exc)) from None
        return 202, {"modem": modem_id, "fault": kind}

    return handle


def _inject_sms(farm: ModemFarm, modem_id: int, body: dict) -> dict[str, object]:
    if "pdu" in body:
        pdu = body["pdu"]
        if not isinstance(pdu, str):
            raise HttpError(400, "'pdu' must be a hex string")
        try:
            decoded = decode_pdu(pdu)
        except PduError as exc:
            raise HttpError(400, f"bad PDU: {exc}") from None
        if not isinstance(decoded, SmsDeliver):
            raise HttpError(400, "the PDU is not an SMS-DELIVER")
        farm.send_pdu(modem_id, pdu.strip().upper())
        return {"modem": modem_id, "pdus": [pdu.strip().upper()]}
    sender, text = body.get("sender"), body.get("text")
    if not isinstance(sender, str) or not sender or not isinstance(text, str):
        raise HttpError(400, "give {'sender', 'text'} or {'pdu'}")
    try:
        pdus = farm.send_sms(modem_id, sender, text, shuffle=bool(body.get("shuffle", False)),
                             ref_bits=16 if body.get("ref_bits") == 16 else 8)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return {"modem": modem_id, "pdus": pdus}
