"""Issue 12, item by item: each test quotes the RFC clause it checks (RFC texts in
``../shared/reference/rfc/``: 3830, 4650, 4738, 4567, 3394).

Forged responses are built by re-signing (or re-MACing) a real message with the real key, so
that only the property under test is wrong and every earlier check passes.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from ims.mikey.aio_certurl import PKIX_CERT, http_resolver
from ims.mikey.certs import Credentials, certificate_der
from ims.mikey.constants import (
    CertType,
    DataType,
    EncrAlg,
    ErrorNo,
    GenExtType,
    IdType,
    KeyDataType,
    MacAlg,
    PayloadType,
    SignType,
    TsType,
)
from ims.mikey.crypto import (
    DEFAULT_SIGN_HASH,
    MAC_LEN,
    aes_kw_unwrap,
    aes_kw_wrap,
    hmac_sha1_160,
    kemac_decrypt,
)
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import (
    CONST_TRANSPORT_SALT,
    TRANSPORT_CS_ID,
    derive_transport_keys,
    make_label,
    prf,
)
from ims.mikey.message import MikeyMessage, decode_message, decode_subpayloads
from ims.mikey.modes import base
from ims.mikey.modes.base import choose_csb_id, error_message, timestamp
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pk import kemac_with_mac, signed_message
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder, build_kemac
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder, signr_extra
from ims.mikey.payloads import (
    CertPayload,
    ChashPayload,
    ErrPayload,
    GeneralExtPayload,
    HdrPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    Payload,
    RandPayload,
    SignPayload,
    TPayload,
    VPayload,
)

from .conftest import NOW, Pki

A, B = "sip:alice@ims.lab", "sip:bob@ims.lab"
PSK = b"0123456789abcdef"
RFC_DIR = Path(__file__).resolve().parents[4] / "shared" / "reference" / "rfc"


def resign(
    data: bytes,
    creds: Credentials,
    change: Callable[[list[Payload]], list[Payload]] = lambda p: p,
    *,
    hdr: Callable[[HdrPayload], HdrPayload] = lambda h: h,
    extra: Callable[[MikeyMessage], bytes] = lambda m: b"",
) -> bytes:
    """``data`` with its payloads changed and signed again with ``creds`` (a forgery by the
    key holder: only the property under test is wrong)."""
    msg = decode_message(data)
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload)
    payloads = change(list(msg.payloads[:-1]))
    new = MikeyMessage(hdr=hdr(msg.hdr), payloads=tuple(payloads))
    return signed_message(new.hdr, payloads, creds, sig.sign_type, extra=extra(new))


def rsa_r_pair(pki: Pki, **kw: object) -> tuple[RsaRInitiator, bytes, bytes]:
    ini = RsaRInitiator(credentials=pki.alice, trust=pki.trust, idi=A, idr=B, **kw)  # type: ignore[arg-type]
    offer = ini.initiate(NOW)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust, idr=B).receive(offer, NOW)
    assert reply.message is not None and reply.ok, reply.error
    return ini, offer, reply.message


def _signr_extra_of(msg: MikeyMessage) -> bytes:
    ids = [p.data for p in msg.find_all(IdPayload)]
    t = msg.find(TPayload)
    assert t is not None
    return signr_extra(ids[0], ids[1], t)


# ------------------------------------------------------------------------- 1. RSA-R
def test_rsa_r_signr_covers_r_message_ids_and_t(pki: Pki) -> None:
    """RFC 4738 §3.6: "To compute the signature that goes in the SIGNr payload, the Responder
    MUST sign: R_MESSAGE (excluding the SIGNr payload itself) || IDi || IDr || T. Note that the
    added identities and timestamp are identical to those transported in the ID and T
    payloads." Checked with ``cryptography`` directly, not through our verifier."""
    _, offer, r = rsa_r_pair(pki)
    msg = decode_message(r)
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload)
    ids = [p.data for p in msg.find_all(IdPayload)]
    assert ids[:2] == [A.encode(), B.encode()]  # IDi and IDr in clear, in that order
    t = msg.find(TPayload)
    assert t is not None and t.ts_type is TsType.NTP_UTC
    body = r[: -len(sig.signature)]  # the SIGN header (S type, length) stays in (§5.2)
    signed = body + A.encode() + B.encode() + t.value.to_bytes(8, "big")
    pub = pki.bob.certificate.public_key()
    pub.verify(sig.signature, signed, padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr,call-arg,arg-type]
    for wrong in (body, body[:-2] + A.encode() + B.encode() + t.value.to_bytes(8, "big")):
        with pytest.raises(InvalidSignature):
            pub.verify(sig.signature, wrong, padding.PKCS1v15(), hashes.SHA1())  # type: ignore[union-attr,call-arg,arg-type]


def test_rsa_r_signr_matches_minisip_sign_data_rule(pki: Pki) -> None:
    """The SIGN-header question, checked against the one other RSA-R implementation
    (minisip libmikey, ``MikeyPayloads::buildSignData(sigLength, useIdsT=true)``, read, not
    copied): the raw message minus ``sigLength`` bytes, then the data of the message's
    ID payload #0 and #1 (``extractIdVec(0)``, ``extractIdVec(1)``), then the T payload's
    64-bit value (``tsToVec``). RFC 3830 §5.2: "Calculate the MAC/signature over the entire
    MIKEY message, except the MAC/Signature field"."""
    _, _, r = rsa_r_pair(pki)
    msg = decode_message(r)
    sig = msg.payloads[-1]
    assert isinstance(sig, SignPayload)
    ids = [p.data for p in msg.payloads if isinstance(p, IdPayload)]
    t = msg.find(TPayload)
    assert t is not None
    minisip_sign_data = r[: len(r) - len(sig.signature)] + ids[0] + ids[1] + t.value_bytes()
    pki.bob.certificate.public_key().verify(  # type: ignore[union-attr,call-arg]
        sig.signature,
        minisip_sign_data,
        padding.PKCS1v15(),  # type: ignore[arg-type]
        hashes.SHA1(),  # type: ignore[arg-type]
    )


