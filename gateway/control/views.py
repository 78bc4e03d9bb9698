"""What the control API shows: ``/status`` and ``/leases`` as JSON, ``/metrics`` through
prometheus_client.

The views read, on the event loop, the modems' health and the core's last published snapshot
(:class:`~gateway.core.CoreSnapshot`: active leases, bank channels), never the core's own state;
they never write. Metrics are a custom collector on a private
registry: the metric families are built from the gateway's state at scrape time, so nothing is
counted twice and no process-global registry is touched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from drivers.modem import Modem, ModemState

if TYPE_CHECKING:
    from gateway.runtime.gateway import Gateway

METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def lease_json(lease, now: float) -> dict[str, object]:
    return {"lease_id": lease.id, "number": lease.number, "service": lease.service, "state": lease.state.value,
            "sms_count": lease.sms_count, "seconds_left": max(0.0, round(lease.deadline - now, 1))}


def banks_json(gateway: Gateway) -> list[dict[str, object]]:
    """Per bank: what each radio holds, the wait queue, slot states, switch outcomes."""
    out = []
    switcher = gateway.switcher
    counts = dict(switcher.counts) if switcher else {}
    for bank in gateway.core.snapshot.banks:
        switches = {outcome: n for (name, outcome), n in counts.items() if name == bank.name}
        channels = [{"port": c.port, "slot": c.slot, "switching": c.switching, "lease": c.lease}
                    for c in bank.channels]
        out.append({"name": bank.name, "channels": channels, "queued": bank.queued, "slots": dict(bank.slots),
                    "switches": switches, "lease_wait": bank.wait_summary()})
    return out


def modems_json(modems: list[Modem]) -> list[dict[str, object]]:
    return [{"port": m.path, "state": m.health.state.value, "number": m.identity.msisdn or None,
             "signal_dbm": m.health.signal_dbm, "operator": m.health.operator, "sms_received": m.health.sms_received}
            for m in modems]


def status_json(gateway: Gateway) -> dict[str, object]:
    uplink = gateway.uplink
    return {
        "gateway": gateway.config.gateway_id,
        "banks": banks_json(gateway),
        "leases_active": len(gateway.core.snapshot.leases),
        "uplink": None if uplink is None else {"connected": uplink.connected.is_set(), "attempts": uplink.attempts,
                                               "last_error": uplink.last_error},
        "modems": modems_json(gateway.modems),
        "smshub": None if gateway.hub is None else gateway.hub.status(),
    }


class GatewayCollector:
    """The gateway's metric families, named by the Prometheus conventions (units, ``_total``)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def collect(self) -> Iterator[Metric]:
        yield from self._modems()
        gateway = self._gateway
        commits = CounterMetricFamily("simgw_store_commits_total",
                                      "SQLite write transactions committed (the SD card's wear)")
        commits.add_metric([], float(gateway.core.snapshot.store_writes))
        yield commits
        yield from self._alerting()
        yield GaugeMetricFamily("simgw_leases_active", "leases waiting or receiving",
                                value=float(len(gateway.core.snapshot.leases)))
        yield from self._banks()
        if gateway.uplink is not None:
            yield GaugeMetricFamily("simgw_uplink_connected", "1 while the marketplace session is up",
                                    value=1.0 if gateway.uplink.connected.is_set() else 0.0)
            attempts = CounterMetricFamily("simgw_uplink_connect_attempts_total",
                                           "connection attempts to the marketplace")
            attempts.add_metric([], float(gateway.uplink.attempts))
            yield attempts
        if gateway.hub is not None:
            yield from gateway.hub.metrics()

    def _alerting(self) -> Iterator[Metric]:
        """What config/alerts.yml watches beyond the modems: outbox backlog, disk, commit
        failures, the daemon's start time (restarts); read from the dashboard's sampler."""
        gateway, sampler = self._gateway, self._gateway.sampler
        failures = CounterMetricFamily("simgw_store_commit_failures_total",
                                       "write transactions the disk refused (full, read-only, I/O error)")
        failures.add_metric([], float(gateway.core.snapshot.commit_failures))
        yield failures
        yield GaugeMetricFamily("simgw_start_time_seconds", "when this daemon process started (Unix time)",
                                value=sampler.started_wall)
        if sampler.outbox_depth is not None:
            yield GaugeMetricFamily("simgw_outbox_depth", "events not yet acknowledged by the marketplace",
                                    value=float(sampler.outbox_depth))
            yield GaugeMetricFamily("simgw_outbox_oldest_unacked_age_seconds",
                                    "age of the oldest event the marketplace has not acknowledged (0: none)",
                                    value=sampler.outbox_oldest_age())
        if sampler.pi.disk_free_ratio is not None:
            yield GaugeMetricFamily("simgw_disk_free_ratio", "free space on the state directory's file system, 0..1",
                                    value=sampler.pi.disk_free_ratio)

    def _modems(self) -> Iterator[Metric]:
        modems = self._gateway.modems
        state = GaugeMetricFamily("simgw_modem_state", "1 for the state each modem is in", labels=["port", "state"])
        for m in modems:
            for each in ModemState:
                state.add_metric([m.path, each.value], 1.0 if m.health.state is each else 0.0)
        signal = GaugeMetricFamily("simgw_modem_signal_dbm", "received signal strength (AT+CSQ)", labels=["port"])
        for m in modems:
            if m.health.signal_dbm is not None:
                signal.add_metric([m.path], float(m.health.signal_dbm))
        received = CounterMetricFamily("simgw_modem_sms_received_total", "message parts read from the modem",
                                       labels=["port"])
        recoveries = CounterMetricFamily("simgw_modem_recoveries_total",
                                         "times the port was reopened and re-initialised", labels=["port"])
        for m in modems:
            received.add_metric([m.path], float(m.health.sms_received))
            recoveries.add_metric([m.path], float(m.health.recoveries))
        yield from (state, signal, received, recoveries)
        for name, attr, help_text in (("commands", "commands", "AT commands sent"),
                                      ("command_timeouts", "timeouts", "AT commands that timed out"),
                                      ("command_errors", "errors", "AT commands answered with an error"),
                                      ("garbage", "garbage", "undecodable byte runs dropped by the framer")):
            family = CounterMetricFamily(f"simgw_modem_{name}_total", help_text, labels=["port"])
            for m in modems:
                family.add_metric([m.path], float(self._gateway.ports.counters.totals(m.path, m.channel)[attr]))
            yield family

    def _banks(self) -> Iterator[Metric]:
        banks = banks_json(self._gateway)
        slots = GaugeMetricFamily("simgw_bank_slots", "bank slots by the state their SIM was last seen in",
                                  labels=["bank", "status"])
        queue = GaugeMetricFamily("simgw_bank_queue_length", "leases waiting for a radio", labels=["bank"])
        wait = GaugeMetricFamily("simgw_bank_lease_wait_seconds",
                                 "recent leases: time from opening until the SIM was on air", labels=["bank", "quantile"])
        switches = CounterMetricFamily("simgw_bank_switches_total", "SIM switches performed, by outcome",
                                       labels=["bank", "outcome"])
        for b in banks:
            for status, count in b["slots"].items():
                slots.add_metric([b["name"], status], float(count))
            queue.add_metric([b["name"]], float(b["queued"]))
            if b["lease_wait"]["count"]:
                for q in ("0.50", "0.90"):
                    wait.add_metric([b["name"], q], float(b["lease_wait"][f"p{q[2:]}_s"]))
            for outcome, count in b["switches"].items():
                switches.add_metric([b["name"], outcome], float(count))
        yield from (slots, queue, wait, switches)


def metrics_registry(gateway: Gateway) -> CollectorRegistry:
    """A registry of the gateway's own (no process or platform collectors: the daemon's RSS and
    CPU are node_exporter's business, and the global registry is shared state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway))
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
