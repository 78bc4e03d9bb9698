"""The simulator's control API: HTTP+JSON on loopback, on asyncio streams (no framework needed).

``GET /modems``; ``POST /modems/{id}/sms`` with ``{"sender", "text"}`` or ``{"pdu"}`` (201);
``POST /modems/{id}/fault`` with ``{"kind", "seconds"?, "data_hex"?}`` (202);
``GET /modems/{id}`` for storage and held counts; ``GET /quirks`` lists the quirk catalogue;
``POST /modems/{id}/quirks`` with ``{"keys": [...]}`` gives a modem another set of catalogue quirks
(it restarts to play them from boot; 202), ``[]`` clears them.
"""

from __future__ import annotations

import re

from drivers.httpjson import Handler, HttpError, HttpRequest
from drivers.simulator.catalogue import load_catalogue
from drivers.simulator.farm import FaultError, ModemFarm
from drivers.simulator.quirks import QuirkError
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu

_MODEM_RE = re.compile(r"^/modems/(\d+)(?:/(sms|fault|quirks))?$")


def farm_handler(farm: ModemFarm) -> Handler:
    async def handle(request: HttpRequest) -> tuple[int, object]:
        if request.path == "/modems":
            if request.method != "GET":
                raise HttpError(405, "use GET")
            return 200, [info.as_json() for info in farm.info()]
        if request.path == "/quirks":
            if request.method != "GET":
                raise HttpError(405, "use GET")
            return 200, [{"key": e.key, "profile": e.profile, "family": e.family, "does": e.does,
                          "sources": [s.url or s.ref for s in e.sources]} for e in farm.catalogue or load_catalogue()]
        match = _MODEM_RE.match(request.path)
        if match is None:
            raise HttpError(404, f"no route {request.path}")
        modem_id, action = int(match.group(1)), match.group(2)
        try:
            modem = farm.modem(modem_id)
        except KeyError as exc:
            raise HttpError(404, str(exc.args[0])) from None
        if action is None:
            engine = modem.engine
            return 200, {**farm.info()[modem_id].as_json(), "stored": len(engine.storage),
                         "held": len(engine.network_queue), "plugged": modem.plugged}
        if request.method != "POST":
            raise HttpError(405, "use POST")
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        if action == "sms":
            return 201, _inject_sms(farm, modem_id, body)
        if action == "quirks":
            return 202, _set_quirks(farm, modem_id, body)
        kind = body.get("kind")
        if not isinstance(kind, str):
            raise HttpError(400, "fault needs a string 'kind'")
        seconds = body.get("seconds", 2.0)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise HttpError(400, "'seconds' must be a non-negative number")
        data = None
        if "data_hex" in body:
            try:
                data = bytes.fromhex(str(body["data_hex"]))
            except ValueError:
                raise HttpError(400, "'data_hex' is not hex") from None
        try:
            farm.inject_fault(modem_id, kind, seconds=float(seconds), data=data)
        except FaultError as exc:
            raise HttpError(400, str(exc)) from None
        return 202, {"modem": modem_id, "fault": kind}

    return handle


def _set_quirks(farm: ModemFarm, modem_id: int, body: dict) -> dict[str, object]:
    keys = body.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise HttpError(400, "give {'keys': [catalogue quirk keys]} ([] clears them)")
    try:
        farm.set_quirks(modem_id, keys)
    except QuirkError as exc:
        raise HttpError(400, str(exc)) from None
    return {"modem": modem_id, "quirks": keys}


def _inject_sms(farm: ModemFarm, modem_id: int, body: dict) -> dict[str, object]:
    if "pdu" in body:
        pdu = body["pdu"]
        if not isinstance(pdu, str):
            raise HttpError(400, "'pdu' must be a hex string")
        try:
            decoded = decode_pdu(pdu)
        except PduError as exc:
            raise HttpError(400, f"bad PDU: {exc}") from None
        if not isinstance(decoded, SmsDeliver):
            raise HttpError(400, "the PDU is not an SMS-DELIVER")
        farm.send_pdu(modem_id, pdu.strip().upper())
        return {"modem": modem_id, "pdus": [pdu.strip().upper()]}
    sender, text = body.get("sender"), body.get("text")
    if not isinstance(sender, str) or not sender or not isinstance(text, str):
        raise HttpError(400, "give {'sender', 'text'} or {'pdu'}")
    try:
        pdus = farm.send_sms(modem_id, sender, text, shuffle=bool(body.get("shuffle", False)),
                             ref_bits=16 if body.get("ref_bits") == 16 else 8)
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None
    return {"modem": modem_id, "pdus": pdus}
