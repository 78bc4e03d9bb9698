"""``simgw dashboard-password FILE``: writes the hash ``[control] password_file`` points at.

The password is asked twice on the terminal (or read as one line from stdin with ``--stdin``,
for provisioning scripts); only its scrypt hash reaches the disk, in a file only its owner can
read, written to a temporary name and renamed so a half-written file never exists."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile

from gateway.dashboard import password

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dashboard-password",
                            help="write the dashboard's password hash for [control] password_file")
    parser.add_argument("file", help="where to write it, e.g. /etc/simgw/dashboard.pass")
    parser.add_argument("--stdin", action="store_true", help="read the password as one line from stdin")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = getpass.getpass("dashboard password: ")
        if getpass.getpass("again: ") != secret:
            print("simgw: the two passwords differ; nothing written", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        line = password.make(secret).line()
    except ValueError as exc:
        print(f"simgw: {exc}; nothing written", file=sys.stderr)
        return EXIT_BAD_INPUT
    path = os.path.abspath(args.file)
    try:
        write_private(path, line + "\n")
    except OSError as exc:
        print(f"simgw: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{path}: written (scrypt hash, mode 0600). Let the daemon's user read it (sudo chown simgw {path}), "
          f"set [control] password_file = \"{path}\" and restart simgw.")
    return EXIT_OK


def write_private(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".dashboard-pass-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp made it 0600
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
