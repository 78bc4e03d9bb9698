"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium) against the real daemon with 8 simulated modems: rows, a fault shown live without a
reload, a lease counting down, no request off the machine, 360-px phones, page weight.

Skips with the reason when chromium, chromedriver or selenium is missing (.ci/run installs
them where it can). Artefacts: tests/artifacts/dashboard*.png (ignored by git);
SIMGW_UPDATE_SCREENSHOT=1 also copies the wide one to docs/dashboard.png for the README."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import time
from urllib.parse import urlsplit

import pytest

from gateway.control.client import request
from tests.conftest import run
from tests.gateway import browser
from tests.gateway.uplink_env import Rig

pytestmark = [pytest.mark.slow, pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")]
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")
FAILED = {"gone", "unresponsive"}
MAX_PAGE_BYTES = 200 * 1024


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def row_state(driver, port: str) -> str | None:
    return driver.execute_script(
        "const row = [...document.querySelectorAll('tr[data-port]')].find(r => r.dataset.port === arguments[0]);"
        "return row ? row.dataset.state + '|' + row.querySelector('td[data-label=State]').textContent : null;", port)


def lease_left(driver, lease_id: str) -> str | None:
    return driver.execute_script(
        "const row = document.querySelector(`tr[data-lease='${arguments[0]}'] .left`); return row && row.textContent;",
        lease_id)


def seconds(clock: str) -> int:
    minutes, secs = clock.split(":")
    return int(minutes) * 60 + int(secs)


def full_page_screenshot(driver, path: str, width: int) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 120, 6000))
    time.sleep(0.4)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    driver.save_screenshot(path)


BROWSER_INTERNAL = frozenset({"data", "blob", "about", "chrome", "chrome-untrusted", "devtools"})  # no network


def off_machine(requests: list[dict]) -> list[str]:
    """Requested URLs whose host is not this machine's loopback (the browser's own chrome://
    pages, its new-tab page included, never touch the network)."""
    bad = []
    for req in requests:
        parts = urlsplit(req["url"])
        if parts.scheme in BROWSER_INTERNAL:
            continue
        host = (parts.hostname or "").strip("[]")
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            bad.append(req["url"])
    return bad


