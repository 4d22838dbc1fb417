"""MIKEY keys drive real SRTP media sessions (ims.media.session) on loopback, every mode.

Each side takes (tx, rx) from its own KeyExchangeResult; a tone crosses both ways with no
authentication or replay failure, which only happens when both ends derived the same keys.
"""

from __future__ import annotations

import asyncio

import pytest

from ims.media.audio import BufferSink, ToneSource
from ims.media.session import MediaSession
from ims.mikey.constants import DhGroup
from ims.mikey.modes.base import KeyExchangeResult
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.policy import Sender

from .conftest import NOW, Pki

HOST = "127.0.5.1"
FRAMES = 15


def _exchange(mode: str, pki: Pki) -> tuple[KeyExchangeResult, KeyExchangeResult]:
    ini: object
    resp: object
    if mode == "psk":
        ini, resp = PskInitiator(psk=b"p" * 16), PskResponder(psk=b"p" * 16)
    elif mode == "pke":
        ini = PkeInitiator(credentials=pki.alice, responder_certificate=pki.bob.certificate)
        resp = PkeResponder(credentials=pki.bob, trust=pki.trust)
    elif mode == "dh":
        ini = DhInitiator(credentials=pki.alice, trust=pki.trust, group=DhGroup.OAKLEY_2)
        resp = DhResponder(credentials=pki.bob, trust=pki.trust)
    elif mode == "dhhmac":
        ini, resp = (
            DhHmacInitiator(psk=b"p" * 16, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"),
            DhHmacResponder(psk=b"p" * 16),
        )
    else:
        ini = RsaRInitiator(credentials=pki.alice, trust=pki.trust)
        resp = RsaRResponder(credentials=pki.bob, trust=pki.trust)
    reply = resp.receive(ini.initiate(NOW), NOW)  # type: ignore[attr-defined]
    assert reply.message is not None and reply.result is not None
    return ini.receive(reply.message, NOW), reply.result  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["psk", "pke", "dh", "dhhmac", "rsa-r"])
async def test_srtp_audio_with_mikey_keys(mode: str, pki: Pki) -> None:
    ri, rr = _exchange(mode, pki)
    i_tx, i_rx = ri.directional(Sender.INITIATOR)
    r_tx, r_rx = rr.directional(Sender.RESPONDER)
    assert i_tx and i_rx and r_tx and r_rx
    sink_a, sink_b = BufferSink(), BufferSink()
    a = await MediaSession.create(
        HOST,
        tx_keys=i_tx.media_keys(),
        rx_keys=i_rx.media_keys(),
        source=ToneSource(440),
        sink=sink_a,
        rtcp_interval=0.1,
    )
    b = await MediaSession.create(
        HOST,
        tx_keys=r_tx.media_keys(),
        rx_keys=r_rx.media_keys(),
        source=ToneSource(1000),
        sink=sink_b,
        rtcp_interval=0.1,
    )
    a.set_remote(*b.local_rtp_addr)
    b.set_remote(*a.local_rtp_addr)
    a.start(frames=FRAMES)
    b.start(frames=FRAMES)
    try:
        async with asyncio.timeout(20):  # generous: CI runs many suites on 2 cores
            await a.wait_sent()
            await b.wait_sent()
            while a.stats.received < FRAMES or b.stats.received < FRAMES:
                await asyncio.sleep(0.01)
    finally:
        await a.stop()
        await b.stop()
    for s in (a.stats, b.stats):
        assert s.received == FRAMES
        assert s.auth_failures == s.replay_failures == 0
