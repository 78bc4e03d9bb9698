"""Multipart reassembly, I/O-free with a fake clock."""

from __future__ import annotations

import itertools

import pytest

from drivers.sms.assembly import SmsAssembler
from drivers.sms.encode import DeliverSpec, encode_deliver
from drivers.sms.pdu import SmsDeliver, decode_pdu

LONG_GSM = "Your verification code is 123456. " * 10  # 340 chars -> 3 parts
LONG_UCS2 = "Ваш код 654321, никому не сообщайте 😀. " * 5


def parts(text: str, *, ref: int = 7, bits: int = 8, sender: str = "+79161234567") -> list[SmsDeliver]:
    out = []
    for pdu in encode_deliver(DeliverSpec(sender, text, concat_ref=ref, ref_bits=bits)):
        decoded = decode_pdu(pdu)
        assert isinstance(decoded, SmsDeliver)
        out.append(decoded)
    return out


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("text", [LONG_GSM, LONG_UCS2])
def test_every_order_assembles_once(bits, text):
    pieces = parts(text, ref=300 if bits == 16 else 7, bits=bits)
    assert len(pieces) >= 3
    for order in itertools.permutations(pieces):
        assembler = SmsAssembler()
        results = [assembler.add("port", p, 0.0) for p in order]
        done = [r for r in results if r is not None]
        assert len(done) == 1 and done[0].text == text and done[0].complete
        assert results[-1] is done[0]
        assert assembler.pending == 0


def test_duplicate_parts_are_counted_not_doubled():
    pieces = parts(LONG_GSM)
    assembler = SmsAssembler()
    assert assembler.add("p", pieces[0], 0.0) is None
    assert assembler.add("p", pieces[0], 0.0) is None
    assert assembler.add("p", pieces[1], 0.0) is None
    message = assembler.add("p", pieces[2], 0.0)
    assert message is not None and message.text == LONG_GSM
    assert assembler.duplicate_parts == 1


def test_same_reference_from_two_senders_or_ports_stays_apart():
    a, b = parts(LONG_GSM, sender="+79160000001"), parts(LONG_UCS2, sender="+79160000002")
    assembler = SmsAssembler()
    done = [assembler.add("p", x, 0.0) for x in itertools.chain(*zip(a, b))]
    assert sorted(d.text for d in done if d) == sorted([LONG_GSM, LONG_UCS2])
    c = parts(LONG_GSM)
    assert assembler.add("port1", c[0], 0.0) is None
    assert assembler.add("port2", c[1], 0.0) is None
    assert assembler.pending == 2


def test_missing_part_flushed_incomplete_after_timeout():
    pieces = parts(LONG_GSM)
    assembler = SmsAssembler(timeout=60.0)
    assembler.add("p", pieces[0], 100.0)
    assembler.add("p", pieces[2], 110.0)
    assert assembler.next_deadline() == 160.0
    assert assembler.expire(159.999) == []
    flushed = assembler.expire(160.0)
    assert len(flushed) == 1
    message = flushed[0]
    assert not message.complete and message.missing_parts == (2,)
    assert message.text.startswith(LONG_GSM[:100]) and message.parts == 3
    assert assembler.pending == 0 and assembler.next_deadline() is None


def test_single_part_passes_straight_through():
    single = parts("short")[0]
    message = SmsAssembler().add("p", single, 0.0)
    assert message is not None and message.text == "short" and message.parts == 1 and message.concat_ref is None
