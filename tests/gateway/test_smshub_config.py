"""The [smshub] section through ``simgw check-config``: one precise line and exit 2 for each
mistake; the key file under the uplink token's rules; the push URL under the uplink URL's rule."""

from __future__ import annotations

import pytest

from gateway.config import UNREAD_TOKEN, load
from tests.gateway.test_config import check

PUSH = 'push_url = "https://hub.example/agent/api/sms"\n'
SERVICES = '[smshub.services]\nvk = "vk"\n'

BROKEN = [  # (name, [smshub] body, the key the message names, a word it contains)
    ("no push url", 'key = "k"\n' + SERVICES, "smshub.push_url", "https://"),
    ("plain http to the internet", 'push_url = "http://hub.example/sms"\nkey = "k"\n' + SERVICES,
     "smshub.push_url", "loopback"),
    ("a key in the push url", 'push_url = "https://hub.example/sms?key=abc"\nkey = "k"\n' + SERVICES,
     "smshub.push_url", "key_file"),
    ("ftp", 'push_url = "ftp://hub.example/sms"\nkey = "k"\n' + SERVICES, "smshub.push_url", "https://"),
    ("no key", PUSH + SERVICES, "smshub.key_file", "exactly one"),
    ("both keys", PUSH + 'key = "k"\nkey_file = "/nonexistent"\n' + SERVICES, "smshub.key_file", "exactly one"),
    ("exposed with an inline key", PUSH + 'listen = "0.0.0.0:8780"\nkey = "k"\n' + SERVICES, "smshub.key",
     "key_file"),
    ("missing key file", PUSH + 'key_file = "/nonexistent/smshub.key"\n' + SERVICES, "smshub.key_file", "readable"),
    ("bad listen", PUSH + 'key = "k"\nlisten = "8780"\n' + SERVICES, "smshub.listen", "HOST:PORT"),
    ("bad flavour", PUSH + 'key = "k"\nflavour = "5sim"\n' + SERVICES, "smshub.flavour", "one of"),
    ("cap too short", PUSH + 'key = "k"\nactivation_cap = "10s"\n' + SERVICES, "smshub.activation_cap", "duration"),
    ("no services", PUSH + 'key = "k"\n', "smshub.services", "at least one"),
    ("services not names", PUSH + 'key = "k"\n[smshub.services]\nvk = 1\n', "smshub.services", "table"),
    ("unknown key", PUSH + 'key = "k"\npush_retry = "1s"\n' + SERVICES, "smshub.push_retry", "unknown key"),
]


@pytest.mark.parametrize("name,body,key,word", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_smshub_section_one_precise_line_exit_2(tmp_path, name, body, key, word):
    path = tmp_path / "simgw.toml"
    path.write_text("[smshub]\n" + body)
    result = check(str(path))
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and word in lines[0], lines


def key_file(tmp_path, mode: int):
    path = tmp_path / "smshub.key"
    path.write_text("hub-key-0123\n")
    path.chmod(mode)
    return path


def test_the_key_file_follows_the_token_rules(tmp_path):
    config = tmp_path / "simgw.toml"
    config.write_text(f'[smshub]\n{PUSH}listen = "0.0.0.0:8780"\nkey_file = "{key_file(tmp_path, 0o644)}"\n{SERVICES}')
    result = check(str(config))
    assert result.returncode == 2 and "smshub.key_file" in result.stderr and "chmod 600" in result.stderr
    key_file(tmp_path, 0o600)
    result = check(str(config))
    assert result.returncode == 0, result.stderr
    assert "smshub agent on 0.0.0.0:8780 (1 services)" in result.stdout
    loaded = load(str(config))
    assert loaded.smshub.key == "hub-key-0123" and "hub-key" not in repr(loaded)


def test_commands_that_need_no_key_leave_the_key_file_unread(tmp_path):
    config = tmp_path / "simgw.toml"
    config.write_text(f'[smshub]\n{PUSH}key_file = "{key_file(tmp_path, 0o000)}"\n{SERVICES}')
    assert load(str(config), read_secrets=False).smshub.key == UNREAD_TOKEN


def test_a_loopback_hub_over_http_and_the_onlinesim_flavour(tmp_path):
    config = tmp_path / "simgw.toml"
    config.write_text('[smshub]\npush_url = "http://127.0.0.1:9000/sms"\nkey = "k"\nflavour = "onlinesim"\n'
                      'activation_cap = "2h"\n' + SERVICES + '[smshub.countries]\ngb = "England"\n'
                      '[smshub.operators]\n"MTS RUS" = "MTS"\n')
    hub = load(str(config)).smshub
    assert hub.flavour.value == "onlinesim" and hub.activation_cap == 7200.0
    assert hub.names.country("GB") == "england" and hub.names.operator("mts rus") == "mts"


def test_simgw_run_never_imports_the_reference_hub_or_its_demo(tmp_path):
    """Tools are not the daemon: building the Gateway with [smshub] loads the agent, not the
    reference hub or its demo (gateway.tools.hub, gateway.tools.hubdemo)."""
    import subprocess
    import sys

    code = ("import sys; from gateway.config import from_dict; from gateway.runtime.gateway import Gateway; "
            f"c = from_dict({{'gateway': {{'state_dir': {str(tmp_path)!r}}}, 'smshub': {{'push_url': "
            "'http://127.0.0.1:9/x', 'key': 'k', 'services': {'vk': 'vk'}}}); g = Gateway(c); "
            "assert g.hub is not None; "
            "print(sorted(m for m in sys.modules if m.startswith(('gateway.smshub', 'gateway.tools'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "gateway.smshub.agent" in result.stdout and "gateway.tools" not in result.stdout, result.stdout
