"""The MIKEY base ticket (RFC 6043 Appendix A): the Ticket Data a KMS seals and later resolves.

Appendix A: "The Ticket Data SHALL be constructed of MIKEY payloads and SHALL be protected by a
MAC based on a pre-shared Ticket Protection Key (TPK)" -
``Ticket Data = THDR, T, RAND, KEMAC, [IDRpsk], V``:

* THDR (A.3): ``! Next Payload ! THDR Data length (16) ! THDR Data ~`` - always first, so it has
  no payload code of its own; its Next Payload names T.
* T: the time of issue; RAND: input to the TPK and MPK derivations (A.2.1, A.2.2).
* KEMAC: "SHALL use the NULL authentication algorithm, as a MAC is included in the V payload";
  encr_key/salt_key from the TPK (A.2.1); "If CSB ID is needed in the IV creation it SHALL be
  set to '0xFFFFFFFF'"; ``KEMAC = E(encr_key, MPK || {TEK|TGK|GTGK})``.
* IDRpsk: "an identifier that enables the KMS/Responder to retrieve the TPK".
* V: auth_key from the TPK; "The MAC SHALL be calculated over the entire TICKET payload except
  the Next Payload field (in the TICKET payload), the Initiator Data length field, the
  Initiator Data field, and the MAC field itself."

Whoever holds the TPK - the KMS - opens every ticket it sealed and so has the TGK of every
session keyed with it: :func:`open_base_ticket` is what a KMS's LI function runs (issue 14).
The ticket exchanges (REQUEST/TRANSFER/RESOLVE) that carry it are future work
(docs/mikey-kms.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ims.buffer import Buffer, BufferReadError
from ims.errors import EncodeError
from ims.mikey.constants import (
    EncrAlg,
    ErrorNo,
    IdType,
    KeyDataType,
    MacAlg,
    PayloadType,
    PrfFunc,
)
from ims.mikey.crypto import hmac_sha1_160, kemac_decrypt, kemac_encrypt, mac_equal
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import decode_subpayloads, encode_subpayloads
from ims.mikey.payloads import (
    KemacPayload,
    KeyDataPayload,
    Payload,
    RandPayload,
    TPayload,
    VPayload,
)
from ims.mikey.payloads_kms import IdRole, IdrPayload, TicketFlags, TicketPayload, TicketType
from ims.mikey.ticket import decode_chain
from ims.mikey.ticket_kdf import PRF_HMAC_SHA_256, prf_of, tpk_keys

CSB_ID_IN_TICKET = 0xFFFFFFFF  # A.1 "If CSB ID is needed in the IV creation ... '0xFFFFFFFF'"
MAC_LEN = 20  # HMAC-SHA-1-160 (the V payload's auth alg here)
BASE_SUBTYPE = 1  # §6.10 "Subtype = 0x01 and Version = 0x01 refers to MIKEY Base Ticket"
BASE_VERSION = 1
#: AES-KW would need a padding rule for the key chain (see ims.mikey.crypto); AES-CM-128 is
#: what A.1's IV sentence describes, NULL is for tests and inspection.
_ENCR_ALGS = (EncrAlg.AES_CM_128, EncrAlg.NULL)


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseTicketContents:
    """What the Ticket Data protects: the MPK and the session keys, and when/with what."""

    mpk: KeyDataPayload = field(repr=False)
    keys: tuple[KeyDataPayload, ...] = field(repr=False)  # TEK / TGK / GTGK
    issued: TPayload
    rand: bytes
    tpk_id: bytes | None = None  # IDRpsk
    thdr_data: bytes = b""


def _thdr(next_payload: int, data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise EncodeError("THDR Data longer than 16 bits can say")
    return bytes([next_payload]) + len(data).to_bytes(2, "big") + data


def _mac_input(ticket: TicketPayload) -> bytes:
    """The V MAC's coverage (Appendix A.1): TICKET body without Next Payload, without the
    Initiator Data length and field, and without the MAC itself."""
    buf = Buffer()
    ticket.encode_body(buf)
    body = buf.data()
    end = len(body) - 2 - len(ticket.initiator_data)  # end of Ticket Data
    return body[: end - MAC_LEN]


def seal_base_ticket(
    contents: BaseTicketContents,
    tpk: bytes,
    *,
    flags: TicketFlags,
    tp_data: bytes,
    prf: int = 0,
    encr_alg: EncrAlg = EncrAlg.AES_CM_128,
    initiator_data: bytes = b"",
) -> TicketPayload:
    """The KMS's side: a TICKET payload (granted policy + sealed base Ticket Data)."""
    if contents.mpk.key_type is not KeyDataType.MPK:
        raise EncodeError("the first key of a base ticket is the MPK")
    if encr_alg not in _ENCR_ALGS:
        raise EncodeError(f"{encr_alg.name} is not used for base tickets here")
    keys = tpk_keys(tpk, contents.rand, prf=prf_of(prf))
    plain = encode_subpayloads([contents.mpk, *contents.keys])
    kemac = KemacPayload(
        encr_alg=encr_alg,
        encr_data=kemac_encrypt(
            encr_alg,
            keys,
            plain,
            csb_id=CSB_ID_IN_TICKET,
            t_value=contents.issued.value_bytes(),
        ),
        mac_alg=MacAlg.NULL,
    )
    chain: list[Payload] = [contents.issued, RandPayload(data=contents.rand), kemac]
    if contents.tpk_id is not None:
        chain.append(IdrPayload(role=IdRole.PSK, id_type=IdType.BYTE_STRING, data=contents.tpk_id))
    chain.append(VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=bytes(MAC_LEN)))
    ticket_data = _thdr(PayloadType.T, contents.thdr_data) + encode_subpayloads(chain)
    unsigned = TicketPayload(
        ticket_type=TicketType.MIKEY_BASE,
        subtype=BASE_SUBTYPE,
        version=BASE_VERSION,
        prf=prf,
        flags=flags,
        tp_data=tp_data,
        ticket_data=ticket_data,
        initiator_data=initiator_data,
    )
    mac = hmac_sha1_160(keys.auth_key, _mac_input(unsigned))
    return TicketPayload(
        ticket_type=unsigned.ticket_type,
        subtype=unsigned.subtype,
        version=unsigned.version,
        prf=prf,
        flags=flags,
        tp_data=tp_data,
        ticket_data=ticket_data[:-MAC_LEN] + mac,
        initiator_data=initiator_data,
    )


