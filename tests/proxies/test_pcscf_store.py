"""The P-CSCF's access bindings in the element store (proxies.access), on both backends: a
restarted P-CSCF (or another instance) still knows which flow holds which contact, with its
Service-Route and identities, and forgets it when the registration expires."""

from __future__ import annotations

from ims.sip.proxy import Peer
from ims.sip.trust import TrustPolicy
from proxies.pcscf import Pcscf, UeRegistration
from tests.store_backends import Backend


def _pcscf(backend: Backend) -> Pcscf:
    return Pcscf(
        "pcscf-a",
        "127.0.7.10",
        domain="ims-a.test",
        home_servers={"ims-a.test": Peer(transport="udp", host="127.0.7.11", port=5060)},
        trust=TrustPolicy.of(trusted=[("127.0.7.11", 5060)]),
        anchor=None,
        store=backend.open(),
    )


def test_access_bindings_survive_a_restart_and_expire(backend: Backend) -> None:
    p = _pcscf(backend)
    now = p.now()  # the store's wall clock: the P-CSCF's core runs on it
    flow = Peer(transport="udp", host="127.0.7.151", port=5070)
    reg = UeRegistration(
        flow=flow,
        contact="127.0.7.151:5070",
        aor="sip:alice@ims-a.test",
        service_route=["<sip:orig@127.0.7.11:5060;lr>"],
        associated=["sip:alice@ims-a.test", "tel:+493011"],
        registered=True,
        expires_at=now + 600,
    )
    p.bindings.add(reg)
    backend.restart_server()
    again = _pcscf(backend)
    got = again.bindings.flow(flow.addr, now)
    assert got == reg
    assert again.bindings.contact("127.0.7.151:5070", now) == reg
    assert len(again.by_flow) == 1
    # the registration expires (both indices were written with its lifetime): forgotten
    reg.expires_at = now - 1
    again.bindings.add(reg)
    assert again.bindings.flow(flow.addr, now) is None
    assert again.by_contact.get("127.0.7.151:5070") is None and not again.by_flow


def test_two_pcscfs_on_one_store_are_separate(backend: Backend) -> None:
    a = _pcscf(backend)
    b = Pcscf(
        "pcscf-b",
        "127.0.7.20",
        domain="ims-b.test",
        home_servers={},
        trust=TrustPolicy.of(trusted=[]),
        anchor=None,
        store=backend.open(),
    )
    flow = Peer(transport="udp", host="127.0.7.151", port=5070)
    a.by_flow[flow.addr] = UeRegistration(flow=flow, contact="c", aor="sip:alice@ims-a.test")
    assert b.by_flow.get(flow.addr) is None and len(a.by_flow) == 1
