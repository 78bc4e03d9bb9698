"""gateway.smshub.protocol and names without I/O: byte literals in, requests and replies out.

Field names, types and statuses from "SMSHUB Agent Protocol", version of March 6, 2024 (its
request and response examples are used verbatim where given), and OnlineSim's Reseller API v1
(integer exceptionPhoneSet entries, Authorization: Bearer, NO_OPERATION/BAD_SERVICE).
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.leases import LeaseEngine, LeaseState, Policy, Refused
from gateway.smshub import protocol as p
from gateway.smshub.agent import TokenBucket
from gateway.smshub.names import Names

KEY = "1234"


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def test_the_documents_get_number_examples_parse():
    plain = p.parse_request(body({"country": "russia", "operator": "mts", "service": "vk", "sum": 20.00,
                                  "action": "GET_NUMBER", "currency": 643, "key": KEY}), KEY)
    assert plain == p.GetNumber(KEY, "russia", "mts", "vk", 20.0, 643, ())
    excluded = p.parse_request(body({"country": "russia", "operator": "any", "service": "vk", "sum": 10,
                                     "currency": 643, "exceptionPhoneSet": ["7918", "79281"],
                                     "action": "GET_NUMBER", "key": KEY}), KEY)
    assert isinstance(excluded, p.GetNumber) and excluded.exclude_prefixes == ("7918", "79281")
    onlinesim = p.parse_request(body({"action": "GET_NUMBER", "country": "germany", "operator": "any",
                                      "service": "facebook", "sum": 40, "key": KEY, "exceptionPhoneSet": [46950]}), KEY)
    assert isinstance(onlinesim, p.GetNumber) and onlinesim.exclude_prefixes == ("46950",)
    assert onlinesim.currency is None  # OnlineSim's request has no currency


def test_finish_and_services_parse():
    assert p.parse_request(body({"activationId": 100, "status": 3, "action": "FINISH_ACTIVATION", "key": KEY}),
                           KEY) == p.FinishActivation(KEY, 100, 3)
    assert p.parse_request(body({"action": "GET_SERVICES", "key": KEY}), KEY) == p.GetServices(KEY)


@pytest.mark.parametrize("request_body, error, http_status", [
    (b"not json", "not UTF-8 JSON", 400),
    (b"\xff\xfe", "not UTF-8 JSON", 400),
    (b"[1, 2]", "not a JSON object", 400),
    (b'{"action": "GET_SERVICES"}', "wrong or missing key", 401),
    (b'{"action": "GET_SERVICES", "key": "12345"}', "wrong or missing key", 401),
    (b'{"action": "GET_SERVICES", "key": 1234}', "'key' is not a string", 401),
    (b'{"key": "1234"}', "'action' missing", 400),
    (b'{"action": "PUSH_SMS", "key": "1234"}', "unknown action", 400),
    (b'{"action": "FINISH_ACTIVATION", "key": "1234", "activationId": "100", "status": 3}', "'activationId'", 400),
    (b'{"action": "FINISH_ACTIVATION", "key": "1234", "activationId": true, "status": 3}', "'activationId'", 400),
    (b'{"action": "FINISH_ACTIVATION", "key": "1234", "activationId": -1, "status": 3}', "'activationId'", 400),
    (b'{"action": "FINISH_ACTIVATION", "key": "1234", "activationId": 1, "status": 2}', "'status'", 400),
    (b'{"action": "FINISH_ACTIVATION", "key": "1234", "activationId": 1, "status": 3.0}', "'status'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any"}', "'service'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": 7, "operator": "any", "service": "vk"}', "'country'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any", "service": "vk",'
     b' "sum": "10"}', "'sum'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any", "service": "vk",'
     b' "currency": 978}', "'currency'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any", "service": "vk",'
     b' "currency": 643.0}', "'currency'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any", "service": "vk",'
     b' "exceptionPhoneSet": ["79+1"]}', "'exceptionPhoneSet'", 400),
    (b'{"action": "GET_NUMBER", "key": "1234", "country": "russia", "operator": "any", "service": "vk",'
     b' "exceptionPhoneSet": "7918"}', "'exceptionPhoneSet'", 400),
    (b"[" * 100_000, "not UTF-8 JSON", 400),  # deep nesting: RecursionError is caught, not raised
])
def test_every_bad_request_is_a_rejection_with_a_reason(request_body, error, http_status):
    rejected = p.parse_request(request_body, KEY)
    assert isinstance(rejected, p.Rejected) and error in rejected.error and rejected.http_status == http_status


def test_the_key_is_checked_before_anything_else_is_looked_at():
    rejected = p.parse_request(b'{"action": "NOPE", "key": "wrong"}', KEY)
    assert rejected == p.Rejected("wrong or missing key", 401)  # not "unknown action": nothing leaks


def test_key_from_the_body_or_a_bearer_header_and_both_must_match():
    assert p.key_matches(KEY, KEY, None)
    assert p.key_matches(KEY, "", f"Bearer {KEY}")
    assert p.key_matches(KEY, KEY, f"bearer {KEY}")
    assert not p.key_matches(KEY, "", None)
    assert not p.key_matches(KEY, KEY, "Bearer other")
    assert not p.key_matches(KEY, "", f"Basic {KEY}")
    assert not p.key_matches(KEY, "1235", None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_the_parser_never_raises(data):
    assert isinstance(p.parse_request(data, KEY), (p.Rejected, p.GetServices, p.GetNumber, p.FinishActivation))
    assert isinstance(p.inflate(data, "gzip"), (bytes, p.Rejected))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["action", "key", "country", "operator", "service", "sum", "currency",
                                        "exceptionPhoneSet", "activationId", "status"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
                                 st.lists(st.one_of(st.integers(), st.text(max_size=8)), max_size=4))))
def test_any_json_object_is_a_request_or_a_rejection(fields):
    fields.setdefault("key", KEY)
    result = p.parse_request(json.dumps(fields).encode(), KEY)
    assert isinstance(result, (p.Rejected, p.GetServices, p.GetNumber, p.FinishActivation))


# ------------------------------------------------------------------------------------- gzip
def test_gzip_bodies_are_inflated_labelled_or_not():
    raw = body({"action": "GET_SERVICES", "key": KEY})
    assert p.inflate(gzip.compress(raw), "gzip") == raw
    assert p.inflate(gzip.compress(raw), None) == raw  # unlabelled gzip: the document asks for gzip everywhere
    assert p.inflate(zlib.compress(raw), "deflate") == raw
    assert p.inflate(raw, None) == raw


def test_a_gzip_bomb_is_refused_at_the_inflated_limit():
    bomb = gzip.compress(b"0" * (50 * 1024 * 1024))  # 50 MB of zeros in ~50 KB
    assert len(bomb) < p.Limits().max_body
    rejected = p.inflate(bomb, "gzip")
    assert isinstance(rejected, p.Rejected) and rejected.http_status == 413 and "decompressed" in rejected.error


def test_oversized_truncated_and_foreign_bodies_are_refused():
    limits = p.Limits(max_body=100, max_inflated=1000)
    assert p.inflate(b"x" * 101, None, limits).http_status == 413
    assert "truncated" in p.inflate(gzip.compress(b"x" * 500)[:-12], "gzip").error
    assert "not valid gzip" in p.inflate(b"\x1f\x8bnot gzip at all", "gzip").error
    assert p.inflate(b"{}", "br").http_status == 415


# ------------------------------------------------------------------------------------ replies
def test_replies_are_gzip_json_in_the_documents_shapes():
    assert json.loads(gzip.decompress(p.encode(p.number_reply(79281234567, 355)))) == {
        "status": "SUCCESS", "number": 79281234567, "activationId": 355}
    assert json.loads(p.encode(p.no_numbers(), gzipped=False)) == {"status": "NO_NUMBERS"}
    assert p.error("x") == {"status": "ERROR", "error": "x"}
    reply = p.services_reply({"russia": {"beeline": {"vk": 10, "ok": 15, "wa": 20}}})
    assert reply == {"status": "SUCCESS", "countryList": [{"country": "russia", "operatorMap": {
        "beeline": {"ok": 15, "vk": 10, "wa": 20}}}]}


def test_numbers_are_numeric_with_the_country_code():
    assert p.numeric_phone("+79281234567") == 79281234567
    assert p.numeric_phone("89281234567") is None  # national form: no country code, never sent
    assert p.numeric_phone("+7928") is None
    assert p.numeric_phone("+7928123456a") is None


def test_push_body_and_headers():
    sent = p.push_body(1, 79281234567, "Vk", "VK: 33708", KEY)
    assert sent == {"action": "PUSH_SMS", "key": KEY, "smsId": 1, "phone": 79281234567, "phoneFrom": "Vk",
                    "text": "VK: 33708"}
    headers = p.push_headers(KEY, p.Flavour.SMSHUB, "simgw/1")
    assert headers["User-Agent"] == "simgw/1" and headers["Content-Encoding"] == "gzip"
    assert "Authorization" not in headers
    assert p.push_headers(KEY, p.Flavour.ONLINESIM, "simgw/1")["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("flavour, status, reply, outcome", [
    (p.Flavour.SMSHUB, 200, b'{"status":"SUCCESS"}', p.PushOutcome.DELIVERED),
    (p.Flavour.SMSHUB, 200, b'{"status":"ERROR","error":"later"}', p.PushOutcome.RETRY),
    (p.Flavour.SMSHUB, 500, b'{"status":"SUCCESS"}', p.PushOutcome.RETRY),
    (p.Flavour.SMSHUB, 200, b"", p.PushOutcome.RETRY),
    (p.Flavour.SMSHUB, 200, b'{"status":"ERROR","error":"NO_OPERATION"}', p.PushOutcome.RETRY),  # SMSHub: keep on
    (p.Flavour.ONLINESIM, 200, b"", p.PushOutcome.DELIVERED),  # OnlineSim: HTTP 200 is success
    (p.Flavour.ONLINESIM, 200, b'{"status":"SUCCESS"}', p.PushOutcome.DELIVERED),
    (p.Flavour.ONLINESIM, 400, b'{"status":"ERROR","error":"NO_OPERATION"}', p.PushOutcome.STOP),
    (p.Flavour.ONLINESIM, 400, b'{"status":"BAD_SERVICE"}', p.PushOutcome.STOP),
    (p.Flavour.ONLINESIM, 502, b"<html>", p.PushOutcome.RETRY),
])
def test_what_the_hubs_answer_to_a_push_means(flavour, status, reply, outcome):
    assert p.push_outcome(status, reply, flavour)[0] is outcome


# -------------------------------------------------------------------------------------- names
def test_names_both_ways_with_overrides():
    names = Names({"whatsapp": "wa"}, {"GB": "england"}, {"mts rus": "mts"})
    assert names.country("RU") == "russia" and names.iso("russia") == "RU"
    assert names.country("GB") == "england" and names.iso("england") == "GB"
    assert names.iso("atlantis") is None and names.country(None) is None
    assert names.operator("MTS RUS") == "mts" and names.operator("Beeline") == "beeline"
    assert names.operator(None) is None and names.operator("?") is None
    assert names.service("WA") == "whatsapp" and names.service("vk") is None


# ------------------------------------------------------------------------------- rate limits
def test_the_token_bucket_allows_its_rate_and_burst_and_no_more():
    now = [0.0]
    bucket = TokenBucket(100.0, 200, lambda: now[0])
    assert sum(bucket.take() for _ in range(300)) == 200  # the burst
    now[0] += 1.0
    assert sum(bucket.take() for _ in range(300)) == 100  # one second's rate


# ------------------------------------------------------------------------------ held leases
def test_a_held_lease_has_no_window_and_no_auto_finish_and_ends_only_by_release():
    engine = LeaseEngine(Policy())
    engine.set_online("+79000000001", True)
    engine.open("hub-1", "+79000000001", "vk", 0.0, hold=86400.0)
    assert engine.tick(3600.0) == []  # no 20-minute window
    engine.sms_arrived("m1", "+79000000001", 3600.0)
    assert engine.tick(3600.0 + 15 * 60 + 1) == []  # no 15-minute auto-finish
    assert engine.get("hub-1").deadline == 86400.0  # SMS do not move the cap
    assert engine.release("hub-1", 4000.0)[-1].lease.state is LeaseState.FINISHED
    assert isinstance(engine.release("hub-1", 4001.0)[-1], Refused)  # ended: a second release changes nothing


def test_release_ends_a_held_lease_in_any_state_and_leaves_history_to_the_hub():
    engine = LeaseEngine(Policy())
    for n in ("+79000000001", "+79000000002"):
        engine.set_online(n, True)
    engine.open("hub-1", "+79000000001", "vk", 0.0, hold=86400.0)
    engine.open("hub-2", "+79000000002", "vk", 0.0, hold=86400.0)
    engine.sms_arrived("m1", "+79000000002", 10.0)
    assert engine.release("hub-1", 20.0)[-1].lease.state is LeaseState.CANCELLED
    assert engine.release("hub-2", 20.0)[-1].lease.state is LeaseState.FINISHED
    assert not engine.used_for("+79000000002", "vk", 30.0)  # the hub's status decides, not the engine
    engine.open("V1", "+79000000001", "vk", 30.0)
    assert isinstance(engine.release("V1", 31.0)[-1], Refused)  # a simgw.v1 lease is not the hub's to end


def test_the_activation_cap_ends_a_held_lease():
    engine = LeaseEngine(Policy())
    engine.set_online("+79000000001", True)
    engine.open("hub-1", "+79000000001", "vk", 0.0, hold=600.0)
    ended = engine.tick(600.0)
    assert ended and ended[0].lease.state is LeaseState.EXPIRED and ended[0].detail == "activation cap"


def test_a_held_lease_is_not_finished_cancelled_or_repeated_by_anyone_but_its_hub():
    engine = LeaseEngine(Policy())
    engine.set_online("+79000000001", True)
    engine.open("hub-1", "+79000000001", "vk", 0.0, hold=86400.0)
    engine.sms_arrived("m1", "+79000000001", 1.0)
    for command in (engine.finish, engine.cancel, engine.repeat):
        refused = command("hub-1", 2.0)[-1]
        assert isinstance(refused, Refused) and refused.code == "held_by_hub"
    assert engine.get("hub-1").state is LeaseState.RECEIVED
