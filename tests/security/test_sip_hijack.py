"""Issue 11, finding 4: call hijack by registering another UE's Contact at the P-CSCF.

erin holds valid credentials of her own. Registering bob's contact (from her own address, and
from a device on bob's own IP) must be refused by pcscf-b, and alice's next call to bob must
still ring bob. RFC 3261 §10.3 step 6 lets a registrar refuse bindings by local policy; the
P-CSCF's policy (TS 24.229 §5.2.2: it binds a UE's registration to the flow it arrived on) is
that a Contact belongs to the UE at that address and to one public identity only.
"""

from __future__ import annotations

from ims.sip.auth import DigestClient
from ims.sip.dialog import build_register
from ims.sip.headers import NameAddr
from ims.sip.message import Response
from ims.sip.uri import parse_uri
from lab.orchestrator import Lab
from lab.ues import user_agent
from ue.agent import UserAgent


async def _register_contact(ue: UserAgent, contact: str) -> Response:
    """REGISTER the UE's AOR, with its credentials, naming ``contact`` as the binding."""
    req = build_register(
        f"sip:{ue.config.domain}",
        ue.config.aor,
        local=ue.local,
        contact=NameAddr(parse_uri(contact)),
        expires=600,
    )
    resp = await ue.send(req)
    if resp.status == 401:
        resp = await ue.send(DigestClient(ue.config.impi, ue.config.password).authorize(req, resp))
    return resp


async def test_ue_cannot_register_another_ues_contact(lab: Lab) -> None:
    topo = lab.topology
    bob_ue = topo.ue("bob")
    bob_contact = f"sip:bob@{bob_ue.address}:{bob_ue.sip_port}"
    pcscf_b = lab.element("pcscf-b").proxy
    async with (
        user_agent(topo, "alice") as alice,
        user_agent(topo, "bob") as bob,
        user_agent(topo, "erin") as erin,
        # a second device of erin's on bob's own IP address (another port: TLS, ephemeral)
        user_agent(topo, "erin", bind=bob_ue.address) as erin_on_bobs_ip,
    ):
        await alice.register()
        await bob.register()
        await erin.register()
        taken = await _register_contact(erin, bob_contact)
        squat = await _register_contact(erin_on_bobs_ip, bob_contact)
        assert (taken.status, squat.status) == (403, 403), (taken.reason, squat.reason)
        assert taken.reason == squat.reason == "Contact owned by another registration"
        # on UDP the flow is the contact: alice may not name any other address as hers
        elsewhere = await _register_contact(alice, f"sip:alice@{bob_ue.address}:5099")
        assert (elsewhere.status, elsewhere.reason) == (403, "Contact is not the UE's own address")
        # the P-CSCF still maps bob's contact to bob's own flow
        reg = pcscf_b.by_contact[f"{bob_ue.address}:{bob_ue.sip_port}"]
        assert reg.aor == "sip:bob@ims-b.test"
        assert reg.flow.addr == (bob_ue.address, bob_ue.sip_port)
        call = await alice.call("sip:bob@ims-b.test", audio="tone:440")
        incoming = await bob.next_call(timeout=10)
        assert incoming.call_id == call.call_id
        assert not erin.calls and not erin_on_bobs_ip.calls
        await call.hangup()
