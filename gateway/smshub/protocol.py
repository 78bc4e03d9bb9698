"""The SMSHUB Agent Protocol as bytes in, typed requests out, replies as bytes: no I/O.

Built from the published document ("SMSHUB Agent Protocol", version of March 6, 2024) and
OnlineSim's Reseller API v1 pages (https://onlinesim.io/docs/api/reseller_en/sms_hub/...), which
use the same requests. See PROTOCOL.md beside this file for what each field means to simgw.

Nothing here raises on input: a request that is not what the protocol allows becomes a
:class:`Rejected` with the sentence for the ``{"status":"ERROR","error":...}`` reply and the HTTP
status to send it with.
"""

from __future__ import annotations

import enum
import gzip
import hmac
import json
import re
import zlib
from dataclasses import dataclass

GET_SERVICES, GET_NUMBER, FINISH_ACTIVATION, PUSH_SMS = "GET_SERVICES", "GET_NUMBER", "FINISH_ACTIVATION", "PUSH_SMS"
ACTIONS = (GET_SERVICES, GET_NUMBER, FINISH_ACTIVATION)  # the hub's requests to the agent
SOLD, NEVER_AGAIN, CANCELLED, REFUNDED = 3, 1, 4, 5  # Appendix 4: activation status
FINISH_STATUSES = (NEVER_AGAIN, SOLD, CANCELLED, REFUNDED)
CURRENCIES = (643, 840)  # Appendix 6: ISO 4217 numeric, rouble and US dollar
ULONG_MAX = 9_223_372_036_854_775_807  # the document's "Ulong": 0 .. 2^63-1
MAX_NAME = 64  # country, operator and service names: the hub's are short words
MAX_KEY = 4096
MAX_PREFIXES = 1000  # exceptionPhoneSet entries
STOP_PUSH_ERRORS = frozenset({"NO_OPERATION", "NO_OP", "BAD_SERVICE"})  # OnlineSim: retrying cannot help
_DIGITS = re.compile(r"[0-9]{1,15}")
_NAME = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


class Flavour(enum.Enum):
    SMSHUB = "smshub"  # the key in the body; SUCCESS in the body is success
    ONLINESIM = "onlinesim"  # also Authorization: Bearer; HTTP 200 is success; NO_OPERATION/BAD_SERVICE stop retries


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes the agent accepts: far above any real request, far below what would hurt a Pi."""

    max_body: int = 64 * 1024  # bytes on the wire
    max_inflated: int = 256 * 1024  # bytes after gzip: a 64 KiB gzip bomb inflating to gigabytes stops here


@dataclass(frozen=True, slots=True)
class Rejected:
    error: str
    http_status: int = 400


@dataclass(frozen=True, slots=True)
class GetServices:
    key: str


@dataclass(frozen=True, slots=True)
class GetNumber:
    key: str
    country: str
    operator: str
    service: str
    sum: float | None
    currency: int | None
    exclude_prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FinishActivation:
    key: str
    activation_id: int
    status: int


Request = GetServices | GetNumber | FinishActivation


# ------------------------------------------------------------------------------------ bodies in
def inflate(body: bytes, encoding: str | None, limits: Limits = Limits()) -> bytes | Rejected:
    """The request body as JSON bytes: gzip or deflate undone within ``limits.max_inflated`` (the
    decompressor is asked for at most that much, so a bomb costs no more memory than that)."""
    if len(body) > limits.max_body:
        return Rejected(f"body larger than {limits.max_body} bytes", 413)
    coding = (encoding or "identity").strip().lower()
    if coding == "identity" and body[:2] == b"\x1f\x8b":
        coding = "gzip"  # the document asks for gzip everywhere: a hub may send it unlabelled
    if coding == "identity":
        return body
    if coding not in ("gzip", "x-gzip", "deflate"):
        return Rejected(f"unsupported Content-Encoding {coding[:32]!r} (gzip or none)", 415)
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32 if coding != "deflate" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limits.max_inflated + 1)
    except zlib.error:
        return Rejected("body is not valid gzip", 400)
    if len(out) > limits.max_inflated or inflater.unconsumed_tail:
        return Rejected(f"body larger than {limits.max_inflated} bytes once decompressed", 413)
    if not inflater.eof:
        return Rejected("body is truncated gzip", 400)
    return out


def parse_request(body: bytes, expected_key: str, authorization: str | None = None) -> Request | Rejected:
    """One hub request from its (decompressed) JSON body: the key first (nothing else is looked
    at for a caller without it), then every field for presence and type as the document states
    them; anything else is a :class:`Rejected`."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Rejected("body is not UTF-8 JSON")
    if not isinstance(data, dict):
        return Rejected("body is not a JSON object")
    key = data.get("key", "")
    if not isinstance(key, str) or len(key) > MAX_KEY:
        return Rejected("'key' is not a string", 401)
    if not key_matches(expected_key, key, authorization):
        return Rejected("wrong or missing key", 401)
    action = data.get("action")
    if not isinstance(action, str):
        return Rejected("'action' missing or not a string")
    if action == GET_SERVICES:
        return GetServices(key)
    if action == GET_NUMBER:
        return _get_number(data, key)
    if action == FINISH_ACTIVATION:
        return _finish(data, key)
    return Rejected(f"unknown action {action[:40]!r}")


def _name(data: dict, field: str) -> str | Rejected:
    value = data.get(field)
    if not isinstance(value, str) or len(value) > MAX_NAME or not _NAME.fullmatch(value):
        return Rejected(f"'{field}' missing or not a name (printable ASCII, at most {MAX_NAME} characters)")
    return value.lower()


