"""JSON views of decoded and assembled SMS, shared by ``simgw pdu decode`` and ``simgw listen``."""

from __future__ import annotations

from drivers.sms.assembly import AssembledSms
from drivers.sms.pdu import Decoded, Encoding, SmsDeliver, StatusReport


def decoded_json(decoded: Decoded) -> dict[str, object]:
    if isinstance(decoded, StatusReport):
        return {
            "type": "status-report", "reference": decoded.reference, "recipient": decoded.recipient,
            "timestamp": decoded.timestamp.isoformat(), "discharge": decoded.discharge.isoformat(),
            "status": decoded.status, "smsc": decoded.smsc,
        }
    assert isinstance(decoded, SmsDeliver)
    out: dict[str, object] = {
        "type": "deliver", "sender": decoded.sender, "sender_type": decoded.sender_type.value,
        "text": decoded.text, "timestamp": decoded.timestamp.isoformat(), "encoding": decoded.encoding.value,
        "concat": ({"ref": decoded.concat.ref, "part": decoded.concat.part, "total": decoded.concat.total}
                   if decoded.concat else None),
        "smsc": decoded.smsc,
    }
    if decoded.encoding is Encoding.DATA_8BIT:
        out["data_hex"] = decoded.payload.hex()
    return out


def assembled_json(sms: AssembledSms, *, port: str, iccid: str) -> dict[str, object]:
    out: dict[str, object] = {
        "port": port, "iccid": iccid, "sender": sms.sender, "text": sms.text,
        "timestamp": sms.timestamp.isoformat(), "parts": sms.parts, "encoding": sms.encoding.value,
    }
    if not sms.complete:
        out["incomplete"] = True
        out["missing_parts"] = list(sms.missing_parts)
    if sms.encoding is Encoding.DATA_8BIT:
        out["data_hex"] = sms.data.hex()
    return out
