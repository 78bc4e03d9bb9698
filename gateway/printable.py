"""Text from outside made safe for a terminal: one rule for CLI tables, console logs and JSON logs.

Anyone who can text a SIM, and any marketplace, chooses bytes that end up on the operator's screen
(an SMS text, a lease id, a service name). A terminal acts on some of them: ESC and the C1 CSI start
control sequences (retitle the window, clear the screen, fake a prompt), bidi overrides reorder
what is shown. Every such character is shown as its Python escape (``\\x1b``, ``\\u202e``) instead;
everything else, Cyrillic and emoji included, is left as it is.
"""

from __future__ import annotations

import json
import re

# C0 controls, DEL and C1 controls; ALM, LRM/RLM, line/paragraph separators, bidi embeddings and
# overrides (U+202A-202E), isolates (U+2066-2069); lone surrogates (print() would raise on them)
_UNSAFE_RANGES = ((0x00, 0x1F), (0x7F, 0x9F), (0x61C, 0x61C), (0x200E, 0x200F), (0x2028, 0x202E),
                  (0x2066, 0x2069), (0xD800, 0xDFFF))
UNSAFE_CHARS = frozenset(chr(c) for low, high in _UNSAFE_RANGES for c in range(low, high + 1))


def _char_class(ranges: tuple[tuple[int, int], ...]) -> re.Pattern[str]:
    return re.compile("[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in ranges) + "]")


_UNSAFE_RE = _char_class(_UNSAFE_RANGES)
_UNSAFE_BUT_NEWLINE_RE = _char_class(((0x00, 0x09), (0x0B, 0x1F), *_UNSAFE_RANGES[1:]))
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return _SHORT.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(value: object, *, keep_newlines: bool = False) -> str:
    """``str(value)`` with every character a terminal would act on shown as an escape
    (``keep_newlines``: all but ``\\n``, for a traceback that should still read as lines)."""
    text = value if isinstance(value, str) else str(value)
    return (_UNSAFE_BUT_NEWLINE_RE if keep_newlines else _UNSAFE_RE).sub(_escaped, text)


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group(0)):04x}"


def json_line(obj: object, **kwargs: object) -> str:
    """``json.dumps(obj, ensure_ascii=False)`` that is also safe on a terminal: json escapes C0
    itself; DEL, C1, bidi controls and separators become ``\\uXXXX`` too (the same string to any JSON
    reader, since those characters only ever occur inside JSON strings)."""
    kwargs.setdefault("ensure_ascii", False)
    return _UNSAFE_RE.sub(_json_escaped, json.dumps(obj, **kwargs))