def test_rsa_r_t_is_echoed_and_checked(pki: Pki) -> None:
    """RFC 4738 §3.6: "The T payload is exactly the same as that received in the I_MESSAGE."
    A response carrying another T (validly signed by the responder) is refused."""
    ini, offer, r = rsa_r_pair(pki)
    assert decode_message(r).find(TPayload) == decode_message(offer).find(TPayload)
    forged = resign(
        r,
        pki.bob,
        lambda ps: [timestamp(NOW + 1) if isinstance(p, TPayload) else p for p in ps],
        extra=_signr_extra_of,
    )
    with pytest.raises(MikeyError) as exc:
        ini.receive(forged, NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_TS
    ini2, _, r2 = rsa_r_pair(pki)
    assert ini2.receive(r2, NOW).keys


def test_rsa_r_v_bit_is_set_and_ignored(pki: Pki) -> None:
    """RFC 4738 §3.4: "The V bit MUST be set to '1' and ignored by the Responder, as a
    response is MANDATORY in this mode." """
    ini = RsaRInitiator(credentials=pki.alice, trust=pki.trust, idi=A)
    offer = ini.initiate(NOW)
    assert decode_message(offer).hdr.v_flag is True
    v0 = resign(offer, pki.alice, hdr=lambda h: dataclasses.replace(h, v_flag=False))
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(v0, NOW)
    assert reply.ok and reply.message is not None  # answered all the same


def test_rsa_r_rand_from_exactly_one_side(pki: Pki) -> None:
    """RFC 4738 §3.6: "If the I_MESSAGE did not include the RAND payload, it MUST be present
    in the R_MESSAGE. In case it has been included in the I_MESSAGE, it MUST NOT be present in
    the R_MESSAGE." §3.7: "If the I_MESSAGE contained a RAND payload, the Initiator MUST
    silently discard an R_MESSAGE that contains a RAND payload. Similarly, if the I_MESSAGE did
    not contain a RAND payload, the Initiator MUST silently discard an R_MESSAGE that does not
    contain a RAND payload." """
    ini, offer, r = rsa_r_pair(pki)
    assert decode_message(offer).find(RandPayload) is not None
    assert decode_message(r).find(RandPayload) is None
    with_rand = resign(
        r, pki.bob, lambda ps: [ps[0], RandPayload(data=b"r" * 16), *ps[1:]], extra=_signr_extra_of
    )
    with pytest.raises(MikeyError, match="RAND"):
        ini.receive(with_rand, NOW)

    ini2, offer2, r2 = rsa_r_pair(pki, send_rand=False)
    assert decode_message(offer2).find(RandPayload) is None
    rand_r = decode_message(r2).find(RandPayload)
    assert rand_r is not None and len(rand_r.data) >= 16
    stripped = resign(
        r2,
        pki.bob,
        lambda ps: [p for p in ps if not isinstance(p, RandPayload)],
        extra=_signr_extra_of,
    )
    with pytest.raises(MikeyError, match="RAND"):
        ini2.receive(stripped, NOW)
    ini3, _, r3 = rsa_r_pair(pki, send_rand=False)
    res = ini3.receive(r3, NOW)
    r3_rand = decode_message(r3).find(RandPayload)
    assert r3_rand is not None and res.rand == r3_rand.data  # the responder's RAND keys it


def test_rsa_r_error_13_for_an_unparseable_i_message(pki: Pki) -> None:
    """RFC 4738 §3.5: "The Responder SHOULD send an Error message "Message type not
    supported" (Error no. 13), if it cannot correctly parse the received MIKEY message."
    §3.9.2 adds "Unsupported message type | 13 | unparseable MIKEY message (NEW)" to Table
    6.12, so a peer's Error 13 must decode."""
    _, offer, _ = rsa_r_pair(pki)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(offer[:-7], NOW)
    assert reply.message is not None and not reply.ok
    err = decode_message(reply.message)
    assert err.data_type is DataType.ERROR
    errp = err.find(ErrPayload)
    assert errp is not None and errp.error_no is ErrorNo.UNSUPPORTED_MSG_TYPE
    assert int(errp.error_no) == 13
    ini = RsaRInitiator(credentials=pki.alice, trust=pki.trust, idi=A)
    i2 = ini.initiate(NOW)
    t_i = decode_message(i2).find(TPayload)
    peer_err = error_message(ini.csb_id, ErrorNo.UNSUPPORTED_MSG_TYPE, NOW, t_i)
    with pytest.raises(MikeyError) as exc:
        ini.receive(peer_err, NOW)
    assert exc.value.remote and exc.value.mikey_error is ErrorNo.UNSUPPORTED_MSG_TYPE


def test_rsa_r_encrypted_idr_must_equal_clear_idr(pki: Pki) -> None:
    """RFC 4738 §3.6: "KEMAC = E(encr_key, IDr || {TGK}) || MAC. The first payload (IDr) in
    KEMAC is the identity of the Responder"; the clear IDr must name the same party. The
    forgery re-encrypts the KEMAC with the real envelope key, so only the inner IDr differs."""
    env_key = b"E" * 16
    ini = RsaRInitiator(credentials=pki.alice, trust=pki.trust, idi=A, idr=B)
    offer = ini.initiate(NOW)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust, env_key=env_key).receive(offer, NOW)
    assert reply.message is not None
    t_i = decode_message(offer).find(TPayload)
    assert t_i is not None
    keys = derive_transport_keys(env_key, ini.csb_id, ini.rand)

    def swap_kemac(ps: list[Payload]) -> list[Payload]:
        inner = [
            IdPayload(id_type=IdType.URI, data=b"sip:carol@ims.lab"),
            KeyDataPayload(key_type=KeyDataType.TGK, key=b"T" * 16),
        ]
        k = build_kemac(
            encr_alg=EncrAlg.AES_CM_128,
            mac_alg=MacAlg.HMAC_SHA1_160,
            keys=keys,
            sub_payloads=inner,
            csb_id=ini.csb_id,
            t=t_i,
        )
        return [kemac_with_mac(k, keys.auth_key) if isinstance(p, KemacPayload) else p for p in ps]

    forged = resign(reply.message, pki.bob, swap_kemac, extra=_signr_extra_of)
    with pytest.raises(MikeyError) as exc:
        ini.receive(forged, NOW)
    assert exc.value.mikey_error is ErrorNo.AUTH_FAILURE and "IDr" in str(exc.value)


