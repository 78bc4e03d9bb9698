"""Wrong token, a TLS certificate that does not match, a marketplace down for a while: clear log
lines, capped backoff, no tight loop (attempts counted), recovery when the marketplace returns."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import replace

import pytest
import trustme

from gateway.runtime.gateway import Gateway
from gateway.uplink.client import UplinkConfigError, UplinkSettings, check_url
from tests.conftest import FAST, run, wait_until
from tests.gateway.uplink_env import Rig


class LogLines:
    """Capture the structured log on stderr (the logging setup writes JSON lines there)."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys
        self.lines: list[dict] = []

    def events(self) -> list[dict]:
        for line in self.capsys.readouterr().err.splitlines():
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass
        return self.lines


def gateway_for(rig: Rig, url: str, token: str, *, ca_file: str | None = None, backoff_max: float = 0.5) -> Gateway:
    config = rig.config(url, token)
    config = replace(config, uplink=replace(config.uplink, ca_file=ca_file, backoff_max=backoff_max))
    gateway = Gateway(config, modem_options=FAST)
    gateway.uplink.settings = replace(gateway.uplink.settings, backoff_initial=0.05)
    return gateway


@pytest.mark.slow
def test_wrong_token_backs_off_to_the_cap_and_says_why(tmp_path, capsys):
    async def scenario():
        async with Rig(tmp_path, 1) as rig:
            await rig.gateway.stop()
            gateway = gateway_for(rig, f"ws://127.0.0.1:{rig.market_port}/v1", "not-the-token", backoff_max=0.5)
            rig.gateway = gateway
            await gateway.start()
            await asyncio.sleep(3.0)
            attempts = gateway.uplink.attempts
            assert 3 <= attempts <= 8, attempts  # every 0.5 s (the cap), not a tight loop
            assert rig.market.rejected_handshakes == attempts
            assert not gateway.uplink.connected.is_set()

    logs = LogLines(capsys)
    run(scenario(), 30)
    rejected = [e for e in logs.events() if e.get("event") == "uplink.auth_rejected"]
    assert rejected and "token" in rejected[0]["hint"]
    assert all("not-the-token" not in json.dumps(e) for e in logs.lines)  # the token is never logged


@pytest.mark.slow
def test_tls_certificate_mismatch_is_refused_and_a_good_one_works(tmp_path, capsys):
    ca = trustme.CA()
    ca_file = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)

    def server_context(hostname: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(hostname).configure_cert(context)
        return context

    async def scenario():
        async with Rig(tmp_path, 1) as rig:
            await rig.gateway.stop()
            await rig.market.stop()
            await rig.market.start("127.0.0.1", rig.market_port, ssl_context=server_context("market.example"))
            rig.market.connections = 0
            url = f"wss://127.0.0.1:{rig.market_port}/v1"
            gateway = gateway_for(rig, url, "test-supplier-token-0123456789", ca_file=ca_file)
            rig.gateway = gateway
            await gateway.start()
            await asyncio.sleep(1.5)
            assert not gateway.uplink.connected.is_set() and rig.market.connections == 0
            assert "TLS certificate rejected" in (gateway.uplink.last_error or ""), gateway.uplink.last_error
            assert gateway.uplink.attempts <= 6
            # the same marketplace with a certificate for the address we dial: it connects
            await rig.market.stop()
            await rig.market.start("127.0.0.1", rig.market_port, ssl_context=server_context("127.0.0.1"))
            await wait_until(lambda: gateway.uplink.connected.is_set(), 10, "a TLS connection")

    logs = LogLines(capsys)
    run(scenario(), 60)
    failures = [e for e in logs.events() if e.get("event") == "uplink.connect_failed"]
    assert any("TLS certificate rejected" in e["error"] for e in failures)


@pytest.mark.slow
def test_marketplace_down_for_a_while_then_back(tmp_path):
    async def scenario():
        async with Rig(tmp_path, 2) as rig:
            rig.gateway.uplink.settings = replace(rig.gateway.uplink.settings, backoff_max=1.0)
            number = rig.numbers()[0]
            assert (await rig.open("deal-down", number))["ok"]
            await rig.market.stop()
            await wait_until(lambda: not rig.gateway.uplink.connected.is_set(), 5, "the uplink to notice")
            before = rig.gateway.uplink.attempts
            for n in range(5):
                rig.farm.send_sms(0, "Svc", f"queued while down {n}")
            await asyncio.sleep(6.0)
            attempts = rig.gateway.uplink.attempts - before
            assert 3 <= attempts <= 12, attempts  # about one a second at the cap
            # the queued SMS wait on disk only (under the retention purge), not as texts in memory
            stored = rig.gateway.read(lambda store: store.outbox())
            assert sum(kind == "sms" for _, kind, *_ in stored) == 5
            assert not any(payload.get("text") for _, _, payload in rig.gateway.uplink_port.fresh.rows)
            await rig.restart_market()
            await wait_until(lambda: len(rig.market.sms("deal-down")) == 5, 10, "the queued SMS after recovery")
            assert rig.gateway.uplink.last_error is None

    run(scenario(), 60)


@pytest.mark.parametrize("url,insecure,ok", [
    ("wss://market.example/v1", False, True),
    ("ws://127.0.0.1:9/v1", False, True),
    ("ws://[::1]:9/v1", False, True),
    ("ws://market.example/v1", False, False),
    ("ws://market.example/v1", True, True),
    ("https://market.example/v1", False, False),
    ("wss://market.example/v1?token=abc", False, False),
])
def test_url_rules(url, insecure, ok):
    settings = UplinkSettings(url, "t", "gw", "0", allow_insecure=insecure)
    if ok:
        check_url(settings)
    else:
        with pytest.raises(UplinkConfigError):
            check_url(settings)
