"""Every MIKEY mode end to end in memory: identical keys on both sides, and the failures."""

from __future__ import annotations

import pytest

from ims.mikey.certs import TrustStore
from ims.mikey.constants import DataType, DhGroup, EncrAlg, ErrorNo, SignType
from ims.mikey.errors import MikeyError
from ims.mikey.message import decode_message
from ims.mikey.modes.base import CryptoSession, State
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.payloads import ErrPayload
from ims.mikey.policy import Sender, SrtpSuite
from ims.mikey.replay import ReplayCache

from .conftest import NOW, Pki

PSK = bytes.fromhex("00112233445566778899aabbccddeeff")


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0x01
    return bytes(b)


def _error_no(message: bytes | None) -> ErrorNo:
    assert message is not None
    msg = decode_message(message)
    assert msg.data_type is DataType.ERROR
    err = msg.find(ErrPayload)
    assert err is not None
    return err.error_no


# ------------------------------------------------------------------------------ PSK
@pytest.mark.parametrize("encr", list(EncrAlg))
@pytest.mark.parametrize("verification", [True, False])
def test_psk_both_sides_agree(encr: EncrAlg, verification: bool) -> None:
    i = PskInitiator(
        psk=PSK,
        encr_alg=encr,
        verification=verification,
        idi="sip:alice@ims.lab",
        idr="sip:bob@ims.lab",
    )
    r = PskResponder(psk=PSK, idr="sip:bob@ims.lab")
    offer = i.initiate(NOW)
    reply = r.receive(offer, NOW + 0.5)
    assert reply.ok and reply.result is not None
    if verification:
        assert reply.message is not None
        res = i.receive(reply.message, NOW + 1)
        assert i.machine.state is State.ESTABLISHED
    else:
        assert reply.message is None
        assert i.machine.state is State.ESTABLISHED
        res = i.result
    assert res is not None
    assert res.keys == reply.result.keys
    assert res.tgk == reply.result.tgk == i.tgk
    assert reply.result.peer_id == b"sip:alice@ims.lab"
    assert [k.sender for k in res.keys] == [Sender.INITIATOR, Sender.RESPONDER]
    assert res.keys[0].master_key != res.keys[1].master_key
    assert len(res.keys[0].master_key) == 16 and len(res.keys[0].master_salt) == 14


def test_psk_encrypted_kemac_hides_tgk() -> None:
    i = PskInitiator(psk=PSK, encr_alg=EncrAlg.AES_CM_128)
    assert i.tgk not in i.initiate(NOW)
    n = PskInitiator(psk=PSK, encr_alg=EncrAlg.NULL)
    assert n.tgk in n.initiate(NOW)


def test_psk_wrong_key_gives_invalid_mac_error_message() -> None:
    i = PskInitiator(psk=PSK)
    reply = PskResponder(psk=b"\x00" * 16).receive(i.initiate(NOW), NOW)
    assert not reply.ok and reply.error is not None
    assert reply.error.mikey_error is ErrorNo.INVALID_MAC
    assert _error_no(reply.message) is ErrorNo.INVALID_MAC
    with pytest.raises(MikeyError) as info:
        i.receive(reply.message or b"", NOW)
    assert info.value.remote and info.value.mikey_error is ErrorNo.INVALID_MAC
    assert i.machine.state is State.FAILED


def test_psk_tampered_message_invalid_mac() -> None:
    offer = PskInitiator(psk=PSK).initiate(NOW)
    reply = PskResponder(psk=PSK).receive(_flip(offer, 30), NOW)
    assert _error_no(reply.message) is ErrorNo.INVALID_MAC


def test_psk_replay_refused() -> None:
    cache = ReplayCache(window=300)
    offer = PskInitiator(psk=PSK).initiate(NOW)
    assert PskResponder(psk=PSK, replay=cache).receive(offer, NOW + 1).ok
    again = PskResponder(psk=PSK, replay=cache).receive(offer, NOW + 2)
    assert not again.ok and _error_no(again.message) is ErrorNo.INVALID_TS


@pytest.mark.parametrize("skew", [-301.0, 301.0, 3600.0])
def test_psk_timestamp_outside_window(skew: float) -> None:
    offer = PskInitiator(psk=PSK).initiate(NOW)
    reply = PskResponder(psk=PSK, replay=ReplayCache(window=300)).receive(offer, NOW + skew)
    assert _error_no(reply.message) is ErrorNo.INVALID_TS


