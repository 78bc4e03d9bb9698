"""Issue 12 finding 10: secrets and files. A token file others can read is refused with the chmod
that fixes it; the database and its directory are created for the daemon's user alone (WAL and
SHM included); a URL that is unencrypted to a non-loopback host, or that carries a secret in its
userinfo or query, is refused by check-config and by run alike (one rule), and no URL reaches a
log with a secret in it; the reference market takes its token from a file, not argv."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import structlog

from gateway import logs
from gateway.config import ConfigError, config_warnings, from_dict
from gateway.store import Store
from tests.gateway.test_cli import free_port

SIMGW = [sys.executable, "-m", "gateway.cli"]
SECRET = "s3cretT0ken"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _token_file(tmp_path, mode: int):
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    token.chmod(mode)
    return token


def _check_config(tmp_path, uplink: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "simgw.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n\n[uplink]\n{uplink}')
    path.chmod(0o600)  # an inline token in a file others can read is a warning of its own
    return subprocess.run([*SIMGW, "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)


# ------------------------------------------------------------------------------ the token file
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_token_file_readable_by_others_is_refused_with_the_chmod(tmp_path, mode):
    token = _token_file(tmp_path, mode)
    result = _check_config(tmp_path, f'url = "wss://m.example/v1"\ntoken_file = "{token}"\n')
    assert result.returncode == 2, result
    line, = result.stderr.strip().splitlines()
    assert ": uplink.token_file:" in line and f"chmod 600 {token}" in line and f"0{mode:o}" in line, line
    assert SECRET not in result.stderr + result.stdout


def test_token_file_0600_and_0400_are_accepted(tmp_path):
    for mode in (0o600, 0o400):
        token = _token_file(tmp_path, mode)
        assert from_dict({"uplink": {"url": "wss://m.example/v1", "token_file": str(token)}}).uplink.token == SECRET


def test_token_file_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # opening a FIFO for reading would wait for a writer forever
    with pytest.raises(ConfigError, match="uplink.token_file: expected a regular file"):
        from_dict({"uplink": {"url": "wss://m.example/v1", "token_file": str(fifo)}})


def test_token_with_a_line_break_or_control_character_is_refused(tmp_path):
    token = _token_file(tmp_path, 0o600)
    token.write_text("abc\ndef\n")
    with pytest.raises(ConfigError, match="uplink.token_file: expected one line of printable ASCII"):
        from_dict({"uplink": {"url": "wss://m.example/v1", "token_file": str(token)}})
    with pytest.raises(ConfigError, match="uplink.token: expected one line of printable ASCII"):
        from_dict({"uplink": {"url": "wss://m.example/v1", "token": "abc\x1bdef"}})


# --------------------------------------------------------------------------------- the URL rule
@pytest.mark.parametrize("url,word", [
    ("ws://market.example.com/v1", "wss://"),
    ("wss://user:" + SECRET + "@market.example.com/v1", "token_file"),
    ("wss://" + SECRET + "@market.example.com/v1", "token_file"),
    ("wss://market.example.com/v1?auth=" + SECRET, "token_file"),
    ("wss://market.example.com/v1?token=" + SECRET, "token_file"),
    ("wss://market.example.com/v1?x=1&Api_Key=" + SECRET, "token_file"),
    ("wss://market.example.com/v1#" + SECRET, "token_file"),
    ("wss://market.example.com:99999/v1", "port"),
])
def test_check_config_refuses_the_url_in_one_precise_line(tmp_path, url, word):
    result = _check_config(tmp_path, f'url = "{url}"\ntoken = "t"\n')
    assert result.returncode == 2, result
    line, = result.stderr.strip().splitlines()
    assert ": uplink.url:" in line and word in line and "Traceback" not in result.stderr, line
    assert SECRET not in result.stderr + result.stdout, line


@pytest.mark.slow
def test_loopback_ws_is_fine_and_allow_insecure_is_loud(tmp_path):
    for url in ("ws://127.0.0.1:9/v1", "ws://[::1]:9/v1", "ws://localhost:9/v1", "wss://m.example/v1"):
        result = _check_config(tmp_path, f'url = "{url}"\ntoken = "t"\n')
        assert result.returncode == 0 and "warning" not in result.stderr, (url, result.stderr)
    result = _check_config(tmp_path, 'url = "ws://market.example.com/v1"\ntoken = "t"\nallow_insecure = true\n')
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and "uplink.allow_insecure" in result.stderr and "unencrypted" in result.stderr


def test_allow_insecure_is_logged_as_a_warning_when_the_daemon_starts(tmp_path):
    config = from_dict({"uplink": {"url": "ws://10.1.2.3:8080/v1", "token": "t", "allow_insecure": True}})
    (key, why), = config_warnings(config)
    assert key == "uplink.allow_insecure" and "unencrypted to ws://10.1.2.3:8080/v1" in why
    path = tmp_path / "simgw.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n\n[control]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                    f'[uplink]\nurl = "ws://127.0.0.1:{free_port()}/v1"\ntoken = "t"\nallow_insecure = true\n')
    daemon = subprocess.Popen([*SIMGW, "--log-json", "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(daemon.stderr.readline())  # the very first line, before any connect attempt
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert first["event"] == "config.insecure" and first["level"] == "warning", first
    assert first["key"] == "uplink.allow_insecure" and "unencrypted" in first["detail"]


def test_run_refuses_a_bad_url_before_starting_not_with_a_traceback(tmp_path):
    path = tmp_path / "simgw.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n\n[control]\nlisten = "127.0.0.1:{free_port()}"\n\n'
                    f'[uplink]\nurl = "ws://market.example.com/v1"\ntoken = "t"\n')
    result = subprocess.run([*SIMGW, "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "uplink.url" in result.stderr and "wss://" in result.stderr


# --------------------------------------------------------------------------------------- logs
@pytest.mark.parametrize("redact", [True, False])
def test_no_url_secret_reaches_a_log_line_even_unredacted(redact):
    out = io.StringIO()
    logs.configure(json_lines=True, level="info", redact=redact, stream=out)
    try:
        log = structlog.get_logger("t")
        log.warning("uplink.connect_failed", url=f"wss://user:{SECRET}@m.example:443/v1?auth={SECRET}#x",
                    error=f"InvalidURI: wss://{SECRET}@m.example/v1 isn't a valid URI", attempt=1)
        log.info("uplink.connected", endpoint=f"ws://127.0.0.1:9/v1?token={SECRET}", token=SECRET)
    finally:
        logs.configure(json_lines=True, level="warning")
    text = out.getvalue()
    assert SECRET not in text, text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["url"] == "wss://***@m.example:443/v1?***#***" and first["attempt"] == 1
    assert "wss://***@m.example/v1" in first["error"]
    assert second["endpoint"] == "ws://127.0.0.1:9/v1?***" and second["token"] == "<secret>"


# ----------------------------------------------------------------------------- the database
def test_database_and_its_directory_are_the_daemons_alone(tmp_path):
    old = os.umask(0o022)  # a shell's usual umask: files 0644, directories 0755
    try:
        state = tmp_path / "state" / "deeper"
        store = Store(str(state / "simgw.db"))
        store.open()
        store.set_meta("probe", "x" * 1000)  # a write: the WAL and the SHM exist now
        assert (state / "simgw.db-wal").exists() and (state / "simgw.db-shm").exists()
        assert _mode(state) == 0o700
        for name in ("simgw.db", "simgw.db-wal", "simgw.db-shm"):
            assert _mode(state / name) == 0o600, (name, oct(_mode(state / name)))
        store.close()
    finally:
        os.umask(old)


def test_an_existing_loose_database_is_tightened(tmp_path):
    state = tmp_path / "state"
    store = Store(str(state / "simgw.db"))
    store.open()
    store.set_meta("probe", "x")
    store.close()
    for name in ("simgw.db", "simgw.db-wal", "simgw.db-shm"):
        if (state / name).exists():
            (state / name).chmod(0o644)
    store = Store(str(state / "simgw.db"))
    store.open()
    store.set_meta("probe", "y")
    for name in ("simgw.db", "simgw.db-wal", "simgw.db-shm"):
        assert _mode(state / name) == 0o600, name
    store.close()


# ------------------------------------------------------------------------- simgw market argv
def test_market_token_is_never_taken_from_argv(tmp_path):
    db = str(tmp_path / "market.db")
    result = subprocess.run([*SIMGW, "market", "--listen", "127.0.0.1:1", "--token", SECRET, "--db", db],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--token-file" in result.stderr and "Traceback" not in result.stderr
    loose = _token_file(tmp_path, 0o644)
    result = subprocess.run([*SIMGW, "market", "--listen", "127.0.0.1:1", "--token-file", str(loose), "--db", db],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and f"chmod 600 {loose}" in result.stderr, result.stderr


def test_commands_that_need_no_token_do_not_read_the_token_file(tmp_path):
    """The token is 0600 for the daemon's user: an operator asking for `simgw leases` must not need it."""
    path = tmp_path / "simgw.toml"
    path.write_text(f'[gateway]\nstate_dir = "{tmp_path / "state"}"\n\n[uplink]\nurl = "wss://m.example/v1"\n'
                    f'token_file = "{tmp_path / "unreadable-token"}"\n')
    leases = subprocess.run([*SIMGW, "--config", str(path), "leases"], capture_output=True, text=True, timeout=30)
    assert leases.returncode == 0 and leases.stdout.startswith("id"), leases.stderr
    check = subprocess.run([*SIMGW, "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 2 and "uplink.token_file" in check.stderr


def test_an_inline_token_in_a_config_others_can_read_is_warned_about(tmp_path):
    path = tmp_path / "simgw.toml"
    path.write_text('[uplink]\nurl = "wss://m.example/v1"\ntoken = "t0ken"\n')
    path.chmod(0o644)
    result = subprocess.run([*SIMGW, "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "warning" in result.stderr and "uplink.token" in result.stderr, result.stderr
    assert "mode 0644" in result.stderr and "token_file" in result.stderr and "t0ken" not in result.stderr
    path.chmod(0o600)
    result = subprocess.run([*SIMGW, "check-config", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
