"""MIKEY MITM in-process, on real exchanges between ims.mikey initiators and responders."""

from __future__ import annotations

import time

import pytest

from ims.mikey.certs import Credentials
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from lab.matrix.credentials import LabPki, Pki, provision, self_signed
from li.mitm.mikey import MikeyMitm, MitmFunction, MitmState
from ue.keying_mikey import MikeyCredentials, certificate_names

A, B = "sip:alice@ims-a.test", "sip:bob@ims-b.test"
DOMAINS = ["ims-a.test", "ims-b.test"]
NOW = time.time()
ALL = frozenset(MitmFunction)


@pytest.fixture(scope="module")
def operator() -> tuple[MikeyCredentials, LabPki]:
    return provision(Pki.OPERATOR, [A, B], DOMAINS, now=NOW, bits=1024)


def substitutes(pki: LabPki, assisting: set[str]) -> dict[str, Credentials]:
    return {
        u: pki.issue(u.rpartition("@")[2], u, now=NOW, bits=1024)
        for u in (A, B)
        if u.rpartition("@")[2] in assisting
    }


def mitm(pki: LabPki, subs: dict[str, Credentials], **kw: object) -> MikeyMitm:
    return MikeyMitm(
        substitutes=subs.get,
        real_certificates=lambda i: pki.users[i].certificate if i in pki.users else None,
        authorised=ALL,
        **kw,  # type: ignore[arg-type]
    )


def key_set(result: object) -> set[bytes]:
    return {k.key_salt for k in result.keys}  # type: ignore[attr-defined]


def test_pke_case_b_both_operators(operator: tuple[MikeyCredentials, LabPki]) -> None:
    creds, pki = operator
    subs = substitutes(pki, set(DOMAINS))
    # step 1: operator B hands alice the substitute certificate of bob
    ini = PkeInitiator(
        credentials=pki.users[A],
        responder_certificate=subs[B].certificate,
        verification=False,
        idi=A,
        idr=B,
    )
    m = mitm(pki, subs)
    forwarded = m.on_offer(ini.initiate(NOW), NOW)
    reply = PkeResponder(credentials=pki.users[B], trust=creds.trust_for(A)).receive(forwarded, NOW)
    assert reply.result is not None, reply.error
    # bob believes alice signed it: the substitute names alice and chains to operator A's CA
    assert reply.result.peer_certificate is not None
    assert A in certificate_names(reply.result.peer_certificate)
    assert m.state is MitmState.KEYED and not m.media_mitm_needed
    assert ini.result is not None and m.initiator_leg is not None
    assert key_set(ini.result) == key_set(reply.result) == key_set(m.initiator_leg)


def test_pke_case_b_one_operator_fails(operator: tuple[MikeyCredentials, LabPki]) -> None:
    creds, pki = operator
    subs = substitutes(pki, {"ims-a.test"})  # only alice's operator assists
    ini = PkeInitiator(
        credentials=pki.users[A],
        responder_certificate=pki.users[B].certificate,
        verification=False,
        idi=A,
        idr=B,
    )
    data = ini.initiate(NOW)
    m = mitm(pki, subs)
    assert m.on_offer(data, NOW) == data  # untouched: the call goes on, LI gets nothing
    assert m.state is MitmState.PASSED_THROUGH and "only one operator" in m.reason
    assert m.initiator_leg is None


def test_rsa_r_both_operators(operator: tuple[MikeyCredentials, LabPki]) -> None:
    creds, pki = operator
    m = mitm(pki, substitutes(pki, set(DOMAINS)))
    ini = RsaRInitiator(credentials=pki.users[A], trust=creds.trust_for(B), idr=B)
    forwarded = m.on_offer(ini.initiate(NOW), NOW)
    reply = RsaRResponder(credentials=pki.users[B], trust=creds.trust_for(A)).receive(
        forwarded, NOW
    )
    assert reply.result is not None and reply.message is not None, reply.error
    back = m.on_answer(reply.message, NOW)
    assert back is not None
    res = ini.receive(back, NOW)
    assert res.peer_certificate is not None and B in certificate_names(res.peer_certificate)
    assert key_set(res) == key_set(reply.result)
    assert m.initiator_leg is not None and key_set(m.initiator_leg) == key_set(res)


