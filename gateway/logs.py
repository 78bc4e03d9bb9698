"""Logging setup: structlog key-values, JSON lines for journald or a console renderer for a person.

Phone numbers and message texts are personal data: one processor here redacts them from every
event, so a call site never has to remember to. ``redact=False`` exists for a supplier debugging
their own rig on their own terminal, and says so in every line it lets through. Secrets are
another matter: a token, and the userinfo, query and fragment of any URL, are removed from every
line whatever ``redact`` says.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

from gateway.log_coalesce import LogCoalescer
from gateway.printable import escape, json_line
from gateway.uplink.url import redact_urls

SENSITIVE_TEXT_KEYS = frozenset({"text", "body", "message_text", "pdu", "pdu_hex", "raw", "line"})
SECRET_KEYS = frozenset({"token", "password", "secret", "authorization", "api_key"})
SENSITIVE_NUMBER_KEYS = frozenset({"sender", "msisdn", "number", "phone", "recipient", "imsi", "iccid"})
_PHONE_RE = re.compile(r"\+?\d{7,15}")


def mask_number(value: str) -> str:
    """Keep the last 3 digits so an operator can still tell numbers apart: ``+7900***567``."""
    digits = value.strip()
    if len(digits) <= 4:
        return "***"
    return digits[:4] + "***" + digits[-3:] if len(digits) > 8 else "***" + digits[-3:]


def secrets_processor(_logger: object, _name: str, event: dict[str, object]) -> dict[str, object]:
    """Always on: a secret-named value never shows, and every URL in a string value (``url=``, an
    error that quotes one) loses its userinfo, query and fragment, where a token would be."""
    for key, value in event.items():
        if key in SECRET_KEYS and value is not None:
            event[key] = "<secret>"
        elif isinstance(value, str) and "://" in value:
            event[key] = redact_urls(value)
    return event


def redact_processor(_logger: object, _name: str, event: dict[str, object]) -> dict[str, object]:
    for key, value in list(event.items()):
        if key in SENSITIVE_TEXT_KEYS and value is not None:
            event[key] = f"<{len(str(value))} chars>"
        elif key in SENSITIVE_NUMBER_KEYS and isinstance(value, str) and value:
            event[key] = mask_number(value)
        elif key in ("error", "reason") and isinstance(value, str):
            event[key] = _PHONE_RE.sub(lambda m: mask_number(m.group(0)), value)
    return event


def escape_processor(_logger: object, _name: str, event: dict[str, object]) -> dict[str, object]:
    """For the console renderer, which prints strings raw: every string value (the event name
    included) with terminal controls escaped; a traceback keeps its line breaks. Other values are
    rendered with repr(), which escapes them already."""
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = escape(value, keep_newlines=key == "exception")
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is now (test runners and daemons swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(*, json_lines: bool | None = None, level: str = "info", redact: bool = True, stream=None,
              coalescer: LogCoalescer | None = None) -> LogCoalescer:
    """Configure structlog once for the process; ``json_lines=None`` picks by whether it is a tty.
    Repeated events are capped by ``coalescer`` (default: 10 a second per event and port)."""
    stream = stream if stream is not None else _CurrentStderr()
    if json_lines is None:
        json_lines = not stream.isatty()
    coalescer = coalescer if coalescer is not None else LogCoalescer()
    processors: list = [
        coalescer,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        secrets_processor,
    ]
    if redact:
        processors.append(redact_processor)
    processors.append(structlog.processors.format_exc_info)
    if json_lines:
        processors.append(structlog.processors.JSONRenderer(serializer=json_line))
    else:
        processors += [escape_processor, structlog.dev.ConsoleRenderer(colors=stream.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return coalescer


def flush() -> None:
    """Write the pending ``log.coalesced`` summaries of the current configuration (at exit)."""
    for processor in structlog.get_config()["processors"]:
        if isinstance(processor, LogCoalescer):
            processor.flush()
