"""SRTP audio flows with the keys each MIKEY mode derives (pylibsrtp = libsrtp2).

For every mode the initiator protects G.711-sized RTP with the CS 1 key (its stream) and the
responder unprotects it with *its* CS 1 key; the responder sends on CS 2 the other way. A
packet protected with the wrong direction's key must fail authentication.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pylibsrtp
import pytest

from ims.mikey.constants import DhGroup
from ims.mikey.modes.base import CryptoSession, KeyExchangeResult
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.policy import Sender, SrtpKeyMaterial, SrtpSuite

from .conftest import NOW, Pki

SSRC_A, SSRC_B = 0x0A0A0A0A, 0x0B0B0B0B
SESSIONS = (CryptoSession(ssrc=SSRC_A), CryptoSession(ssrc=SSRC_B))


def rtp(ssrc: int, seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + bytes([seq & 0xFF]) * 160


def _session(k: SrtpKeyMaterial, outbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=k.key_salt,
        ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC,
        ssrc_value=k.ssrc,
        srtp_profile=k.srtp_profile,
    )
    return pylibsrtp.Session(policy=policy)


def _flow(ini: KeyExchangeResult, res: KeyExchangeResult, packets: int = 50) -> None:
    assert ini.keys == res.keys
    for k_i, k_r in zip(ini.keys, res.keys, strict=True):
        sender_side = ini if k_i.sender is Sender.INITIATOR else res
        receiver_side = res if sender_side is ini else ini
        tx = _session(sender_side.for_ssrc(k_i.ssrc), True)
        rx = _session(receiver_side.for_ssrc(k_r.ssrc), False)
        for seq in range(packets):
            clear = rtp(k_i.ssrc, seq)
            protected = tx.protect(clear)
            assert protected != clear and len(protected) == len(clear) + 10
            assert rx.unprotect(protected) == clear
    # a packet protected with the other direction's key does not authenticate
    other = ini.keys[1]
    wrong = pylibsrtp.Session(
        policy=pylibsrtp.Policy(
            key=other.key_salt, ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC, ssrc_value=SSRC_A
        )
    )
    rx = _session(res.keys[0], False)
    with pytest.raises(pylibsrtp.Error):
        rx.unprotect(wrong.protect(rtp(SSRC_A, 1)))


def _psk() -> tuple[KeyExchangeResult, KeyExchangeResult]:
    i = PskInitiator(psk=b"p" * 16, sessions=SESSIONS)
    reply = PskResponder(psk=b"p" * 16).receive(i.initiate(NOW), NOW)
    assert reply.message is not None and reply.result is not None
    return i.receive(reply.message, NOW), reply.result


def _run(
    make_i: Callable[[], object], make_r: Callable[[], object]
) -> tuple[KeyExchangeResult, KeyExchangeResult]:
    i, r = make_i(), make_r()
    reply = r.receive(i.initiate(NOW), NOW)  # type: ignore[attr-defined]
    assert reply.message is not None and reply.result is not None, reply.error
    return i.receive(reply.message, NOW), reply.result  # type: ignore[attr-defined]


def test_psk_srtp(pki: Pki) -> None:
    _flow(*_psk())


def test_pke_srtp(pki: Pki) -> None:
    _flow(
        *_run(
            lambda: PkeInitiator(
                credentials=pki.alice, responder_certificate=pki.bob.certificate, sessions=SESSIONS
            ),
            lambda: PkeResponder(credentials=pki.bob, trust=pki.trust),
        )
    )


def test_dh_srtp(pki: Pki) -> None:
    _flow(
        *_run(
            lambda: DhInitiator(credentials=pki.alice, trust=pki.trust, sessions=SESSIONS),
            lambda: DhResponder(credentials=pki.bob, trust=pki.trust),
        )
    )


def test_dhhmac_srtp() -> None:
    _flow(
        *_run(
            lambda: DhHmacInitiator(
                psk=b"q" * 20,
                group=DhGroup.OAKLEY_2,
                sessions=SESSIONS,
                idr="sip:bob@ims.lab",
                idi="sip:alice@ims.lab",
            ),
            lambda: DhHmacResponder(psk=b"q" * 20),
        )
    )


def test_rsa_r_srtp(pki: Pki) -> None:
    _flow(
        *_run(
            lambda: RsaRInitiator(credentials=pki.alice, trust=pki.trust, sessions=SESSIONS),
            lambda: RsaRResponder(credentials=pki.bob, trust=pki.trust),
        )
    )


@pytest.mark.parametrize(
    "suite",
    [SrtpSuite.AES_CM_128_HMAC_SHA1_32, SrtpSuite.NULL_HMAC_SHA1_80, SrtpSuite.AEAD_AES_128_GCM],
)
def test_other_suites_srtp(suite: SrtpSuite) -> None:
    sessions = (CryptoSession(suite=suite, ssrc=SSRC_A),)
    i = PskInitiator(psk=b"p" * 16, sessions=sessions, verification=False)
    reply = PskResponder(psk=b"p" * 16).receive(i.initiate(NOW), NOW)
    assert i.result is not None and reply.result is not None
    tx = _session(i.result.keys[0], True)
    rx = _session(reply.result.keys[0], False)
    for seq in range(10):
        assert rx.unprotect(tx.protect(rtp(SSRC_A, seq))) == rtp(SSRC_A, seq)
