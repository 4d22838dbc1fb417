"""The MIKEY base ticket (RFC 6043 Appendix A): sealed by a KMS with its TPK, opened by whoever
holds the TPK; the layout, the KEMAC, the MAC coverage and the refusals."""

from __future__ import annotations

import pytest

from ims.buffer import Buffer
from ims.mikey import kdf
from ims.mikey.constants import EncrAlg, IdType, KeyDataType, KvType, MacAlg, PayloadType, TsType
from ims.mikey.crypto import kemac_decrypt
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import decode_subpayloads
from ims.mikey.payloads import KemacPayload, KeyDataPayload, RandPayload, TPayload, VPayload
from ims.mikey.payloads_kms import (
    KMS_DECODERS,
    IdRole,
    IdrPayload,
    TicketFlags,
    TicketPayload,
)
from ims.mikey.ticket import encode_chain
from ims.mikey.ticket_base import (
    CSB_ID_IN_TICKET,
    BaseTicketContents,
    open_base_ticket,
    parse_ticket_data,
    seal_base_ticket,
)
from ims.mikey.ticket_kdf import mpk_pair, tpk_keys

TPK = bytes(range(32))
RAND = b"\x42" * 16
ISSUED = TPayload(ts_type=TsType.NTP_UTC, value=0xEB0B_5E00_0000_0000)
MPK = KeyDataPayload(
    key_type=KeyDataType.MPK, key=b"\x10" * 16, kv_type=KvType.SPI, kv_data=b"\x01\x07"
)
TGK = KeyDataPayload(
    key_type=KeyDataType.TGK, key=b"\x20" * 16, kv_type=KvType.SPI, kv_data=b"\x01\x08"
)
FLAGS = TicketFlags.D | TicketFlags.E | TicketFlags.F | TicketFlags.G | TicketFlags.H
TP_DATA = encode_chain(
    [IdrPayload(role=IdRole.RESPONDER, id_type=IdType.URI, data=b"sip:bob@ims.lab")]
)


def contents(**kw: object) -> BaseTicketContents:
    args: dict[str, object] = {
        "mpk": MPK,
        "keys": (TGK,),
        "issued": ISSUED,
        "rand": RAND,
        "tpk_id": b"\x00\x01",
        "thdr_data": b"lab",
    }
    args.update(kw)
    return BaseTicketContents(**args)  # type: ignore[arg-type]


def sealed(**kw: object) -> TicketPayload:
    return seal_base_ticket(contents(), TPK, flags=FLAGS, tp_data=TP_DATA, **kw)  # type: ignore[arg-type]


def test_ticket_data_layout() -> None:
    """Appendix A "Ticket Data = THDR, T, RAND, KEMAC, [IDRpsk], V"; A.3 THDR "! Next Payload !
    THDR Data length ! THDR Data ~"; §6.10 "Subtype = 0x01 and Version = 0x01 refers to MIKEY
    Base Ticket"; A.1 "The KEMAC payload SHALL use the NULL authentication algorithm"."""
    t = sealed()
    assert (t.ticket_type, t.subtype, t.version) == (1, 1, 1)
    assert t.ticket_data[:6] == bytes([PayloadType.T]) + b"\x00\x03lab"
    thdr, chain = parse_ticket_data(t.ticket_data)
    assert thdr == b"lab"
    assert [type(p) for p in chain] == [TPayload, RandPayload, KemacPayload, IdrPayload, VPayload]
    assert chain[0] == ISSUED and chain[1] == RandPayload(data=RAND)
    kemac = chain[2]
    assert isinstance(kemac, KemacPayload) and kemac.mac_alg is MacAlg.NULL
    assert kemac.encr_alg is EncrAlg.AES_CM_128 and MPK.key not in t.ticket_data
    idr = chain[3]
    assert isinstance(idr, IdrPayload) and idr.role is IdRole.PSK and idr.data == b"\x00\x01"


def test_kemac_is_mpk_then_keys_under_tpk_keys() -> None:
    """A.1 "KEMAC = E(encr_key, MPK || {TEK|TGK|GTGK})", encr_key and salt_key from the TPK
    (A.2.1), "If CSB ID is needed in the IV creation it SHALL be set to '0xFFFFFFFF'"."""
    t = sealed()
    _, chain = parse_ticket_data(t.ticket_data)
    kemac = chain[2]
    assert isinstance(kemac, KemacPayload)
    keys = tpk_keys(TPK, RAND)
    plain = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, csb_id=CSB_ID_IN_TICKET, t_value=ISSUED.value_bytes()
    )
    assert decode_subpayloads(plain, PayloadType.KEY_DATA) == (MPK, TGK)
    wrong_iv = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, csb_id=0, t_value=ISSUED.value_bytes()
    )
    assert wrong_iv != plain


