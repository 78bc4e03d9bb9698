"""Issue 12 finding 7, the log part: a flood of one event is capped at 10 lines a second per event
and port, and summarised once with the count; other events and ports are untouched; memory is
bounded. Driven through the real structlog pipeline (gateway.logs.configure) with a fake clock."""

from __future__ import annotations

import io
import json

import structlog

from gateway import logs
from gateway.log_coalesce import LogCoalescer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pipeline(**kwargs) -> tuple[io.StringIO, LogCoalescer, FakeClock]:
    out, clock = io.StringIO(), FakeClock()
    coalescer = LogCoalescer(clock=clock, **kwargs)
    logs.configure(json_lines=True, level="info", stream=out, coalescer=coalescer)
    return out, coalescer, clock


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def teardown_function() -> None:
    logs.configure(json_lines=True, level="warning")


def test_a_flood_is_capped_and_summarised_once_with_the_count():
    out, coalescer, clock = pipeline()
    log = structlog.get_logger("t")
    for i in range(1000):
        log.info("uplink.command", command_id=f"c{i}", port="/dev/ttyUSB0")
        log.info("uplink.command", command_id=f"d{i}", port="/dev/ttyUSB1")  # another port: its own 10
    log.warning("modem.state", port="/dev/ttyUSB2", state="ok")  # other events are not touched
    assert [(l["event"], l.get("port")) for l in lines(out)].count(("uplink.command", "/dev/ttyUSB0")) == 10
    assert [(l["event"], l.get("port")) for l in lines(out)].count(("uplink.command", "/dev/ttyUSB1")) == 10
    assert lines(out)[-1]["event"] == "modem.state" and coalescer.dropped == 1980
    clock.now += 1.0
    log.info("heartbeat")  # any line after the window ended carries the summaries out
    summaries = [l for l in lines(out) if l["event"] == "log.coalesced"]
    assert sorted((s["port"], s["repeated"], s["suppressed"], s["level"]) for s in summaries) == [
        ("/dev/ttyUSB0", "uplink.command", 990, "info"), ("/dev/ttyUSB1", "uplink.command", 990, "info")]
    assert lines(out)[-1]["event"] == "heartbeat"
    clock.now += 5.0
    log.info("heartbeat")
    assert len([l for l in lines(out) if l["event"] == "log.coalesced"]) == 2  # once, not again


def test_a_steady_flood_writes_limit_lines_plus_one_summary_per_second():
    out, coalescer, clock = pipeline()
    log = structlog.get_logger("t")
    for second in range(30):
        for i in range(200):
            clock.now = 1000.0 + second + i / 200
            log.error("modem.bad_line", port="/dev/ttyUSB0")
    clock.now += 1.0
    logs.flush()  # at exit: the last window's count too
    events = [l["event"] for l in lines(out)]
    assert events.count("modem.bad_line") == 30 * 10
    summaries = [l for l in lines(out) if l["event"] == "log.coalesced"]
    assert len(summaries) == 30 and all(s["suppressed"] == 190 and s["level"] == "error" for s in summaries)
    assert sum(s["suppressed"] for s in summaries) + events.count("modem.bad_line") == 30 * 200  # nothing unaccounted


def test_under_the_limit_nothing_is_dropped_or_summarised():
    out, coalescer, clock = pipeline()
    log = structlog.get_logger("t")
    for i in range(100):
        clock.now += 0.11  # 9 a second
        log.info("sms.stored", port="/dev/ttyUSB0")
    logs.flush()
    assert [l["event"] for l in lines(out)] == ["sms.stored"] * 100 and coalescer.dropped == 0


def test_tracked_keys_are_capped_and_a_forgotten_key_keeps_its_count():
    out, coalescer, clock = pipeline(max_keys=64)
    log = structlog.get_logger("t")
    for i in range(12):
        log.info("flood", port="A")
    for i in range(10_000):  # hostile variety: every line a new port
        log.info("scan", port=f"/dev/x{i}")
    assert len(coalescer) == 64
    summaries = [l for l in lines(out) if l["event"] == "log.coalesced"]
    assert [(s["repeated"], s["port"], s["suppressed"]) for s in summaries] == [("flood", "A", 2)]
