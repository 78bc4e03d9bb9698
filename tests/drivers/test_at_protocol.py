"""The AT core, without any I/O: transcripts split at every point, interleaved URCs, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.at.lines import LineFramer, Line, Prompt, Garbage
from drivers.at.protocol import AtProtocol, BadBytes, Command, ProtocolBusy, Response, StrayLine, Urc
from drivers.at.results import ResultKind, parse_final
from drivers.profiles import GENERIC
from tests.drivers.transcripts import TRANSCRIPTS


def _command(text: str, expect: tuple[str, ...]) -> Command:
    return Command(text, expect, payload="0011000B916407281553F80000AA0AE8329BFD4697D9EC37" if "CMGS" in text else None)


def _compact(events) -> list[tuple]:
    out = []
    for event in events:
        if isinstance(event, Response):
            out.append(("R", event.command.text, event.result.text, event.lines))
        elif isinstance(event, Urc):
            out.append(("U", event.name, event.line, event.body))
        elif isinstance(event, StrayLine):
            out.append(("S", event.line))
        elif isinstance(event, BadBytes):
            out.append(("G",))
    return out


def _run(commands, chunks: list[bytes]) -> tuple[list[tuple], bytes]:
    protocol = AtProtocol(extra_urcs=GENERIC.extra_urcs)  # what the driver uses before it knows the vendor
    for text, expect in commands:
        protocol.send(_command(text, expect))
    sent = protocol.data_to_send()
    events = []
    for chunk in chunks:
        protocol.receive_data(chunk)
        sent += protocol.data_to_send()
        events += protocol.events_received()
    return _compact(events), sent


@pytest.mark.parametrize("name,commands,data,expected", TRANSCRIPTS, ids=[t[0] for t in TRANSCRIPTS])
def test_transcript_whole(name, commands, data, expected):
    events, _ = _run(commands, [data])
    assert events == expected


@pytest.mark.parametrize("name,commands,data,expected", TRANSCRIPTS, ids=[t[0] for t in TRANSCRIPTS])
def test_transcript_split_at_every_point(name, commands, data, expected):
    for cut in range(1, len(data)):
        events, _ = _run(commands, [data[:cut], data[cut:]])
        assert events == expected, f"split at {cut}: {data[:cut]!r} | {data[cut:]!r}"


@pytest.mark.parametrize("name,commands,data,expected", TRANSCRIPTS, ids=[t[0] for t in TRANSCRIPTS])
def test_transcript_byte_by_byte(name, commands, data, expected):
    events, _ = _run(commands, [bytes((b,)) for b in data])
    assert events == expected


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_transcript_random_multi_split(data):
    name, commands, raw, expected = data.draw(st.sampled_from(TRANSCRIPTS))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(raw) - 1)), max_size=8)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
    events, _ = _run(commands, chunks)
    assert events == expected


def test_prompt_sends_payload_then_ctrl_z():
    _, sent = _run([("AT+CMGS=23", ("+CMGS:",))], [b"\r\n> "])
    assert sent.startswith(b"AT+CMGS=23\r")
    assert sent.endswith(b"0011000B916407281553F80000AA0AE8329BFD4697D9EC37\x1a")


def test_prompt_without_payload_command_is_plain_text():
    protocol = AtProtocol()
    protocol.send(Command("AT+CSQ"))
    protocol.receive_data(b"\r\n> \r\nOK\r\n")
    assert protocol.data_to_send() == b"AT+CSQ\r"  # nothing sent after a '>' nobody asked for
    assert _compact(protocol.events_received()) == [("R", "AT+CSQ", "OK", (">",))]


def test_second_command_while_busy_is_a_caller_bug():
    protocol = AtProtocol()
    protocol.send(Command("AT"))
    with pytest.raises(ProtocolBusy):
        protocol.send(Command("AT+CSQ"))


def test_abort_then_late_ok_is_stray_not_next_commands():
    protocol = AtProtocol()
    protocol.send(Command("AT+CMGL=4"))
    assert protocol.abort() == Command("AT+CMGL=4")
    protocol.receive_data(b"\r\n+CMGL: 1,0,,23\r\nABCD\r\nOK\r\n")
    events = _compact(protocol.events_received())
    assert ("S", "OK") in events
    assert not any(e[0] == "R" for e in events)


def test_abort_after_prompt_cancels_with_escape():
    protocol = AtProtocol()
    protocol.send(Command("AT+CMGS=5", payload="00"))
    protocol.receive_data(b"\r\n> ")
    protocol.data_to_send()
    protocol.abort()
    assert protocol.data_to_send() == b"\x1b"


def test_two_line_urc_whose_body_never_comes_still_reported():
    protocol = AtProtocol()
    protocol.receive_data(b"\r\n+CMT: ,23\r\nOK\r\n")
    assert _compact(protocol.events_received()) == [("U", "+CMT:", "+CMT: ,23", None), ("S", "OK")]


def test_overlong_line_is_garbage_and_parser_recovers():
    protocol = AtProtocol(max_line=64)
    protocol.send(Command("AT+CSQ"))
    protocol.receive_data(b"X" * 500 + b"\r\n+CSQ: 10,99\r\nOK\r\n")
    events = _compact(protocol.events_received())
    assert events == [("G",), ("R", "AT+CSQ", "OK", ("+CSQ: 10,99",))]
    assert protocol.garbage_count == 1


def test_unknown_prefixed_line_is_unsolicited_with_or_without_a_command():
    """Issue 11 failure 4: a ``+X:`` line the command does not expect is never its answer."""
    protocol = AtProtocol()
    protocol.receive_data(b"\r\n+FOO: 1\r\n")
    assert _compact(protocol.events_received()) == [("U", "+FOO:", "+FOO: 1", None)]
    protocol.send(Command("AT+BAR"))
    protocol.receive_data(b"\r\n+FOO: 1\r\n+BAR: 2\r\nOK\r\n")
    assert _compact(protocol.events_received()) == [("U", "+FOO:", "+FOO: 1", None), ("R", "AT+BAR", "OK", ("+BAR: 2",))]


@pytest.mark.parametrize("line,kind,code", [
    ("OK", ResultKind.OK, None), ("ERROR", ResultKind.ERROR, None),
    ("+CME ERROR: 10", ResultKind.CME_ERROR, 10), ("+CME ERROR: SIM busy", ResultKind.CME_ERROR, 14),
    ("+CMS ERROR: 321", ResultKind.CMS_ERROR, 321), ("NO CARRIER", ResultKind.NO_CARRIER, None),
    ("COMMAND NOT SUPPORT", ResultKind.NOT_SUPPORTED, None), ("TOO MANY PARAMETERS", ResultKind.NOT_SUPPORTED, None),
    ("BUSY", ResultKind.BUSY, None), ("NO ANSWER", ResultKind.NO_ANSWER, None), ("CONNECT 115200", ResultKind.CONNECT, None),
    # Issue 11 failure 5: the verbose (AT+CMEE=2) texts of 27.005 §3.2.5 and 27.007 §9.2.1
    ("+CMS ERROR: invalid memory index", ResultKind.CMS_ERROR, 321),
    ("+CMS ERROR: Invalid Memory Index", ResultKind.CMS_ERROR, 321),
    ("+CMS ERROR: memory full", ResultKind.CMS_ERROR, 322),
    ("+CMS ERROR: SIM busy", ResultKind.CMS_ERROR, 314), ("+CMS ERROR: (U)SIM busy", ResultKind.CMS_ERROR, 314),
    ("+CMS ERROR: operation not allowed", ResultKind.CMS_ERROR, 302),
    ("+CME ERROR: SIM not inserted", ResultKind.CME_ERROR, 10), ("+CME ERROR: SIM PIN required", ResultKind.CME_ERROR, 11),
    ("+CME ERROR: SIM failure", ResultKind.CME_ERROR, 13), ("+CME ERROR: 14", ResultKind.CME_ERROR, 14),
    ("+CME ERROR: something else entirely", ResultKind.CME_ERROR, None),
    ("+CME ERROR: ²", ResultKind.CME_ERROR, None),  # issue 12 finding 4: not an ASCII digit, never int()
])
def test_final_results(line, kind, code):
    result = parse_final(line)
    assert result is not None and result.kind is kind and result.code == code


def test_framer_prompt_only_when_armed():
    framer = LineFramer()
    assert framer.feed(b"\r\n> ") == []
    framer.reset()
    framer.prompt_armed = True
    assert framer.feed(b"\r\n> ") == [Prompt()]


def test_framer_items():
    framer = LineFramer()
    assert framer.feed(b"\x00\x00OK\n\rA\x01B\r\n") == [Line("OK"), Garbage(b"A\x01B", "control characters in line")]


# --------------------------------------------------------------------------------- property tests
URC_LINES = [b"^RSSI: 12", b"+CMTI: \"SM\",7", b"RING", b"+QIND: SMS DONE", b"^MODE:5,4", b"SMS Ready",
             b"+CPIN: NOT INSERTED", b"^SIMST: 1", b"+CREG: 1"]


@given(
    urcs=st.lists(st.sampled_from(URC_LINES), max_size=6),
    positions=st.lists(st.integers(0, 3), max_size=6),
    garbage=st.lists(st.binary(min_size=1, max_size=20), max_size=3),
    cuts=st.lists(st.integers(1, 200), max_size=6),
)
@settings(max_examples=300, deadline=None)
def test_urcs_interleaved_into_a_response_are_urcs(urcs, positions, garbage, cuts):
    """A CMGL answer with URCs between any of its lines, plus junk lines: the response is intact,
    every URC is reported as a URC, and nothing raises."""
    body = [b"+CMGL: 0,1,,23", b"07919761989901F0040B91", b"+CMGL: 1,0,,23", b"07919761989901F0040B92"]
    lines = list(body)
    for urc, pos in zip(urcs, positions):
        lines.insert(min(pos, len(lines)), urc)
    for junk in garbage:
        # junk with a byte that cannot start an AT line, so it is garbage rather than a bare line
        lines.insert(0, b"\xff" + junk.replace(b"\r", b"").replace(b"\n", b""))
    stream = b"".join(b"\r\n" + line + b"\r\n" for line in lines) + b"\r\nOK\r\n"
    protocol = AtProtocol(extra_urcs=GENERIC.extra_urcs)
    protocol.send(Command("AT+CMGL=4"))
    points = sorted({c for c in cuts if c < len(stream)})
    for a, b in zip([0, *points], [*points, len(stream)]):
        protocol.receive_data(stream[a:b])
    events = protocol.events_received()
    responses = [e for e in events if isinstance(e, Response)]
    assert len(responses) == 1
    assert responses[0].lines == tuple(line.decode() for line in body)
    assert [e.line.encode() for e in events if isinstance(e, Urc)] == [line for line in lines if line in URC_LINES]


@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=10), st.booleans())
@settings(max_examples=500, deadline=None)
def test_parser_never_raises_on_any_bytes(data, cuts, busy):
    protocol = AtProtocol(max_line=128)
    if busy:
        protocol.send(Command("AT+CMGS=10", payload="00"))
    points = sorted({c for c in cuts if 0 < c < len(data)})
    for a, b in zip([0, *points], [*points, len(data)]):
        protocol.receive_data(data[a:b])
        protocol.data_to_send()
    for event in protocol.events_received():
        assert isinstance(event, (Response, Urc, StrayLine, BadBytes))


# ------------------------------------------------------------------ issue 11 failure 1: implied final
WAVECOM_CPIN = b"\r\n+CPIN: READY\r\n"


def test_cpin_without_ok_is_complete_by_shape_only_where_declared():
    """Wavecom answers AT+CPIN? with no final OK (ModemManager src/plugins/wavecom/
    mm-broadband-modem-wavecom.c: "will never have an OK appended"; Gammu F_CPIN_NO_OK)."""
    for cut in range(len(WAVECOM_CPIN) + 1):
        protocol = AtProtocol()
        protocol.send(Command("AT+CPIN?", implied_final=True))
        protocol.receive_data(WAVECOM_CPIN[:cut])
        assert protocol.answer_complete is (cut >= len(WAVECOM_CPIN) - 1)
        protocol.receive_data(WAVECOM_CPIN[cut:])
        assert protocol.events_received() == [] and protocol.answer_complete
        assert protocol.complete_implied()
        (response,) = protocol.events_received()
        assert response.result.ok and response.result.implied and response.lines == ("+CPIN: READY",)
        assert protocol.in_flight is None and not protocol.complete_implied()
    undeclared = AtProtocol()
    undeclared.send(Command("AT+CPIN?"))
    undeclared.receive_data(WAVECOM_CPIN)
    assert not undeclared.answer_complete and not undeclared.complete_implied()


def test_implied_final_is_not_taken_before_the_answer_or_after_a_real_final():
    protocol = AtProtocol()
    protocol.send(Command("AT+CPIN?", implied_final=True))
    protocol.receive_data(b"\r\n+CME ERROR: SIM busy\r\n")
    (response,) = protocol.events_received()
    assert response.result.code == 14 and not protocol.complete_implied()


# ---------------------------------------------------------------- issue 12 finding 5: bounded response
def _flood(lines: int, width: int) -> bytes:
    return b"".join(b"+CMGL: %d,0,,23\r\n" % i + b"A" * width + b"\r\n" for i in range(lines))


@pytest.mark.parametrize("max_lines,max_bytes,lines,width", [(10, 1 << 20, 20, 8), (1000, 4096, 40, 200)])
def test_response_past_its_caps_is_dropped_as_garbage_and_the_protocol_resyncs(max_lines, max_bytes, lines, width):
    data = _flood(lines, width) + b"\r\nOK\r\n+CMTI: \"SM\",3\r\n"
    for chunks in ([data], [data[i:i + 7] for i in range(0, len(data), 7)]):
        protocol = AtProtocol(max_response_lines=max_lines, max_response_bytes=max_bytes)
        protocol.send(Command("AT+CMGL=4"))
        events = []
        for chunk in chunks:
            protocol.receive_data(chunk)
            events += protocol.events_received()
        compact = _compact(events)
        assert compact[0] == ("G",) and protocol.overflow_count == 1
        assert compact[1:] == [("R", "AT+CMGL=4", "response too large (OK)", ()),
                               ("U", "+CMTI:", '+CMTI: "SM",3', None)]
        assert events[1].result.kind is ResultKind.TOO_LARGE and not events[1].result.ok
        protocol.send(Command("AT+CSQ"))  # resynchronised: the next command is answered normally
        protocol.receive_data(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        assert _compact(protocol.events_received()) == [("R", "AT+CSQ", "OK", ("+CSQ: 20,99",))]


def test_response_within_caps_is_kept_whole():
    protocol = AtProtocol(max_response_lines=40, max_response_bytes=1 << 20)
    protocol.send(Command("AT+CMGL=4"))
    protocol.receive_data(_flood(20, 8) + b"\r\nOK\r\n")
    (response,) = protocol.events_received()
    assert response.result.ok and len(response.lines) == 40 and protocol.overflow_count == 0


def test_default_caps_are_documented_values():
    from drivers.at.protocol import MAX_RESPONSE_BYTES, MAX_RESPONSE_LINES
    assert (MAX_RESPONSE_LINES, MAX_RESPONSE_BYTES) == (1000, 1 << 20)
    protocol = AtProtocol()
    protocol.send(Command("AT+CMGL=4"))
    protocol.receive_data(_flood(600, 2000))  # 1,200 lines, 2.4 MB: past both caps
    assert protocol.overflow_count == 1
    assert sum(1 for e in protocol.events_received() if isinstance(e, BadBytes)) == 1


# ------------------------------------------------------------------ issue 12 finding 4: ASCII digits only
@pytest.mark.parametrize("text,digits", [("0", True), ("321", True), ("²", False), ("٣", False), ("1²", False),
                                         ("", False), (" 1", False), ("+1", False)])
def test_is_digits_takes_ascii_digits_only(text, digits):
    from drivers.at.parse import is_digits
    assert is_digits(text) is digits


def test_parsers_raise_only_their_own_error_on_non_ascii_digits():
    from drivers.at.parse import (AtParseError, parse_cmgl, parse_cmgr, parse_cmti, parse_cpms, parse_creg,
                                  parse_csq, parse_cusd)
    errors: list[str] = []
    listing = parse_cmgl(("+CMGL: ²,1,,32", "00AA", "+CMGL: 2,0,,23", "00BB"), errors)
    assert [(s.index, s.pdu_hex) for s in listing] == [(2, "00BB")] and errors == ["bad +CMGL header '+CMGL: ²,1,,32'"]
    for call in (lambda: parse_cmti('"SM",²'), lambda: parse_cmgr(("+CMGR: ²,,23", "00")),
                 lambda: parse_cpms("+CPMS: ²,30"), lambda: parse_creg("+CREG: ²"),
                 lambda: parse_csq("+CSQ: ²,99"), lambda: parse_cusd("+CUSD: ²")):
        with pytest.raises(AtParseError):
            call()


def test_cfun_query_and_the_zte_test_form():
    from drivers.at.parse import parse_cfun
    assert parse_cfun("+CFUN: 1") == 1 and parse_cfun("+CFUN: 4") == 4 and parse_cfun("+CFUN: 0,0") == 0
    assert parse_cfun("+CFUN: (0-1,4-7),(0-1)") is None  # python-gsmmodem fakemodems.py ZteK3565Z


@pytest.mark.parametrize("answer,imei", [
    ("356938035643809", "356938035643809"), ('"356938035643809"', "356938035643809"),
    ("IMEI356938030000000", "356938030000000"),  # Gammu atgen.c strips an IMEI label (Motorola)
    ("IMEI: 356938030000000", "356938030000000"),
    ("356938030000000,NL2A62Z0N5", "356938030000000"),  # ModemManager test-modem-helpers.c "IMEI + serial number"
    ("+CSQ: 17,99", ""), ("SMS DONE", ""), ("12345", ""),
])
def test_imei_shape_takes_the_imei_out_of_its_labels(answer, imei):
    from drivers.at.answers import IMEI
    assert IMEI.extract(answer) == imei and IMEI.accepts(answer) is bool(imei)


def test_imei_with_label_over_the_core():
    protocol = AtProtocol()
    protocol.send(Command("AT+CGSN"))
    protocol.receive_data(b"\r\n+CGSN: IMEI356938030000000\r\n\r\nOK\r\n")
    (response,) = protocol.events_received()
    assert response.lines == ("+CGSN: IMEI356938030000000",)