def test_open_round_trip_and_mpk_pair() -> None:
    """The KMS (or a Responder sharing the TPK) opens the ticket; MPKi/MPKr follow from the MPK
    and the ticket's RAND (A.2.2)."""
    got = open_base_ticket(sealed(), TPK)
    assert got.mpk == MPK and got.keys == (TGK,) and got.rand == RAND and got.issued == ISSUED
    assert got.tpk_id == b"\x00\x01" and got.thdr_data == b"lab"
    mpki, mpkr = mpk_pair(got.mpk.key, got.rand)
    assert len(mpki) == len(mpkr) == 16 and mpki != mpkr
    # the TPK found by IDRpsk (A.1 "IDRpsk contains an identifier that enables the
    # KMS/Responder to retrieve the TPK")
    assert open_base_ticket(sealed(), {b"\x00\x01": TPK}.get).keys == (TGK,)


def test_ticket_payload_codec_round_trip() -> None:
    """The sealed TICKET payload survives its §6.10 codec byte for byte."""
    t = sealed(
        initiator_data=encode_chain([VPayload(auth_alg=MacAlg.HMAC_SHA1_160, data=bytes(20))])
    )
    buf = Buffer()
    t.encode_body(buf)
    assert KMS_DECODERS[PayloadType.TICKET](Buffer(buf.data())) == t


def test_mac_coverage() -> None:
    """A.1 "The MAC SHALL be calculated over the entire TICKET payload except the Next Payload
    field (in the TICKET payload), the Initiator Data length field, the Initiator Data field,
    and the MAC field itself": the granted policy and Ticket Data are covered, the Initiator
    Data is not."""
    t = sealed()

    def variant(**kw: object) -> TicketPayload:
        fields = {
            "ticket_type": t.ticket_type,
            "subtype": t.subtype,
            "version": t.version,
            "prf": t.prf,
            "flags": t.flags,
            "tp_data": t.tp_data,
            "ticket_data": t.ticket_data,
            "initiator_data": t.initiator_data,
        }
        fields.update(kw)
        return TicketPayload(**fields)  # type: ignore[arg-type]

    assert open_base_ticket(variant(initiator_data=b"\x00"), TPK).keys == (TGK,)
    for bad in (
        variant(flags=FLAGS | TicketFlags.J),  # reuse allowed: a policy change
        variant(tp_data=encode_chain([])),
        variant(ticket_data=t.ticket_data[:8] + bytes([t.ticket_data[8] ^ 1]) + t.ticket_data[9:]),
        variant(ticket_data=t.ticket_data[:-1] + bytes([t.ticket_data[-1] ^ 1])),
    ):
        with pytest.raises((MikeyError, MikeyDecodeError)):
            open_base_ticket(bad, TPK)


def test_wrong_tpk_and_unknown_tpk() -> None:
    """Only the TPK holder opens the ticket: a wrong TPK is an Invalid MAC, an unknown TPK id
    an Invalid ID."""
    with pytest.raises(MikeyError) as exc:
        open_base_ticket(sealed(), b"\x00" * 32)
    assert exc.value.mikey_error == 3  # Invalid MAC
    with pytest.raises(MikeyError) as exc:
        open_base_ticket(sealed(), {}.get)
    assert exc.value.mikey_error == 7  # Invalid ID


def test_prf_hmac_sha256_tickets() -> None:
    """The TPK derivation uses "the PRF indicated in the Ticket Policy" (A.2.1): PRF func 1."""
    t = sealed(prf=1)
    assert t.prf == 1 and open_base_ticket(t, TPK).keys == (TGK,)


def test_kms_gets_the_session_keys_of_a_transfer() -> None:
    """Why the KMS is the LI point of MIKEY-TICKET: from a TRANSFER_INIT's TICKET alone, the
    TPK holder gets the TGK, and from it (RFC 6043 §5.1.3) the TEKs of the session."""
    from ims.mikey.ticket_kdf import session_key

    got = open_base_ticket(sealed(), TPK)
    tgk = got.keys[0].key
    tek = session_key(tgk, 1, kdf.CONST_TEK, 16, randri=b"\x99" * 16)
    assert tek == session_key(TGK.key, 1, kdf.CONST_TEK, 16, randri=b"\x99" * 16)


def test_not_a_base_ticket_and_malformed() -> None:
    """§6.10 Ticket Type 1 with subtype/version 1 only; a truncated Ticket Data is an error."""
    t = sealed()
    other = TicketPayload(
        ticket_type=2,
        subtype=1,
        version=1,
        prf=0,
        flags=FLAGS,
        tp_data=b"\x00",
        ticket_data=t.ticket_data,
    )
    with pytest.raises(MikeyError):
        open_base_ticket(other, TPK)
    for cut in (0, 2, 10, len(t.ticket_data) - 1):
        truncated = TicketPayload(
            ticket_type=1,
            subtype=1,
            version=1,
            prf=0,
            flags=FLAGS,
            tp_data=b"\x00",
            ticket_data=t.ticket_data[:cut],
        )
        with pytest.raises((MikeyError, MikeyDecodeError)):
            open_base_ticket(truncated, TPK)
