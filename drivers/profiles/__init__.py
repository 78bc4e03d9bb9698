"""Vendor profiles: the quirks of real modems as data, chosen after identification.

A profile says how a vendor spells the ICCID command, which ``AT+CNMI`` forms to try in order
(the first one a firmware rejects is common: smstools and gammu both fall back the same way),
which storages to prefer, how to soft-reset, and which vendor URCs to expect. Adding a vendor is
adding a row, not a subclass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class IccidCommand:
    command: str
    prefixes: tuple[str, ...]
    swapped: bool = False  # EF_ICCID read raw via +CRSM is nibble-swapped BCD


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    match: str  # regex on "manufacturer model", case-insensitive
    iccid_commands: tuple[IccidCommand, ...]
    cnmi_forms: tuple[str, ...] = ("2,1,0,2,0", "2,1,0,2", "1,1,0,2,0", "2,1,2,1,0", "2,1,2,2,0", "2,1,0,0")
    cnmi_direct_forms: tuple[str, ...] = ("2,2,0,2,0", "2,2,0,1,0", "1,2,0,0,0")
    storages: tuple[str, ...] = ("SM", "ME", "MT")
    reset_command: str = "AT+CFUN=1,1"
    init_commands: tuple[str, ...] = ()
    extra_urcs: frozenset[str] = field(default_factory=frozenset)
    boot_urcs: tuple[str, ...] = ()  # what the simulator says after a reset
    reset_time: float = 8.0  # seconds a real unit of this vendor takes to come back


_CRSM_ICCID = IccidCommand("AT+CRSM=176,12258,0,0,10", ("+CRSM:",), swapped=True)
_CCID = IccidCommand("AT+CCID", ("+CCID:",))

GENERIC = Profile("generic", r".*", (_CCID, _CRSM_ICCID), boot_urcs=("RDY",))

PROFILES: tuple[Profile, ...] = (
    Profile(
        "huawei", r"huawei",
        (IccidCommand("AT^ICCID?", ("^ICCID:",)), _CRSM_ICCID),
        # ^CURC=0 silences ^RSSI/^MODE/^DSFLOWRPT chatter that otherwise interleaves every answer.
        init_commands=("AT^CURC=0",),
        extra_urcs=frozenset({"^RSSI:", "^BOOT:", "^MODE:", "^SRVST:", "^SIMST:", "^HCSQ:"}),
        boot_urcs=("^SYSSTART", "^SIMST: 1", "^SRVST: 2"),
        reset_command="AT^RESET",
        reset_time=12.0,
    ),
    Profile(
        "simcom", r"simcom|sim800|sim900|sim7[0-9]00",
        (IccidCommand("AT+CCID", ("+CCID:",)), IccidCommand("AT+CICCID", ("+ICCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,0", "2,1,0,2", "2,1,0,0,0", "2,1,2,1,0", "2,1,2,2,0"),
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
        reset_time=6.0,
    ),
    Profile(
        "quectel", r"quectel|\bEC2[05]|\bEG[0-9]+|\bBG96|\bM95|\bUC20",
        (IccidCommand("AT+QCCID", ("+QCCID:",)), _CCID, _CRSM_ICCID),
        init_commands=('AT+QURCCFG="urcport","usbat"',),
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
        reset_time=10.0,
    ),
    Profile(
        "zte", r"\bzte\b",
        (IccidCommand("AT+ZGETICCID", ("+ZGETICCID:",)), IccidCommand("AT+ZICCID?", ("+ZICCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,0", "2,1,2,2,0", "1,1,0,2,0"),
        boot_urcs=("+ZUSIMR:2", "+ZPBIC: 1,1"),
        reset_command="AT+ZRST",
        reset_time=10.0,
    ),
    Profile(
        "sierra", r"sierra|wavecom",
        (IccidCommand("AT!ICCID?", ("!ICCID:",)), IccidCommand("AT+CCID", ("+CCID:",)), _CRSM_ICCID),
        boot_urcs=("+WIND: 3", "+WIND: 4"),
        reset_command="AT!RESET",
    ),
    Profile(
        "cinterion", r"cinterion|siemens|gemalto|thales",
        (IccidCommand("AT^SCID", ("^SCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,1", "2,1,0,2,0", "1,1,0,2,1"),
        boot_urcs=("^SYSSTART",),
        reset_command="AT+CFUN=1,1",
    ),
)

BY_NAME: dict[str, Profile] = {p.name: p for p in (*PROFILES, GENERIC)}


def select_profile(manufacturer: str, model: str = "") -> Profile:
    """The first vendor profile whose pattern matches the identity; generic 3GPP otherwise."""
    identity = f"{manufacturer} {model}"
    for profile in PROFILES:
        if re.search(profile.match, identity, re.IGNORECASE):
            return profile
    return GENERIC