def _get_number(data: dict, key: str) -> GetNumber | Rejected:
    names = [_name(data, f) for f in ("country", "operator", "service")]
    for name in names:
        if isinstance(name, Rejected):
            return name
    amount = data.get("sum")
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0):
        return Rejected("'sum' is not a non-negative number")
    currency = data.get("currency")
    if currency is not None and (type(currency) is not int or currency not in CURRENCIES):
        return Rejected("'currency' is not 643 or 840")
    prefixes = _prefixes(data.get("exceptionPhoneSet"))
    if isinstance(prefixes, Rejected):
        return prefixes
    country, operator, service = names
    return GetNumber(key, country, operator, service, None if amount is None else float(amount), currency, prefixes)  # type: ignore[arg-type]


def _prefixes(value: object) -> tuple[str, ...] | Rejected:
    """exceptionPhoneSet: SMSHub's example sends strings ("7918"), OnlineSim's integers (46950)."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_PREFIXES:
        return Rejected(f"'exceptionPhoneSet' is not a list of at most {MAX_PREFIXES} prefixes")
    out = []
    for item in value:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) and item >= 0 else item
        if not isinstance(text, str) or not _DIGITS.fullmatch(text):
            return Rejected("'exceptionPhoneSet' holds something other than digit prefixes")
        out.append(text)
    return tuple(out)


def _finish(data: dict, key: str) -> FinishActivation | Rejected:
    activation = data.get("activationId")
    if isinstance(activation, bool) or not isinstance(activation, int) or not 0 <= activation <= ULONG_MAX:
        return Rejected("'activationId' missing or not an unsigned integer")
    status = data.get("status")
    if type(status) is not int or status not in FINISH_STATUSES:
        return Rejected("'status' missing or not one of 1, 3, 4, 5")
    return FinishActivation(key, activation, status)


def key_matches(expected: str, body_key: str, authorization: str | None) -> bool:
    """The protocol key, compared in constant time: from the body, or (OnlineSim) from an
    ``Authorization: Bearer`` header. A key given in both places must match in both."""
    given = []
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        given.append(token.strip() if scheme.lower() == "bearer" else "")
    if body_key:
        given.append(body_key)
    if not given:
        return False
    want = expected.encode()
    return all(hmac.compare_digest(want, candidate.encode("utf-8", "replace")) for candidate in given)


# ------------------------------------------------------------------------------------ replies
def encode(obj: dict, *, gzipped: bool = True) -> bytes:
    """A body as the document asks: UTF-8 JSON, gzip-compressed."""
    raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=5, mtime=0) if gzipped else raw


def error(message: str) -> dict:
    return {"status": "ERROR", "error": message}


def no_numbers() -> dict:
    return {"status": "NO_NUMBERS"}


def success(**fields: object) -> dict:
    return {"status": "SUCCESS", **fields}


def number_reply(number: int, activation_id: int) -> dict:
    return success(number=number, activationId=activation_id)


def services_reply(counts: dict[str, dict[str, dict[str, int]]]) -> dict:
    """``counts``: country -> operator -> hub service code -> SIMs available at once."""
    return success(countryList=[{"country": country, "operatorMap": {op: dict(sorted(services.items()))
                                                                     for op, services in sorted(operators.items())}}
                                for country, operators in sorted(counts.items())])


def numeric_phone(number: str) -> int | None:
    """``+79281234567`` as the document's numeric phone, ``79281234567``; None if not E.164."""
    digits = number[1:] if number.startswith("+") else ""
    return int(digits) if _DIGITS.fullmatch(digits) and len(digits) >= 7 else None


# --------------------------------------------------------------------------------------- push
class PushOutcome(enum.Enum):
    DELIVERED = "delivered"  # SUCCESS: never sent again
    RETRY = "retry"  # anything else: again in 10 s
    STOP = "stop"  # OnlineSim's NO_OPERATION / BAD_SERVICE: retrying cannot help


def push_body(sms_id: int, phone: int, phone_from: str, text: str, key: str) -> dict:
    """PUSH_SMS: smsId and phone numeric, as the hub's test 3 checks."""
    return {"action": PUSH_SMS, "key": key, "smsId": sms_id, "phone": phone, "phoneFrom": phone_from, "text": text}


def push_headers(key: str, flavour: Flavour, user_agent: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip",
               "Accept-Encoding": "gzip", "User-Agent": user_agent}
    if flavour is Flavour.ONLINESIM:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def push_outcome(http_status: int, body: bytes, flavour: Flavour) -> tuple[PushOutcome, str]:
    """What the hub's answer to PUSH_SMS means, with a short reason for the log."""
    try:
        reply = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        reply = None
    status = reply.get("status") if isinstance(reply, dict) else None
    status = status if isinstance(status, str) else None
    detail = (reply.get("error") if isinstance(reply, dict) else None) or status or f"HTTP {http_status}"
    detail = str(detail)[:80]
    if flavour is Flavour.ONLINESIM:
        for word in (status, str(reply.get("error")) if isinstance(reply, dict) else None):
            if word and word.upper() in STOP_PUSH_ERRORS:
                return PushOutcome.STOP, word.upper()
        if http_status == 200 and status in (None, "SUCCESS"):
            return PushOutcome.DELIVERED, "HTTP 200"
        return PushOutcome.RETRY, detail
    if http_status == 200 and status == "SUCCESS":
        return PushOutcome.DELIVERED, "SUCCESS"
    return PushOutcome.RETRY, detail
