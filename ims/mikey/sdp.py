"""MIKEY in SDP: ``a=key-mgmt:mikey <base64>`` (RFC 4567 §3.1, §3.2).

``key-mgmt-attribute = "key-mgmt:" prtcl-id SP keymgmt-data`` with prtcl-id ``mikey`` and the
MIKEY message base64-encoded (RFC 4567 §3.1). The attribute may stand at session level, at
media level, or both; a media-level attribute applies to its m-line and overrides the session
one (RFC 4567 §3.2). The offer carries the I_MESSAGE, the answer the R_MESSAGE (or an Error
message) (§3.3). tshark 4.0 dissects the MIKEY payload only at session level (see
docs/mikey.md), so the lab puts it there by default. The structured ``a=key-mgmt`` attribute
model of the SDP stack lives in ims.sdp; these helpers work on plain strings so ims.mikey
depends on nothing above it.
"""

from __future__ import annotations

import base64
import binascii

PROTOCOL_ID = "mikey"


def key_mgmt_value(message: bytes) -> str:
    """The attribute value: ``mikey <base64>``."""
    return f"{PROTOCOL_ID} {base64.b64encode(message).decode('ascii')}"


def key_mgmt_attribute(message: bytes) -> str:
    """The whole SDP line without CRLF: ``a=key-mgmt:mikey <base64>``."""
    return "a=key-mgmt:" + key_mgmt_value(message)


def parse_key_mgmt_value(value: str) -> bytes | None:
    """The MIKEY message of an ``a=key-mgmt`` value, or None for another prtcl-id/bad base64."""
    parts = value.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != PROTOCOL_ID:
        return None
    try:
        return base64.b64decode(parts[1].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def find_key_mgmt(sdp: str, media_index: int | None = None) -> bytes | None:
    """The MIKEY message for m-line ``media_index`` (media level first, then session level);
    with ``media_index=None`` only the session level is searched."""
    session: bytes | None = None
    media: list[bytes | None] = []
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            media.append(None)
        elif line.startswith("a=key-mgmt:"):
            found = parse_key_mgmt_value(line[len("a=key-mgmt:") :])
            if found is None:
                continue
            if media:
                if media[-1] is None:
                    media[-1] = found
            elif session is None:
                session = found
    if media_index is not None and 0 <= media_index < len(media) and media[media_index] is not None:
        return media[media_index]
    return session
