"""Opening MIKEY at the LEMF with a secret the task provides (study 2.2.1/2.2.2: known PSK).

A :data:`~li.lemf.call.KeyPolicy` built by :func:`mikey_psk_policy` finds the MIKEY message in
the intercepted offer's ``a=key-mgmt`` (RFC 4567, media level first), opens it with the PSK
(``ims.mikey.inspect.open_message``: KEMAC decrypted with the PSK-derived transport keys, MAC
checked) and returns one :class:`li.keys.KeyRecord` per crypto session: the initiator's
streams are the offerer's, the responder's the answerer's (RFC 3830 CS ID map convention).
A wrong PSK gives an *unavailable* record with the MIKEY error, never an exception.
"""

from __future__ import annotations

from ims.errors import ImsError
from ims.media.keys import SrtpKeys
from ims.mikey.inspect import open_message
from ims.mikey.policy import Sender as MikeySender
from ims.mikey.sdp import find_key_mgmt
from li.keys import KeyRecord, KeySource, Sender, unavailable
from li.lemf.call import KeyPolicy


def _mikey_of(sdp: bytes) -> bytes | None:
    text = sdp.decode("utf-8", "replace")
    for i in range(8):  # the first m-line carrying one, then the session level
        data = find_key_mgmt(text, i)
        if data is not None:
            return data
    return find_key_mgmt(text, None)


def mikey_psk_policy(psk: bytes, *, source: KeySource = KeySource.MIKEY_PSK_PUBLIC) -> KeyPolicy:
    """A key policy opening MIKEY-PSK offers with ``psk``."""

    def policy(call_id: str, offer: bytes, answer: bytes | None) -> list[KeyRecord]:
        data = _mikey_of(offer)
        if data is None:
            return []
        try:
            opened = open_message(data, psk=psk)
        except (ImsError, ValueError) as exc:
            return [unavailable(call_id, f"MIKEY not opened with the task's PSK: {exc}")]
        out = []
        for k in opened.keys:
            out.append(
                KeyRecord(
                    call_id=call_id,
                    source=source,
                    sender=Sender.OFFERER if k.sender is MikeySender.INITIATOR else Sender.ANSWERER,
                    keys=SrtpKeys(
                        suite=str(k.suite),
                        master_key=k.master_key,
                        master_salt=k.master_salt,
                        roc=k.roc,
                    ),
                    ssrc=k.ssrc or None,
                )
            )
        return out

    return policy