def test_psk_replay_cache_forgets_after_window() -> None:
    cache = ReplayCache(window=10)
    for k in range(5):
        offer = PskInitiator(psk=PSK).initiate(NOW + k * 100)
        assert PskResponder(psk=PSK, replay=cache).receive(offer, NOW + k * 100).ok
    assert len(cache) == 1


def test_psk_bad_verification_message() -> None:
    i = PskInitiator(psk=PSK)
    reply = PskResponder(psk=PSK).receive(i.initiate(NOW), NOW)
    assert reply.message is not None
    with pytest.raises(MikeyError) as info:
        i.receive(_flip(reply.message, len(reply.message) - 1), NOW)
    assert info.value.mikey_error is ErrorNo.INVALID_MAC


def test_psk_lookup_by_identity() -> None:
    keys = {b"sip:alice@ims.lab": PSK}
    r = PskResponder(psk=keys.get)
    assert r.receive(PskInitiator(psk=PSK, idi="sip:alice@ims.lab").initiate(NOW), NOW).ok
    reply = PskResponder(psk=keys.get).receive(
        PskInitiator(psk=PSK, idi="sip:eve@x").initiate(NOW), NOW
    )
    assert _error_no(reply.message) is ErrorNo.INVALID_ID


def test_initiator_cannot_initiate_twice() -> None:
    i = PskInitiator(psk=PSK)
    i.initiate(NOW)
    with pytest.raises(MikeyError):
        i.initiate(NOW)


def test_suites_and_ssrcs_carried() -> None:
    sessions = (
        CryptoSession(suite=SrtpSuite.AES_CM_128_HMAC_SHA1_32, ssrc=0x11111111, roc=3),
        CryptoSession(suite=SrtpSuite.NULL_HMAC_SHA1_80, ssrc=0x22222222),
        CryptoSession(suite=SrtpSuite.AEAD_AES_128_GCM, ssrc=0x33333333),
    )
    i = PskInitiator(psk=PSK, sessions=sessions)
    reply = PskResponder(psk=PSK).receive(i.initiate(NOW), NOW)
    assert reply.result is not None
    got = [(k.suite, k.ssrc, k.roc, len(k.master_salt)) for k in reply.result.keys]
    assert got == [
        (SrtpSuite.AES_CM_128_HMAC_SHA1_32, 0x11111111, 3, 14),
        (SrtpSuite.NULL_HMAC_SHA1_80, 0x22222222, 0, 14),
        (SrtpSuite.AEAD_AES_128_GCM, 0x33333333, 0, 12),
    ]
    assert reply.result.for_ssrc(0x22222222).cs_id == 2


# ------------------------------------------------------------------------------ PKE
@pytest.mark.parametrize("sign_type", [SignType.RSA_PKCS1_V15, SignType.RSA_PSS])
@pytest.mark.parametrize("padding", ["pkcs1v15", "oaep"])
def test_pke_both_sides_agree(pki: Pki, sign_type: SignType, padding: str) -> None:
    i = PkeInitiator(
        credentials=pki.alice,
        responder_certificate=pki.bob.certificate,
        sign_type=sign_type,
        envelope_padding=padding,
        idr="sip:bob@ims.lab",  # type: ignore[arg-type]
    )
    r = PkeResponder(credentials=pki.bob, trust=pki.trust, envelope_padding=padding)  # type: ignore[arg-type]
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.ok and reply.result is not None and reply.message is not None
    res = i.receive(reply.message, NOW)
    assert res.keys == reply.result.keys
    assert reply.result.peer_id == b"sip:alice@ims.lab"
    assert reply.result.peer_certificate == pki.alice.certificate


def test_pke_self_signed_pinned(pki: Pki) -> None:
    i = PkeInitiator(
        credentials=pki.alice_self,
        responder_certificate=pki.bob_self.certificate,
        verification=False,
    )
    r = PkeResponder(credentials=pki.bob_self, trust=TrustStore((pki.alice_self.certificate,)))
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.ok and reply.message is None
    assert i.result is not None and reply.result is not None and i.result.keys == reply.result.keys


def test_pke_untrusted_certificate(pki: Pki) -> None:
    i = PkeInitiator(credentials=pki.mallory, responder_certificate=pki.bob.certificate)
    reply = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(i.initiate(NOW), NOW)
    assert _error_no(reply.message) is ErrorNo.INVALID_CERT


def test_pke_expired_certificate(pki: Pki) -> None:
    i = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate)
    later = NOW + 400 * 86400
    offer = i.initiate(later)
    reply = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(offer, later)
    assert _error_no(reply.message) is ErrorNo.INVALID_CERT


