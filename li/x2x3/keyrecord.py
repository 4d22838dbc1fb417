"""imslab key records on X2: :class:`li.keys.KeyRecord` carried to the LEMF (docs/li-extensions.md).

TS 103 221-2 carries IRI and content but has no payload for media keys; 33.107 clause 7A has
the network report SDES/KMS keys as IRI. imslab sends each :class:`li.keys.KeyRecord` (keys
for one sender of a call, or the reason there are none) as an X2 PDU with payload format 4
(Proprietary), direction 5 (not applicable) and a MIME Content Type attribute (type 19)
``application/vnd.imslab.key-record+json``. The payload is UTF-8 JSON:
``{"imslab_key_record": 1, **KeyRecord.to_dict()}``. Any TS 103 221-2 receiver can carry and
store it (tshark shows it as payload bytes); the LEMF recognises it by the content type.
"""

from __future__ import annotations

import json
import uuid

from li.keys import KeyRecord
from li.x2x3.pdu import (
    AttributeType,
    PayloadDirection,
    PayloadFormat,
    Pdu,
    X2X3DecodeError,
    mime_content_type,
    x2_pdu,
)

KEY_RECORD_CONTENT_TYPE = "application/vnd.imslab.key-record+json"
KEY_RECORD_VERSION = 1

__all__ = [
    "KEY_RECORD_CONTENT_TYPE",
    "KeyRecord",
    "decode_key_record",
    "is_key_record",
    "key_record_pdu",
]


def key_record_pdu(xid: uuid.UUID, correlation_id: int, record: KeyRecord) -> Pdu:
    """The X2 PDU carrying ``record`` (format 4 Proprietary, direction not applicable)."""
    body = {"imslab_key_record": KEY_RECORD_VERSION, **record.to_dict()}
    return x2_pdu(
        xid=xid,
        correlation_id=correlation_id,
        payload=json.dumps(body, separators=(",", ":")).encode(),
        direction=PayloadDirection.NOT_APPLICABLE,
        payload_format=PayloadFormat.PROPRIETARY,
        attributes=(mime_content_type(KEY_RECORD_CONTENT_TYPE),),
    )


def is_key_record(pdu: Pdu) -> bool:
    ctype = pdu.opaque(AttributeType.MIME_CONTENT_TYPE)
    return (
        pdu.payload_format == PayloadFormat.PROPRIETARY
        and ctype is not None
        and ctype.decode("latin-1").split(";")[0].strip().lower() == KEY_RECORD_CONTENT_TYPE
    )


def decode_key_record(pdu: Pdu) -> KeyRecord | None:
    """The key record in ``pdu``; ``None`` when it is not one; X2X3DecodeError if malformed."""
    if not is_key_record(pdu):
        return None
    try:
        obj = json.loads(pdu.payload.decode("utf-8"))
        if not isinstance(obj, dict):
            raise X2X3DecodeError("key record payload is not a JSON object")
        if obj.pop("imslab_key_record", None) != KEY_RECORD_VERSION:
            raise X2X3DecodeError("missing or unsupported imslab_key_record version")
        return KeyRecord.from_dict(obj)
    except X2X3DecodeError:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise X2X3DecodeError(f"bad key record: {exc}") from exc
