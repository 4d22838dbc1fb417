"""UE MIKEY keying strategies: a real exchange through SDP offer/answer for each PSK mode."""

from __future__ import annotations

import pytest

from ims.sdp.model import SessionDescription
from ims.sdp.offer_answer import LocalAudio, create_offer
from ue import keying
from ue.keying import KeyingContext, KeyingError
from ue.keying_mikey import PUBLIC_PSK, MikeyCredentials, aor, configure, pair

A, B = "sip:alice@ims-a.test", "<sip:bob@IMS-B.test;user=x>"


def sdp_with(keying_sdp: keying.SdpKeying) -> SessionDescription:
    local = LocalAudio(address="127.0.8.1", port=4000, secure=True, key_mgmt=keying_sdp.key_mgmt)
    return create_offer(local, session_id=1)


def exchange(name: str) -> tuple[keying.MediaKeys, keying.MediaKeys]:
    k = keying.get(name)
    caller = k.session(KeyingContext(call_id="c", local_uri=A, remote_uri=B, initiator=True))
    callee = k.session(KeyingContext(call_id="c", local_uri=B, remote_uri=A, initiator=False))
    offer = sdp_with(caller.offer())
    answer_keying, callee_keys = callee.answer(offer, 0)
    answer = sdp_with(answer_keying)
    caller_keys = caller.answer_received(answer, 0)
    return caller_keys, callee_keys


@pytest.fixture(autouse=True)
def creds() -> None:
    configure(
        MikeyCredentials(
            e2e_psk={pair(A, B): b"users' own secret 0123456789abcd"},
            hop_psk={aor(A): b"alice-pcscf-psk", aor(B): b"alice-pcscf-psk"},
        )
    )


def test_aor() -> None:
    assert aor(B) == "sip:bob@ims-b.test"
    assert aor("sips:carol@X.test:5061") == "sip:carol@x.test"


@pytest.mark.parametrize("name", ["psk", "psk-public", "psk-hop"])
def test_psk_modes_key_both_directions(name: str) -> None:
    caller, callee = exchange(name)
    assert caller.tx is not None and caller.rx is not None
    assert caller.tx == callee.rx and caller.rx == callee.tx
    assert caller.tx.master_key != caller.rx.master_key
    assert "MIKEY" in caller.description


def test_registered() -> None:
    assert {"psk", "psk-public", "psk-hop", "pke", "rsa-r", "dh", "dhhmac"} <= set(
        keying.available()
    )


def test_wrong_psk_fails_the_answer() -> None:
    k = keying.get("psk")
    caller = k.session(KeyingContext(call_id="c", local_uri=A, remote_uri=B, initiator=True))
    offer = sdp_with(caller.offer())
    configure(MikeyCredentials(e2e_psk={pair(A, B): b"a different secret"}))
    callee = k.session(KeyingContext(call_id="c", local_uri=B, remote_uri=A, initiator=False))
    with pytest.raises(KeyingError):
        callee.answer(offer, 0)
    assert PUBLIC_PSK


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pke", "operator"),
        ("pke", "external"),
        ("pke", "self-signed"),
        ("rsa-r", "operator"),
        ("dh", "operator"),
        ("dh", "self-signed"),
        ("dhhmac", "none"),
    ],
)
def test_signed_modes(name: str, kind: str) -> None:
    import time

    from lab.matrix.credentials import Pki, provision

    creds, _ = provision(
        Pki(kind), [A, B], ["ims-a.test", "ims-b.test"], now=time.time(), bits=1024
    )
    configure(creds)
    caller, callee = exchange(name)
    assert caller.tx is not None and caller.tx == callee.rx and caller.rx == callee.tx


def test_pke_rejects_a_certificate_from_the_wrong_operator() -> None:
    """Name binding: bob's certificate must come from operator B's CA."""
    import time

    from lab.matrix.credentials import Pki, provision

    now = time.time()
    creds, pki = provision(Pki.OPERATOR, [A, B], ["ims-a.test", "ims-b.test"], now=now, bits=1024)
    creds.directory[aor(B)] = pki.issue("ims-a.test", aor(B), now=now, bits=1024).certificate
    configure(creds)
    k = keying.get("pke")
    caller = k.session(KeyingContext(call_id="c", local_uri=A, remote_uri=B, initiator=True))
    with pytest.raises(KeyingError, match="rejected"):
        caller.offer()
