"""Look inside MIKEY messages: a JSON-able description, and key extraction with known secrets.

:func:`open_message` is what the LI helper uses where the study says passive interception
works (known PSK, hop-by-hop PSK at the intermediary, PKE case C with escrowed private keys,
RSA-R with the initiator's private key): it derives the transport keys (RFC 3830 §4.1.4),
checks the KEMAC MAC when it can, decrypts the KEMAC (§4.2.3) and derives TEK/salt per crypto
session (§4.1.3). It does no signature, certificate or replay checks. For DH modes it derives
the TGK only when given one side's DH private key and both messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ims.mikey.constants import DataType, EncrAlg, ErrorNo, MacAlg, PayloadType
from ims.mikey.crypto import DhKeyPair, envelope_decrypt, hmac_sha1_160, mac_equal
from ims.mikey.errors import MikeyError
from ims.mikey.kdf import TransportKeys, derive_transport_keys
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.base import derive_session_keys
from ims.mikey.modes.pk import kemac_mac_input
from ims.mikey.modes.psk import open_kemac, tgk_from_sub_payloads
from ims.mikey.payloads import (
    DhPayload,
    KemacPayload,
    Payload,
    PkePayload,
    RandPayload,
    SpPayload,
    TPayload,
)
from ims.mikey.policy import SrtpKeyMaterial


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"payload": type(value).__name__}
        for f in fields(value):
            out[f.name] = _jsonable(getattr(value, f.name))
        return out
    return value


def describe(msg: MikeyMessage) -> dict[str, Any]:
    """Every field of every payload, enums by name, bytes as hex."""
    return {"hdr": _jsonable(msg.hdr), "payloads": [_jsonable(p) for p in msg.payloads]}


def describe_keys(keys: Sequence[SrtpKeyMaterial]) -> list[dict[str, Any]]:
    return [
        {
            "cs_id": k.cs_id,
            "ssrc": f"{k.ssrc:#010x}",
            "roc": k.roc,
            "sender": k.sender.value,
            "suite": k.suite.value,
            "master_key": k.master_key.hex(),
            "master_salt": k.master_salt.hex(),
        }
        for k in keys
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedMessage:
    message: MikeyMessage
    transport_keys: TransportKeys | None
    sub_payloads: tuple[Payload, ...]
    tgk: bytes | None = field(repr=False)
    keys: tuple[SrtpKeyMaterial, ...]


_FIRST_SUB = {
    DataType.PSK_INIT: PayloadType.KEY_DATA,
    DataType.PK_INIT: PayloadType.ID,
    DataType.RSA_R_RESP: PayloadType.ID,
}


def open_message(
    data: bytes,
    *,
    psk: bytes | None = None,
    private_key: rsa.RSAPrivateKey | None = None,
    rand: bytes | None = None,
    dh_private: DhKeyPair | None = None,
    peer_dh_value: bytes | None = None,
) -> OpenedMessage:
    """Recover TGK and SRTP keys from one message given the secret that protects it.

    ``rand`` is needed for RSA-R responses (the RAND is in the I_MESSAGE). For DH/DHHMAC pass
    ``dh_private`` (one side's key pair) and ``peer_dh_value`` (the other side's DH value).
    """
    msg = decode_message(data)
    dt = msg.data_type
    r = msg.find(RandPayload)
    rand_v = r.data if r is not None else rand
    t = msg.find(TPayload)
    if dt in (DataType.DH_INIT, DataType.DH_RESP, DataType.DHHMAC_INIT, DataType.DHHMAC_RESP):
        if dh_private is None or peer_dh_value is None or rand_v is None:
            return OpenedMessage(
                message=msg, transport_keys=None, sub_payloads=(), tgk=None, keys=()
            )
        tgk = dh_private.shared_secret(peer_dh_value)
        return OpenedMessage(
            message=msg,
            transport_keys=None,
            sub_payloads=(),
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk,
                csb_id=msg.hdr.csb_id,
                rand=rand_v,
                cs_map=msg.hdr.cs_map,
                policies=msg.find_all(SpPayload),
            ),
        )
    first = _FIRST_SUB.get(dt)
    kemac = msg.find(KemacPayload)
    if first is None or kemac is None or t is None or rand_v is None:
        return OpenedMessage(message=msg, transport_keys=None, sub_payloads=(), tgk=None, keys=())
    inkey: bytes | None = None
    if dt is DataType.PSK_INIT:
        inkey = psk
    else:
        pke = msg.find(PkePayload)
        if private_key is not None and pke is not None:
            inkey = envelope_decrypt(private_key, pke.data)
    tkeys = derive_transport_keys(inkey, msg.hdr.csb_id, rand_v) if inkey else None
    if tkeys is not None and kemac.mac_alg is MacAlg.HMAC_SHA1_160:
        mac_in = data[:-20] if dt is DataType.PSK_INIT else kemac_mac_input(kemac)
        if not mac_equal(hmac_sha1_160(tkeys.auth_key, mac_in), kemac.mac):
            raise MikeyError("KEMAC MAC is wrong for this key", mikey_error=ErrorNo.INVALID_MAC)
    if tkeys is None and kemac.encr_alg is not EncrAlg.NULL:
        return OpenedMessage(message=msg, transport_keys=None, sub_payloads=(), tgk=None, keys=())
    subs = open_kemac(kemac, tkeys, csb_id=msg.hdr.csb_id, t=t, first=first)
    tgk, teks, tgk_salt = tgk_from_sub_payloads(subs)
    return OpenedMessage(
        message=msg,
        transport_keys=tkeys,
        sub_payloads=subs,
        tgk=tgk,
        keys=derive_session_keys(
            tgk=tgk,
            csb_id=msg.hdr.csb_id,
            rand=rand_v,
            cs_map=msg.hdr.cs_map,
            policies=msg.find_all(SpPayload),
            tek_override=teks,
            salt_override=tgk_salt,
        ),
    )


__all__ = ["DhPayload", "OpenedMessage", "describe", "describe_keys", "open_message"]
