"""Real-looking AT transcripts, written from vendor manuals and public logs.

Each entry: (name, the command in flight (none or one), bytes the modem sent back, expected events). Events are
written compactly: ("R", command, result_text, lines) for a response, ("U", name, line, body) for
a URC, ("S", line) for a stray line, ("G",) for garbage.
"""

from __future__ import annotations

PDU1 = "07919761989901F0040B919761214365F700006211221030000004D4F29C0E"

TRANSCRIPTS: list[tuple[str, list[tuple[str, tuple[str, ...]]], bytes, list[tuple]]] = [
    (
        "generic identify",
        [("AT+CGSN", ())],
        b"\r\n356938035643809\r\n\r\nOK\r\n",
        [("R", "AT+CGSN", "OK", ("356938035643809",))],
    ),
    (
        "huawei ^RSSI before +CMGR answer",
        [("AT+CMGR=3", ())],
        b"\r\n^RSSI: 17\r\n\r\n+CMGR: 0,,23\r\n" + PDU1.encode() + b"\r\n\r\nOK\r\n",
        [("U", "^RSSI:", "^RSSI: 17", None), ("R", "AT+CMGR=3", "OK", ("+CMGR: 0,,23", PDU1))],
    ),
    (
        "huawei ^BOOT and ^MODE mid-listing",
        [("AT+CMGL=4", ())],
        (b"\r\n+CMGL: 0,1,,23\r\n^BOOT:20273664,0,0,0,75\r\n" + PDU1.encode() + b"\r\n^MODE:5,4\r\n"
         b"+CMGL: 1,0,,23\r\n" + PDU1.encode() + b"\r\n\r\nOK\r\n"),
        [("U", "^BOOT:", "^BOOT:20273664,0,0,0,75", None), ("U", "^MODE:", "^MODE:5,4", None),
         ("R", "AT+CMGL=4", "OK", ("+CMGL: 0,1,,23", PDU1, "+CMGL: 1,0,,23", PDU1))],
    ),
    (
        "huawei COMMAND NOT SUPPORT",
        [("AT+CNMI=2,1,2,1,0", ())],
        b"\r\nCOMMAND NOT SUPPORT\r\n",
        [("R", "AT+CNMI=2,1,2,1,0", "COMMAND NOT SUPPORT", ())],
    ),
    (
        "simcom boot chatter then echo",
        [("AT", ())],
        b"\x00\x00\xff\xfe\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\nAT\r\r\nOK\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n",
        [("G",), ("U", "RDY", "RDY", None), ("U", "+CFUN:", "+CFUN: 1", None),
         ("U", "+CPIN:", "+CPIN: READY", None), ("R", "AT", "OK", ()),
         ("U", "Call Ready", "Call Ready", None), ("U", "SMS Ready", "SMS Ready", None)],
    ),
    (
        "simcom +CMTI during +CSQ",
        [("AT+CSQ", ())],
        b"\r\n+CMTI: \"SM\",4\r\n\r\n+CSQ: 18,0\r\n\r\nOK\r\n",
        [("U", "+CMTI:", "+CMTI: \"SM\",4", None), ("R", "AT+CSQ", "OK", ("+CSQ: 18,0",))],
    ),
    (
        "quectel +QIND and +CMT two-line URC",
        [],
        b"\r\n+QIND: SMS DONE\r\n\r\n+CMT: ,23\r\n" + PDU1.encode() + b"\r\n",
        [("U", "+QIND:", "+QIND: SMS DONE", None), ("U", "+CMT:", "+CMT: ,23", PDU1)],
    ),
    (
        "quectel +CMT while a command is in flight",
        [("AT+CREG?", ())],
        b"\r\n+CMT: ,23\r\n" + PDU1.encode() + b"\r\n\r\n+CREG: 0,1\r\n\r\nOK\r\n",
        [("U", "+CMT:", "+CMT: ,23", PDU1), ("R", "AT+CREG?", "OK", ("+CREG: 0,1",))],
    ),
    (
        "quectel +CPIN answer is not a URC when asked",
        [("AT+CPIN?", ())],
        b"\r\n+CPIN: READY\r\n\r\nOK\r\n",
        [("R", "AT+CPIN?", "OK", ("+CPIN: READY",))],
    ),
    (
        "zte +CMS ERROR 321 and lone CR line ends",
        [("AT+CMGR=9", ())],
        b"\r+ZPBIC: 1,1\r\r+CMS ERROR: 321\r",
        [("U", "+ZPBIC:", "+ZPBIC: 1,1", None), ("R", "AT+CMGR=9", "+CMS ERROR: 321", ())],
    ),
    (
        "zte \\n\\r line ends",
        [("AT+ZGETICCID", ())],
        b"\n\r+ZGETICCID: 89701012345678901234\n\r\n\rOK\n\r",
        [("R", "AT+ZGETICCID", "OK", ("+ZGETICCID: 89701012345678901234",))],
    ),
    (
        "sierra +CME ERROR text",
        [("AT!ICCID?", ())],
        b"\r\n+CME ERROR: SIM not inserted\r\n",
        [("R", "AT!ICCID?", "+CME ERROR: SIM not inserted", ())],
    ),
    (
        "sierra +WIND during identity",
        [("AT+CGMM", ())],
        b"\r\n+WIND: 4\r\n\r\nMC7304\r\n\r\nOK\r\n",
        [("U", "+WIND:", "+WIND: 4", None), ("R", "AT+CGMM", "OK", ("MC7304",))],
    ),
    (
        "cinterion ^SYSSTART and ^SCID",
        [("AT^SCID", ())],
        b"\r\n^SYSSTART\r\n\r\n^SCID: 89490200001066441002\r\n\r\nOK\r\n",
        [("U", "^SYSSTART", "^SYSSTART", None), ("R", "AT^SCID", "OK", ("^SCID: 89490200001066441002",))],
    ),
    (
        "cinterion prompt for CMGS",
        [("AT+CMGS=23", ("+CMGS:",))],
        b"\r\n> \r\n+CMGS: 17\r\n\r\nOK\r\n",
        [("R", "AT+CMGS=23", "OK", ("+CMGS: 17",))],
    ),
    (
        "late OK with nothing in flight, RING, NO CARRIER",
        [],
        b"\r\nOK\r\n\r\nRING\r\n\r\n+CLIP: \"+79161234567\",145\r\n",
        [("S", "OK"), ("U", "RING", "RING", None), ("U", "+CLIP:", "+CLIP: \"+79161234567\",145", None)],
    ),
    (
        "echo on, with NUL padding and non-UTF-8 garbage line",
        [("AT+CSQ", ())],
        b"AT+CSQ\r\r\n\x00+CSQ: 31,99\r\n\xc3\x28\xa0\r\n\r\nOK\r\n",
        [("G",), ("R", "AT+CSQ", "OK", ("+CSQ: 31,99",))],
    ),
    # Issue 11 failure 4: unsolicited codes inside an identity answer are never the answer.
    (
        "huawei ^HWNAT inside the manufacturer answer (ModemManager huawei plugin: unsolicited ^ codes)",
        [("AT+CGMI", ())],
        b"\r\n^HWNAT:06\r\n\r\nhuawei\r\n\r\nOK\r\n",
        [("U", "^HWNAT:", "^HWNAT:06", None), ("R", "AT+CGMI", "OK", ("huawei",))],
    ),
    (
        "huawei ^ECCLIST inside the IMSI answer",
        [("AT+CIMI", ())],
        b"\r\n^ECCLIST: 112,911\r\n250991234567890\r\n\r\nOK\r\n",
        [("U", "^ECCLIST:", "^ECCLIST: 112,911", None), ("R", "AT+CIMI", "OK", ("250991234567890",))],
    ),
    (
        "zte MF626 unsolicited +CSQ inside the IMEI answer",
        [("AT+CGSN", ())],
        b"\r\n+CSQ: 17,99\r\n\r\n357812012345678\r\n\r\nOK\r\n",
        [("U", "+CSQ:", "+CSQ: 17,99", None), ("R", "AT+CGSN", "OK", ("357812012345678",))],
    ),
    (
        "simcom SIM7600 bare SMS DONE inside the model answer (ModemManager simtech plugin)",
        [("AT+CGMM", ())],
        b"\r\nSMS DONE\r\n\r\nSIMCOM_SIM7600E-H\r\n\r\nOK\r\n",
        [("U", "SMS DONE", "SMS DONE", None), ("R", "AT+CGMM", "OK", ("SIMCOM_SIM7600E-H",))],
    ),
    (
        "a bare line without the IMEI's shape is stray, not the IMEI",
        [("AT+CGSN", ())],
        b"\r\nModem booting\r\n+CGSN: 356938035643809\r\n\r\nOK\r\n",
        [("S", "Modem booting"), ("R", "AT+CGSN", "OK", ("+CGSN: 356938035643809",))],
    ),
    (
        "verbose CMEE=2 error (27.005 3.2.5: 321 invalid memory index)",
        [("AT+CMGR=5", ())],
        b"\r\n+CMS ERROR: invalid memory index\r\n",
        [("R", "AT+CMGR=5", "+CMS ERROR: invalid memory index", ())],
    ),
]
