"""What the dashboard's page receives, as JSON-ready dicts: modems, SIM bank slots, leases, the
marketplace session and the Pi. Read from the gateway's published state on the event loop.

Privacy is decided here, not in the browser: unless ``show_numbers``, every phone number is
masked to its last digits (:func:`mask_number`) and any run of digits long enough to be one is
masked in free text (modem errors), so the page, its JSON and its stream never carry a full
number. SMS texts are never read."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from drivers.modem import ModemState
from gateway import __version__
from gateway.domain.banks import SimStatus

if TYPE_CHECKING:
    from drivers.modem import Modem
    from gateway.runtime.gateway import Gateway
    from gateway.dashboard.sampler import Sampler

NUMBER_IN_TEXT = re.compile(r"\+?[0-9][0-9 ()-]{5,}[0-9]")
KEEP_DIGITS = 3
FAILED_SLOT = frozenset({SimStatus.WRONG_SIM, SimStatus.NO_NETWORK, SimStatus.NO_ANSWER})
SILENT = frozenset({ModemState.GONE, ModemState.UNRESPONSIVE})


def mask_number(number: str | None) -> str | None:
    """``+79161234567`` -> ``+••••••••567``: the last :data:`KEEP_DIGITS` digits and the length."""
    if not number:
        return None
    digits = [ch for ch in number if ch.isdigit()]
    if len(digits) <= KEEP_DIGITS:
        return "•" * len(digits)
    return ("+" if number.startswith("+") else "") + "•" * (len(digits) - KEEP_DIGITS) + "".join(digits[-KEEP_DIGITS:])


def mask_text(text: str | None) -> str | None:
    """Free text (a modem's last error) with every number-like run masked."""
    if text is None:
        return None
    return NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group()) or "", text)[:300]


def signal_bars(dbm: int | None) -> int | None:
    """0..4 bars, the way a phone would draw them (3GPP: -113 dBm is CSQ 0, -51 dBm CSQ 31)."""
    if dbm is None:
        return None
    return sum(dbm >= edge for edge in (-105, -95, -85, -75))


