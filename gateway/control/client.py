"""The CLI's side of the control socket: one HTTP/1.1 request over AF_UNIX, synchronous, from
the standard library (the CLI has no event loop and needs none)."""

from __future__ import annotations

import http.client
import json
import socket


class ControlUnavailable(Exception):
    """The daemon cannot be reached on its socket: the path and what to do."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def request(path: str, method: str, target: str, body: object = None, *,
            timeout: float = 10.0) -> tuple[int, object]:
    """(status, decoded JSON or text) of one request to the daemon listening on ``path``."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection = _UnixConnection(path, timeout)
    try:
        connection.request(method, target, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
    except FileNotFoundError:
        raise ControlUnavailable(f"no control socket at {path}; is `simgw run` running with this config?") from None
    except PermissionError:
        raise ControlUnavailable(f"no permission to use {path}; run as the daemon's user or a member of "
                                 f"the group 'simgw'") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ControlUnavailable(f"the daemon does not answer on {path} ({exc}); is `simgw run` running?") from None
    finally:
        connection.close()
    if response.headers.get_content_type() == "application/json":
        return response.status, json.loads(payload or b"null")
    return response.status, payload.decode("utf-8", "replace")
