"""SDES to the access edge (3GPP TS 33.328 e2ae): the P-CSCF swaps keys, the anchor re-keys.

Unit level: :class:`proxies.e2ae.EdgeSignalling` on SDP (tags map one to one, lines the anchor
cannot run are not offered onward, the answer to the UE carries the anchor's key for the chosen
tag, retransmitted answers get the same key) and :class:`proxies.e2ae.EdgeMedia` on real SRTP.
End to end: alice (``sdes-e2ae``) calls bob (``sdes``) through the built-in lab on real sockets;
each UE holds only the keys of its own hop, bob never sees alice's, and the anchor's content
hooks see the clear RTP of both directions.

RFC 4568 §5.1 (quoted): "The crypto attribute ... is used to signal the cryptographic
parameters associated with the media stream" and §6.1: "the tag ... is used by the answerer to
indicate which crypto attribute it selected" -- the tag is the mapping key between the UE's
lines and the anchor's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.sdes import CryptoAttribute, crypto_for, keys_of
from ims.sdp import SessionDescription
from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.e2ae import EdgeError, EdgeMedia, EdgeSignalling, LegKeys, Termination
from proxies.hooks import DROP, MediaDirection, MediaPacketEvent, SipMessageEvent

SUBNET = "127.0.9"

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k1}\r\n"
    "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{k2}\r\n"
    "a=crypto:3 F8_128_HMAC_SHA1_80 inline:{k3}\r\n"
    "a=3ge2ae:requested\r\n"
)


def _inline(n: int = 30) -> str:
    import base64

    return base64.b64encode(os.urandom(n)).decode()


def _offer() -> bytes:
    return OFFER.format(k1=_inline(), k2=_inline(), k3=_inline()).encode()


def _answer(tag: int, suite: str) -> tuple[bytes, CryptoAttribute]:
    far = crypto_for(suite, tag)
    body = (
        "v=0\r\no=- 2 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
        "m=audio 5000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
        f"a=crypto:{far.encode()}\r\n"
    )
    return body.encode(), far


def test_offer_maps_each_runnable_line_to_a_fresh_anchor_line_with_the_same_tag() -> None:
    edge = EdgeSignalling()
    body = _offer()
    ue = SessionDescription.parse(body).media[0].crypto
    done = edge.offer("c1", "orig", body)
    assert done is not None
    out, streams = done
    assert streams == [0]
    m = SessionDescription.parse(out).media[0]
    assert m.attribute("3ge2ae") is None  # the e2ae is this edge's, not forwarded
    # F8 is not runnable here: not offered onward (the anchor could not terminate it)
    assert [(c.tag, c.suite) for c in m.crypto] == [
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AES_CM_128_HMAC_SHA1_32"),
    ]
    onward = {c.tag: c.first_key.key_salt for c in m.crypto}
    assert all(onward[c.tag] != c.first_key.key_salt for c in ue if c.tag in onward)


def test_answer_gives_the_ue_the_anchors_key_for_the_chosen_tag() -> None:
    edge = EdgeSignalling()
    body = _offer()
    ue = {c.tag: c for c in SessionDescription.parse(body).media[0].crypto}
    out, _ = edge.offer("c1", "orig", body) or (b"", [])
    anchor = {c.tag: c for c in SessionDescription.parse(out).media[0].crypto}
    answer, far = _answer(2, "AES_CM_128_HMAC_SHA1_32")
    done = edge.answer("c1", answer)
    assert done is not None
    to_ue, terms = done
    (given,) = SessionDescription.parse(to_ue).media[0].crypto
    assert given.tag == 2 and given.suite == "AES_CM_128_HMAC_SHA1_32"
    assert given != far  # the UE never sees the far end's key
    (t,) = terms
    assert t.from_access.rx == ue[2] and t.from_access.tx == anchor[2]
    assert t.from_core.rx == far and t.from_core.tx == given
    # a 2xx retransmission: the same answer to the UE, no new keys for the anchor
    again = edge.answer("c1", answer)
    assert again is not None and again[0] == to_ue and again[1] == []
    # JSON round trip of what goes over the anchor's control port
    assert Termination.from_json(t.to_json()) == t


def test_offers_without_the_request_or_runnable_lines_stay_end_to_end() -> None:
    edge = EdgeSignalling()
    plain = _offer().replace(b"a=3ge2ae:requested\r\n", b"")
    assert edge.offer("c1", "orig", plain) is None
    only_f8 = (
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 F8_128_HMAC_SHA1_80 inline:"
        + _inline().encode()
        + b"\r\na=3ge2ae:requested\r\n"
    )
    assert edge.offer("c2", "orig", only_f8) is None
    assert edge.answer("c3", _answer(1, "AES_CM_128_HMAC_SHA1_80")[0]) is None  # unknown call


def _rtp(seq: int, payload: bytes = b"\x55" * 160) -> bytes:
    return (
        bytes([0x80, 0])
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + (0x1234).to_bytes(4, "big")
        + payload
    )


def _event(leg: str, data: bytes) -> MediaPacketEvent:
    return MediaPacketEvent(
        element="anchor-x",
        call_id="c1",
        icid=None,
        stream=0,
        label="orig",
        leg=leg,
        direction=MediaDirection.FROM_ACCESS if leg == "access" else MediaDirection.FROM_CORE,
        rtcp=False,
        src=("10.0.0.1", 4000),
        dst=("10.0.0.2", 5000),
        data=data,
    )


def test_media_rekeys_each_direction_and_shows_the_clear_packet_to_the_content_hooks() -> None:
    suite = "AES_CM_128_HMAC_SHA1_80"
    ue, a_core, far, a_access = (crypto_for(suite, 1) for _ in range(4))
    media = EdgeMedia("anchor-x", allowed=frozenset({"10.0.0.9"}))
    seen: list[MediaPacketEvent] = []
    media.content_hooks.add(seen.append)
    media.expect("c1", "orig", 0)
    # expected but not keyed yet: dropped, never passed on
    assert media.hook(_event("core", SrtpSender(keys_of(far)).protect(_rtp(1)) or b"")) is DROP
    with pytest.raises(EdgeError):
        media.control({"op": "expect", "call_id": "c1", "streams": [0]}, ("10.0.0.66", 1))
    t = Termination(
        call_id="c1",
        label="orig",
        stream=0,
        from_access=LegKeys(rx=ue, tx=a_core),
        from_core=LegKeys(rx=far, tx=a_access),
    )
    media.control({"op": "keys", **t.to_json()}, ("10.0.0.9", 40000))
    clear = _rtp(7)
    out = media.hook(_event("access", SrtpSender(keys_of(ue)).protect(clear) or b""))
    assert isinstance(out, bytes)
    assert SrtpReceiver(keys_of(a_core)).unprotect(out) == clear  # the far end's key opens it
    assert SrtpReceiver(keys_of(ue)).unprotect(out) is None
    assert seen[-1].clear and seen[-1].data == clear
    back = _rtp(9, b"\x11" * 160)
    out = media.hook(_event("core", SrtpSender(keys_of(far)).protect(back) or b""))
    assert isinstance(out, bytes) and SrtpReceiver(keys_of(a_access)).unprotect(out) == back
    # a forged packet (wrong key) fails authentication: dropped (RFC 3711 §3.3)
    forged = SrtpSender(keys_of(crypto_for(suite, 1))).protect(_rtp(10)) or b""
    assert media.hook(_event("access", forged)) is DROP
    assert media.stats == {"terminated": 2, "unkeyed": 1, "failed": 1}
    # a stream it does not terminate: the content hooks see it as relayed, unchanged
    media.release("c1")
    relayed = _event("access", b"\x80" + b"x" * 19)
    assert media.hook(relayed) is None
    assert seen[-1] is relayed and not seen[-1].clear


@pytest.mark.parametrize(
    "req",
    [
        {"op": "keys", "call_id": "c1", "stream": 0},  # no legs
        {"op": "keys", "call_id": "c1", "stream": "x", "from_access": [], "from_core": []},
        {"op": "expect", "call_id": "c1", "streams": 3},
        {"op": "nonsense"},
        {  # a suite the anchor cannot run
            "op": "keys",
            "call_id": "c1",
            "stream": 0,
            "from_access": ["1 F8_128_HMAC_SHA1_80 inline:" + _inline()] * 2,
            "from_core": ["1 F8_128_HMAC_SHA1_80 inline:" + _inline()] * 2,
        },
        {  # not an a=crypto value
            "op": "keys",
            "call_id": "c1",
            "stream": 0,
            "from_access": ["garbage", "x"],
            "from_core": ["garbage", "x"],
        },
    ],
)
def test_bad_control_requests_are_refused_with_a_value_error(req: dict[str, object]) -> None:
    """What the anchor's control server turns into an error reply (ValueError/KeyError);
    nothing is keyed."""
    media = EdgeMedia("anchor-x", allowed=frozenset({"10.0.0.9"}))
    with pytest.raises((ValueError, KeyError)):
        media.control(req, ("10.0.0.9", 1))
    assert not any(s.from_access or s.from_core for s in media.streams.values())


def test_on_the_anchors_hooks_only_while_there_is_work() -> None:
    """Without a terminated stream or a content observer the anchor keeps its bare relay path
    (its filter runs only while its hook list is non-empty)."""
    from proxies.media_anchor import MediaAnchor

    anchor = MediaAnchor("anchor-x", "127.0.0.1")
    media = EdgeMedia("anchor-x")
    remove = media.install(anchor)
    assert len(anchor.hooks) == 0 and "e2ae" in anchor.extensions
    detach = media.content_hooks.add(lambda e: None)
    assert len(anchor.hooks) == 1
    detach()
    assert len(anchor.hooks) == 0
    media.expect("c1", "orig", 0)
    assert len(anchor.hooks) == 1
    media.release("c1")
    assert len(anchor.hooks) == 0
    remove()
    assert "e2ae" not in anchor.extensions


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo) as running:
        yield running


async def test_call_with_e2ae_terminates_srtp_at_the_callers_anchor(lab: Lab) -> None:
    topo = lab.topology
    sip: list[SipMessageEvent] = []
    lab.elements["pcscf-b"].sip_hooks.add(sip.append)
    content: list[MediaPacketEvent] = []
    lab.elements["anchor-a"].edge.content_hooks.add(content.append)
    async with (
        user_agent(topo, "alice", keying="sdes-e2ae") as alice,
        user_agent(topo, "bob", keying="sdes") as bob,
    ):
        await alice.register()
        await bob.register()
        bob.audio = "tone:1000"
        call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
        incoming = await bob.next_call()
        await asyncio.sleep(1.2)
        assert call.detect_tone(1000) and incoming.detect_tone(440)
        alice_keys, bob_keys = call.keys, incoming.keys
        await call.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 5)
    assert alice_keys is not None and bob_keys is not None
    assert alice_keys.tx is not None and bob_keys.rx is not None
    # the two hops have different keys: what alice sends is not what bob opens
    assert alice_keys.tx.master_key != bob_keys.rx.master_key
    assert alice_keys.rx is not None and bob_keys.tx is not None
    assert alice_keys.rx.master_key != bob_keys.tx.master_key
    # bob's network never saw alice's key, nor the e2ae request
    invite = next(e.message for e in sip if getattr(e.message, "method", None) == "INVITE")
    assert b"3ge2ae" not in invite.body
    assert alice_keys.tx.master_key not in b"".join(
        c.master_key for c in SessionDescription.parse(invite.body).media[0].crypto
    )
    edge = lab.elements["anchor-a"].edge
    assert edge.stats["terminated"] > 50
    clear = [e for e in content if e.clear and not e.rtcp and e.call_id == call.call_id]
    assert {e.leg for e in clear} == {"access", "core"}
    assert all(e.data[1] & 0x7F == 0 for e in clear)  # PCMU RTP, readable as it is
