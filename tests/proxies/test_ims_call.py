"""End to end on real sockets: UEs register through their P-CSCF and call across operators.

The whole built-in lab runs in-process on 127.0.7.0/24 (``--subnet 127.0.7``). The path of each
call is asserted from the proxies' SIP hook observations, the media path from the anchors'
packet hooks, and the audio by the tone detector on both UEs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lab import topology
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.hooks import Direction, MediaPacketEvent, SipMessageEvent

SUBNET = "127.0.7"


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    topo = topology.load(subnet=SUBNET)
    async with Lab(topo) as running:
        yield running


def observe(lab: Lab) -> list[tuple[str, SipMessageEvent]]:
    seen: list[tuple[str, SipMessageEvent]] = []
    for name, el in lab.elements.items():
        if hasattr(el, "sip_hooks"):
            el.sip_hooks.add(lambda ev, n=name: seen.append((n, ev)))
    return seen


def media_observe(lab: Lab) -> list[MediaPacketEvent]:
    seen: list[MediaPacketEvent] = []
    for el in lab.elements.values():
        if hasattr(el, "anchor"):
            el.anchor.hooks.add(seen.append)
    return seen


def invite_path(seen: list[tuple[str, SipMessageEvent]], call_id: str) -> list[str]:
    """Elements that forwarded the initial INVITE, in order (each OUT event of an INVITE)."""
    path: list[str] = []
    for name, ev in seen:
        msg = ev.message
        if (
            ev.direction == Direction.OUT
            and getattr(msg, "method", None) == "INVITE"
            and msg.call_id == call_id
            and name not in path
        ):
            path.append(name)
    return path


async def test_call_a_to_b_through_both_operators(lab: Lab) -> None:
    seen = observe(lab)
    packets = media_observe(lab)
    topo = lab.topology
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        bob.audio = "tone:1000"
        call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
        incoming = await bob.next_call()
        await asyncio.sleep(1.5)
        assert call.keys is not None and call.keys.description == "SDES AES_CM_128_HMAC_SHA1_80"
        status = await call.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 5)
    assert status == 200
    assert invite_path(seen, call.call_id) == ["pcscf-a", "scscf-a", "scscf-b", "pcscf-b"]
    # the P-CSCFs rewrote c=/m= to their anchors and left a=crypto byte-identical
    assert call._offer is not None and incoming.invite is not None
    sent, got = call._offer.encode().decode(), incoming.invite.body.decode()
    crypto = [ln for ln in sent.splitlines() if ln.startswith("a=crypto:")]
    assert crypto and crypto == [ln for ln in got.splitlines() if ln.startswith("a=crypto:")]
    anchor_m = topo.element("anchor-m").address
    assert f"c=IN IP4 {anchor_m}" in got and f"c=IN IP4 {topo.ue('alice').address}" in sent
    # the tone went both ways, encrypted end to end
    assert incoming.detect_tone(440), incoming.tone_ratio(440)
    assert call.detect_tone(1000), call.tone_ratio(1000)
    # media went through both anchors (operator A's own, and B's media-path provider)
    anchors = {p.element for p in packets if p.call_id == call.call_id}
    assert anchors == {"anchor-a", "anchor-m"}
    # the anchors relay SRTP: no packet carries the plain PCMU payload length (12 + 160)
    rtp = [p for p in packets if not p.rtcp]
    assert rtp and all(len(p.data) == 12 + 160 + 10 for p in rtp)
    # IMS headers on the way: P-Asserted-Identity and one ICID across all elements
    invites = [
        ev.message
        for _, ev in seen
        if ev.direction == Direction.OUT and getattr(ev.message, "method", None) == "INVITE"
    ]
    assert all("P-Asserted-Identity" in m.headers for m in invites)
    icids = {m.headers.get("P-Charging-Vector").split(";")[0] for m in invites}
    assert len(icids) == 1


async def test_roaming_ue_over_tls_through_the_visited_pcscf(lab: Lab) -> None:
    seen = observe(lab)
    packets = media_observe(lab)
    topo = lab.topology
    async with user_agent(topo, "carol") as carol, user_agent(topo, "bob") as bob:
        await carol.register()
        await bob.register()
        bob.audio = "tone:1000"
        call = await carol.call("tel:+494021", audio="tone:440")  # bob's tel URI
        incoming = await bob.next_call()
        await asyncio.sleep(1.0)
        await call.hangup()
    assert invite_path(seen, call.call_id) == ["pcscf-v", "scscf-a", "scscf-b", "pcscf-b"]
    # the UE hop of the roamer is TLS: the visited P-CSCF got the INVITE (with its a=crypto) on TLS
    hop = [
        ev
        for name, ev in seen
        if name == "pcscf-v"
        and ev.direction == Direction.IN
        and getattr(ev.message, "method", None) == "INVITE"
    ]
    assert hop and all(ev.transport == "tls" for ev in hop)
    assert b"a=crypto:" in hop[0].message.body
    # the visited network anchors the roamer's media at its own anchor
    assert {p.element for p in packets if p.call_id == call.call_id} == {"anchor-v", "anchor-m"}
    assert incoming.detect_tone(440) and call.detect_tone(1000)


async def test_internet_user_calls_ims_user_and_back(lab: Lab) -> None:
    seen = observe(lab)
    topo = lab.topology
    async with user_agent(topo, "dave") as dave, user_agent(topo, "alice") as alice:
        await dave.register()
        await alice.register()
        alice.audio = "tone:1000"
        call = await dave.call("sip:alice@ims-a.test", audio="tone:440")  # 407 then digest
        incoming = await alice.next_call()
        await asyncio.sleep(0.8)
        await call.hangup()
        assert incoming.detect_tone(440) and call.detect_tone(1000)
        assert invite_path(seen, call.call_id) == ["proxy-inet", "scscf-a", "pcscf-a"]
        back = await alice.call("sip:dave@internet.test", audio="tone:440")
        await dave.next_call()
        await back.hangup()
    assert invite_path(seen, back.call_id) == ["pcscf-a", "scscf-a", "proxy-inet"]
    # RFC 3325: the asserted identity and the charging vector stay inside the IMS trust domain
    to_inet = [
        ev.message
        for name, ev in seen
        if name == "scscf-a"
        and ev.direction == Direction.OUT
        and ev.peer[0] == topo.element("proxy-inet").address
        and getattr(ev.message, "method", None) == "INVITE"
    ]
    assert to_inet and all("P-Asserted-Identity" not in m.headers for m in to_inet)
    assert all("P-Charging-Vector" not in m.headers for m in to_inet)


async def test_cancel_unanswered_call_releases_media(lab: Lab) -> None:
    topo = lab.topology
    async with user_agent(topo, "alice") as alice, user_agent(topo, "erin") as erin:
        await alice.register()
        await erin.register()
        erin.auto_answer = False
        call = alice.dial("sip:erin@ims-b.test")
        incoming = await erin.next_call()
        for _ in range(100):
            if 180 in call.provisional:
                break
            await asyncio.sleep(0.02)
        await call.cancel()
        await asyncio.wait_for(call.ended.wait(), 5)
        await asyncio.wait_for(incoming.ended.wait(), 5)
    assert call.status == 487
    anchor = lab.element("anchor-a").anchor
    assert not [k for k in anchor.sessions if k[0] == call.call_id]


async def test_unknown_user_and_unregistered_ue(lab: Lab) -> None:
    topo = lab.topology
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        from ue.agent import CallFailed

        with pytest.raises(CallFailed) as info:  # not registered: the P-CSCF refuses
            await alice.call("sip:bob@ims-b.test")
        assert info.value.status == 403
        await alice.register()
        with pytest.raises(CallFailed) as info:
            await alice.call("sip:nobody@ims-b.test")
        assert info.value.status == 404
        with pytest.raises(CallFailed) as info:  # bob exists but is not registered
            await alice.call("sip:bob@ims-b.test")
        assert info.value.status == 480
        del bob


async def test_a_hook_can_rewrite_what_a_proxy_sends(lab: Lab) -> None:
    """The hook point is not only an observer: what it returns is what goes on the wire."""

    def tag_invites(ev: SipMessageEvent) -> object:
        msg = ev.message
        if ev.direction == Direction.OUT and getattr(msg, "method", None) == "INVITE":
            out = msg.copy()
            out.headers.add("X-Imslab-Tap", ev.element)
            return out
        return None

    lab.element("scscf-a").sip_hooks.add(tag_invites)
    topo = lab.topology
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        call = await alice.call("sip:bob@ims-b.test")
        incoming = await bob.next_call()
        await call.hangup()
    assert incoming.invite is not None
    assert incoming.invite.headers.get("X-Imslab-Tap") == "scscf-a"


async def test_unregister_and_expiry_at_the_pcscf(lab: Lab) -> None:
    from ue.agent import CallFailed

    topo = lab.topology
    pcscf = lab.element("pcscf-a").proxy
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await bob.register()
        await alice.register()
        assert len(pcscf.by_flow) == 1
        await alice.unregister()  # Expires: 0 -> the P-CSCF forgets the flow
        assert not pcscf.by_flow
        with pytest.raises(CallFailed) as info:
            await alice.call("sip:bob@ims-b.test")
        assert info.value.status == 403
        await alice.register()
        reg = next(iter(pcscf.by_flow.values()))
        assert 590 < reg.expires_at - time.time() <= 600  # the UE asked for 600 s
        reg.expires_at = time.time() - 1  # as if 600 s had passed (written back: shared state)
        pcscf.by_flow[reg.flow.addr] = reg
        pcscf.by_contact[reg.contact] = reg
        with pytest.raises(CallFailed) as info:
            await alice.call("sip:bob@ims-b.test")
        assert info.value.status == 403


async def test_mikey_key_mgmt_crosses_the_network_untouched(lab: Lab) -> None:
    """With MIKEY (the publicly-known-PSK mode needs no credentials) the anchors rewrite c=/m=
    and leave the a=key-mgmt line byte-identical, so the end points agree on the keys."""
    from ue import keying

    if "psk-public" not in keying.available():
        pytest.skip("no MIKEY keying module installed")
    topo = lab.topology
    async with (
        user_agent(topo, "alice", keying="psk-public") as alice,
        user_agent(topo, "bob", keying="psk-public") as bob,
    ):
        await alice.register()
        await bob.register()
        bob.audio = "tone:1000"
        call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
        incoming = await bob.next_call()
        await asyncio.sleep(0.8)
        await call.hangup()
    assert call.keys is not None and "MIKEY" in call.keys.description
    assert call._offer is not None and incoming.invite is not None
    sent = [ln for ln in call._offer.encode().decode().splitlines() if "key-mgmt" in ln]
    got = [ln for ln in incoming.invite.body.decode().splitlines() if "key-mgmt" in ln]
    assert sent and sent == got
    assert incoming.detect_tone(440) and call.detect_tone(1000)


async def test_scscf_is_no_open_relay(lab: Lab) -> None:
    """A request that bypasses the P-CSCF (no `orig` Service-Route) is not routed onwards."""
    import dataclasses

    from lab.ues import ue_config
    from ue.agent import CallFailed, UserAgent

    topo = lab.topology
    scscf = topo.element("scscf-a")
    cfg = dataclasses.replace(ue_config(topo, "alice"), proxy=(scscf.address, scscf.sip_port))
    async with UserAgent(cfg) as rogue, user_agent(topo, "bob") as bob:
        await bob.register()
        with pytest.raises(CallFailed) as info:
            await rogue.call("sip:bob@ims-b.test")
        assert info.value.status == 403


async def test_ue_over_tcp(lab: Lab) -> None:
    import dataclasses

    from lab.ues import ue_config
    from ue.agent import UserAgent

    topo = lab.topology
    cfg = dataclasses.replace(ue_config(topo, "alice"), transport="tcp")
    seen = observe(lab)
    async with UserAgent(cfg) as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        call = await alice.call("sip:bob@ims-b.test")
        incoming = await bob.next_call()
        await asyncio.sleep(0.5)
        await call.hangup()
        await asyncio.wait_for(incoming.ended.wait(), 5)
    hop = [
        ev.transport
        for name, ev in seen
        if name == "pcscf-a" and ev.direction == Direction.IN and ev.peer[0] == cfg.local_address
    ]
    assert hop and set(hop) == {"tcp"}


async def test_hairpin_call_is_anchored_twice_on_one_anchor(lab: Lab) -> None:
    """bob -> erin: both behind pcscf-b, so one Call-ID is anchored as `orig` and `term`."""
    from lab.callflow import run_call

    legs: set[tuple[str, str]] = set()
    lab.element("anchor-m").anchor.hooks.add(lambda ev: legs.add((ev.label, ev.leg)))
    report = await run_call(lab.topology, "bob", "erin", duration=1.0, progress=lambda _: None)
    assert report.ok, report
    pcscf_b, scscf_b = (lab.topology.element(n).address for n in ("pcscf-b", "scscf-b"))
    assert report.via_path == [pcscf_b, scscf_b, pcscf_b]
    assert legs == {(label, leg) for label in ("orig", "term") for leg in ("access", "core")}
