"""Issue 11, findings 1, 2, 3 and 5: forged P-Asserted-Identity and open relays, probed on the
running lab over real UDP.

RFC 3325 §5: "If the proxy received the message from an element that it does not trust and
there is a P-Asserted-Identity header present which contains a SIP or SIPS URI, the proxy MUST
replace that SIP or SIPS URI with a single SIP or SIPS URI or remove this header field."
RFC 3325 §2/§11 (Spec(T)): trust comes from configuration ("one node knowing (through
configuration) that all of the nodes in a Trust Domain will behave in a predetermined way"),
so a source address the attacker can send from is not a trust anchor.
"""

from __future__ import annotations

import asyncio

from ims.sip.parser import parse_message
from ims.sip.transport.flow import Flow
from ims.sip.trust import Trust
from lab.orchestrator import Lab
from lab.ues import user_agent
from tests.security.conftest import (
    SINK,
    RawSip,
    delivered,
    observe,
    sip_addr,
    sip_request,
)

FORGED = ("P-Asserted-Identity", "<sip:alice@ims-a.test>")


async def _bob_contact(lab: Lab, bob: object) -> str:
    return f"sip:bob@{lab.topology.ue('bob').address}:{lab.topology.ue('bob').sip_port}"


# --- finding 1: S-CSCF ------------------------------------------------------------------------
async def test_scscf_does_not_relay_a_forged_identity_from_outside(lab: Lab) -> None:
    """From an address outside every operator: a MESSAGE with ``Route: pcscf-b``, and one with a
    To tag, sent to scscf-b, must not reach bob asserting alice."""
    seen = observe(lab)
    bob_addr = (lab.topology.ue("bob").address, lab.topology.ue("bob").sip_port)
    pcscf_b = sip_addr(lab, "pcscf-b")
    async with user_agent(lab.topology, "bob") as bob:
        await bob.register()
        contact = await _bob_contact(lab, bob)
        attacker = await RawSip.open()
        try:
            probes = [
                sip_request(
                    "MESSAGE",
                    contact,
                    via=attacker.addr,
                    routes=[f"<sip:{pcscf_b[0]}:{pcscf_b[1]};lr>"],
                    headers=[FORGED],
                ),
                sip_request(
                    "MESSAGE",
                    contact,
                    via=attacker.addr,
                    to_tag="t1",
                    headers=[FORGED],
                ),
                sip_request(
                    "MESSAGE",
                    contact,
                    via=attacker.addr,
                    to_tag="t2",
                    routes=[f"<sip:{pcscf_b[0]}:{pcscf_b[1]};lr>"],
                    headers=[FORGED],
                ),
            ]
            for _, data in probes:
                attacker.send(data, sip_addr(lab, "scscf-b"))
            finals = [await attacker.final(cid) for cid, _ in probes]
        finally:
            attacker.close()
    assert [f.status if f else None for f in finals] == [403, 403, 403]
    for cid, _ in probes:
        assert delivered(seen, cid, bob_addr) == []


async def test_scscf_is_no_open_relay(lab: Lab) -> None:
    """A pre-loaded Route (with or without the S-CSCF's own entry first) and an ACK must not
    take a request from outside to an arbitrary next hop."""
    seen = observe(lab)
    scscf_a = sip_addr(lab, "scscf-a")
    attacker = await RawSip.open()
    sink = await RawSip.open(SINK)
    try:
        evil = f"<sip:{sink.addr[0]}:{sink.addr[1]};lr>"
        own = f"<sip:{scscf_a[0]}:{scscf_a[1]};lr>"
        probes = [
            sip_request("OPTIONS", "sip:x@elsewhere.test", via=attacker.addr, routes=[evil]),
            sip_request("OPTIONS", "sip:x@elsewhere.test", via=attacker.addr, routes=[own, evil]),
            sip_request("OPTIONS", "sip:x@elsewhere.test", via=attacker.addr, to_tag="x"),
        ]
        ack_cid, ack = sip_request(
            "ACK", f"sip:x@{sink.addr[0]}:{sink.addr[1]}", via=attacker.addr, to_tag="y"
        )
        for _, data in probes:
            attacker.send(data, scscf_a)
        attacker.send(ack, scscf_a)
        finals = [await attacker.final(cid) for cid, _ in probes]
        await asyncio.sleep(0.3)
    finally:
        attacker.close()
        sink.close()
    assert [f.status if f else None for f in finals] == [403, 403, 403]
    assert sink.received == []
    for cid in [c for c, _ in probes] + [ack_cid]:
        assert delivered(seen, cid, SINK) == []


