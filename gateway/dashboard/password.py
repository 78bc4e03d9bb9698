"""The dashboard's password file, I/O-free but for :func:`read_file`: one line
``scrypt$N$r$p$salt$hash`` (salt and hash in base64), made by ``simgw dashboard-password``.

The file holds a slow salted hash, never the password: a copied SD card does not give the password
away. Checking costs a scrypt run (~16 MiB, tens of ms on a Pi), so :class:`BasicAuth` remembers
the last few credentials that passed, as keyed digests, and runs at most one check at a time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass

SCHEME = "scrypt"
N, R, P = 2 ** 14, 8, 1  # hashlib.scrypt's memory: 128 * N * r bytes = 16 MiB
SALT_BYTES, HASH_BYTES = 16, 32
MIN_LENGTH = 8
MAX_LENGTH = 1024
REMEMBERED = 8  # credentials that passed, kept as keyed digests; the oldest is forgotten at the cap


class PasswordFileError(ValueError):
    """The password file is missing, unreadable or not in the ``scrypt$...`` format."""


@dataclass(frozen=True, slots=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def line(self) -> str:
        b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
        return f"{SCHEME}${self.n}${self.r}${self.p}${b64(self.salt)}${b64(self.digest)}"

    def matches(self, password: str) -> bool:
        """Constant-time comparison of scrypt(password) with the stored digest."""
        candidate = _scrypt(password.encode("utf-8"), self.salt, self.n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(candidate, self.digest)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r + 1024 * 1024)


def make(password: str, *, salt: bytes | None = None) -> PasswordHash:
    """A new hash of ``password``; raises ValueError for one too short or too long."""
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise ValueError(f"the password must be {MIN_LENGTH}..{MAX_LENGTH} characters")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    return PasswordHash(N, R, P, salt, _scrypt(password.encode("utf-8"), salt, N, R, P, HASH_BYTES))


def parse(line: str) -> PasswordHash:
    """The hash in one line of the file; raises :class:`PasswordFileError` saying what is wrong."""
    fields = line.strip().split("$")
    if len(fields) != 6 or fields[0] != SCHEME:
        raise PasswordFileError("expected one line 'scrypt$N$r$p$salt$hash' (make it with simgw dashboard-password)")
    try:
        n, r, p = (int(x) for x in fields[1:4])
        salt, digest = base64.b64decode(fields[4], validate=True), base64.b64decode(fields[5], validate=True)
    except (ValueError, binascii.Error):
        raise PasswordFileError("the scrypt parameters, salt or hash are malformed") from None
    if not (2 <= n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and len(digest) >= 16):
        raise PasswordFileError("the scrypt parameters are out of range (N a power of two up to 2^20, r 1..32, p 1..16)")
    return PasswordHash(n, r, p, salt, digest)


def read_file(path: str) -> PasswordHash:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(4096)
    except OSError as exc:
        raise PasswordFileError(f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PasswordFileError("it is not UTF-8 text") from None
    return parse(text)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """User and password from an ``Authorization: Basic ...`` header, or None when absent or bad."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value or len(value) > 4 * MAX_LENGTH:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


class BasicAuth:
    """Checks a Basic ``Authorization`` header against the hash (any user name is accepted: there
    is one password). Credentials that passed are remembered as HMAC digests under a key made at
    start, so a page's every request does not cost a scrypt run."""

    def __init__(self, stored: PasswordHash) -> None:
        self._stored = stored
        self._key = os.urandom(32)
        self._passed: OrderedDict[bytes, None] = OrderedDict()

    def remembered(self, header: str) -> bool:
        digest = hmac.new(self._key, header.encode("utf-8", "replace"), hashlib.sha256).digest()
        return any(hmac.compare_digest(digest, known) for known in self._passed)

    def check(self, header: str | None) -> bool:
        """Slow (scrypt) unless remembered; call it off the event loop."""
        if header is None:
            return False
        if self.remembered(header):
            return True
        credentials = basic_credentials(header)
        if credentials is None or len(credentials[1]) > MAX_LENGTH or not self._stored.matches(credentials[1]):
            return False
        self._passed[hmac.new(self._key, header.encode("utf-8", "replace"), hashlib.sha256).digest()] = None
        while len(self._passed) > REMEMBERED:
            self._passed.popitem(last=False)
        return True
