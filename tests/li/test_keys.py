"""Key extraction (li/keys.py) on real SDP and MIKEY messages made by ims.mikey's modes."""

from __future__ import annotations

import base64
import time

import pytest

from ims.mikey.modes.dh import DhInitiator
from ims.mikey.modes.dhhmac import DhHmacInitiator
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from lab.matrix.credentials import Pki, provision
from li.keys import (
    HopByHopIntermediary,
    KeyRecord,
    KeySource,
    MikeySecrets,
    OperatorKeyPolicy,
    Sender,
    Unavailable,
    sdes_keys,
)
from tests.li.poi.sipmsgs import KEY_A, KEY_B, sdp

A, B = "sip:alice@ims-a.test", "sip:bob@ims-b.test"
NOW = time.time()


def mikey_sdp(data: bytes) -> bytes:
    body = sdp("127.0.8.10", 4000, None).replace(b"RTP/AVP", b"RTP/SAVP")
    return body + f"a=key-mgmt:mikey {base64.b64encode(data).decode()}\r\n".encode()


def test_sdes_both_directions_and_tag_selection() -> None:
    offer = sdp("127.0.8.10", 4000, KEY_A, tag=1) + (
        b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(bytes(30)) + b"\r\n"
    )
    answer = sdp("127.0.8.20", 5000, KEY_B, tag=2).replace(b"_80", b"_32")
    recs = sdes_keys("c", offer, answer)
    assert [r.sender for r in recs] == [Sender.OFFERER, Sender.ANSWERER]
    assert recs[0].keys is not None and recs[0].keys.key_salt == bytes(30)  # tag 2 chosen
    assert recs[1].keys is not None and recs[1].keys.key_salt == KEY_B
    assert recs[0].keys.suite == "AES_CM_128_HMAC_SHA1_32"


def test_key_record_round_trip_and_redaction() -> None:
    rec = sdes_keys("c", sdp("h", 1, KEY_A), None)[0]
    assert KeyRecord.from_dict(rec.to_dict()) == rec
    assert "master" not in repr(rec) and KEY_A.hex() not in repr(rec)


def test_plain_rtp_is_reported_unavailable() -> None:
    recs = OperatorKeyPolicy()("c", sdp("h", 1, None), sdp("h", 2, None))
    assert len(recs) == 1 and not recs[0].available
    assert recs[0].reason == str(Unavailable.NO_SRTP)


def _psk_offer(psk: bytes) -> tuple[bytes, PskInitiator]:
    ini = PskInitiator(psk=psk, verification=False, idi=A, idr=B)
    return ini.initiate(NOW), ini


def test_public_psk_opened_e2e_psk_not() -> None:
    from ue.keying_mikey import PUBLIC_PSK

    policy = OperatorKeyPolicy(mikey=MikeySecrets(public_psks=(PUBLIC_PSK,)))
    data, ini = _psk_offer(PUBLIC_PSK)
    recs = policy("c", mikey_sdp(data), None)
    assert ini.result is not None
    assert {r.keys.key_salt for r in recs if r.keys} == {k.key_salt for k in ini.result.keys}
    assert {r.sender for r in recs} == {Sender.OFFERER, Sender.ANSWERER}
    assert all(r.source is KeySource.MIKEY_PSK_PUBLIC for r in recs)
    secret, _ = _psk_offer(b"the users' own secret")
    recs = policy("c", mikey_sdp(secret), None)
    assert [r.reason for r in recs] == [str(Unavailable.E2E_PSK)]


def test_hop_by_hop_intermediary_reprotects_and_poi_opens() -> None:
    alice_psk, bob_psk, net = b"alice<->pcscf-a", b"bob<->pcscf-b", b"inter-operator"
    data, ini = _psk_offer(alice_psk)
    pcscf_a = HopByHopIntermediary(ue_psks={A: alice_psk}, network_psk=net)
    pcscf_b = HopByHopIntermediary(ue_psks={B: bob_psk}, network_psk=net)
    on_network = pcscf_a.reprotect(data, toward_ue=None, now=NOW)
    assert on_network is not None
    to_bob = pcscf_b.reprotect(on_network, toward_ue=B, now=NOW)
    assert to_bob is not None
    reply = PskResponder(psk=bob_psk).receive(to_bob, NOW)
    assert reply.result is not None and ini.result is not None
    assert {k.key_salt for k in reply.result.keys} == {k.key_salt for k in ini.result.keys}
    # bob's key cannot open what alice sent: the hops really are separate
    assert PskResponder(psk=bob_psk).receive(data, NOW).result is None
    # operator A's POI reads the keys with the PSK its P-CSCF holds
    recs = OperatorKeyPolicy(mikey=MikeySecrets(hop_psks={A: alice_psk}))(
        "c", mikey_sdp(data), None
    )
    assert all(r.source is KeySource.MIKEY_PSK_HOP for r in recs) and len(recs) == 2
    # nothing to do when already protected for the next hop
    assert pcscf_b.reprotect(to_bob, toward_ue=B, now=NOW) is None


@pytest.fixture(scope="module")
def pki() -> tuple[object, object]:
    return provision(Pki.OPERATOR, [A, B], ["ims-a.test", "ims-b.test"], now=NOW, bits=1024)


def test_pke_case_c_escrow_and_case_b_unavailable(pki: tuple[object, object]) -> None:
    creds, lab = pki
    alice, bob = lab.users[A], lab.users[B]  # type: ignore[attr-defined]
    ini = PkeInitiator(
        credentials=alice, responder_certificate=bob.certificate, verification=False, idi=A, idr=B
    )
    data = ini.initiate(NOW)
    reply = PkeResponder(credentials=bob, trust=creds.trust_for(A)).receive(data, NOW)  # type: ignore[attr-defined]
    assert reply.result is not None
    escrow = OperatorKeyPolicy(mikey=MikeySecrets(private_keys={B: bob.private_key}))
    recs = escrow("c", mikey_sdp(data), None)
    assert {r.keys.key_salt for r in recs if r.keys} == {k.key_salt for k in reply.result.keys}
    assert all(r.source is KeySource.MIKEY_PKE_ESCROW for r in recs)
    none = OperatorKeyPolicy(mikey=MikeySecrets(private_keys={A: alice.private_key}))
    assert [r.reason for r in none("c", mikey_sdp(data), None)] == [str(Unavailable.NO_PRIVATE_KEY)]


def test_dh_modes_are_unavailable_passively(pki: tuple[object, object]) -> None:
    creds, lab = pki
    dh = DhInitiator(credentials=lab.users[A], trust=creds.trust_for(B), idi=A, idr=B)  # type: ignore[attr-defined]
    policy = OperatorKeyPolicy(mikey=MikeySecrets(public_psks=(b"x",)))
    assert policy("c", mikey_sdp(dh.initiate(NOW)), None)[0].reason == str(Unavailable.PFS)
    hm = DhHmacInitiator(psk=b"users", idi=A, idr=B)
    assert policy("c", mikey_sdp(hm.initiate(NOW)), None)[0].reason == str(
        Unavailable.USER_HMAC_PSK
    )


def test_garbage_mikey_is_unavailable_not_an_exception() -> None:
    recs = OperatorKeyPolicy(mikey=MikeySecrets())("c", mikey_sdp(b"\x01\x02\x03"), None)
    assert len(recs) == 1 and not recs[0].available
