"""Fuzz targets: nothing may escape as an unhandled exception. Brief in the default run;
``SIMGW_FUZZ_EXAMPLES=200000 pytest tests/fuzz`` runs them long."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.at.protocol import AtProtocol, Command
from drivers.sms.pdu import PduError, decode_pdu
from gateway.config import ConfigError, from_dict
from gateway.uplink.protocol import Acked, FrameRejected, LeaseAction, OpenLease, UplinkSession, Welcomed

pytestmark = pytest.mark.slow  # hypothesis runs of 1-4 s of CPU each: deselect with -m "not slow"

EXAMPLES = int(os.environ.get("SIMGW_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["welcome", "ack", "lease.open", "lease.repeat", "lease.finish", "lease.cancel",
                              "hello", "x", ""])},
    optional={"command_id": json_values, "lease_id": json_values, "service": json_values, "seq": json_values,
              "last_acked_seq": json_values, "number": json_values, "criteria": json_values,
              "wait_window": json_values, "gateway_id": json_values, "category": json_values})


@FUZZ
@given(st.one_of(frame_like.map(json.dumps), st.text(max_size=300), st.binary(max_size=100)))
def test_uplink_codec_never_raises(data):
    session = UplinkSession("gw", "0", acked_seq=0, max_known_seq=10)
    session.send_hello()
    event = session.receive(data)
    assert isinstance(event, (Welcomed, Acked, OpenLease, LeaseAction, FrameRejected))
    if isinstance(event, FrameRejected):
        assert json.loads(event.frame)["type"] == "error"


@FUZZ
@given(st.lists(frame_like.map(json.dumps), max_size=10))
def test_uplink_session_sequences_never_raise(frames):
    session = UplinkSession("gw", "0", acked_seq=0, max_known_seq=5)
    session.send_hello()
    full_inventory_sent = False
    for frame in frames:
        session.receive(frame)
        session.send_inventory({"numbers": []})  # full once welcomed, then nothing changes
        session.send_events([(session.sent_seq + 1, "sms", {"msg_id": "m"})])
        for sent in map(json.loads, session.data_to_send()):
            full_inventory_sent |= sent["type"] == "inventory" and sent["full"]
            assert sent["type"] != "sms" or full_inventory_sent, "an sms before the full inventory"
    assert session.acked_seq <= max(session.sent_seq, 5)


config_tables = st.dictionaries(
    st.sampled_from(["gateway", "leases", "control", "uplink", "modems", "numbers", "other"]),
    json_values | st.lists(st.dictionaries(st.sampled_from(["port", "baud", "profile", "msisdn", "x"]), json_values,
                                           max_size=4), max_size=3),
    max_size=5)


@FUZZ
@given(config_tables)
def test_config_loader_raises_only_config_errors(raw):
    try:
        from_dict(raw, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml: ")


@FUZZ
@given(st.binary(max_size=300))
def test_pdu_decoder_raises_only_pdu_error(data):
    try:
        decode_pdu(data)
    except PduError:
        pass


@FUZZ
@given(st.binary(max_size=500), st.booleans())
def test_at_core_never_raises(data, busy):
    protocol = AtProtocol(max_line=64)
    if busy:
        protocol.send(Command("AT+CMGS=5", payload="00"))
    protocol.receive_data(data)
    protocol.events_received()
    protocol.data_to_send()
