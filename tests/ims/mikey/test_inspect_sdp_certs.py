"""Key extraction with known secrets (the LI cases), SDP carriage, and certificate validation."""

from __future__ import annotations

import json

import pytest

from ims.mikey.certs import (
    TrustStore,
    certificate_der,
    certificate_pem,
    load_certificate,
    load_private_key,
    make_ca,
    private_key_pem,
)
from ims.mikey.constants import DhGroup, EncrAlg, ErrorNo
from ims.mikey.crypto import DhKeyPair
from ims.mikey.errors import MikeyError
from ims.mikey.inspect import describe, open_message
from ims.mikey.message import decode_message
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator
from ims.mikey.modes.psk import PskInitiator
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.sdp import find_key_mgmt, key_mgmt_attribute, key_mgmt_value, parse_key_mgmt_value

from .conftest import NOW, Pki


@pytest.mark.parametrize("encr", list(EncrAlg))
def test_open_psk_with_known_key(encr: EncrAlg) -> None:
    i = PskInitiator(psk=b"k" * 16, encr_alg=encr)
    opened = open_message(i.initiate(NOW), psk=b"k" * 16)
    assert i.result is not None and opened.tgk == i.tgk and opened.keys == i.result.keys
    with pytest.raises(MikeyError) as info:
        open_message(PskInitiator(psk=b"k" * 16).initiate(NOW), psk=b"z" * 16)
    assert info.value.mikey_error is ErrorNo.INVALID_MAC


def test_open_pke_case_c(pki: Pki) -> None:
    i = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate)
    opened = open_message(i.initiate(NOW), private_key=pki.bob.private_key)
    assert i.result is not None and opened.keys == i.result.keys


def test_open_rsa_r_with_initiator_key(pki: Pki) -> None:
    i = RsaRInitiator(credentials=pki.alice, trust=pki.trust)
    reply = RsaRResponder(credentials=pki.bob, trust=pki.trust).receive(i.initiate(NOW), NOW)
    assert reply.message is not None and reply.result is not None
    opened = open_message(reply.message, private_key=pki.alice.private_key, rand=i.rand)
    assert opened.keys == reply.result.keys


def test_open_dhhmac_needs_a_private_value() -> None:
    kp = DhKeyPair.generate(DhGroup.OAKLEY_1)
    i = DhHmacInitiator(psk=b"k" * 16, dh_key=kp, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab")
    offer = i.initiate(NOW)
    reply = DhHmacResponder(psk=b"k" * 16).receive(offer, NOW)
    assert reply.message is not None and reply.result is not None
    assert open_message(offer).tgk is None  # passive: nothing
    dhr = decode_message(reply.message).payloads
    from ims.mikey.payloads import DhPayload

    peer = next(p for p in dhr if isinstance(p, DhPayload))
    opened = open_message(offer, dh_private=kp, peer_dh_value=peer.value)
    assert opened.keys == reply.result.keys


def test_describe_is_json() -> None:
    msg = decode_message(PskInitiator(psk=b"k" * 16).initiate(NOW))
    text = json.dumps(describe(msg))
    assert '"PSK_INIT"' in text and "KemacPayload" in text


def test_sdp_helpers() -> None:
    data = bytes(range(40))
    assert parse_key_mgmt_value(key_mgmt_value(data)) == data
    assert parse_key_mgmt_value("other abc") is None
    assert parse_key_mgmt_value("mikey !!!") is None
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
        f"{key_mgmt_attribute(b'session')}\r\nt=0 0\r\n"
        "m=audio 4000 RTP/SAVP 0\r\n"
        f"{key_mgmt_attribute(b'media0')}\r\n"
        "m=audio 4002 RTP/SAVP 0\r\n"
    )
    assert find_key_mgmt(sdp) == b"session"
    assert find_key_mgmt(sdp, 0) == b"media0"
    assert find_key_mgmt(sdp, 1) == b"session"
    assert find_key_mgmt("v=0\r\n") is None


def test_certificate_chain_with_intermediate(pki: Pki) -> None:
    from ims.mikey.certs import Credentials, generate_rsa_key, make_certificate

    ikey = generate_rsa_key(1024)
    inter = Credentials(
        private_key=ikey,
        chain=(
            make_certificate(
                subject="Intermediate CA",
                public_key=ikey.public_key(),
                issuer_key=pki.ca.private_key,
                issuer=pki.ca.certificate,
                ca=True,
                not_before=NOW - 60,
            ),
        ),
    )

    key = generate_rsa_key(1024)
    leaf = make_certificate(
        subject="sip:carol@ims.lab",
        public_key=key.public_key(),
        issuer_key=inter.private_key,
        issuer=inter.certificate,
        not_before=NOW - 60,
    )
    creds = Credentials(private_key=key, chain=(leaf, inter.certificate))
    assert pki.trust.verify(creds.chain, NOW) == leaf
    with pytest.raises(MikeyError):
        pki.trust.verify((leaf,), NOW)  # intermediate missing
    with pytest.raises(MikeyError):
        TrustStore((make_ca("X", now=NOW).certificate,)).verify(creds.chain, NOW)


def test_pem_der_roundtrip(pki: Pki) -> None:
    cert = pki.alice.certificate
    assert load_certificate(certificate_der(cert)) == cert
    assert load_certificate(certificate_pem(cert)) == cert
    key = load_private_key(private_key_pem(pki.alice.private_key))
    assert key.private_numbers() == pki.alice.private_key.private_numbers()
    with pytest.raises(MikeyError):
        load_certificate(b"garbage")


def test_end_entity_cannot_issue(pki: Pki) -> None:
    from ims.mikey.certs import generate_rsa_key, make_certificate

    key = generate_rsa_key(1024)
    forged = make_certificate(
        subject="sip:bob@ims.lab",
        public_key=key.public_key(),
        issuer_key=pki.alice.private_key,
        issuer=pki.alice.certificate,
        not_before=NOW - 60,
    )
    with pytest.raises(MikeyError) as info:
        pki.trust.verify((forged, pki.alice.certificate), NOW)
    assert info.value.mikey_error is ErrorNo.INVALID_CERT