def test_pke_bad_signature(pki: Pki) -> None:
    offer = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate).initiate(
        NOW
    )
    reply = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(
        _flip(offer, len(offer) - 5), NOW
    )
    assert _error_no(reply.message) is ErrorNo.AUTH_FAILURE


@pytest.mark.parametrize(
    ("padding", "code"),
    # PKCS#1 v1.5 decryption uses implicit rejection (mostly a random key, no oracle): the
    # KEMAC MAC then fails; sometimes the padding check itself fails. OAEP always reports it.
    [
        ("pkcs1v15", {ErrorNo.INVALID_MAC, ErrorNo.AUTH_FAILURE}),
        ("oaep", {ErrorNo.AUTH_FAILURE}),
    ],
)
def test_pke_wrong_private_key(pki: Pki, padding: str, code: set[ErrorNo]) -> None:
    # encrypted to bob, received by alice (trusted, but cannot open the envelope)
    offer = PkeInitiator(
        credentials=pki.alice,
        responder_certificate=pki.bob.certificate,
        envelope_padding=padding,  # type: ignore[arg-type]
    ).initiate(NOW)
    reply = PkeResponder(credentials=pki.alice, trust=pki.trust, envelope_padding=padding).receive(
        offer, NOW
    )  # type: ignore[arg-type]
    assert _error_no(reply.message) in code


def test_pke_replay(pki: Pki) -> None:
    cache = ReplayCache()
    offer = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate).initiate(
        NOW
    )
    assert PkeResponder(credentials=pki.bob, trust=pki.trust, replay=cache).receive(offer, NOW).ok
    again = PkeResponder(credentials=pki.bob, trust=pki.trust, replay=cache).receive(offer, NOW)
    assert _error_no(again.message) is ErrorNo.INVALID_TS


def test_pke_mitm_with_operator_ca_forwards_same_keys(pki: Pki) -> None:
    """Study case B: a node holding an operator-CA certificate for 'bob' terminates the
    caller's exchange and re-originates it to the real callee with the same TGK."""
    from ims.mikey.certs import issue_credentials

    mitm = issue_credentials(pki.ca, "sip:bob@ims.lab", now=NOW, bits=1024)
    caller = PkeInitiator(credentials=pki.alice, responder_certificate=mitm.certificate)
    leg_a = PkeResponder(credentials=mitm, trust=pki.trust).receive(caller.initiate(NOW), NOW)
    assert leg_a.result is not None and leg_a.message is not None
    caller.receive(leg_a.message, NOW)
    relay = PkeInitiator(
        credentials=mitm,
        responder_certificate=pki.bob.certificate,
        tgk=leg_a.result.tgk,
        rand=leg_a.result.rand,
        csb_id=leg_a.result.csb_id,
    )
    leg_b = PkeResponder(credentials=pki.bob, trust=pki.trust).receive(relay.initiate(NOW), NOW)
    assert leg_b.result is not None and caller.result is not None
    assert leg_b.result.keys == caller.result.keys  # media passes untouched, MITM holds keys


# ------------------------------------------------------------------------------- DH
@pytest.mark.parametrize("group", list(DhGroup))
def test_dh_sign_both_sides_agree(pki: Pki, group: DhGroup) -> None:
    i = DhInitiator(credentials=pki.alice, trust=pki.trust, group=group)
    r = DhResponder(credentials=pki.bob, trust=pki.trust)
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.ok and reply.result is not None and reply.message is not None
    res = i.receive(reply.message, NOW)
    assert res.tgk == reply.result.tgk and len(res.tgk) == {0: 192, 1: 96, 2: 128}[group]
    assert res.keys == reply.result.keys
    assert res.peer_certificate == pki.bob.certificate


def test_dh_sign_pss_self_signed(pki: Pki) -> None:
    i = DhInitiator(
        credentials=pki.alice_self,
        trust=TrustStore((pki.bob_self.certificate,)),
        sign_type=SignType.RSA_PSS,
    )
    r = DhResponder(
        credentials=pki.bob_self,
        trust=TrustStore((pki.alice_self.certificate,)),
        sign_type=SignType.RSA_PSS,
    )
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.message is not None and reply.result is not None
    assert i.receive(reply.message, NOW).keys == reply.result.keys


def test_dh_untrusted_responder(pki: Pki) -> None:
    i = DhInitiator(credentials=pki.alice, trust=pki.trust)
    reply = DhResponder(credentials=pki.mallory, trust=pki.trust).receive(i.initiate(NOW), NOW)
    assert reply.message is not None
    with pytest.raises(MikeyError) as info:
        i.receive(reply.message, NOW)
    assert info.value.mikey_error is ErrorNo.INVALID_CERT


