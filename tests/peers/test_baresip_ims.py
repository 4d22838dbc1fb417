"""baresip (a real softphone, its own SIP stack and SRTP) against our IMS network.

* baresip registers through our P-CSCF with digest authentication (as alice, operator A),
  calls our UE (bob, operator B) and is called by it; SDES-SRTP both ways: our tone detector
  hears baresip's tone, baresip's sndfile recording holds our tone.
* baresip as an Internet user (dave) behind the Internet proxy, calling an IMS UE.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ims.media.tone import detect_tone, tone_ratio
from lab import topology
from lab.baresip import Baresip, BaresipAccount
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.hooks import Direction, SipMessageEvent
from tests.conftest import require_tool

pytestmark = [pytest.mark.peer, pytest.mark.slow]

SUBNET = "127.0.7"
BARESIP_IP = "127.0.7.131"
BARESIP_TONE = 700.0
OUR_TONE = 440.0


@pytest.fixture
async def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Lab]:
    require_tool("baresip")
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    async with Lab(topology.load(subnet=SUBNET)) as running:
        yield running


def _baresip(lab: Lab, tmp_path: Path, ue: str) -> Baresip:
    topo = lab.topology
    spec = topo.ue(ue)
    sub = topo.subscribers[spec.subscriber]
    first = topo.element(spec.pcscf)
    account = BaresipAccount(
        aor=sub.sip_impu,
        username=sub.impi,
        password=sub.password,
        outbound=f"sip:{first.address}:{first.sip_port}",
    )
    return Baresip(
        workdir=tmp_path / f"baresip-{ue}",
        address=BARESIP_IP,
        sip_port=5080,
        ctrl_port=4444,
        account=account,
        tone_hz=BARESIP_TONE,
    )


async def test_baresip_registers_calls_and_is_called(lab: Lab, tmp_path: Path) -> None:
    seen: list[SipMessageEvent] = []
    lab.element("scscf-a").sip_hooks.add(seen.append)
    phone = _baresip(lab, tmp_path, "alice")
    await phone.start()
    try:
        # (REGISTER_OK may fire before the ctrl_tcp connection is up: ask our registrar instead)
        scscf = lab.element("scscf-a").proxy
        for _ in range(100):
            if scscf.registered("sip:alice@ims-a.test"):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(phone.log.decode(errors="replace")[-4000:])
        # the registrar challenged baresip and accepted its digest answer
        statuses = [
            ev.message.status
            for ev in seen
            if ev.direction == Direction.OUT and getattr(ev.message, "status", None)
        ]
        assert 401 in statuses and 200 in statuses
        async with user_agent(lab.topology, "bob") as bob:
            await bob.register()
            bob.audio = f"tone:{OUR_TONE:g}"
            # 1) baresip calls our UE
            await phone.dial("sip:bob@ims-b.test")
            incoming = await bob.next_call(timeout=10)
            await phone.wait_event("CALL_ESTABLISHED", timeout=10)
            await asyncio.sleep(2.0)
            await phone.hangup()
            await asyncio.wait_for(incoming.ended.wait(), 10)
            assert incoming.keys is not None and "SDES" in incoming.keys.description
            assert incoming.detect_tone(BARESIP_TONE), incoming.tone_ratio(BARESIP_TONE)
            assert incoming.media is not None
            stats = incoming.media.snapshot()
            # ~50 SRTP packets/s decrypted; at most a stray packet at set-up/tear-down may fail
            assert stats.received >= 50 and stats.auth_failures <= 2, stats
            # 2) our UE calls baresip (auto-answer)
            phone.events.clear()
            call = await bob.call("sip:alice@ims-a.test", audio=f"tone:{OUR_TONE:g}")
            await asyncio.sleep(2.0)
            await call.hangup()
            assert call.keys is not None and "SDES" in call.keys.description
            assert call.detect_tone(BARESIP_TONE), call.tone_ratio(BARESIP_TONE)
        await asyncio.sleep(0.5)
        menc = [ev for ev in phone.events if ev.get("type") == "CALL_MENC"]
        assert menc, phone.events
        pcm = phone.recorded_pcm()
        assert pcm, f"no sndfile recording in {phone.record_dir}"
        assert detect_tone(pcm[3200:], OUR_TONE), tone_ratio(pcm[3200:], OUR_TONE)
    finally:
        await phone.stop()


async def test_baresip_internet_user_behind_the_internet_proxy(lab: Lab, tmp_path: Path) -> None:
    seen: list[tuple[str, SipMessageEvent]] = []
    for name in ("proxy-inet", "scscf-a", "pcscf-a"):
        lab.element(name).sip_hooks.add(lambda ev, n=name: seen.append((n, ev)))
    phone = _baresip(lab, tmp_path, "dave")
    await phone.start()
    try:
        proxy = lab.element("proxy-inet").proxy
        for _ in range(100):
            if proxy.registered("sip:dave@internet.test"):
                break
            await asyncio.sleep(0.1)
        assert proxy.registered("sip:dave@internet.test"), phone.log.decode(errors="replace")
        async with user_agent(lab.topology, "alice") as alice:
            await alice.register()
            alice.audio = f"tone:{OUR_TONE:g}"
            await phone.dial("sip:alice@ims-a.test")  # 407 from the proxy, then with digest
            incoming = await alice.next_call(timeout=10)
            await asyncio.sleep(2.0)
            await phone.hangup()
            await asyncio.wait_for(incoming.ended.wait(), 10)
            assert incoming.detect_tone(BARESIP_TONE), incoming.tone_ratio(BARESIP_TONE)
            assert incoming.keys is not None and "SDES" in incoming.keys.description
            call = await alice.call("sip:dave@internet.test", audio=f"tone:{OUR_TONE:g}")
            await asyncio.sleep(2.0)
            await call.hangup()
            assert call.detect_tone(BARESIP_TONE), call.tone_ratio(BARESIP_TONE)
        # the INVITE from the Internet user was challenged (407) and went proxy -> S-CSCF -> P-CSCF
        statuses = [
            ev.message.status
            for n, ev in seen
            if n == "proxy-inet"
            and ev.direction == Direction.OUT
            and getattr(ev.message, "status", None)
        ]
        assert 407 in statuses
        hops = []
        for n, ev in seen:
            msg = ev.message
            if (
                ev.direction == Direction.OUT
                and getattr(msg, "method", None) == "INVITE"
                and msg.call_id == incoming.call_id
                and n not in hops
            ):
                hops.append(n)
        assert hops == ["proxy-inet", "scscf-a", "pcscf-a"]
        await phone.stop()  # sndfile finishes its WAV files when baresip exits
        pcm = phone.recorded_pcm()
        assert detect_tone(pcm[3200:], OUR_TONE), tone_ratio(pcm[3200:], OUR_TONE)
    finally:
        await phone.stop()


async def test_baresip_over_tls_to_its_pcscf(lab: Lab, tmp_path: Path) -> None:
    """baresip as erin (operator B, TLS UE hop): registers over TLS, is called by alice."""
    seen: list[SipMessageEvent] = []
    lab.element("pcscf-b").sip_hooks.add(seen.append)
    phone = _baresip(lab, tmp_path, "erin")
    pcscf = lab.topology.element("pcscf-b")
    phone.account.outbound = f"sip:{pcscf.address}:{pcscf.tls_port};transport=tls"
    await phone.start()
    try:
        scscf = lab.element("scscf-b").proxy
        for _ in range(100):
            if scscf.registered("sip:erin@ims-b.test"):
                break
            await asyncio.sleep(0.1)
        assert scscf.registered("sip:erin@ims-b.test"), phone.log.decode(errors="replace")
        async with user_agent(lab.topology, "alice") as alice:
            await alice.register()
            call = await alice.call("sip:erin@ims-b.test", audio=f"tone:{OUR_TONE:g}")
            await asyncio.sleep(2.0)
            await call.hangup()
        assert call.keys is not None and "SDES" in call.keys.description
        assert call.detect_tone(BARESIP_TONE), call.tone_ratio(BARESIP_TONE)
        # everything between baresip and its P-CSCF went over TLS (the SDES keys included)
        ue_hop = [
            ev
            for ev in seen
            if ev.transport == "tls" and getattr(ev.message, "method", None) == "INVITE"
        ]
        assert ue_hop and b"a=crypto:" in ue_hop[0].message.body
        registers = [ev for ev in seen if getattr(ev.message, "method", None) == "REGISTER"]
        assert registers and all(
            ev.transport == "tls" for ev in registers if ev.direction == Direction.IN
        )
        await phone.stop()  # sndfile finishes its WAV files when baresip exits
        pcm = phone.recorded_pcm()
        assert detect_tone(pcm[3200:], OUR_TONE), tone_ratio(pcm[3200:], OUR_TONE)
    finally:
        await phone.stop()