@pytest.mark.parametrize("self_signed_certs", [False, True])
def test_dh_sign_two_legs(
    operator: tuple[MikeyCredentials, LabPki], self_signed_certs: bool
) -> None:
    creds, pki = operator
    if self_signed_certs:  # case D-like: anyone can make the substitutes
        subs = {u: self_signed(u, now=NOW, bits=1024) for u in (A, B)}
        alice = self_signed(A, now=NOW, bits=1024)
        bob = self_signed(B, now=NOW, bits=1024)
        from ue.keying_mikey import SelfSignedTrust

        trust_a = trust_b = SelfSignedTrust()
    else:
        subs = substitutes(pki, set(DOMAINS))
        alice, bob = pki.users[A], pki.users[B]
        trust_a, trust_b = creds.trust_for(A), creds.trust_for(B)
    m = mitm(pki, subs)
    ini = DhInitiator(credentials=alice, trust=trust_b, idi=A, idr=B)
    forwarded = m.on_offer(ini.initiate(NOW), NOW)
    reply = DhResponder(credentials=bob, trust=trust_a).receive(forwarded, NOW)
    assert reply.result is not None and reply.message is not None, reply.error
    res = ini.receive(m.on_answer(reply.message, NOW) or b"", NOW)
    assert m.state is MitmState.KEYED and m.media_mitm_needed
    assert m.initiator_leg is not None and m.responder_leg is not None
    assert key_set(res) == key_set(m.initiator_leg)
    assert key_set(reply.result) == key_set(m.responder_leg)
    assert key_set(res).isdisjoint(key_set(reply.result))  # two different legs


def test_dh_one_operator_cannot_substitute(operator: tuple[MikeyCredentials, LabPki]) -> None:
    creds, pki = operator
    m = mitm(pki, substitutes(pki, {"ims-a.test"}))
    ini = DhInitiator(credentials=pki.users[A], trust=creds.trust_for(B), idi=A, idr=B)
    data = ini.initiate(NOW)
    assert m.on_offer(data, NOW) == data
    assert m.state is MitmState.PASSED_THROUGH and "does not assist" in m.reason


def test_dhhmac_known_psk_and_unknown() -> None:
    known = b"publicly known"
    pki = LabPki(kind=Pki.NONE)
    m = mitm(pki, {}, known_psk=known)
    ini = DhHmacInitiator(psk=known, idi=A, idr=B)
    fwd = m.on_offer(ini.initiate(NOW), NOW)
    reply = DhHmacResponder(psk=known).receive(fwd, NOW)
    assert reply.result is not None and reply.message is not None
    res = ini.receive(m.on_answer(reply.message, NOW) or b"", NOW)
    assert m.media_mitm_needed and m.initiator_leg is not None
    assert key_set(res) == key_set(m.initiator_leg)
    users = DhHmacInitiator(psk=b"users' own", idi=A, idr=B).initiate(NOW)
    m2 = mitm(pki, {}, known_psk=known)
    assert m2.on_offer(users, NOW) == users and m2.state is MitmState.PASSED_THROUGH


def test_not_authorised_is_untouched(operator: tuple[MikeyCredentials, LabPki]) -> None:
    creds, pki = operator
    m = MikeyMitm(substitutes=lambda _i: None, real_certificates=lambda _i: None)
    data = DhInitiator(credentials=pki.users[A], trust=creds.trust_for(B), idi=A, idr=B).initiate(
        NOW
    )
    assert m.on_offer(data, NOW) == data and "not authorised" in m.reason
    assert m.on_offer(b"junk", NOW) == b"junk"
