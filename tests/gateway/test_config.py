"""Broken configurations: each gives one precise line (file, key, expected, found) and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.config import ConfigError, from_dict, load, parse_duration

GOOD = '[gateway]\nstate_dir = "/tmp/x"\n\n[[modems]]\nport = "/dev/ttyUSB0"\n'

BROKEN = [  # (name, file text, the key the message must name, a word the message must contain)
    ("wrong type", '[gateway]\nredact = "yes"\n', "gateway.redact", "true or false"),
    ("unknown key", '[leases]\nwait_windw = "10m"\n', "leases.wait_windw", "unknown key"),
    ("unknown section", '[gatway]\nid = "x"\n', "gatway", "unknown key"),
    ("missing port", '[[modems]]\nbaud = 115200\n', "modems[0].port", "serial device path"),
    ("duplicate port", '[[modems]]\nport = "/dev/ttyUSB0"\n[[modems]]\nport = "/dev/ttyUSB0"\n', "modems[1].port",
     "not already used"),
    ("bad duration", '[leases]\nwait_window = "ten minutes"\n', "leases.wait_window", "duration"),
    ("out-of-policy lease window", '[leases]\nwait_window = "45m"\n', "leases.wait_window", "1m to 20m"),
    ("finish_after over policy", '[leases]\nfinish_after = "1h"\n', "leases.finish_after", "1m to 15m"),
    ("baud out of range", '[[modems]]\nport = "/dev/ttyUSB0"\nbaud = 7\n', "modems[0].baud", "1200 to 4000000"),
    ("bad profile", '[[modems]]\nport = "/dev/ttyUSB0"\nprofile = "nokia"\n', "modems[0].profile", "one of"),
    ("bad msisdn", '[[modems]]\nport = "/dev/ttyUSB0"\nmsisdn = "call me"\n', "modems[0].msisdn", "phone number"),
    ("bad iccid key", '[numbers]\n"1234" = "+79001234567"\n', "numbers.1234", "ICCID"),
    ("bad control address", '[control]\nlisten = "localhost"\n', "control.listen", "HOST:PORT"),
    ("control listen on every address", '[control]\nlisten = "0.0.0.0:8765"\n', "control.listen", "loopback"),
    ("control listen on a LAN address", '[control]\nlisten = "192.168.1.20:8765"\n', "control.listen", "loopback"),
    ("control listen on IPv6 any", '[control]\nlisten = "[::]:8765"\n', "control.listen", "loopback"),
    ("control socket relative", '[control]\nsocket = "control.sock"\n', "control.socket", "absolute path"),
    ("syntax error", '[gateway\nid = "x"\n', "(syntax)", "valid TOML"),
    ("uplink without token", '[uplink]\nurl = "wss://market.example/v1"\n', "uplink.token", "exactly one"),
    ("uplink token in url", '[uplink]\nurl = "wss://m.example/v1?token=abc"\ntoken = "t"\n', "uplink.url", "token_file"),
    ("uplink bad url", '[uplink]\nurl = "http://m.example"\ntoken = "t"\n', "uplink.url", "wss://"),
    ("modems not an array", '[modems]\nport = "/dev/ttyUSB0"\n', "modems", "array of tables"),
    ("denied list not a list", '[leases]\ndenied_services = "tinder"\n', "leases.denied_services", "list"),
    ("bank channel not a modem", '[[modems]]\nport = "/dev/a"\n[[banks]]\ncontroller = "/dev/c"\nchannels = ["/dev/b"]\n',
     "banks[0].channels", "[[modems]]"),
    ("bank without controller", '[[modems]]\nport = "/dev/a"\n[[banks]]\nchannels = ["/dev/a"]\n',
     "banks[0].controller", "controller"),
    ("bank bad template", '[[modems]]\nport = "/dev/a"\n[[banks]]\ncontroller = "/dev/c"\nchannels = ["/dev/a"]\n'
     'command = "AT+SW{chan}"\n', "banks[0].command", "template"),
    ("on-modem slots", '[[modems]]\nport = "/dev/a"\n[[modems]]\nport = "/dev/b"\n[[banks]]\npreset = "quectel"\n'
     'channels = ["/dev/a", "/dev/b"]\nslots = 3\n', "banks[0].slots", "multiple"),
    ("bank unknown preset", '[[modems]]\nport = "/dev/a"\n[[banks]]\npreset = "foo"\nchannels = ["/dev/a"]\n',
     "banks[0].preset", "one of"),
    ("ussd bad code", '[[ussd_numbers]]\noperator = "X"\ncode = "call me"\n', "ussd_numbers[0].code", "USSD"),
    ("ussd bad pattern", '[[ussd_numbers]]\noperator = "X"\ncode = "*1#"\npattern = "(+"\n',
     "ussd_numbers[0].pattern", "regular expression"),
]


def check(path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "check-config", "--config", path],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("name,text,key,word", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_one_precise_line_exit_2(tmp_path, name, text, key, word):
    path = tmp_path / "simgw.toml"
    path.write_text(text)
    result = check(str(path))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and f": {key}:" in lines[0] and word in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_unreadable_and_missing_files(tmp_path):
    missing = check(str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    directory = check(str(tmp_path))
    assert directory.returncode == 2 and "a directory" in directory.stderr
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.toml"
        locked.write_text(GOOD)
        locked.chmod(0)
        assert check(str(locked)).returncode == 2
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = check(str(binary))
    assert result.returncode == 2 and "(" in result.stderr


def test_good_config_and_the_example_pass(tmp_path):
    path = tmp_path / "simgw.toml"
    path.write_text(GOOD)
    assert check(str(path)).returncode == 0
    example = os.path.join(os.path.dirname(__file__), "..", "..", "config", "simgw.example.toml")
    token = tmp_path / "token"
    token.write_text("example-token\n")
    token.chmod(0o600)  # only the daemon's user may read it (tests/gateway/test_security_files.py)
    copy = tmp_path / "example.toml"
    copy.write_text(open(example).read().replace("/etc/simgw/token", str(token)))  # the only file it names
    result = check(str(copy))
    assert result.returncode == 0, result.stderr
    demo = os.path.join(os.path.dirname(__file__), "..", "..", "config", "demo.toml")
    assert check(demo).returncode == 0


def test_token_file_and_repr_never_shows_the_token(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    token.chmod(0o600)
    config = from_dict({"uplink": {"url": "wss://m.example/v1", "token_file": str(token)}})
    assert config.uplink.token == "s3cret-token"
    assert "s3cret" not in repr(config)


def test_durations():
    assert parse_duration("20m") == 1200 and parse_duration("24h") == 86400 and parse_duration(90) == 90
    assert parse_duration("1.5h") == 5400 and parse_duration("-1") is None and parse_duration(True) is None
    with pytest.raises(ConfigError):
        from_dict({"leases": {"reuse_cooldown": "5s"}})
    assert from_dict({"leases": {"reuse_cooldown": "never"}}).leases.policy.reuse_cooldown is None
    assert from_dict({"leases": {"reuse_cooldown": "90d"}}).leases.policy.reuse_cooldown == 90 * 86400
    assert "tinder" in from_dict({"leases": {"denied_services": ["Tinder"]}}).leases.policy.denied_services


def test_load_reports_the_path():
    with pytest.raises(ConfigError, match="/nonexistent/simgw.toml"):
        load("/nonexistent/simgw.toml")