def parse_ticket_data(ticket_data: bytes) -> tuple[bytes, tuple[Payload, ...]]:
    """(THDR Data, the payloads after THDR); MikeyDecodeError if malformed."""
    buf = Buffer(ticket_data)
    try:
        nxt = buf.pull_uint8()
        thdr_data = buf.pull_bytes(buf.pull_uint16())
    except BufferReadError as exc:
        raise MikeyDecodeError(f"truncated THDR: {exc}", offset=exc.offset) from None
    return thdr_data, decode_chain(bytes([nxt]) + ticket_data[buf.position :])


TpkLookup = Callable[[bytes | None], bytes | None]


def open_base_ticket(ticket: TicketPayload, tpk: bytes | TpkLookup) -> BaseTicketContents:
    """The resolving side (KMS, or a Responder sharing the TPK): check the V MAC and open the
    KEMAC. Raises MikeyError (``Invalid MAC`` for a wrong TPK or any altered covered byte) or
    MikeyDecodeError."""
    if (ticket.ticket_type, ticket.subtype, ticket.version) != (
        TicketType.MIKEY_BASE,
        BASE_SUBTYPE,
        BASE_VERSION,
    ):
        raise MikeyError("not a MIKEY base ticket", mikey_error=ErrorNo.UNSPECIFIED)
    if ticket.prf not in (PrfFunc.MIKEY_1, PRF_HMAC_SHA_256):
        raise MikeyError(f"unknown PRF func {ticket.prf}", mikey_error=ErrorNo.INVALID_PRF)
    thdr_data, chain = parse_ticket_data(ticket.ticket_data)
    t = next((p for p in chain if isinstance(p, TPayload)), None)
    rand = next((p.data for p in chain if isinstance(p, RandPayload)), None)
    kemac = next((p for p in chain if isinstance(p, KemacPayload)), None)
    ids = [p.data for p in chain if isinstance(p, IdrPayload) and p.role is IdRole.PSK]
    v = chain[-1] if chain else None
    if t is None or not rand or kemac is None:
        raise MikeyError("base ticket lacks T, RAND or KEMAC", mikey_error=ErrorNo.UNSPECIFIED)
    if not isinstance(v, VPayload) or v.auth_alg is not MacAlg.HMAC_SHA1_160:
        raise MikeyError("base ticket must end with a V payload", mikey_error=ErrorNo.INVALID_MAC)
    key = tpk(ids[0] if ids else None) if callable(tpk) else tpk
    if key is None:
        raise MikeyError("unknown TPK", mikey_error=ErrorNo.INVALID_ID)
    keys = tpk_keys(key, rand, prf=prf_of(ticket.prf))
    if not mac_equal(hmac_sha1_160(keys.auth_key, _mac_input(ticket)), v.data):
        raise MikeyError("base ticket MAC is wrong", mikey_error=ErrorNo.INVALID_MAC)
    if kemac.encr_alg not in _ENCR_ALGS:
        raise MikeyError("base ticket KEMAC encryption", mikey_error=ErrorNo.INVALID_EA)
    if kemac.mac_alg is not MacAlg.NULL:
        raise MikeyError("base ticket KEMAC must use the NULL MAC", mikey_error=ErrorNo.INVALID_HA)
    plain = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, csb_id=CSB_ID_IN_TICKET, t_value=t.value_bytes()
    )
    subs = decode_subpayloads(plain, PayloadType.KEY_DATA)
    kds = [p for p in subs if isinstance(p, KeyDataPayload)]
    if not kds or kds[0].key_type is not KeyDataType.MPK:
        raise MikeyError(
            "base ticket KEMAC does not start with the MPK", mikey_error=ErrorNo.UNSPECIFIED
        )
    return BaseTicketContents(
        mpk=kds[0],
        keys=tuple(kds[1:]),
        issued=t,
        rand=rand,
        tpk_id=ids[0] if ids else None,
        thdr_data=thdr_data,
    )


__all__ = [
    "CSB_ID_IN_TICKET",
    "BaseTicketContents",
    "open_base_ticket",
    "parse_ticket_data",
    "seal_base_ticket",
]