def browse(url: str, rig: Rig, loop: asyncio.AbstractEventLoop) -> dict[str, object]:
    """Everything the browser does, on a thread of its own while the daemon runs on the loop."""
    farm, gateway = rig.farm, rig.gateway
    ports = [m.link_path for m in farm.modems]
    numbers = rig.numbers()
    result: dict[str, object] = {}
    with browser.chromium(1280, 900) as driver:
        driver.get(url)
        wait_for(lambda: driver.execute_script("return document.querySelectorAll('tr[data-port]').length") == 8, 15,
                 "8 modem rows")
        wait_for(lambda: all((row_state(driver, p) or "").startswith("ok|") for p in ports), 15, "every modem ok")
        driver.execute_script("window.simgwNotReloaded = true")

        # A lease opened over the control socket appears, its time left counting down.
        status, opened = request(gateway.control_socket, "POST", "/leases",
                                 {"number": numbers[0], "service": "telegram", "lease_id": "browser-1"})
        assert status == 201 and opened["ok"], opened
        first = wait_for(lambda: lease_left(driver, "browser-1"), 3, "the lease's row")
        time.sleep(2.5)
        later = lease_left(driver, "browser-1")
        assert 2 <= seconds(first) - seconds(later) <= 4, (first, later)
        for n, sender in ((1, "Telegram"), (3, "Google"), (5, "WhatsApp")):
            loop.call_soon_threadsafe(farm.send_sms, n, sender, "code 1234")

        # The unplugged modem's row turns to its failed state within 3 s, without a reload.
        started = time.monotonic()
        loop.call_soon_threadsafe(farm.inject_fault, 2, "unplug")
        failed = wait_for(lambda: (row_state(driver, ports[2]) or "|").split("|")[0] in FAILED and row_state(driver, ports[2]),
                          3, "the unplugged modem's row to fail")
        result["unplug_shown_after_s"] = round(time.monotonic() - started, 2)
        assert failed.split("|")[0] in failed.split("|")[1]  # the state's word is on the page, not only a colour
        signal = driver.execute_script(
            "return [...document.querySelectorAll('tr[data-port]')].find(r => r.dataset.port === arguments[0])"
            ".querySelector('td[data-label=Signal]').textContent", ports[2])
        assert "dBm" not in signal, f"a gone modem shows a signal: {signal}"
        assert "bad" in driver.execute_script(
            "return [...document.querySelectorAll('tr[data-port]')].find(r => r.dataset.port === arguments[0]).className",
            ports[2])
        time.sleep(1.2)  # the SMS sent above and the new charts are on the screenshot
        full_page_screenshot(driver, os.path.join(ARTIFACTS, "dashboard.png"), 1280)
        driver.set_window_size(1280, 900)

        loop.call_soon_threadsafe(farm.inject_fault, 2, "replug")
        wait_for(lambda: (row_state(driver, ports[2]) or "").startswith("ok|"), 20, "the replugged modem back to ok")
        assert driver.execute_script("return window.simgwNotReloaded === true"), "the page was reloaded"

        requests = browser.network_requests(driver)
        assert requests, "the browser's network log is empty: the check would prove nothing"
        result["requests"] = len(requests)
        result["page_requests"] = sum(1 for r in requests if urlsplit(r["url"]).scheme in ("http", "https"))
        result["off_machine"] = off_machine(requests)
        result["page_bytes"] = browser.transferred_bytes(driver)
        # No script error and no Content-Security-Policy violation on the console.
        result["console_errors"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]

    with browser.chromium(360, 740) as phone:
        phone.get(url)
        wait_for(lambda: phone.execute_script("return document.querySelectorAll('tr[data-port]').length") == 8, 15,
                 "8 modem rows on the phone")
        result["phone"] = phone.execute_script(
            "return [document.scrollingElement.scrollWidth, window.innerWidth]")
        phone.save_screenshot(os.path.join(ARTIFACTS, "dashboard-360.png"))
        overflow = {}
        for width in (320, 480, 768, 1024, 1041, 1100, 1280, 1600):  # both layouts, around the breakpoint too
            phone.set_window_size(width, 740)
            time.sleep(0.3)
            scroll, inner = phone.execute_script("return [document.scrollingElement.scrollWidth, window.innerWidth]")
            if scroll > inner:
                overflow[width] = scroll
        result["overflow"] = overflow
    return result


def test_the_dashboard_in_a_real_browser(tmp_path):
    async def scenario():
        async with Rig(tmp_path, modems=8, profile="mixed") as rig:
            host, port = rig.gateway.control_address
            return await asyncio.to_thread(browse, f"http://{host}:{port}/", rig, asyncio.get_running_loop())

    result = run(scenario(), 240)
    print(f"dashboard: unplug shown after {result['unplug_shown_after_s']} s; {result['page_requests']} HTTP requests "
          f"({result['requests']} in the network log), "
          f"{result['page_bytes']} bytes transferred; at 360 px scrollWidth/innerWidth = {result['phone']}")
    assert result["unplug_shown_after_s"] < 3
    assert off_machine([{"url": "https://cdn.example.com/x.js"}, {"url": "http://127.0.0.1:1/"},
                        {"url": "http://[::1]:1/"}, {"url": "http://10.0.0.1/"}]) == \
        ["https://cdn.example.com/x.js", "http://10.0.0.1/"]  # the check itself can fail
    assert result["off_machine"] == []
    assert result["console_errors"] == []
    assert 0 < result["page_bytes"] < MAX_PAGE_BYTES
    scroll_width, inner_width = result["phone"]
    assert scroll_width <= inner_width == 360
    assert result["overflow"] == {}, f"sideways scrolling at these widths: {result['overflow']}"
    if os.environ.get("SIMGW_UPDATE_SCREENSHOT"):
        shutil.copyfile(os.path.join(ARTIFACTS, "dashboard.png"), os.path.join(ROOT, "docs", "dashboard.png"))
