"""Where the control socket lives and how it is made.

The rule, for the daemon and the CLI alike (both read the same config):

1. ``[control] socket`` when the config names a path;
2. else ``$RUNTIME_DIRECTORY/control.sock`` when systemd set ``RuntimeDirectory=`` (the shipped
   unit: ``/run/simgw/control.sock``), with a link to it at ``<state_dir>/control.sock`` so a CLI
   started from a shell (no ``$RUNTIME_DIRECTORY``) finds it through the state directory;
3. else ``<state_dir>/control.sock``.

A CLI run by a member of group ``simgw`` cannot search the unit's 0700 state directory; when
that is why it cannot see ``<state_dir>/control.sock``, it uses the shipped unit's
``/run/simgw/control.sock`` (``RuntimeDirectory=simgw``, mode 0750).

So daemons with their own state directories never share a socket; a daemon that finds a live
daemon on its path refuses to start rather than steal it, and one that finds a dead socket
(a crash) replaces it. The socket is mode 0660 and, where a group ``simgw`` exists and the daemon
may give files to it, owned by that group: the file mode is the authentication.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import socket
import stat

import structlog

log = structlog.get_logger("gateway.control")

SOCKET_NAME = "control.sock"
SOCKET_MODE = 0o660
SOCKET_GROUP = "simgw"
UNIT_SOCKET = "/run/simgw/control.sock"  # RuntimeDirectory=simgw in systemd/simgw.service
MAX_PATH = 107  # sockaddr_un.sun_path on Linux, less the terminating NUL


class ControlSocketError(RuntimeError):
    """The control socket cannot be made: the path, and what to change."""


def socket_path(control_socket: str | None, state_dir: str, environ: dict[str, str] | os._Environ = os.environ) -> str:
    """The control socket's path by the rule above (the daemon's view; the CLI's is the same,
    through the state directory's link when systemd placed the socket)."""
    if control_socket:
        return control_socket
    runtime = environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return os.path.join(runtime or state_dir, SOCKET_NAME)


def client_socket_path(control_socket: str | None, state_dir: str,
                       environ: dict[str, str] | os._Environ = os.environ) -> str:
    """Where the CLI finds the daemon's socket: the daemon's rule, through the state directory."""
    path = socket_path(control_socket, state_dir, environ)
    if control_socket or environ.get("RUNTIME_DIRECTORY"):
        return path
    try:
        os.stat(state_dir)
        os.listdir(state_dir)
    except PermissionError:
        return UNIT_SOCKET
    except OSError:
        pass
    return path


def bind(path: str) -> socket.socket:
    """A bound, not yet listening Unix socket at ``path``, mode 0660, group ``simgw`` if possible.
    Until it listens, connecting to it is refused: nobody connects while the mode is still wrong."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ControlSocketError(f"control socket path {path!r} is longer than {MAX_PATH} bytes; "
                                 f"set a shorter [control] socket")
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, SOCKET_MODE)
        _give_to_group(path)
    except OSError as exc:
        sock.close()
        raise ControlSocketError(f"cannot create the control socket {path}: {exc.strerror or exc}") from None
    return sock


def link_from_state_dir(path: str, state_dir: str) -> str | None:
    """Point ``<state_dir>/control.sock`` at ``path`` when the socket lives elsewhere by rule 2."""
    link = os.path.join(state_dir, SOCKET_NAME)
    if os.path.abspath(link) == os.path.abspath(path):
        return None
    try:
        if os.path.islink(link):
            os.unlink(link)
        else:
            _clear_stale(link)
        os.symlink(path, link)
    except (OSError, ControlSocketError) as exc:
        log.warning("control.link_failed", link=link, socket=path, error=str(exc),
                    hint="the CLI will not find the socket without [control] socket")
        return None
    return link


def remove(path: str, link: str | None) -> None:
    for name in (link, path):
        if name:
            with contextlib.suppress(OSError):
                os.unlink(name)


def _clear_stale(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path} exists and is not a socket; remove it or set [control] socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ControlSocketError(f"cannot tell whether a daemon serves {path}: {exc.strerror}") from None
    else:
        raise ControlSocketError(f"another simgw daemon already serves {path}; give this one its own "
                                 f"state_dir or [control] socket")
    finally:
        probe.close()
    os.unlink(path)  # a socket left behind by a daemon that died


def _give_to_group(path: str) -> None:
    try:
        gid = grp.getgrnam(SOCKET_GROUP).gr_gid
    except KeyError:
        log.info("control.no_group", group=SOCKET_GROUP, socket=path, mode="0660",
                 note="the socket stays in the daemon's own group")
        return
    if os.stat(path).st_gid == gid:
        return
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        log.warning("control.group_not_set", group=SOCKET_GROUP, socket=path,
                    hint=f"run the daemon as a member of {SOCKET_GROUP}")
