"""config/alerts.yml: valid for Prometheus (`promtool check rules`), proven to fire and to stay
quiet on sample series (`promtool test rules`, tests/gateway/alerts_rules_test.yml), and built
only from metric names a real daemon exports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.conftest import run
from tests.gateway.test_control_security import raw_http
from tests.gateway.uplink_env import Rig

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
RULES = os.path.join(ROOT, "config", "alerts.yml")
RULE_TESTS = os.path.join(os.path.dirname(__file__), "alerts_rules_test.yml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
ALERTS = ("SimgwModemDown", "SimgwNoSmsWhileLeased", "SimgwMarketplaceDisconnected", "SimgwOutboxStuck",
          "SimgwSimSwitchFailures", "SimgwDiskLow", "SimgwStoreCommitFailures", "SimgwRestarting")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@needs_promtool
def test_rules_fire_on_trouble_and_stay_quiet_when_healthy():
    """Modem down and marketplace disconnected fire after their `for`, not before, and only for
    the sick series; the other six fire on a sick Pi and not on a healthy one."""
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_has_an_actionable_summary_and_description():
    text = open(RULES, encoding="utf-8").read()
    assert sorted(re.findall(r"- alert: (\w+)", text)) == sorted(ALERTS)
    for block in re.split(r"\n      - alert: ", text)[1:]:
        assert "summary:" in block and "description:" in block, block[:60]
        description = block.split("description:", 1)[1]
        assert "`" in description, f"{block.split()[0]}: the description names no command or log line to check"


def test_rules_use_only_metrics_the_daemon_exports(tmp_path):
    names = set(re.findall(r"\bsimgw_[a-z_]+", open(RULES, encoding="utf-8").read()))
    assert {"simgw_modem_state", "simgw_uplink_connected", "simgw_outbox_oldest_unacked_age_seconds",
            "simgw_disk_free_ratio", "simgw_store_commit_failures_total", "simgw_start_time_seconds"} <= names

    async def scenario():
        async with Rig(tmp_path, modems=2) as rig:
            await rig.gateway.sampler.sample()
            host, port = rig.gateway.control_address
            status, body = await raw_http(host, port, "GET", "/metrics", headers={"Host": f"127.0.0.1:{port}"})
            assert status == 200
            return body.decode()

    exposition = run(scenario())
    declared = set(re.findall(r"^# TYPE (\w+) ", exposition, re.M))
    missing = {name for name in names if name not in declared and name.removesuffix("_total") not in declared}
    assert not missing, f"alerts.yml uses metrics the daemon does not export: {sorted(missing)}"
    assert re.search(r"^simgw_disk_free_ratio 0\.\d+", exposition, re.M)
    assert re.search(r"^simgw_outbox_oldest_unacked_age_seconds [0-9.]+", exposition, re.M)
    assert re.search(r"^simgw_start_time_seconds 1\.[0-9]+e\+09", exposition, re.M)


def test_the_commit_failure_counter_counts_what_sqlite_refused(tmp_path):
    """What SimgwStoreCommitFailures watches: a refused COMMIT and a statement that fails inside
    the transaction each count once; a good commit does not."""
    import sqlite3

    from gateway.store import Store, StoreError

    fault: list[str | None] = [None]
    store = Store(str(tmp_path / "simgw.db"), commit_fault=lambda: fault[0])
    store.open()
    try:
        assert store.commit_failures == 0
        fault[0] = "database or disk is full"
        with pytest.raises(StoreError, match="disk is full"):
            with store.transaction():
                store.set_meta("k", "v")
        fault[0] = None
        with pytest.raises(sqlite3.OperationalError):
            with store.transaction() as db:
                db.execute("INSERT INTO no_such_table VALUES (1)")
        with store.transaction():
            store.set_meta("k", "v")
        assert store.commit_failures == 2 and store.meta("k") == "v"
    finally:
        store.close()