class _CertHandler(BaseHTTPRequestHandler):
    certs: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.certs.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", PKIX_CERT)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def cert_server(pki: Pki) -> Iterator[str]:
    _CertHandler.certs = {
        "/alice.cer": certificate_der(pki.alice.certificate),
        "/bob.cer": certificate_der(pki.bob.certificate),
    }
    server = HTTPServer(("127.0.0.1", 0), _CertHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_rsa_r_x509v3_url_certificates(pki: Pki, cert_server: str) -> None:
    """RFC 4738 §3.8: "If a Certificate payload is present, the X.509v3 URL Cert type from
    Table 6.7.b [RFC3830] is the default method in RSA-R mode and MUST be implemented. The
    HTTP URL to fetch a certificate as specified in RFC 2585 [RFC2585] MUST be supported.
    [...] application/pkix-cert MIME type with X.509 certificates DER-encoded MUST be
    supported." Both sides send a URL and fetch the peer's over real HTTP on 127.0.0.1."""
    resolve = http_resolver(timeout=5, allowed_hosts={"127.0.0.1"})
    ini = RsaRInitiator(
        credentials=pki.alice,
        trust=pki.trust,
        idi=A,
        certificate_url=f"{cert_server}/alice.cer",
        resolve_url=resolve,
    )
    offer = ini.initiate(NOW)
    certs = decode_message(offer).find_all(CertPayload)
    assert [(c.cert_type, c.data) for c in certs] == [
        (CertType.X509V3_URL, f"{cert_server}/alice.cer".encode())
    ]
    resp = RsaRResponder(
        credentials=pki.bob,
        trust=pki.trust,
        certificate_url=f"{cert_server}/bob.cer",
        resolve_url=resolve,
    )
    reply = resp.receive(offer, NOW)
    assert reply.ok and reply.message is not None, reply.error
    assert ini.receive(reply.message, NOW).keys == reply.result.keys  # type: ignore[union-attr]
    # no resolver, a 404, or a host not allowed: Invalid Cert
    for r in (
        RsaRResponder(credentials=pki.bob, trust=pki.trust),
        RsaRResponder(
            credentials=pki.bob,
            trust=pki.trust,
            resolve_url=http_resolver(timeout=5, allowed_hosts={"localhost"}),
        ),
    ):
        bad = r.receive(offer, NOW)
        assert bad.error is not None and bad.error.mikey_error is ErrorNo.INVALID_CERT
    assert resolve(f"{cert_server}/nobody.cer") is None
    assert resolve("ftp://127.0.0.1/alice.cer") is None


# ---------------------------------------------------------------------- 2. AES key wrap
def test_aes_kw_rfc3394_vector() -> None:
    """RFC 3394 §4.1 "Wrap 128 bits of Key Data with a 128-bit KEK" (default IV A6...)."""
    kek = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    want = bytes.fromhex("1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5")
    assert aes_kw_wrap(kek, key) == want == aes_key_wrap(kek, key)
    assert aes_kw_unwrap(kek, want) == key


def test_aes_kw_iv_is_the_64_bit_salt_s() -> None:
    """RFC 3830 §4.2.3: "The 128-bit key and a 64-bit salt, S, are derived in accordance to
    Section 4.1.4 and the key wrap IV is then set to S." S = PRF(inkey, 0x29B88916 || 0xFF ||
    csb_id || RAND) with outkey_len 64 (Table 4.1.4 "0x29B88916 | salt key")."""
    ini = PskInitiator(psk=PSK, encr_alg=EncrAlg.AES_KW_128, idi=A, idr=B)
    offer = ini.initiate(NOW)
    kemac = decode_message(offer).find(KemacPayload)
    assert kemac is not None
    s = prf(PSK, make_label(CONST_TRANSPORT_SALT, TRANSPORT_CS_ID, ini.csb_id, ini.rand), 8)
    keys = derive_transport_keys(PSK, ini.csb_id, ini.rand)
    assert keys.salt_key[:8] == s  # the 64-bit output is a prefix of the 112-bit one
    plain = aes_kw_unwrap(keys.encr_key, kemac.encr_data, s)
    assert plain.startswith(bytes([0, KeyDataType.TGK << 4]))  # last Key data, type TGK
    with pytest.raises(ValueError):
        aes_kw_unwrap(keys.encr_key, kemac.encr_data)  # not the default A6A6... IV
    reply = PskResponder(psk=PSK).receive(offer, NOW)
    assert reply.ok and reply.result is not None and reply.result.tgk == ini.tgk


@pytest.mark.parametrize("mode", ["pke", "rsa-r"])
def test_null_mac_with_key_wrap_in_public_key_modes(pki: Pki, mode: str) -> None:
    """RFC 3830 §4.2.3: "If the key wrap function is used in the public key method, the NULL
    MAC is RECOMMENDED to be used, as the key wrap itself will provide integrity of the
    encrypted content". Accepted with AES-KW; a NULL MAC with AES-CM is refused."""
    for encr, ok in ((EncrAlg.AES_KW_128, True), (EncrAlg.AES_CM_128, False)):
        if mode == "pke":
            i = PkeInitiator(
                credentials=pki.alice,
                responder_certificate=pki.bob.certificate,
                encr_alg=encr,
                mac_alg=MacAlg.NULL,
                idi=A,
            )
            reply = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(i.initiate(NOW), NOW)
            assert reply.ok is ok, reply.error
            if not ok:
                assert reply.error is not None
                assert reply.error.mikey_error is ErrorNo.INVALID_MAC
            continue
        ri = RsaRInitiator(credentials=pki.alice, trust=pki.trust, idi=A)
        resp = RsaRResponder(
            credentials=pki.bob, trust=pki.trust, encr_alg=encr, mac_alg=MacAlg.NULL
        )
        rep = resp.receive(ri.initiate(NOW), NOW)
        assert rep.message is not None
        kemac = decode_message(rep.message).find(KemacPayload)
        assert kemac is not None and kemac.mac_alg is MacAlg.NULL and kemac.mac == b""
        if ok:
            assert ri.receive(rep.message, NOW).tgk == rep.result.tgk  # type: ignore[union-attr]
        else:
            with pytest.raises(MikeyError) as exc:
                ri.receive(rep.message, NOW)
            assert exc.value.mikey_error is ErrorNo.INVALID_MAC


# ------------------------------------------------------------------ 3. timestamps echoed
@pytest.mark.parametrize("mode", ["dh", "dhhmac"])
def test_responder_echoes_t_and_initiator_checks(pki: Pki, mode: str) -> None:
    """RFC 3830 §5.2: "Note that all messages from the Initiator MUST use a unique timestamp.
    The Responder does not create a new timestamp, but uses the timestamp used by the
    Initiator." (§3.3 for DH: "The timestamp that is included in the answer is the same as
    the one included in the Initiator's message.")"""
    if mode == "dh":
        ini: DhInitiator | DhHmacInitiator = DhInitiator(
            credentials=pki.alice, trust=pki.trust, idi=A
        )
        offer = ini.initiate(NOW)
        reply = DhResponder(credentials=pki.bob, trust=pki.trust).receive(offer, NOW + 3)
        assert reply.message is not None
        forged = resign(
            reply.message,
            pki.bob,
            lambda ps: [timestamp(NOW + 3) if isinstance(p, TPayload) else p for p in ps],
        )
    else:
        ini = DhHmacInitiator(psk=PSK, idi=A, idr=B)
        offer = ini.initiate(NOW)
        reply = DhHmacResponder(psk=PSK, idr=B).receive(offer, NOW + 3)
        assert reply.message is not None
        msg = decode_message(reply.message)
        ps = [timestamp(NOW + 3) if isinstance(p, TPayload) else p for p in msg.payloads]
        raw = MikeyMessage(hdr=msg.hdr, payloads=tuple(ps)).encode()
        auth = derive_transport_keys(PSK, ini.csb_id, ini.rand).auth_key
        forged = raw[:-MAC_LEN] + hmac_sha1_160(auth, raw[:-MAC_LEN])  # correctly MACed
    assert decode_message(reply.message).find(TPayload) == decode_message(offer).find(TPayload)
    with pytest.raises(MikeyError) as exc:
        ini.receive(forged, NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_TS and not exc.value.remote
    assert ini.machine.state is base.State.FAILED


def test_error_message_echoes_t_and_initiator_checks() -> None:
    """RFC 3830 §5.1.2: "The error message is formed as: HDR, T, {ERR}, {SP}, [V|SIGNr]",
    with the Responder's T rule of §5.2 ("uses the timestamp used by the Initiator"). An
    Error message with another T is not the answer to our message: refused as Invalid TS."""
    ini = PskInitiator(psk=PSK, idi=A)
    offer = ini.initiate(NOW)
    reply = PskResponder(psk=b"wrong key wrong!").receive(offer, NOW + 5)
    assert reply.message is not None
    err = decode_message(reply.message)
    assert err.find(TPayload) == decode_message(offer).find(TPayload)
    with pytest.raises(MikeyError) as exc:
        ini.receive(reply.message, NOW)
    assert exc.value.remote and exc.value.mikey_error is ErrorNo.INVALID_MAC
    ini2 = PskInitiator(psk=PSK, idi=A)
    ini2.initiate(NOW)
    stale = error_message(ini2.csb_id, ErrorNo.AUTH_FAILURE, NOW, timestamp(NOW - 60))
    with pytest.raises(MikeyError) as exc:
        ini2.receive(stale, NOW)
    assert not exc.value.remote and exc.value.mikey_error is ErrorNo.INVALID_TS


# --------------------------------------------------------------------- 4. PKE encrypted IDi
def test_pke_encrypted_idi_verified(pki: Pki) -> None:
    """RFC 3830 §3.2: "Note that there will be one encrypted IDi and possibly also one
    unencrypted IDi. The encrypted one is used together with the MAC as a countermeasure for
    certain man-in-the-middle attacks [...] The encrypted IDi MUST always be verified to be
    equal with the expected IDi." """
    ini = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate, idi=A)
    offer = ini.initiate(NOW)
    ids = [p.data for p in decode_message(offer).find_all(IdPayload)]
    assert ids == [A.encode()]  # clear IDi sent along with CERTi
    assert PkeResponder(credentials=pki.bob, trust=pki.trust, idi=A).receive(offer, NOW).ok
    # expected IDi from configuration (e.g. the SIP identity)
    other = PkeResponder(credentials=pki.bob, trust=pki.trust, idi="sip:carol@ims.lab")
    rep = other.receive(offer, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.AUTH_FAILURE
    # expected IDi from the clear ID payload: a re-signed message claiming another clear IDi
    forged = resign(
        offer,
        pki.alice,
        lambda ps: [
            IdPayload(id_type=p.id_type, data=b"sip:carol@ims.lab")
            if isinstance(p, IdPayload)
            else p
            for p in ps
        ],
    )
    rep = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(forged, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.AUTH_FAILURE
    # no clear IDi: the encrypted one must be an identity of the validated certificate
    no_clear = resign(offer, pki.alice, lambda ps: [p for p in ps if not isinstance(p, IdPayload)])
    assert PkeResponder(credentials=pki.bob, trust=pki.trust).receive(no_clear, NOW).ok
    ini_c = PkeInitiator(
        credentials=pki.alice, responder_certificate=pki.bob.certificate, idi="sip:carol@x"
    )
    no_clear_c = resign(
        ini_c.initiate(NOW), pki.alice, lambda ps: [p for p in ps if not isinstance(p, IdPayload)]
    )
    rep = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(no_clear_c, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.AUTH_FAILURE


# ----------------------------------------------------------------------- 5. SDP IDs
def _pair(mode: str, pki: Pki, sent: str | None, expected: str | None) -> tuple[object, object]:
    if mode == "psk":
        return PskInitiator(psk=PSK, idi=A, idr=B, sdp_ids=sent), PskResponder(
            psk=PSK, sdp_ids=expected
        )
    if mode == "pke":
        return PkeInitiator(
            credentials=pki.alice, responder_certificate=pki.bob.certificate, sdp_ids=sent
        ), PkeResponder(credentials=pki.bob, trust=pki.trust, sdp_ids=expected)
    if mode == "dh":
        return DhInitiator(credentials=pki.alice, trust=pki.trust, sdp_ids=sent), DhResponder(
            credentials=pki.bob, trust=pki.trust, sdp_ids=expected
        )
    if mode == "dhhmac":
        return DhHmacInitiator(psk=PSK, idi=A, idr=B, sdp_ids=sent), DhHmacResponder(
            psk=PSK, sdp_ids=expected
        )
    return RsaRInitiator(credentials=pki.alice, trust=pki.trust, sdp_ids=sent), RsaRResponder(
        credentials=pki.bob, trust=pki.trust, sdp_ids=expected
    )


@pytest.mark.parametrize("mode", ["psk", "pke", "dh", "dhhmac", "rsa-r"])
def test_sdp_ids_sent_and_matched_in_every_mode(pki: Pki, mode: str) -> None:
    """RFC 4567 §7: "The list of protocol identifiers is authenticated within MIKEY by placing
    the list in a General Extension Payload (of type "SDP IDs", [MIKEY]), which then
    automatically will be integrity protected/signed. The receiver SHALL then match the list
    in the General Extension Payload with the list included in SDP and SHOULD (according to
    policy) if they differ, or if integrity/signature verification fails, reject the offer."
    RFC 4650 §4.4 (DHHMAC): "this payload SHALL list all key management protocol identifiers
    of a surrounding encapsulation protocol, such as SDP"."""
    ini, resp = _pair(mode, pki, "mikey", "mikey")
    offer = ini.initiate(NOW)  # type: ignore[attr-defined]
    ext = [g for g in decode_message(offer).find_all(GeneralExtPayload)]
    assert [(g.ext_type, g.data) for g in ext] == [(GenExtType.SDP_IDS, b"mikey")]
    assert resp.receive(offer, NOW).ok  # type: ignore[attr-defined]
    for sent, expected in (("mikey", "mikey;keyp1"), (None, "mikey")):
        ini, resp = _pair(mode, pki, sent, expected)
        rep = resp.receive(ini.initiate(NOW), NOW)  # type: ignore[attr-defined]
        assert not rep.ok and rep.error is not None
        assert rep.error.mikey_error is ErrorNo.AUTH_FAILURE


def test_sdp_ids_cannot_be_peeled_off() -> None:
    """RFC 4567 §4.1.4: a man-in-the-middle "could "peel off" cryptographically strong offers
    [...] To avoid this, the list of identifiers of the proposed key management protocols MUST
    be authenticated." Editing the list inside the MAC coverage breaks the MAC."""
    ini = PskInitiator(psk=PSK, idi=A, sdp_ids="mikey;keyp1")
    offer = ini.initiate(NOW)
    peeled = offer.replace(b"mikey;keyp1", b"mikey;keyp2")
    assert peeled != offer
    rep = PskResponder(psk=PSK, sdp_ids="mikey;keyp2").receive(peeled, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.INVALID_MAC


def test_ue_keying_lists_the_sdp_key_mgmt_ids() -> None:
    """RFC 4567 §4.1.4: "All the offered protocol identifiers MUST be included, in the same
    order as they appear in the corresponding SDP description." """
    from ims.sdp.keymgmt import KeyMgmtAttribute
    from ims.sdp.model import SessionDescription
    from ue.keying_mikey import SDP_IDS, _sdp_ids

    sdp = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        b"a=key-mgmt:mikey AQ==\r\na=key-mgmt:keyp1 AQ==\r\nm=audio 4000 RTP/SAVP 0\r\n"
    )
    assert _sdp_ids(sdp, 0) == "mikey;keyp1"
    assert SDP_IDS == "mikey"
    assert isinstance(sdp.key_mgmt[0], KeyMgmtAttribute)


# --------------------------------------------------------------------- 6. DHHMAC IDs
def test_dhhmac_idr_and_idi_mandatory() -> None:
    """RFC 4650 §3: "The initiator SHALL always include the recipient's identity." [...] "The
    responder SHALL always include the initiator's identity IDi regardless of whether the
    I_message conveyed any IDi." """
    with pytest.raises(TypeError):
        DhHmacInitiator(psk=PSK, idi=A)  # type: ignore[call-arg]
    ini = DhHmacInitiator(psk=PSK, idr=B)  # no IDi in the I_MESSAGE
    offer = ini.initiate(NOW)
    assert [p.data for p in decode_message(offer).find_all(IdPayload)] == [B.encode()]
    # a responder that knows the initiator by other means (SIP) still sends IDi
    reply = DhHmacResponder(psk=PSK, idr=B, idi=A).receive(offer, NOW)
    assert reply.ok and reply.message is not None
    assert [p.data for p in decode_message(reply.message).find_all(IdPayload)] == [
        B.encode(),
        A.encode(),
    ]
    assert ini.receive(reply.message, NOW).peer_id == B.encode()
    # ... one that does not cannot, and refuses
    rep = DhHmacResponder(psk=PSK, idr=B).receive(offer, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.INVALID_ID
    # an I_MESSAGE without IDr at all
    no_ids = DhHmacInitiator(psk=PSK, idr=B)
    raw = decode_message(no_ids.initiate(NOW))
    ps = [p for p in raw.payloads if not isinstance(p, IdPayload)]
    data = MikeyMessage(hdr=raw.hdr, payloads=tuple(ps)).encode()
    auth = derive_transport_keys(PSK, no_ids.csb_id, no_ids.rand).auth_key
    data = data[:-MAC_LEN] + hmac_sha1_160(auth, data[:-MAC_LEN])
    rep = DhHmacResponder(psk=PSK, idi=A).receive(data, NOW)
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.INVALID_ID
    # a response naming another IDi is refused by the initiator
    ini2 = DhHmacInitiator(psk=PSK, idi=A, idr=B)
    good = DhHmacResponder(psk=PSK, idr=B).receive(ini2.initiate(NOW), NOW)
    assert good.message is not None
    msg = decode_message(good.message)
    ps = [
        IdPayload(id_type=p.id_type, data=b"sip:carol@ims.lab")
        if isinstance(p, IdPayload) and p.data == A.encode()
        else p
        for p in msg.payloads
    ]
    raw2 = MikeyMessage(hdr=msg.hdr, payloads=tuple(ps)).encode()
    auth2 = derive_transport_keys(PSK, ini2.csb_id, ini2.rand).auth_key
    forged = raw2[:-MAC_LEN] + hmac_sha1_160(auth2, raw2[:-MAC_LEN])
    with pytest.raises(MikeyError) as exc:
        ini2.receive(forged, NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_ID


# --------------------------------------------------------------------- 7. error codes
def _with_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


def test_unknown_mac_algorithms_are_invalid_mac_and_unknown_hash_invalid_ha(pki: Pki) -> None:
    """RFC 3830 Table 6.12: "Invalid MAC | 3 | MAC algorithm not supported", "Invalid HA |
    5 | Hash function not supported". §6.2 "MAC alg (8 bits): specifies the authentication
    algorithm used"; §6.9 "Auth alg (8 bits): specifies the MAC algorithm used for the
    verification message"; §6.8 "Hash func (8 bits): indicates the hash function"."""
    ini = PskInitiator(psk=PSK, idi=A)
    offer = ini.initiate(NOW)
    mac_alg_at = len(offer) - MAC_LEN - 1
    bad = _with_byte(offer, mac_alg_at, 7)
    with pytest.raises(MikeyDecodeError) as dexc:
        decode_message(bad)
    assert dexc.value.mikey_error is ErrorNo.INVALID_MAC
    rep = PskResponder(psk=PSK).receive(bad, NOW)
    assert rep.message is not None
    err = decode_message(rep.message).find(ErrPayload)
    assert err is not None and err.error_no is ErrorNo.INVALID_MAC

    r = PskResponder(psk=PSK).receive(offer, NOW).message
    assert r is not None
    v_alg_at = len(r) - MAC_LEN - 1
    assert decode_message(r).find(VPayload) is not None
    with pytest.raises(MikeyDecodeError) as dexc:
        decode_message(_with_byte(r, v_alg_at, 9))
    assert dexc.value.mikey_error is ErrorNo.INVALID_MAC

    pk = PkeInitiator(
        credentials=pki.alice, responder_certificate=pki.bob.certificate, send_chash=True
    )
    po = pk.initiate(NOW)
    chash = decode_message(po).find(ChashPayload)
    assert chash is not None
    at = po.index(chash.digest) - 1  # the hash func byte precedes the digest
    with pytest.raises(MikeyDecodeError) as dexc:
        decode_message(_with_byte(po, at, 5))
    assert dexc.value.mikey_error is ErrorNo.INVALID_HA


# -------------------------------------------------- 8. CSB ID, carried salt (URL certs above)
def test_initiator_checks_csb_id_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 3830 §6.1: "This ID MUST be unique between each Initiator-Responder pair [...] An
    Initiator MUST check for collisions when choosing the ID (if the Initiator already has one
    or more established CSBs with the Responder)." """
    in_use = {0x11111111, 0x22222222}
    with pytest.raises(MikeyError, match="already established"):
        PskInitiator(psk=PSK, csb_id=0x11111111, established_csb_ids=in_use)
    draws = iter([b"\x11\x11\x11\x11", b"\x22\x22\x22\x22", b"\x33\x33\x33\x33"])
    monkeypatch.setattr(base, "random_bytes", lambda n: next(draws))
    assert choose_csb_id(None, in_use) == 0x33333333  # two colliding draws skipped
    assert choose_csb_id(0x44444444, in_use) == 0x44444444


def test_carried_salt_is_used_or_refused() -> None:
    """RFC 3830 §4.1.3: "The security protocol in need of the salt key SHALL use the salt key
    carried in the Key data sub-payload (in the pre-shared and public-key case), when present.
    If that is not sent, then it is possible to derive the salt key via the key derivation
    function". A 112-bit salt is the SRTP master salt of every CS; one of another length
    cannot be used and is refused (Invalid SPpar), never silently replaced."""
    salt = bytes(range(14))
    ini = PskInitiator(psk=PSK, idi=A, tgk_salt=salt)
    rep = PskResponder(psk=PSK).receive(ini.initiate(NOW), NOW)
    assert rep.result is not None
    assert [k.master_salt for k in rep.result.keys] == [salt, salt]
    assert ini.result is not None and ini.result.keys == rep.result.keys
    with pytest.raises(MikeyError) as exc:
        PskInitiator(psk=PSK, idi=A, tgk_salt=salt[:8]).initiate(NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_SPPAR
    short = PskInitiator(psk=PSK, idi=A, tgk_salt=salt)
    msg = short.initiate(NOW)
    kemac = decode_message(msg).find(KemacPayload)
    assert kemac is not None
    sub = decode_subpayloads(
        kemac_decrypt(
            kemac.encr_alg,
            derive_transport_keys(PSK, short.csb_id, short.rand),
            kemac.encr_data,
            csb_id=short.csb_id,
            t_value=decode_message(msg).find(TPayload).value_bytes(),  # type: ignore[union-attr]
        ),
        PayloadType.KEY_DATA,
    )
    kd = sub[0]
    assert isinstance(kd, KeyDataPayload) and kd.key_type is KeyDataType.TGK_SALT


# ------------------------------------------------- 9. RFC 4650 §4.2 vs RFC 3830 tables
def test_dhhmac_kemac_uses_rfc3830_codes_not_rfc4650_table() -> None:
    """RFC 4650 §4.2 says "Encr alg SHALL be set to 2 (NULL)" and lists "HMAC-SHA-1 | 0" and
    "NULL | 1" (Table 4.2.a), while RFC 3830 Table 6.2.a has "NULL | 0", "AES-KW-128 | 2" and
    Table 6.2.b "NULL | 0", "HMAC-SHA-1-160 | 1", and RFC 4650 §4 "re-uses MIKEY payloads".
    We keep RFC 3830's codes: the KEMAC of a DHHMAC message is 0x00 (encr NULL), length 0,
    0x01 (HMAC-SHA-1-160), 20-byte MAC."""
    ini = DhHmacInitiator(psk=PSK, idi=A, idr=B)
    data = ini.initiate(NOW)
    tail = data[-(MAC_LEN + 5) :]
    assert tail[0] == 0  # next payload: last (the KEMAC ends the message, §4.2)
    assert tail[1:5] == bytes([0, 0, 0, 1])  # encr alg 0 = NULL, len 0, MAC alg 1
    assert EncrAlg.NULL == 0 and EncrAlg.AES_KW_128 == 2
    assert MacAlg.NULL == 0 and MacAlg.HMAC_SHA1_160 == 1


# ------------------------------------------------------------ 10. docstring citations
#: Section numbers as the RFCs' tables of contents give them (transcribed).
SECTIONS_TOC = {
    "3830": "1 1.1 1.2 1.3 1.4 1.5 2 2.1 2.2 2.3 2.4 3 3.1 3.2 3.3 4 4.1 4.1.1 4.1.2 4.1.3 "
    "4.1.4 4.2 4.2.1 4.2.2 4.2.3 4.2.4 4.2.5 4.2.6 4.2.7 4.2.8 4.2.9 4.3 4.3.1 4.3.2 4.3.3 "
    "4.4 4.5 5 5.1 5.1.1 5.1.2 5.2 5.3 5.4 6 6.1 6.1.1 6.2 6.3 6.4 6.5 6.6 6.7 6.8 6.9 6.10 "
    "6.10.1 6.11 6.12 6.13 6.14 6.15 7 8 8.1 8.2 9 9.1 9.2 9.3 9.4 9.5 9.6 10 10.1 11 12",
    "4738": "1 1.1 2 2.1 2.2 3 3.1 3.2 3.3 3.4 3.5 3.6 3.7 3.8 3.9 3.9.1 3.9.2 3.9.3 4 4.1 5 "
    "5.1 5.2 6 7 8",
    "4650": "1 1.1 1.2 1.3 2 2.1 2.2 3 3.1 4 4.1 4.2 4.3 4.4 5 5.1 5.2 5.3 5.4 5.5 5.6 6 7 8",
    "4567": "1 1.1 2 3 3.1 3.2 4 4.1 4.1.1 4.1.2 4.1.3 4.1.4 4.2 5 5.1 5.2 5.3 5.4 6 7 7.1 8 "
    "9 9.1 9.2 9.3 10 11",
    "3394": "1 2 2.1 2.2 2.2.1 2.2.2 2.2.3 2.2.3.1 2.2.3.2 3 4 4.1 4.2 4.3 4.4 4.5 4.6",
}


def _words(text: str) -> list[str]:
    return text.split()


SECTIONS = {rfc: _words(toc) for rfc, toc in SECTIONS_TOC.items()}
MIKEY_SRC = Path(__file__).resolve().parents[3] / "ims" / "mikey"


def test_toc_transcription_matches_the_rfc_text() -> None:
    """The transcribed section lists are the RFC texts' own headings (when the texts are at
    hand: ../shared/reference/rfc)."""
    if not RFC_DIR.is_dir():
        pytest.skip("RFC texts not present")
    for rfc, sections in SECTIONS.items():
        text = (RFC_DIR / f"rfc{rfc}.txt").read_text()
        heads = set(re.findall(r"^(\d+(?:\.\d+)*)\.?\s+\S", text, re.M))
        missing = [s for s in sections if s not in heads]
        assert not missing, (rfc, missing)


def _citations(text: str, home: str | None) -> list[tuple[str, str]]:
    """(RFC, section) for "RFC NNNN §a, §b and §c" lists, and for bare "§a" in a module whose
    docstring opens with a single RFC 3830 citation (its home RFC)."""
    out: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"RFC (\d{4})((?:(?:,| and|,? or)?\s*§\d+(?:\.\d+)*)+)", text):
        spans.append(m.span())
        out += [(m.group(1), sec) for sec in re.findall(r"§(\d+(?:\.\d+)*)", m.group(2))]
    if home is not None:
        for m in re.finditer(r"§(\d+(?:\.\d+)*)", text):
            if not any(a <= m.start() < b for a, b in spans):
                out.append((home, m.group(1)))
    return out


def test_every_cited_section_exists() -> None:
    """Docstrings cite sections that exist: "§4.1.5 does not exist" in RFC 3830; the MAC is
    §4.2.4, the envelope §4.2.5, signatures §4.2.6. Every "RFC NNNN §a, §b" must name sections
    of that RFC, and a bare "§a" in a module about RFC 3830 alone one of RFC 3830's."""
    cites: list[tuple[str, str, str]] = []
    for path in sorted(MIKEY_SRC.rglob("*.py")):
        text = path.read_text()
        first = re.findall(r"RFC (\d{4})", text.split("\n", 1)[0])
        home = "3830" if first and set(first) == {"3830"} else None
        cites += [(path.name, rfc, sec) for rfc, sec in _citations(text, home)]
    assert len(cites) > 100
    bad = [c for c in cites if c[1] in SECTIONS and c[2] not in SECTIONS[c[1]]]
    assert not bad, bad
    crypto = (MIKEY_SRC / "crypto.py").read_text()
    for needle in ("MAC and V (RFC 3830 §4.2.4", "Envelope (RFC 3830 §4.2.5", "(RFC 3830 §4.2.6"):
        assert needle in crypto


# --------------------------------------------------------- signature hash, selectable
@pytest.mark.parametrize("mode", ["pke", "dh", "rsa-r"])
def test_signature_hash_selectable_sha1_default(pki: Pki, mode: str) -> None:
    """RFC 3830 §4.2.6: "The signature algorithm applied is defined by, and dependent on the
    certificate used. It is MANDATORY to support RSA PKCS#1, v1.5"; no RFC names the hash,
    §4.2.1: "it is MANDATORY to implement SHA-1 as the default hash function". SHA-1 by
    default; SHA-256 when both sides select it; a mismatch is an Authentication failure."""

    def run(ih: str, rh: str, stype: SignType = SignType.RSA_PKCS1_V15) -> object:
        if mode == "pke":
            i: object = PkeInitiator(
                credentials=pki.alice,
                responder_certificate=pki.bob.certificate,
                sign_hash=ih,  # type: ignore[arg-type]
                sign_type=stype,
            )
            r: object = PkeResponder(credentials=pki.bob, trust=pki.trust, sign_hash=rh)  # type: ignore[arg-type]
        elif mode == "dh":
            i = DhInitiator(credentials=pki.alice, trust=pki.trust, sign_hash=ih, sign_type=stype)  # type: ignore[arg-type]
            r = DhResponder(credentials=pki.bob, trust=pki.trust, sign_hash=rh)  # type: ignore[arg-type]
        else:
            i = RsaRInitiator(credentials=pki.alice, trust=pki.trust, sign_hash=ih, sign_type=stype)  # type: ignore[arg-type]
            r = RsaRResponder(credentials=pki.bob, trust=pki.trust, sign_hash=rh)  # type: ignore[arg-type]
        return r.receive(i.initiate(NOW), NOW)  # type: ignore[attr-defined]

    assert DEFAULT_SIGN_HASH == "sha1"
    assert run("sha1", "sha1").ok  # type: ignore[attr-defined]
    assert run("sha256", "sha256", SignType.RSA_PSS).ok  # type: ignore[attr-defined]
    rep = run("sha256", "sha1")
    assert rep.error is not None and rep.error.mikey_error is ErrorNo.AUTH_FAILURE  # type: ignore[attr-defined]


# ------------------------------------------- confirmed against the text (no change needed)
def test_pk_kemac_mac_covers_the_kemac_payload_with_next_payload_zero(pki: Pki) -> None:
    """RFC 3830 §5.2: "In the public key case, the Key data transport payload is generated by
    concatenating the IDi with the TGKs. [...] The MAC is calculated over the entire Key data
    transport payload except the MAC field. Before calculating the MAC, the Next payload
    field is set to zero." """
    ini = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate, idi=A)
    data = ini.initiate(NOW)
    kemac = decode_message(data).find(KemacPayload)
    assert kemac is not None
    at = data.index(kemac.encr_data) - 4  # next payload, encr alg, encr data len(16)
    assert data[at] == PayloadType.PKE  # on the wire the KEMAC is followed by the PKE
    covered = b"\x00" + data[at + 1 : at + 4 + len(kemac.encr_data) + 1]
    keys = derive_transport_keys(ini.env_key, ini.csb_id, ini.rand)
    assert hmac_sha1_160(keys.auth_key, covered) == kemac.mac


@pytest.mark.parametrize("mode", ["pke", "dh"])
def test_signatures_cover_all_but_the_signature_field(pki: Pki, mode: str) -> None:
    """RFC 3830 §5.2: "create and concatenate the MAC/signature payload without the
    MAC/signature field filled in [...] Calculate the MAC/signature over the entire MIKEY
    message, except the MAC/Signature field, and add the MAC/signature in the field."
    §3.3 (DH): "The SIGNr is a signature covering the Responder's MIKEY message"."""
    if mode == "pke":
        data = PkeInitiator(
            credentials=pki.alice, responder_certificate=pki.bob.certificate
        ).initiate(NOW)
    else:
        offer = DhInitiator(credentials=pki.alice, trust=pki.trust).initiate(NOW)
        reply = DhResponder(credentials=pki.bob, trust=pki.trust).receive(offer, NOW)
        assert reply.message is not None
        data = reply.message
    sig = decode_message(data).payloads[-1]
    assert isinstance(sig, SignPayload)
    signer = pki.alice if mode == "pke" else pki.bob
    signer.certificate.public_key().verify(  # type: ignore[union-attr,call-arg]
        sig.signature,
        data[: -len(sig.signature)],
        padding.PKCS1v15(),  # type: ignore[arg-type]
        hashes.SHA1(),  # type: ignore[arg-type]
    )


def test_rsa_r_policy_not_offered_is_discarded(pki: Pki) -> None:
    """RFC 4738 §3.7: "If the SP payload contains a policy not specified in the SP message,
    if present, in the I_MESSAGE, such an R_MESSAGE MUST be discarded silently." """
    from ims.mikey.payloads import SpPayload
    from ims.mikey.policy import SrtpSuite, sp_for_suite

    ini, _, r = rsa_r_pair(pki)
    other = sp_for_suite(SrtpSuite.NULL_HMAC_SHA1_80, 0)
    forged = resign(
        r,
        pki.bob,
        lambda ps: [other if isinstance(p, SpPayload) else p for p in ps],
        extra=_signr_extra_of,
    )
    with pytest.raises(MikeyError) as exc:
        ini.receive(forged, NOW)
    assert exc.value.mikey_error is ErrorNo.INVALID_SPPAR


def test_docs_table_rows_name_existing_tests() -> None:
    """docs/mikey.md's "clause → code → test" table: every row quotes the RFC and names a
    test that exists (so the table cannot drift from the suite)."""
    doc = (Path(__file__).resolve().parents[3] / "docs" / "mikey.md").read_text()
    start = doc.index("## Clause → code → test")
    rows = [ln for ln in doc[start:].splitlines() if ln.startswith("| RFC")]
    assert len(rows) >= 25
    root = Path(__file__).resolve().parents[3]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert '"' in cells[1], row  # the RFC sentence, quoted
        ref = cells[-1].strip("`")
        path, _, names = ref.partition("::")
        text = (root / path).read_text()
        for name in names.split(", "):
            base_name = name.split("[")[0]
            assert f"def {base_name}(" in text, (path, base_name)


def test_li_key_extraction_follows_the_new_encodings(pki: Pki) -> None:
    """The LI opener (``inspect.open_message``, used by li/keys.py) reads what issue 12 sends:
    PKE with AES-KW (IV = S, RFC 3830 §4.2.3) and the NULL MAC, and an RSA-R R_MESSAGE whose
    RAND came from the responder (RFC 4738 §3.6: "If the I_MESSAGE did not include the RAND
    payload, it MUST be present in the R_MESSAGE")."""
    from ims.mikey.inspect import open_message

    pk = PkeInitiator(
        credentials=pki.alice,
        responder_certificate=pki.bob.certificate,
        encr_alg=EncrAlg.AES_KW_128,
        mac_alg=MacAlg.NULL,
        idi=A,
    )
    opened = open_message(pk.initiate(NOW), private_key=pki.bob.private_key)
    assert opened.tgk == pk.tgk and pk.result is not None and opened.keys == pk.result.keys
    ini, _, r = rsa_r_pair(pki, send_rand=False)
    res = ini.receive(r, NOW)
    opened = open_message(r, private_key=pki.alice.private_key)
    assert opened.tgk == res.tgk and opened.keys == res.keys