def test_dh_bad_signature_on_response(pki: Pki) -> None:
    from ims.mikey.crypto import DhKeyPair

    i = DhInitiator(credentials=pki.alice, trust=pki.trust)
    kr = DhKeyPair.generate(DhGroup.OAKLEY_5)
    reply = DhResponder(credentials=pki.bob, trust=pki.trust, dh_key=kr).receive(
        i.initiate(NOW), NOW
    )
    assert reply.message is not None
    at = reply.message.index(kr.public) + 10  # a MITM swapping DHr must fail the signature
    with pytest.raises(MikeyError) as info:
        i.receive(_flip(reply.message, at), NOW)
    assert info.value.mikey_error is ErrorNo.AUTH_FAILURE


def test_dh_bad_signature_on_offer(pki: Pki) -> None:
    offer = DhInitiator(credentials=pki.alice, trust=pki.trust).initiate(NOW)
    reply = DhResponder(credentials=pki.bob, trust=pki.trust).receive(_flip(offer, 30), NOW)
    assert _error_no(reply.message) is ErrorNo.AUTH_FAILURE


def test_dh_degenerate_value_refused() -> None:
    from ims.mikey.crypto import DH_WIDTH, DhKeyPair

    kp = DhKeyPair.generate(DhGroup.OAKLEY_1)
    with pytest.raises(MikeyError) as info:
        kp.shared_secret((1).to_bytes(DH_WIDTH[DhGroup.OAKLEY_1], "big"))
    assert info.value.mikey_error is ErrorNo.INVALID_DH