# --- finding 2: the Internet proxy ------------------------------------------------------------
async def test_internet_proxy_relays_nothing_before_authentication(lab: Lab) -> None:
    """An unauthenticated Internet peer: ``Route: pcscf-b`` (straight into operator B's P-CSCF)
    and ``Route: proxy-inet, <anywhere>`` must both be refused; bob never hears 'alice'."""
    seen = observe(lab)
    inet = sip_addr(lab, "proxy-inet")
    pcscf_b = sip_addr(lab, "pcscf-b")
    bob_addr = (lab.topology.ue("bob").address, lab.topology.ue("bob").sip_port)
    async with user_agent(lab.topology, "bob") as bob:
        await bob.register()
        contact = await _bob_contact(lab, bob)
        attacker = await RawSip.open()
        sink = await RawSip.open(SINK)
        try:
            probes = [
                sip_request(
                    "MESSAGE",
                    contact,
                    via=attacker.addr,
                    routes=[f"<sip:{pcscf_b[0]}:{pcscf_b[1]};lr>"],
                    headers=[FORGED],
                ),
                sip_request(
                    "MESSAGE",
                    contact,
                    via=attacker.addr,
                    to_tag="z",
                    routes=[f"<sip:{inet[0]}:{inet[1]};lr>", f"<sip:{pcscf_b[0]}:{pcscf_b[1]};lr>"],
                    headers=[FORGED],
                ),
                sip_request(
                    "OPTIONS",
                    "sip:x@elsewhere.test",
                    via=attacker.addr,
                    routes=[
                        f"<sip:{inet[0]}:{inet[1]};lr>",
                        f"<sip:{sink.addr[0]}:{sink.addr[1]};lr>",
                    ],
                ),
            ]
            for _, data in probes:
                attacker.send(data, inet)
            finals = [await attacker.final(cid) for cid, _ in probes]
            await asyncio.sleep(0.2)
        finally:
            attacker.close()
            sink.close()
    assert [f.status if f else None for f in finals] == [403, 403, 403]
    assert sink.received == []
    for cid, _ in probes:
        assert delivered(seen, cid, bob_addr) == []
        assert delivered(seen, cid, pcscf_b) == []


async def test_pcscf_does_not_take_the_internet_proxy_for_core(lab: Lab) -> None:
    """The lab-generated trust policy: the Internet proxy is outside the Trust Domain of every
    P-CSCF; the S-CSCFs only *know* it (in-dialog routing along their own route set)."""
    inet = sip_addr(lab, "proxy-inet")
    flow = Flow("UDP", inet)
    for name in ("pcscf-a", "pcscf-b", "pcscf-v"):
        assert lab.element(name).proxy.classify(flow) is Trust.UNTRUSTED
    for name in ("scscf-a", "scscf-b"):
        assert lab.element(name).proxy.classify(flow) is Trust.KNOWN
    scscf_b = sip_addr(lab, "scscf-b")
    assert lab.element("pcscf-b").proxy.classify(Flow("UDP", scscf_b)) is Trust.TRUSTED
    assert "internet.test" not in lab.element("pcscf-b").proxy.home_servers


