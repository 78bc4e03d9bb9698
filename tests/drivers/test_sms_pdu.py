"""PDU decoding: every correction to gsmmodem.pdu 0.13.0 proven by a test that shows its defect,
every listed case covered, and a cross-check against python-messaging, an independent decoder."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from gsmmodem.pdu import decodeSmsPdu
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from messaging.sms import SmsDeliver as MessagingDeliver

from drivers.sms.encode import DeliverSpec, _address, _smsc, _timestamp, encode_deliver
from drivers.sms.gsm7 import encode_septets, pack_septets
from drivers.sms.pdu import AddressType, Encoding, PduError, SmsDeliver, StatusReport, decode_pdu

TS = datetime(2026, 11, 22, 10, 30, 5, tzinfo=timezone(timedelta(hours=3)))


def raw_deliver(*, dcs: int, user_data: bytes, udl: int, udhi: bool = False, sender: str = "+79161234567") -> str:
    first = 0x04 | (0x40 if udhi else 0)
    tpdu = bytes((first,)) + _address(sender) + bytes((0x00, dcs)) + _timestamp(TS) + bytes((udl,)) + user_data
    return (_smsc("+79168999100") + tpdu).hex().upper()


def gsm7_with_udh(text: str, udh: bytes) -> str:
    header_septets = (len(udh) * 8 + 6) // 7
    fill = header_septets * 7 - len(udh) * 8
    septets = encode_septets(text)
    return raw_deliver(dcs=0x00, user_data=udh + pack_septets(septets, fill), udl=header_septets + len(septets), udhi=True)


def deliver(pdu: str) -> SmsDeliver:
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsDeliver)
    return decoded


# ------------------------------------------------------------------ corrections, one test per defect
def test_defect_16bit_concat_header_loses_first_character():
    udh = bytes((0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01))  # UDHL=6: 7 octets = 8 septets, 0 fill bits
    pdu = gsm7_with_udh("Hello world", udh)
    assert decodeSmsPdu(pdu)["text"] != "Hello world"  # gsmmodem: first character lost
    sms = deliver(pdu)
    assert sms.text == "Hello world"
    assert (sms.concat.ref, sms.concat.part, sms.concat.total, sms.concat.ref_bits) == (0x1234, 1, 2, 16)


def test_defect_non_bmp_characters_come_back_as_lone_surrogates():
    pdu = encode_deliver(DeliverSpec("+79161234567", "Код 😀 ok"))[0]
    assert "\ud83d" in decodeSmsPdu(pdu)["text"]  # gsmmodem: lone surrogates
    assert deliver(pdu).text == "Код 😀 ok"


def test_defect_final_at_sign_on_8_septet_boundary_dropped():
    pdu = encode_deliver(DeliverSpec("+79161234567", "1234567@"))[0]
    assert decodeSmsPdu(pdu)["text"] == "1234567"  # gsmmodem drops the '@'
    assert deliver(pdu).text == "1234567@"


def test_defect_user_data_length_ignored_when_junk_follows():
    junk = b"\x41\x42\x43\x44"
    # 8-bit data: gsmmodem reads every octet to the end
    data_pdu = raw_deliver(dcs=0x04, user_data=b"\x01\x02" + junk, udl=2)
    assert decodeSmsPdu(data_pdu)["text"] != "\x01\x02"
    assert deliver(data_pdu).payload == b"\x01\x02"
    # GSM 7-bit after a UDH: gsmmodem counts the header septets again as text
    udh = bytes((0x05, 0x00, 0x03, 0x07, 0x02, 0x02))
    text_pdu = gsm7_with_udh("Code 42", udh)
    with_junk = text_pdu + junk.hex().upper()
    assert decodeSmsPdu(with_junk)["text"] != "Code 42"
    assert deliver(with_junk).text == "Code 42"


@pytest.mark.parametrize("dcs,encoding,payload,text", [
    (0x48, Encoding.UCS2, "Привет".encode("utf-16-be"), "Привет"),  # 01xx: auto-deletion group, UCS2
    (0xE0, Encoding.UCS2, "Ящик".encode("utf-16-be"), "Ящик"),  # 1110: message waiting, UCS2
    (0xF4, Encoding.DATA_8BIT, b"\x01\x02\xfe", "\x01\x02\xfe"),  # 1111 x1xx: 8-bit data, class 0
])
def test_defect_other_coding_groups_read_as_gsm7(dcs, encoding, payload, text):
    pdu = raw_deliver(dcs=dcs, user_data=payload, udl=len(payload))
    assert decodeSmsPdu(pdu)["text"] != text  # gsmmodem reads them as GSM 7-bit
    sms = deliver(pdu)
    assert sms.encoding is encoding
    assert sms.text == text


def test_gsm7_class_group_f0_is_still_gsm7():
    septets = encode_septets("Flash 1")
    sms = deliver(raw_deliver(dcs=0xF0, user_data=pack_septets(septets), udl=len(septets)))
    assert (sms.encoding, sms.text) == (Encoding.GSM7, "Flash 1")


def test_defect_escape_to_unknown_code_dropped_instead_of_base_character():
    septets = bytes((0x1B, 0x41)) + encode_septets("BC")  # ESC 'A' is not in the extension table
    pdu = raw_deliver(dcs=0x00, user_data=pack_septets(septets), udl=len(septets))
    assert decodeSmsPdu(pdu)["text"] == "BC"  # gsmmodem drops it
    assert deliver(pdu).text == "ABC"  # TS 23.038 6.2.1.1: show the base character


def test_defect_truncated_pdu_escapes_as_stop_iteration():
    pdu = encode_deliver(DeliverSpec("+79161234567", "truncate me please"))[0][:-10]
    pdu_header_only = pdu[:30]
    with pytest.raises(StopIteration):
        decodeSmsPdu(pdu_header_only)
    for broken in (pdu, pdu_header_only):
        with pytest.raises(PduError, match="truncated"):
            decode_pdu(broken)


def test_defect_section_sign_mapped_wrongly():
    septets = bytes((0x5F, 0x31))  # 0x5F is the section sign in TS 23.038
    pdu = raw_deliver(dcs=0x00, user_data=pack_septets(septets), udl=2)
    assert decodeSmsPdu(pdu)["text"] != "§1"
    assert deliver(pdu).text == "§1"


# -------------------------------------------------------------------------------- coverage cases
def test_gsm7_extension_table():
    text = "{[~|]}\\^€ and base @£$¥"
    sms = deliver(encode_deliver(DeliverSpec("+79161234567", text))[0])
    assert (sms.encoding, sms.text) == (Encoding.GSM7, text)


def test_ucs2_emoji_surrogate_pair_across_part_boundary():
    from drivers.sms.assembly import SmsAssembler

    text = "xx" + "😀" * 40  # 67-unit parts: part 1 ends on a high surrogate
    pdus = encode_deliver(DeliverSpec("+79161234567", text, concat_ref=9))
    assert len(pdus) == 2
    first = deliver(pdus[0])
    assert first.payload[-2:] == "😀".encode("utf-16-be")[:2]  # the pair really straddles the cut
    assembler = SmsAssembler()
    assert assembler.add("p", deliver(pdus[1]), 0.0) is None
    message = assembler.add("p", first, 0.0)
    assert message is not None and message.text == text


def test_8bit_data_has_data_hex():
    sms = deliver(encode_deliver(DeliverSpec("+79161234567", data=b"\x00\xff\x10"))[0])
    assert sms.encoding is Encoding.DATA_8BIT and sms.payload == b"\x00\xff\x10"


@pytest.mark.parametrize("sender,kind", [
    ("Google", AddressType.ALPHANUMERIC), ("MegaFon.ru", AddressType.ALPHANUMERIC),
    ("+79161234567", AddressType.INTERNATIONAL), ("89161234567", AddressType.UNKNOWN),
    ("900", AddressType.UNKNOWN),
])
def test_senders(sender, kind):
    sms = deliver(encode_deliver(DeliverSpec(sender, "hi"))[0])
    assert (sms.sender, sms.sender_type) == (sender, kind)


def test_national_number_type():
    # TOA 0xA1: national number, ISDN plan
    tpdu = bytes((0x04, 0x0A, 0xA1)) + bytes.fromhex("9816214365") + bytes((0x00, 0x00)) + _timestamp(TS) + bytes((2,)) + pack_septets(encode_septets("ok"))
    sms = deliver((_smsc("+79168999100") + tpdu).hex())
    assert (sms.sender, sms.sender_type) == ("8961123456", AddressType.NATIONAL)


@pytest.mark.parametrize("offset", [timedelta(hours=3), timedelta(hours=-5), timedelta(hours=5, minutes=45), timedelta(0)])
def test_service_centre_timestamp_with_time_zone(offset):
    ts = datetime(2026, 1, 31, 23, 59, 58, tzinfo=timezone(offset))
    sms = deliver(encode_deliver(DeliverSpec("+79161234567", "t", timestamp=ts))[0])
    assert sms.timestamp == ts and sms.timestamp.utcoffset() == offset


def test_status_report():
    # SMS-STATUS-REPORT: MR 0x2A, recipient +79161234567, SCTS, discharge, status 0 (delivered)
    tpdu = bytes((0x06, 0x2A)) + _address("+79161234567") + _timestamp(TS) + _timestamp(TS) + bytes((0x00,))
    decoded = decode_pdu((_smsc("+79168999100") + tpdu).hex())
    assert isinstance(decoded, StatusReport)
    assert (decoded.reference, decoded.recipient, decoded.status) == (0x2A, "+79161234567", 0)


@pytest.mark.parametrize("bad", ["", "0", "zz", "07919761989901F0", "00" * 3, "0791976198990100", "07919761989901F00"])
def test_malformed_raises_pdu_error_only(bad):
    with pytest.raises(PduError):
        decode_pdu(bad)


def test_submit_pdu_is_refused_with_reason():
    with pytest.raises(PduError, match="TP-MTI 1"):
        decode_pdu("0011000B919761214365F70000AA0AE8329BFD4697D9EC37")


@given(st.binary(max_size=200))
@settings(max_examples=1000, deadline=None)
def test_fuzz_decoder_raises_nothing_but_pdu_error(data):
    try:
        decode_pdu(data.hex())
    except PduError:
        pass


# ------------------------------------------------------------------------- independent cross-check
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60)  # python-messaging cannot read an empty text


@given(texts, st.sampled_from(["+79161234567", "Google", "89161234567"]))
@settings(max_examples=200, deadline=None)
def test_cross_check_against_python_messaging(text, sender):
    pdus = encode_deliver(DeliverSpec(sender, text, timestamp=TS))
    assume(len(pdus) == 1)  # python-messaging decodes one PDU at a time; reassembly is tested apart
    ours = deliver(pdus[0])
    pdu = pdus[0]
    theirs = MessagingDeliver(pdu).data
    their_text = theirs["text"].encode("utf-16", "surrogatepass").decode("utf-16")
    assert ours.text == their_text == text
    assert ours.sender == theirs["number"]
    assert ours.timestamp.astimezone(timezone.utc).replace(tzinfo=None) == theirs["date"]


# --------------------------------------------------------------------------------------- the CLI
def _cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "pdu", "decode", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_pdu_decode_every_listed_case():
    cases = {
        "16bit": (gsm7_with_udh("Hello world", bytes((0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x01))), "Hello world"),
        "emoji": (encode_deliver(DeliverSpec("+79161234567", "Код 😀"))[0], "Код 😀"),
        "final@": (encode_deliver(DeliverSpec("+79161234567", "1234567@"))[0], "1234567@"),
        "section": (raw_deliver(dcs=0, user_data=pack_septets(bytes((0x5F,))), udl=1), "§"),
        "ucs2group": (raw_deliver(dcs=0x48, user_data="Да".encode("utf-16-be"), udl=4), "Да"),
    }
    result = _cli(*(pdu for pdu, _ in cases.values()))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == [text for _, text in cases.values()]
    assert lines[0]["concat"] == {"ref": 0x1234, "part": 1, "total": 2}
    assert lines[1]["encoding"] == "ucs2" and lines[1]["timestamp"].endswith("+03:00")


def test_cli_pdu_decode_bad_input_keeps_going_and_exits_2():
    good = encode_deliver(DeliverSpec("Google", "G-123456"))[0]
    result = _cli("-", stdin=f"{good}\nnothex\n{good[:20]}\n{good}\n")
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [("error" in line) for line in lines] == [False, True, True, False]
    assert lines[0]["sender"] == "Google" and lines[3]["text"] == "G-123456"
    assert "truncated" in lines[2]["error"]
    assert "Traceback" not in result.stderr


def test_semi_octets_agree_with_gsmmodem_on_every_two_octets_and_random_longer_ones():
    """``semi_octets`` replaces gsmmodem's ``decodeSemiOctets`` for speed; it must not differ."""
    import random

    from drivers.sms.gsmmodem_pdu import decodeSemiOctets
    from drivers.sms.pdu import semi_octets

    for value in range(1 << 16):
        raw = value.to_bytes(2, "big")
        assert semi_octets(raw) == decodeSemiOctets(bytearray(raw), 2), raw.hex()
    rng = random.Random(13)
    for _ in range(20_000):
        raw = bytes(rng.choice((rng.randrange(256), 0xF0 | rng.randrange(16), 0x0F)) for _ in range(rng.randrange(12)))
        assert semi_octets(raw) == decodeSemiOctets(bytearray(raw), len(raw)), raw.hex()