class Snapshots:
    """Builds :meth:`state` (changes every second: time left) and :meth:`charts` (once a minute)."""

    def __init__(self, gateway: Gateway, sampler: Sampler, *, show_numbers: bool,
                 mono: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._gateway, self._sampler = gateway, sampler
        self.show_numbers = show_numbers
        self._mono, self._wall = mono, wall

    def _number(self, number: str | None) -> str | None:
        return (number or None) if self.show_numbers else mask_number(number)

    def _text(self, text: str | None) -> str | None:
        return text if self.show_numbers else mask_text(text)

    def state(self) -> dict[str, object]:
        gateway = self._gateway
        return {"gateway": gateway.config.gateway_id, "version": __version__, "at": round(self._wall(), 1),
                "numbers_masked": not self.show_numbers, "modems": [self._modem(m) for m in gateway.modems],
                "banks": self._banks(), "leases": self._leases(), "markets": self._markets(), "pi": self._pi()}

    def charts_version(self) -> int:
        return self._sampler.history.version

    def charts(self) -> dict[str, object]:
        return {"version": self._sampler.history.version,
                "modems": self._sampler.history.charts(int(self._wall() // 60))}

    def _modem(self, modem: Modem) -> dict[str, object]:
        health, identity = modem.health, modem.identity
        state = health.state
        reason = None
        if state is not ModemState.OK:
            reason = health.last_error or (health.registration.name.lower().replace("_", " ")
                                           if health.registration is not None else None) or health.sim_state
        registration = health.registration
        silent = state in SILENT  # its last signal reading is history, not the present
        signal = None if silent else health.signal_dbm
        return {
            "port": modem.path, "vendor": identity.manufacturer or None, "model": identity.model or None,
            "state": state.value, "reason": self._text(reason), "signal_dbm": signal,
            "bars": signal_bars(signal), "operator": health.operator,
            "registration": None if registration is None else registration.name.lower().replace("_", " "),
            "iccid_tail": identity.iccid[-4:] if identity.iccid else None, "number": self._number(identity.msisdn),
            "sms_today": self._sampler.history.today(modem.path), "sms_total": health.sms_received,
            # last_sms_at is on the driver's own clock (time.monotonic), not the gateway's injected one
            "last_sms_age": None if health.last_sms_at is None else round(max(0.0, time.monotonic() - health.last_sms_at)),
            "last_error": self._text(health.last_error), "recoveries": health.recoveries,
        }

    def _banks(self) -> list[dict[str, object]]:
        """From the core's published snapshot (the loop never reads the schedulers themselves)."""
        switcher = self._gateway.switcher
        counts = dict(switcher.counts) if switcher else {}  # (bank, outcome) -> switches
        out = []
        for view in self._gateway.core.snapshot.banks:
            radios = [channel.port for channel in view.channels]
            slots = []
            for s in view.slot_views:
                if s.lease is not None:
                    kind = "leased"
                elif s.status is None:
                    kind = "unknown"
                elif s.status is SimStatus.EMPTY:
                    kind = "empty"
                elif s.status in FAILED_SLOT:
                    kind = "failed"
                else:
                    kind = "idle" if s.on_air else "standby"
                slots.append({"slot": s.slot, "kind": kind, "radio": s.radio, "on_air": s.on_air, "lease": s.lease,
                              "radio_no": radios.index(s.radio) + 1 if s.radio in radios else None,
                              "number": self._number(s.msisdn), "detail": s.status or "not scanned"})
            failures = sum(n for (bank, outcome), n in counts.items() if bank == view.name and outcome != "ok")
            out.append({"name": view.name, "slots": slots, "queued": view.queued, "radios": radios,
                        "switching": [c.port for c in view.channels if c.switching],
                        "switch_failures": failures, "lease_wait": view.wait_summary()})
        return out

    def _leases(self) -> list[dict[str, object]]:
        now = self._mono()
        return [{"id": lease.id, "service": lease.service, "state": lease.state.value,
                 "number": self._number(lease.number), "sms": lease.sms_count,
                 "seconds_left": max(0.0, round(lease.deadline - now, 1))}
                for lease in self._gateway.core.snapshot.leases]

    def _markets(self) -> list[dict[str, object]]:
        uplink, sampler, hub = self._gateway.uplink, self._sampler, getattr(self._gateway, "hub", None)
        out: list[dict[str, object]] = []
        if uplink is not None:
            host = uplink.settings.url.split("//", 1)[-1].split("/", 1)[0].rpartition("@")[2]
            out.append({"kind": "simgw.v1", "name": host, "connected": uplink.connected.is_set(),
                        "since": sampler.uplink_since, "attempts": uplink.attempts,
                        "last_error": self._text(uplink.last_error), "outbox_depth": sampler.outbox_depth,
                        "oldest_unacked_s": round(sampler.outbox_oldest_age(), 1)})
        if hub is not None:  # the hub calls us: there is no session, only requests answered and pushes
            status = hub.status()
            out.append({"kind": "smshub", "name": f"SMSHub agent on {status['listen'] or '?'}",
                        "answered": sum(status["answered"].values()), "refused": sum(status["refused"].values()),
                        "pushed": status["pushed"], "push_failures": status["push_failures"],
                        "last_error": self._text(status["push_last_error"])})
        return out

    def _pi(self) -> dict[str, object]:
        pi = self._sampler.pi
        return {"database_bytes": pi.database_bytes, "disk_free_bytes": pi.disk_free_bytes,
                "disk_free_ratio": None if pi.disk_free_ratio is None else round(pi.disk_free_ratio, 4),
                "commits_per_second": round(pi.commits_per_second, 2), "uptime_s": round(self._sampler.uptime()),
                "version": __version__, "commit_failures": self._gateway.core.snapshot.commit_failures}
