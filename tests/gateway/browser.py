"""Debian's headless Chromium driven by Selenium, for the dashboard's browser tests: a fresh
profile per browser, nothing fetched from outside (no sync, no component updates, no QUIC), and
the browser's own network log (performance log, CDP ``Network.*``) kept for the test to read."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if shutil.which(p)), None)
CHROMEDRIVER = shutil.which("chromedriver") or (shutil.which("/usr/bin/chromedriver"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "Debian's chromium-driver is not installed (apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="simgw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.set_window_size(width, height)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def network_requests(driver) -> list[dict]:
    """Every request the browser sent since the last call (CDP Network.requestWillBeSent)."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            out.append(message["params"]["request"])
    return out


def transferred_bytes(driver) -> int:
    """Bytes the page's navigation and resources took on the wire (Resource Timing), the live
    stream excluded (it has no end)."""
    return int(driver.execute_script(
        "const nav = performance.getEntriesByType('navigation').map(e => e.transferSize);"
        "const res = performance.getEntriesByType('resource').filter(e => !e.name.endsWith('/events'))"
        ".map(e => e.transferSize || e.encodedBodySize);"
        "return nav.concat(res).reduce((a, b) => a + b, 0);"))