# --- finding 3: a registered UE asserts someone else -----------------------------------------
async def test_registered_ue_cannot_assert_another_identity_in_dialog(lab: Lab) -> None:
    """alice (registered) sends MESSAGEs with a To tag and ``P-Asserted-Identity: carol``: with a
    route around pcscf-a's assertion, and with pcscf-a's own Route entry first. Bob must never
    be told the sender is carol."""
    seen = observe(lab)
    topo = lab.topology
    pcscf_a, scscf_b, pcscf_b = (sip_addr(lab, n) for n in ("pcscf-a", "scscf-b", "pcscf-b"))
    bob_addr = (topo.ue("bob").address, topo.ue("bob").sip_port)
    forged = ("P-Asserted-Identity", "<sip:carol@ims-a.test>")
    routes = [f"<sip:{h}:{p};lr>" for h, p in (scscf_b, pcscf_b)]
    async with user_agent(topo, "alice") as alice, user_agent(topo, "bob") as bob:
        await alice.register()
        await bob.register()
        contact = await _bob_contact(lab, bob)
        results = []
        for pre in ([], [f"<sip:{pcscf_a[0]}:{pcscf_a[1]};lr>"]):
            cid, data = sip_request(
                "MESSAGE",
                contact,
                via=(topo.ue("alice").address, topo.ue("alice").sip_port),
                from_="<sip:alice@ims-a.test>",
                to_tag="dlg",
                routes=pre + routes,
                headers=[forged, ("Content-Type", "text/plain")],
                body=b"hi",
            )
            req = parse_message(data)
            req.headers.remove("Via")
            resp = await alice.send(req)
            results.append((cid, resp.status))
    assert results[0][1] == 403  # not a dialog pcscf-a is on
    for cid, _ in results:
        for ev in delivered(seen, cid, bob_addr):
            assert "carol" not in (ev.message.headers.get("P-Asserted-Identity") or "")
        # and nothing left pcscf-a carrying the forged identity
        for name, ev in seen:
            out = name == "pcscf-a" and ev.direction.value == "out"
            if out and getattr(ev.message, "call_id", None) == cid:
                assert "carol" not in (ev.message.headers.get("P-Asserted-Identity") or "")


# --- finding 5: a source IP is not an identity ------------------------------------------------
async def test_pcscf_does_not_trust_a_core_address_on_another_port(lab: Lab) -> None:
    """A datagram from scscf-b's IP address but another port, straight to pcscf-b, naming bob's
    contact and asserting alice, must not reach bob."""
    seen = observe(lab)
    scscf_b = lab.topology.element("scscf-b").address
    bob_addr = (lab.topology.ue("bob").address, lab.topology.ue("bob").sip_port)
    async with user_agent(lab.topology, "bob") as bob:
        await bob.register()
        contact = await _bob_contact(lab, bob)
        spoof = await RawSip.open(scscf_b)  # same IP, another (ephemeral) port
        try:
            assert spoof.addr[1] != lab.topology.element("scscf-b").sip_port
            probes = [
                sip_request("MESSAGE", contact, via=spoof.addr, headers=[FORGED]),
                sip_request("INVITE", contact, via=spoof.addr, headers=[FORGED]),
            ]
            for _, data in probes:
                spoof.send(data, sip_addr(lab, "pcscf-b"))
            finals = [await spoof.final(cid) for cid, _ in probes]
        finally:
            spoof.close()
    assert [f.status if f else None for f in finals] == [403, 403]
    for cid, _ in probes:
        assert delivered(seen, cid, bob_addr) == []


# --- finding 1 (last part): an element cannot be made to send outside the lab ----------------
async def test_endpoint_sends_only_to_allowed_networks(lab: Lab) -> None:
    """The lab restricts every SIP element to the lab's networks; a send elsewhere is a
    transport error (a forwarded request gets 503, §16.7 step 6), and nothing leaves."""
    from ims.sip.aio.endpoint import SipEndpoint
    from ims.sip.dialog import Local, build_request
    from ims.sip.transport.errors import SipTransportError

    scscf = lab.element("scscf-a").proxy
    assert scscf.server.may_send_to(lab.topology.element("pcscf-b").address)
    assert not scscf.server.may_send_to("192.0.2.1")
    ep = SipEndpoint(name="restricted", allowed_networks=["127.0.7.0/24"])
    outside = await RawSip.open("127.0.8.1")  # loopback, but outside the allowed /24
    try:
        await ep.listen("udp", "127.0.7.252", 0)
        req = build_request(
            "OPTIONS",
            f"sip:x@{outside.addr[0]}:{outside.addr[1]}",
            local=Local(host="127.0.7.252", port=5060, user="probe"),
            from_="sip:probe@lab.test",
            to="sip:x@elsewhere.test",
        )
        try:
            await asyncio.wait_for(ep.request(req, outside.addr), 5)
            raised = False
        except SipTransportError:
            raised = True
        await asyncio.sleep(0.1)
    finally:
        outside.close()
        await ep.close()
    assert raised and outside.received == []
