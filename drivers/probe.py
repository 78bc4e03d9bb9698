"""Probe serial ports for modems: who answers AT, what they are, and which port carries URCs.

USB modems expose several interfaces (Huawei: modem, diagnostics, PC UI; Quectel: DM, NMEA, AT,
modem) and often only one of them emits unsolicited codes such as ``+CMTI``. A port that answers
``AT`` but never shows a URC is a trap: the daemon would wait for SMS announcements forever. The
probe listens on every port of a device for a while and recommends the one that spoke up.
"""

from __future__ import annotations

import asyncio
import functools
import glob
from dataclasses import dataclass, field

from drivers.at.parse import AtParseError, csq_to_dbm, parse_creg, parse_csq
from drivers.at.protocol import Urc
from drivers.channel import AtChannel, AtError
from drivers.modem.identity import read_iccid, read_value
from drivers.modem.sim import SIM_BUSY_RETRIES, switch_radio_on, wait_for_sim
from drivers.profiles import GENERIC, select_profile
from drivers.serial_port import PortOpenError

DEFAULT_GLOBS = ("/dev/serial/by-id/*", "/dev/ttyUSB*", "/dev/ttyACM*")


@dataclass(slots=True)
class PortReport:
    port: str
    answers: bool = False
    error: str | None = None
    vendor: str = ""
    model: str = ""
    imei: str = ""
    imsi: str = ""
    iccid: str = ""
    sim_state: str = ""
    signal_dbm: int | None = None
    registration: str = ""
    urcs: int = 0
    cnmi_ok: bool = False
    recommended: bool = False
    urc_names: list[str] = field(default_factory=list)


def expand_ports(patterns: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) or ([pattern] if not any(c in pattern for c in "*?[") else []):
            seen.setdefault(path, None)
    return list(seen)


async def probe_port(path: str, *, listen: float = 2.0, timeout: float = 1.5) -> PortReport:
    report = PortReport(path)

    def on_urc(urc: Urc) -> None:
        report.urcs += 1
        if urc.name not in report.urc_names:
            report.urc_names.append(urc.name)

    channel = AtChannel(path, on_urc=on_urc, extra_urcs=GENERIC.extra_urcs)  # every vendor's, until known
    try:
        channel.open()
    except PortOpenError as exc:
        report.error = str(exc)
        return report
    try:
        await channel.command("AT", timeout=timeout)
        report.answers = True
        await channel.command("ATE0", timeout=timeout, check=False)
        # The same shape-checked reads as the driver's, so the scan shows what the driver will use.
        run = functools.partial(channel.command, timeout=timeout)
        report.vendor = await read_value(run, "AT+CGMI")
        report.model = await read_value(run, "AT+CGMM")
        report.imei = await read_value(run, "AT+CGSN")
        profile = select_profile(report.vendor, report.model)
        channel.use_urcs(profile.extra_urcs)
        # Like the driver: a radio found off is switched on, a busy SIM is waited for (bounded).
        await switch_radio_on(run, profile)
        report.sim_state = await wait_for_sim(run, profile, SIM_BUSY_RETRIES)
        report.imsi = await read_value(run, "AT+CIMI")
        report.iccid = await read_iccid(run, profile)
        csq = await channel.command("AT+CSQ", timeout=timeout, check=False)
        for line in csq.lines:
            try:
                report.signal_dbm = csq_to_dbm(parse_csq(line)[0])
            except AtParseError:
                pass
        creg = await channel.command("AT+CREG?", timeout=timeout, check=False)
        for line in creg.lines:
            try:
                report.registration = parse_creg(line).name.lower()
            except AtParseError:
                pass
        # Ask for announcements on this port, then listen: the URC port is the one that talks.
        cnmi = await channel.command("AT+CNMI?", timeout=timeout, check=False)
        report.cnmi_ok = cnmi.result.ok
        await channel.command("AT+CREG=2", timeout=timeout, check=False)
        await asyncio.sleep(listen)
    except AtError as exc:
        report.error = str(exc)
    finally:
        channel.close()
    return report


def recommend(reports: list[PortReport]) -> None:
    """Per device (same IMEI), mark the port to use: the one that showed URCs, else the first."""
    devices: dict[str, list[PortReport]] = {}
    for report in reports:
        if report.answers:
            devices.setdefault(report.imei or report.port, []).append(report)
    for ports in devices.values():
        best = max(ports, key=lambda r: (r.urcs > 0, r.cnmi_ok, -ports.index(r)))
        best.recommended = True


async def scan(patterns: list[str], *, listen: float = 2.0) -> list[PortReport]:
    ports = expand_ports(patterns)
    reports = await asyncio.gather(*(probe_port(p, listen=listen) for p in ports))
    recommend(list(reports))
    return list(reports)
