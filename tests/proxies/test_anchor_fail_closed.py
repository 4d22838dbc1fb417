"""The P-CSCF's media anchoring fails closed (issue 15, item 1).

Lawful interception sees a call's content only at the media anchor's CC hook, so no SDP that
points past the anchor may reach a UE: not the first 2xx when the anchor cannot be reached
while the answer crosses, and not a 2xx retransmission that arrives while the first copy is
still being anchored (RFC 3261 §16.7 step 10 forwards 2xx retransmissions statelessly; §13.3.1.4:
"the server transaction ... 2xx response ... retransmitted ... until an ACK is received").

The whole lab runs in-process on real sockets; the anchor is the real one, and its control
socket is *paused* (it stops reading; the P-CSCF's requests wait in its socket buffer) from the
moment the offer was anchored until after the answer reached the caller.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ims.media.tone import detect_tone, tone_ratio
from ims.sip.message import Response
from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.hooks import (
    AnchorSessionEvent,
    Direction,
    MediaPacketEvent,
    SessionChange,
    SipMessageEvent,
)

SUBNET = "127.0.7"


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    async with Lab(topology.load(subnet=SUBNET)) as running:
        yield running


def sdp_addresses(body: bytes) -> set[tuple[str, int]]:
    """Every (connection address, port) an SDP names for its non-rejected streams."""
    text = body.decode()
    session_c = re.search(r"^c=IN IP[46] (\S+)", text, re.M)
    out: set[tuple[str, int]] = set()
    for section in re.split(r"^(?=m=)", text, flags=re.M)[1:]:
        port = int(section.split()[1])
        if port == 0:
            continue
        c = re.search(r"^c=IN IP[46] (\S+)", section, re.M) or session_c
        assert c is not None
        out.add((c.group(1), port))
    return out


async def test_stalled_anchor_never_lets_the_answer_past_it(lab: Lab) -> None:
    topo = lab.topology
    anchor_a = lab.element("anchor-a")
    control = anchor_a.server._transport
    assert control is not None
    alice_ip = topo.ue("alice").address
    anchor_ip = topo.element("anchor-a").address

    to_alice: list[Response] = []
    ok_in = 0

    def watch(ev: SipMessageEvent) -> None:
        nonlocal ok_in
        msg = ev.message
        outgoing_invite = ev.direction == Direction.OUT and getattr(msg, "method", None) == "INVITE"
        if outgoing_invite and control.is_reading():
            # the offer has been anchored (its allocation made): the anchor stops listening
            control.pause_reading()
        cseq = msg.cseq if isinstance(msg, Response) else None
        if isinstance(msg, Response) and msg.status == 200 and cseq and cseq.method == "INVITE":
            if ev.direction == Direction.IN:
                ok_in += 1
            elif ev.peer[0] == alice_ip:
                to_alice.append(msg)

    lab.element("pcscf-a").proxy.sip_hooks.add(watch)
    cc: list[MediaPacketEvent] = []
    anchor_a.anchor.hooks.add(cc.append)

    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        bob.audio = "tone:1000"
        call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
        incoming = await bob.next_call()
        # the answer crossed pcscf-a while its anchor did not answer; bob retransmitted it
        assert not control.is_reading()
        assert ok_in >= 2, "bob's 200 was not retransmitted while the anchor stalled"
        control.resume_reading()  # the anchor is back: the P-CSCF's retry reaches it
        # what alice heard before her 200 arrived (sent by bob from his answer on, through
        # the anchor, before she had the keys) is not the test's business: from here on
        heard_from = len(call.received_pcm)
        await asyncio.sleep(2.0)
        await call.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 10)

    # alice saw the anchor, and nothing but the anchor, in every copy of the 200 she got
    assert to_alice
    for resp in to_alice:
        addresses = sdp_addresses(resp.body)
        assert addresses and {host for host, _ in addresses} == {anchor_ip}, addresses
    # the media went through the anchor's CC hook, both ways, and the call had sound
    legs = {p.leg for p in cc if p.call_id == call.call_id and not p.rtcp}
    assert legs == {"access", "core"}
    assert incoming.detect_tone(440), incoming.tone_ratio(440)
    since = call.received_pcm[heard_from:]
    assert len(since) >= 8000 and detect_tone(since, 1000), tone_ratio(since, 1000)


def test_an_answer_with_nothing_to_point_at_leaves_with_no_media() -> None:
    """An answer the P-CSCF cannot anchor (no allocation from the offer) is not forwarded with
    its own addresses: every stream is rejected (port 0, RFC 3264 §6: "An offered stream MAY be
    rejected in the answer, for any reason ... by setting the port number to zero") on the null
    address."""
    from proxies.pcscf import Pcscf

    answer = (
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/SAVP 0\r\na=rtcp:4001\r\nm=video 4002 RTP/AVP 96\r\n"
        b"c=IN IP4 192.0.2.8\r\n"
    )
    refused = Pcscf._media_refused(answer).decode()
    assert "192.0.2.8" not in refused and "c=IN IP4 192.0.2.7" not in refused
    assert sdp_addresses(refused.encode()) == set()
    assert [ln.split()[1] for ln in refused.splitlines() if ln.startswith("m=")] == ["0", "0"]
    assert Pcscf._media_refused(b"not sdp") == b""


async def test_invite_cancelled_while_the_anchor_answers_frees_its_media(lab: Lab) -> None:
    """The P-CSCF anchors an offer asynchronously (the core holds the INVITE, ``Defer``). A
    CANCEL meanwhile is answered by the core (RFC 3261 §16.10: 200 to the CANCEL, then "the
    original request ... 487 (Request Terminated)"); when the anchor then answers, the P-CSCF
    must not forward the INVITE and must release the media session it just allocated."""
    topo = lab.topology
    anchor_a = lab.element("anchor-a")
    control = anchor_a.server._transport
    assert control is not None
    forwarded: list[str] = []

    def watch(ev: SipMessageEvent) -> None:
        msg = ev.message
        if ev.direction == Direction.OUT and getattr(msg, "method", None) == "INVITE":
            forwarded.append(msg.call_id or "")

    lab.element("pcscf-a").proxy.sip_hooks.add(watch)
    changes: list[AnchorSessionEvent] = []
    anchor_a.anchor.session_observers.add(changes.append)
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        control.pause_reading()  # the anchor does not answer the offer's allocation yet
        try:
            call = alice.dial("sip:bob@ims-b.test", audio="tone:440")
            await asyncio.sleep(0.5)  # the core answered 100 Trying while it waits
            await call.cancel()
            await asyncio.wait_for(call.ended.wait(), 10)
        finally:
            control.resume_reading()  # the queued control requests are answered now
        assert call.status == 487
        pcscf = lab.element("pcscf-a").proxy
        for _ in range(100):  # bounded (10 s): the late answer arrives, the P-CSCF cleans up
            live = [k for k in anchor_a.anchor.sessions if k[0] == call.call_id]
            if call.call_id not in pcscf.calls and not live:
                break
            await asyncio.sleep(0.1)
        # the anchor did allocate for the offer (late), and that session was released again
        mine = [(e.change, e.stream) for e in changes if e.call_id == call.call_id]
        assert (SessionChange.CREATED, 0) in mine and (SessionChange.RELEASED, 0) in mine
        assert live == [] and call.call_id not in pcscf.calls
        assert call.call_id not in forwarded  # the offer never left the P-CSCF
