"""The ``a=key-mgmt`` attribute (RFC 4567 §3.1): ``key-mgmt:<prtcl-id> <keymgmt-data>``.

For MIKEY, ``prtcl-id`` is ``mikey`` and the data is the base64 of the MIKEY message
(the MIKEY codec itself lives in :mod:`ims.mikey`). The attribute may stand at session level,
media level or both (media level wins for its m-line); tshark only dissects it at session level.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ims.sdp.errors import SdpError

_PRTCL = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+")  # token (RFC 4567 §3.1)
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyMgmtAttribute:
    protocol: str  # "mikey"
    data: bytes  # decoded keymgmt-data (the MIKEY message)

    @classmethod
    def parse(cls, value: str) -> KeyMgmtAttribute:
        fields = value.strip().split()
        if len(fields) != 2:
            raise SdpError(f"a=key-mgmt needs '<prtcl-id> <data>', got {len(fields)} fields")
        prtcl, b64 = fields
        if not _PRTCL.fullmatch(prtcl) or not _B64.fullmatch(b64):
            raise SdpError("bad a=key-mgmt prtcl-id or base64 data")
        try:
            data = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SdpError(f"bad base64 in a=key-mgmt: {exc}") from None
        return cls(protocol=prtcl, data=data)

    def encode(self) -> str:
        return f"{self.protocol} {base64.b64encode(self.data).decode('ascii')}"

    def __str__(self) -> str:
        return self.encode()