def test_dh_groups_are_safe_primes() -> None:
    from ims.mikey.crypto import DH_PRIMES

    def probable_prime(n: int) -> bool:
        d, s = n - 1, 0
        while d % 2 == 0:
            d, s = d // 2, s + 1
        for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29):
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(s - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    for group, p in DH_PRIMES.items():
        assert (
            p.bit_length()
            == {DhGroup.OAKLEY_1: 768, DhGroup.OAKLEY_2: 1024, DhGroup.OAKLEY_5: 1536}[group]
        )
        assert probable_prime(p) and probable_prime((p - 1) // 2)


# --------------------------------------------------------------------------- DHHMAC
@pytest.mark.parametrize("group", list(DhGroup))
def test_dhhmac_both_sides_agree(group: DhGroup) -> None:
    i = DhHmacInitiator(psk=PSK, group=group, idi="sip:alice@ims.lab", idr="sip:bob@ims.lab")
    r = DhHmacResponder(psk=PSK, idr="sip:bob@ims.lab")
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.ok and reply.result is not None and reply.message is not None
    res = i.receive(reply.message, NOW)
    assert res.keys == reply.result.keys and res.tgk == reply.result.tgk
    assert res.peer_id == b"sip:bob@ims.lab"


def test_dhhmac_wrong_psk() -> None:
    i = DhHmacInitiator(
        psk=PSK, group=DhGroup.OAKLEY_1, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
    )
    reply = DhHmacResponder(psk=b"x" * 16).receive(i.initiate(NOW), NOW)
    assert _error_no(reply.message) is ErrorNo.INVALID_MAC


def test_dhhmac_tampered_response() -> None:
    i = DhHmacInitiator(
        psk=PSK, group=DhGroup.OAKLEY_1, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
    )
    reply = DhHmacResponder(psk=PSK).receive(i.initiate(NOW), NOW)
    assert reply.message is not None
    with pytest.raises(MikeyError) as info:
        i.receive(_flip(reply.message, 50), NOW)
    assert info.value.mikey_error is ErrorNo.INVALID_MAC


# ---------------------------------------------------------------------------- RSA-R
@pytest.mark.parametrize("encr", list(EncrAlg))
def test_rsa_r_both_sides_agree(pki: Pki, encr: EncrAlg) -> None:
    i = RsaRInitiator(credentials=pki.alice, trust=pki.trust)
    r = RsaRResponder(credentials=pki.bob, trust=pki.trust, encr_alg=encr)
    reply = r.receive(i.initiate(NOW), NOW)
    assert reply.ok and reply.result is not None and reply.message is not None
    res = i.receive(reply.message, NOW)
    assert res.keys == reply.result.keys
    assert res.peer_id == b"sip:bob@ims.lab"


def test_rsa_r_untrusted_initiator(pki: Pki) -> None:
    offer = RsaRInitiator(credentials=pki.mallory, trust=pki.trust).initiate(NOW)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(offer, NOW)
    assert _error_no(reply.message) is ErrorNo.INVALID_CERT


def test_rsa_r_bad_response_signature(pki: Pki) -> None:
    i = RsaRInitiator(credentials=pki.alice, trust=pki.trust)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(i.initiate(NOW), NOW)
    assert reply.message is not None
    with pytest.raises(MikeyError) as info:
        i.receive(_flip(reply.message, len(reply.message) - 3), NOW)
    assert info.value.mikey_error is ErrorNo.AUTH_FAILURE


def test_rsa_r_response_replay(pki: Pki) -> None:
    cache = ReplayCache()
    i = RsaRInitiator(credentials=pki.alice, trust=pki.trust, replay=cache)
    offer = i.initiate(NOW)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(offer, NOW)
    assert reply.message is not None
    i.receive(reply.message, NOW)
    i2 = RsaRInitiator(
        credentials=pki.alice, trust=pki.trust, replay=cache, csb_id=i.csb_id, rand=i.rand
    )
    i2.initiate(NOW)
    with pytest.raises(MikeyError) as info:
        i2.receive(reply.message, NOW)
    assert info.value.mikey_error is ErrorNo.INVALID_TS


def test_psk_verification_layout() -> None:
    """R_MESSAGE echoes T_i; V = HMAC(auth_key, R-without-MAC || IDi || IDr(response) || T_i)."""
    from ims.mikey.crypto import hmac_sha1_160
    from ims.mikey.kdf import derive_transport_keys
    from ims.mikey.payloads import TPayload, VPayload

    i = PskInitiator(psk=PSK, idi="sip:alice@ims.lab")  # no IDr offered
    offer = i.initiate(NOW)
    reply = PskResponder(psk=PSK, idr="sip:bob@ims.lab").receive(offer, NOW + 3)
    assert reply.message is not None
    r = decode_message(reply.message)
    t_i = decode_message(offer).find(TPayload)
    assert t_i is not None and r.find(TPayload) == t_i
    auth = derive_transport_keys(PSK, i.csb_id, i.rand).auth_key
    mac_in = reply.message[:-20] + b"sip:alice@ims.lab" + b"sip:bob@ims.lab" + t_i.value_bytes()
    v = r.find(VPayload)
    assert v is not None and v.data == hmac_sha1_160(auth, mac_in)
    assert i.receive(reply.message, NOW + 3).peer_id == b"sip:bob@ims.lab"


def test_psk_tgk_with_transported_salt() -> None:
    salt = bytes(range(14))
    i = PskInitiator(psk=PSK, tgk_salt=salt, encr_alg=EncrAlg.AES_KW_128)
    reply = PskResponder(psk=PSK).receive(i.initiate(NOW), NOW)
    assert reply.message is not None and reply.result is not None
    res = i.receive(reply.message, NOW)
    assert res.keys == reply.result.keys
    assert all(k.master_salt == salt for k in res.keys)


def test_responder_serves_several_exchanges() -> None:
    r = PskResponder(psk=PSK)
    for k in range(3):
        reply = r.receive(PskInitiator(psk=PSK).initiate(NOW + k), NOW + k)
        assert reply.ok and r.machine.state is State.ESTABLISHED
    bad = r.receive(b"\x01\x00", NOW)
    assert not bad.ok and r.machine.state is State.FAILED
    assert r.receive(PskInitiator(psk=PSK).initiate(NOW), NOW).ok


def test_pke_chash_names_the_envelope_certificate(pki: Pki) -> None:
    i = PkeInitiator(
        credentials=pki.alice, responder_certificate=pki.bob.certificate, send_chash=True
    )
    offer = i.initiate(NOW)
    assert PkeResponder(credentials=pki.bob, trust=pki.trust).receive(offer, NOW).ok
    other = PkeResponder(credentials=pki.mallory, trust=pki.trust).receive(offer, NOW)
    assert _error_no(other.message) is ErrorNo.INVALID_CERT


def test_empty_envelope_key_is_an_auth_failure(pki: Pki) -> None:
    """What PKCS#1 v1.5 implicit rejection sometimes yields for a wrong key: an empty plaintext.

    It must be refused as an authentication failure, never reach the PRF as an empty inkey.
    """
    from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding

    from ims.mikey.crypto import envelope_decrypt

    empty = pki.alice.certificate.public_key().encrypt(b"", rsa_padding.PKCS1v15())  # type: ignore[union-attr]
    with pytest.raises(MikeyError) as exc:
        envelope_decrypt(pki.alice.private_key, empty)
    assert exc.value.mikey_error is ErrorNo.AUTH_FAILURE
