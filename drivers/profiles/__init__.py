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
    # Commands whose answer this firmware never follows with a final result: the answer is
    # complete by its shape and is taken after a short grace (drivers.channel.IMPLIED_GRACE).
    no_final_after: frozenset[str] = frozenset()
    # How to switch on a radio found off (+CFUN: 0/4), tried in order until +CFUN? says 1.
    radio_on_commands: tuple[str, ...] = ("AT+CFUN=1",)
    # Whole unsolicited lines by which this vendor says it has (re)started: settings are lost.
    restart_lines: frozenset[str] = frozenset()


_SIMCOM_LINES = frozenset({
    # SIM800/SIM900 hardware design and AT manuals: power-up and power-supply reports;
    # SIM7xxx: "PB DONE"/"SMS DONE" (ModemManager src/plugins/simtech/mm-broadband-modem-simtech.c)
    "RDY", "SMS Ready", "Call Ready", "PB DONE", "SMS DONE", "+PACSP0", "+PACSP1", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNNING", "OVER-VOLTAGE WARNNING",
})

_CRSM_ICCID = IccidCommand("AT+CRSM=176,12258,0,0,10", ("+CRSM:",), swapped=True)
_CCID = IccidCommand("AT+CCID", ("+CCID:",))


PROFILES: tuple[Profile, ...] = (
    Profile(
        "huawei", r"huawei",
        (IccidCommand("AT^ICCID?", ("^ICCID:",)), _CRSM_ICCID),
        # ^CURC=0 silences ^RSSI/^MODE/^DSFLOWRPT chatter that otherwise interleaves every answer.
        init_commands=("AT^CURC=0",),
        # ModemManager src/plugins/huawei/mm-broadband-modem-huawei.c handles (mostly ignores)
        # these unsolicited codes, any of which may arrive in the middle of an answer.
        extra_urcs=frozenset({"^RSSI:", "^BOOT:", "^MODE:", "^SRVST:", "^SIMST:", "^HCSQ:", "^ECCLIST:",
                              "^HWNAT:", "^DSFLOWRPT:", "^STIN:", "^NDISEND:", "^RFSWITCH:", "^LWURC:",
                              "^SMMEMFULL:", "^CEND:", "^ORIG:", "^CONF:", "^CONN:", "^NWTIME:", "^SYSSTART",
                              "^CURC:"}),
        boot_urcs=("^SYSSTART", "^SIMST: 1", "^SRVST: 2"),
        reset_command="AT^RESET",
        reset_time=12.0,
    ),
    Profile(
        "simcom", r"simcom|sim800|sim900|sim7[0-9]00",
        (IccidCommand("AT+CCID", ("+CCID:",)), IccidCommand("AT+CICCID", ("+ICCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,0", "2,1,0,2", "2,1,0,0,0", "2,1,2,1,0", "2,1,2,2,0"),
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
        extra_urcs=_SIMCOM_LINES | {"+CSMINS:", "+STIN:", "*PSNWID:", "*PSUTTZ:", "+CPSI:", "+SIMCARD:"},
        reset_time=6.0,
    ),
    Profile(
        "quectel", r"quectel|\bEC2[05]|\bEG[0-9]+|\bBG96|\bM95|\bUC20",
        (IccidCommand("AT+QCCID", ("+QCCID:",)), _CCID, _CRSM_ICCID),
        init_commands=('AT+QURCCFG="urcport","usbat"',),
        # ModemManager src/plugins/quectel/mm-shared-quectel.c: +QIND, +QUSIM, +CPIN: NOT READY
        extra_urcs=frozenset({"RDY", "+QIND:", "+QUSIM:", "+QSIMSTAT:", "+QSTK:", "+QODM:", "POWERED DOWN"}),
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
        reset_time=10.0,
    ),
    Profile(
        "zte", r"\bzte\b",
        (IccidCommand("AT+ZGETICCID", ("+ZGETICCID:",)), IccidCommand("AT+ZICCID?", ("+ZICCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,0", "2,1,2,2,0", "1,1,0,2,0"),
        boot_urcs=("+ZUSIMR:2", "+ZPBIC: 1,1"),
        reset_command="AT+ZRST",
        # Gammu libgammu/phone/at/atgen.c sends AT+ZOPRT=5 ("Stay online") to ZTE models flagged
        # F_ZTE_INIT (MF100, MF112, MF190, MF626: libgammu/gsmphones.c); AT+CFUN=1 otherwise.
        radio_on_commands=("AT+ZOPRT=5", "AT+CFUN=1"),
        restart_lines=frozenset({"+ZPBIC: 1,1"}),  # phonebook/SMS initialised, once per start-up
        # ModemManager src/plugins/zte/mm-common-zte.c: +ZUSIMR, +ZDONR, +ZPASR, +ZPSTM, +ZEND
        extra_urcs=frozenset({"+ZPBIC:", "+ZUSIMR:", "+ZPASR:", "+ZDONR:", "+ZPSTM:", "+ZEND", "+CSQ:", "+CIND:"}),
        reset_time=10.0,
    ),
    Profile(
        # Gammu libgammu/gsmphones.c flags "MULTIBAND  900E  1800" (Wavecom) and "SL8084TR
        # Product" (Sierra) F_CPIN_NO_OK; python-gsmmodem's fakemodems.py WavecomMultiband900E1800.
        "sierra", r"sierra|wavecom|MULTIBAND\s+900E|SL808\dT",
        (IccidCommand("AT!ICCID?", ("!ICCID:",)), IccidCommand("AT+CCID", ("+CCID:",)), _CRSM_ICCID),
        boot_urcs=("+WIND: 3", "+WIND: 4"),
        reset_command="AT!RESET",
        # ModemManager src/plugins/wavecom/mm-broadband-modem-wavecom.c: "AT+CPIN? replies will
        # never have an OK appended"; Gammu's F_CPIN_NO_OK completes on the +CPIN: line the same way.
        no_final_after=frozenset({"AT+CPIN?"}),
        extra_urcs=frozenset({"+WIND:", "+CSQN:", "+WIOPEN:"}),
        # Wavecom AT Commands Interface Guide, AT+WIND: "+WIND: 3" the product is ready for AT
        # commands except phonebook/SMS, "+WIND: 4" ready for all, both sent after a start-up.
        restart_lines=frozenset({"+WIND: 3", "+WIND: 4"}),
    ),
    Profile(
        "cinterion", r"cinterion|siemens|gemalto|thales",
        (IccidCommand("AT^SCID", ("^SCID:",)), _CRSM_ICCID),
        cnmi_forms=("2,1,0,2,1", "2,1,0,2,0", "1,1,0,2,1"),
        boot_urcs=("^SYSSTART",),
        reset_command="AT+CFUN=1,1",
        extra_urcs=frozenset({"^SYSSTART", "^SCKS:", "^SBC:", "^SYSLOADING", "^SIS:", "^SSIM READY"}),
    ),
)

GENERIC = Profile("generic", r".*", (_CCID, _CRSM_ICCID), boot_urcs=("RDY",),
                  # Until the vendor is known, every vendor's codes are recognised.
                  extra_urcs=frozenset().union(*(p.extra_urcs for p in PROFILES)))

BY_NAME: dict[str, Profile] = {p.name: p for p in (*PROFILES, GENERIC)}


def select_profile(manufacturer: str, model: str = "") -> Profile:
    """The first vendor profile whose pattern matches the identity; generic 3GPP otherwise."""
    identity = f"{manufacturer} {model}"
    for profile in PROFILES:
        if re.search(profile.match, identity, re.IGNORECASE):
            return profile
    return GENERIC
