"""A minimal HTTP/1.1 JSON server on asyncio streams, for loopback control APIs.

Used by the tools that are not the daemon: the simulator's and the reference marketplace's
control APIs, a handful of routes on 127.0.0.1 for tests and demos. The daemon's own listeners
are aiohttp with limits (gateway/control/). One request per connection, bounded body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

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
        if isinstance(payload, str):  # plain text (the Prometheus exposition format)
            body, content_type = payload.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            body, content_type = json.dumps(payload, ensure_ascii=False).encode(), "application/json"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
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


