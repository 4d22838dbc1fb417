"""Keying strategies: SDES offer/answer between two UE sessions, plain RTP, the registry."""

from __future__ import annotations

import pytest

from ims.sdp import LocalAudio, SessionDescription, create_offer
from ue import keying
from ue.keying import KeyingContext, KeyingError


def _ctx(initiator: bool) -> KeyingContext:
    return KeyingContext(
        call_id="c", local_uri="sip:a@x", remote_uri="sip:b@y", initiator=initiator
    )


def _offer(material: keying.SdpKeying) -> SessionDescription:
    return create_offer(
        LocalAudio(
            address="127.0.7.1",
            port=4000,
            secure=material.secure,
            crypto=material.crypto,
            key_mgmt=material.key_mgmt,
        ),
        session_id=1,
    )


def test_sdes_keys_cross_over() -> None:
    offerer = keying.get("sdes").session(_ctx(True))
    answerer = keying.get("sdes").session(_ctx(False))
    offer = _offer(offerer.offer())
    assert offer.media[0].proto == "RTP/SAVP"
    assert offer.media[0].crypto[0].suite == keying.DEFAULT_SUITE
    material, answer_keys = answerer.answer(offer, 0)
    answer = _offer(material)  # an SDP carrying the answer's a=crypto line
    offer_keys = offerer.answer_received(answer, 0)
    assert offer_keys.tx == answer_keys.rx and offer_keys.rx == answer_keys.tx
    assert offer_keys.secure and offer_keys.description == "SDES AES_CM_128_HMAC_SHA1_80"


def test_plain_rtp_and_mismatches() -> None:
    none = keying.get("none").session(_ctx(True))
    offer = _offer(none.offer())
    assert offer.media[0].proto == "RTP/AVP"
    with pytest.raises(KeyingError):
        keying.get("sdes").session(_ctx(False)).answer(offer, 0)  # SDES needs a=crypto
    secure = _offer(keying.get("sdes").session(_ctx(True)).offer())
    with pytest.raises(KeyingError) as info:
        keying.get("none").session(_ctx(False)).answer(secure, 0)
    assert info.value.status == 488


def test_registry() -> None:
    assert {"sdes", "none"} <= set(keying.available())
    with pytest.raises(KeyingError, match="unknown keying mode"):
        keying.get("no-such-mode")

    class Dummy(keying.NoKeying):
        name = "dummy"

    keying.register("dummy", Dummy)
    assert isinstance(keying.get("dummy"), Dummy)
