"""Issue 12 finding 9: text from outside (a marketplace's lease id and service, an SMS anyone can
send to the SIM) never reaches the operator's terminal as control sequences: CLI tables, console
logs and JSON logs show ESC, C0/C1 controls, DEL and bidi overrides escaped."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys

import structlog

from gateway import logs
from gateway.printable import UNSAFE_CHARS, escape
from gateway.store import Store

SIMGW = [sys.executable, "-m", "gateway.cli"]
LEASE_ID = "L\x1b[2J\x1b]0;pwned\x07\u202egnp.exe"  # argv cannot carry the NUL that HOSTILE has
HOSTILE = "ok\x1b]0;pwned\x07\x1b[2J\x9b31m\x7f\u202egnp.exe\u2066x\u2069\x00\r\n\t"


def _raw_unsafe(text: str) -> list[str]:
    return [ch for ch in text if ch in UNSAFE_CHARS and ch != "\n"]  # print() ends lines with \n itself


def test_escape_shows_every_unsafe_character_and_keeps_readable_text():
    shown = escape(HOSTILE)
    assert not _raw_unsafe(shown) and "\n" not in shown
    assert shown == "ok\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x7f\\u202egnp.exe\\u2066x\\u2069\\x00\\r\\n\\t"
    assert escape("Код 554433, 📱 ok") == "Код 554433, 📱 ok"  # Cyrillic, emoji: printable, untouched
    assert escape("\ud800") == "\\ud800"  # a lone surrogate would make print() raise


def _hostile_database(tmp_path) -> str:
    state = tmp_path / "state"
    store = Store(str(state / "simgw.db"))
    store.open()
    store.close()
    with sqlite3.connect(state / "simgw.db") as db:
        db.execute("INSERT INTO leases (id, number, service, state, opened_at, deadline, wait_window, sms_count)"
                   " VALUES (?, '+79001234567', ?, 'waiting', 1, 9e12, 600, 0)", (LEASE_ID, HOSTILE))
        db.execute("INSERT INTO messages (id, iccid, number, port, sender, text, encoding, parts, complete, received_at,"
                   " lease_id) VALUES ('m1', '8970', '+79001234567', '/dev/x', ?, ?, 'ucs2', 1, 1, 2, 'L1')",
                   ("+7916\x1b[2J", HOSTILE))
    config = tmp_path / "simgw.toml"
    config.write_text(f'[gateway]\nstate_dir = "{state}"\n')
    return str(config)


def test_cli_tables_escape_marketplace_and_sms_text(tmp_path):
    config = _hostile_database(tmp_path)
    for args in (["leases", "--all"], ["messages", "--show-text"], ["lease", "show", LEASE_ID]):
        result = subprocess.run([*SIMGW, "--config", config, *args], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert not _raw_unsafe(result.stdout), (args, result.stdout)
        assert "\\x1b]0;pwned\\x07" in result.stdout and "\\u202egnp.exe" in result.stdout, result.stdout


def _log_once(json_lines: bool) -> str:
    out = io.StringIO()
    logs.configure(json_lines=json_lines, level="info", redact=False, stream=out)
    try:
        structlog.get_logger("t").warning("lease.opened" + HOSTILE, service=HOSTILE, detail={"k": HOSTILE})
    finally:
        logs.configure(json_lines=True, level="warning")
    return out.getvalue()


def test_console_log_escapes_values_and_the_event():
    text = _log_once(json_lines=False)
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert not _raw_unsafe(text), text
    assert "\\x1b]0;pwned" in text


def test_json_log_escapes_everything_a_terminal_acts_on_and_round_trips():
    text = _log_once(json_lines=True)
    assert text.count("\n") == 1 and not _raw_unsafe(text), text
    line = json.loads(text)
    assert line["service"] == HOSTILE and line["detail"] == {"k": HOSTILE}  # nothing lost for a log reader
    assert "Билайн" in _log_once_cyrillic()  # readable, not \\u-escaped


def _log_once_cyrillic() -> str:
    out = io.StringIO()
    logs.configure(json_lines=True, level="info", redact=False, stream=out)
    try:
        structlog.get_logger("t").info("note", operator="Билайн")
    finally:
        logs.configure(json_lines=True, level="warning")
    return out.getvalue()
