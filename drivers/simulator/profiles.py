"""How each simulated vendor looks and misbehaves: per-model response tables, as data.

Written from the vendors' AT manuals and public logs (smstools and gammu bug reports, forum
transcripts). The quirks are the ones that break the established daemons: Huawei's ``^RSSI``
arriving before the answer it interrupts and its ``COMMAND NOT SUPPORT``; SIMCom rejecting the
first CNMI form; Quectel announcing a message a moment before ``+CMGR`` can read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimProfile:
    name: str
    manufacturer: str
    model: str
    revision: str
    iccid_command: str  # upper-case command text the vendor understands
    iccid_format: str  # "{iccid}" substituted
    unsupported_reply: str = "ERROR"
    cnmi_rejected: tuple[str, ...] = ()  # forms this firmware answers ERROR to
    storages: tuple[str, ...] = ("SM", "ME", "MT")
    boot_urcs: tuple[str, ...] = ("RDY",)
    full_urc: str | None = None
    periodic_urc: str | None = None  # e.g. Huawei "^RSSI: {rssi}"
    urc_before_response: bool = False  # emits periodic_urc between a command and its answer
    empty_first_read: bool = False  # +CMGR of a fresh index is empty once
    reset_commands: tuple[str, ...] = ("AT+CFUN=1,1",)


SIM_PROFILES: dict[str, SimProfile] = {p.name: p for p in (
    SimProfile("generic", "Generic", "GSM Modem", "1.0", "AT+CCID", "+CCID: {iccid}"),
    SimProfile(
        "huawei", "huawei", "E173", "11.126.85.00.209", "AT^ICCID?", "^ICCID: {iccid}",
        unsupported_reply="COMMAND NOT SUPPORT",
        boot_urcs=("^SYSSTART", "^SIMST: 1", "^SRVST: 2"),
        full_urc='^SMMEMFULL: "SM"', periodic_urc="^RSSI: {rssi}", urc_before_response=True,
        reset_commands=("AT^RESET", "AT+CFUN=1,1"),
    ),
    SimProfile(
        "simcom", "SIMCOM_Ltd", "SIMCOM_SIM800L", "Revision:1418B04SIM800L24", "AT+CCID", "{iccid}",
        cnmi_rejected=("2,1,0,2,0", "2,1,0,2"),
        storages=("SM", "ME"),
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready", "SMS Ready"),
    ),
    SimProfile(
        "quectel", "Quectel", "EC25", "EC25EFAR06A06M4G", "AT+QCCID", "+QCCID: {iccid}",
        boot_urcs=("RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
        empty_first_read=True,
    ),
    SimProfile(
        "zte", "ZTE INCORPORATED", "MF190", "BD_MF190V1.0.0B03", "AT+ZGETICCID", "+ZGETICCID: {iccid}",
        unsupported_reply="COMMAND NOT SUPPORT",
        boot_urcs=("+ZUSIMR:2", "+ZPBIC: 1,1"),
        reset_commands=("AT+ZRST", "AT+CFUN=1,1"),
    ),
    SimProfile(
        "sierra", "Sierra Wireless, Incorporated", "MC7304", "SWI9X15C_05.05.58.00", "AT!ICCID?",
        "!ICCID: {iccid}", storages=("SM", "ME"), boot_urcs=("+WIND: 3",),
        reset_commands=("AT!RESET", "AT+CFUN=1,1"),
    ),
    SimProfile(
        "wavecom", "WAVECOM MODEM", "MULTIBAND  900E  1800", "651b09gg.Q2406B", "AT+CCID", '+CCID: "{iccid}"',
        storages=("SM",), boot_urcs=("+WIND: 3", "+WIND: 4"), reset_commands=("AT+CFUN=1,1",),
    ),
    SimProfile(  # python-gsmmodem test/fakemodems.py QualcommM6280 (sold as ZTE-made dongles)
        "qualcomm", "QUALCOMM INCORPORATED", "M6280", "M6280_V1.0.0 M6280_V1.0.0 1 [Sep 4 2008 12:00:00]",
        "AT+CCID", "+CCID: {iccid}",
    ),
    SimProfile(
        "sim7600", "SIMCOM INCORPORATED", "SIMCOM_SIM7600E-H", "LE20B04SIM7600M22", "AT+CICCID", "+ICCID: {iccid}",
        storages=("SM", "ME"), boot_urcs=("RDY", "+CPIN: READY", "SMS DONE", "PB DONE"),
    ),
    SimProfile(  # Telit's ICCID command is AT#CCID (Telit AT reference), which no driver profile knows: +CRSM must do
        "telit", "Telit", "HE910", "12.00.024", "AT#CCID", "#CCID: {iccid}",
    ),
    SimProfile(
        "cinterion", "Cinterion", "EHS6", "REVISION 03.001", "AT^SCID", "^SCID: {iccid}",
        storages=("SM", "ME", "MT"), boot_urcs=("^SYSSTART",),
    ),
)}

MIXED_ORDER: tuple[str, ...] = ("huawei", "simcom", "quectel", "zte", "sierra", "cinterion", "generic")
