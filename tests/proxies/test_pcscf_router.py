"""The P-CSCF as a router on the proxy core, sans-I/O: requests and responses fed to its
``ProxyCore`` with an explicit ``now``, the actions it returns inspected. No sockets, no
anchor (``anchor=None``: the SDP paths are covered by the lab tests on a real anchor,
tests/proxies/test_ims_call.py and test_anchor_fail_closed.py).

What is checked, with the clause each keeps:

* RFC 3327 §5.1: "the proxy ... inserts a Path header field value ... that identifies itself";
  the REGISTER goes to the home S-CSCF with ``Supported: path``.
* RFC 3608 §6: the Service-Route of the 200 is stored; an originating request's Route set is
  *replaced* by it.
* RFC 3325 §6 / TS 24.229 §5.2: ``P-Preferred-Identity`` removed, ``P-Asserted-Identity``
  inserted from the registered identities.
* The binding lives for the Expires of its 200 counted on the core's clock: a request from the
  UE's flow after that is refused 403 (the router reads no clock of its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from ims.sip.dialog import Local, build_invite, build_register
from ims.sip.message import Request, Response, make_response
from ims.sip.proxy import ForwardRequest, Peer, SendResponse, SendStateless
from ims.sip.trust import TrustPolicy
from proxies.media_anchor import AnchorClient
from proxies.pcscf import Pcscf

UE = Peer(transport="udp", host="127.0.7.101", port=5060)
SCSCF = Peer(transport="udp", host="127.0.7.11", port=5060)
LOCAL = Local(host=UE.host, port=UE.port, user="alice")


def _pcscf() -> Pcscf:
    return Pcscf(
        "pcscf-a",
        "127.0.7.10",
        domain="ims-a.test",
        home_servers={"ims-a.test": SCSCF},
        trust=TrustPolicy.of(trusted=[SCSCF.addr]),
        anchor=None,
    )


def _only(actions: Sequence[object], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def _finals(actions: Sequence[object]) -> list[Response]:
    out = []
    for a in actions:
        msg = a.response if isinstance(a, SendResponse) else getattr(a, "message", None)
        if isinstance(msg, Response) and msg.status >= 200:
            out.append(msg)
    return out


def _register(p: Pcscf, now: float) -> None:
    req = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)
    (fwd,) = _only(p.core.receive_request(req, UE, now), ForwardRequest)
    assert isinstance(fwd, ForwardRequest) and fwd.peer == SCSCF
    sent = fwd.request
    assert sent.headers.get_list("Path")[0] == "<sip:term@127.0.7.10:5060;lr>"
    assert "path" in [s.lower() for s in sent.supported]
    assert sent.headers.get("P-Visited-Network-ID") == '"ims-a.test"'
    ok = make_response(
        sent,
        200,
        to_tag="reg1",
        headers=[
            ("Contact", f"<sip:alice@{UE.host}:{UE.port}>;expires=600"),
            ("Service-Route", "<sip:orig@127.0.7.11:5060;lr>"),
            ("P-Associated-URI", "<sip:alice@ims-a.test>, <tel:+493011>"),
        ],
    )
    up = p.core.receive_response(ok, fwd.branch, now + 0.1, source=SCSCF)
    assert [r.status for r in _finals(up)] == [200]


def _invite() -> Request:
    req = build_invite("sip:bob@ims-b.test", local=LOCAL, from_="sip:alice@ims-a.test")
    req.headers.add("P-Preferred-Identity", "<tel:+493011>")
    req.headers.add("P-Asserted-Identity", "<sip:boss@ims-a.test>")  # forged by the UE
    return req


def test_register_then_originating_invite_gets_service_route_and_asserted_identity() -> None:
    p = _pcscf()
    _register(p, 100.0)
    assert set(p.by_flow) == {UE.addr}
    actions = p.core.receive_request(_invite(), UE, 101.0)
    (fwd,) = _only(actions, ForwardRequest)
    assert isinstance(fwd, ForwardRequest)
    out = fwd.request
    assert fwd.peer.addr == SCSCF.addr  # the Service-Route's first hop
    assert out.headers.get_list("Route") == ["<sip:orig@127.0.7.11:5060;lr>"]
    assert out.headers.get_all("P-Asserted-Identity") == ["<tel:+493011>"]
    assert "P-Preferred-Identity" not in out.headers
    assert "icid-value=" in (out.headers.get("P-Charging-Vector") or "")
    assert out.headers.get_list("Record-Route") == ["<sip:127.0.7.10:5060;lr>"]


def test_unregistered_flow_and_expired_binding_are_refused() -> None:
    p = _pcscf()
    stranger = Peer(transport="udp", host="127.0.7.102", port=5060)
    assert [r.status for r in _finals(p.core.receive_request(_invite(), stranger, 1.0))] == [403]
    _register(p, 100.0)
    assert _only(p.core.receive_request(_invite(), UE, 699.0), ForwardRequest)
    # 600 s after the REGISTER was routed, on the core's clock, the binding is gone
    late = p.core.receive_request(_invite(), UE, 700.5)
    assert [r.status for r in _finals(late)] == [403]
    assert not p.by_flow


def test_register_from_the_core_and_a_foreign_contact_are_refused() -> None:
    p = _pcscf()
    req = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)
    assert [r.status for r in _finals(p.core.receive_request(req.copy(), SCSCF, 1.0))] == [403]
    # on UDP the contact must be the UE's own source address and port (issue 11, finding 4)
    other = Peer(transport="udp", host="127.0.7.103", port=5060)
    refused = _finals(p.core.receive_request(req.copy(), other, 1.0))
    assert [(r.status, r.reason) for r in refused] == [(403, "Contact is not the UE's own address")]


def test_a_2xx_retransmission_with_no_anchored_copy_is_held_back() -> None:
    """Fail closed: a 2xx retransmission forwarded statelessly after the transaction (RFC 3261
    §16.7 step 10) never leaves with an SDP the anchor did not see. With an anchor configured
    and no anchored copy of that answer known, the P-CSCF drops it."""
    p = _pcscf()
    # an anchor is configured (the control client opens its socket only when first used,
    # which this path never does)
    p.anchor = AnchorClient(("127.0.7.12", 2223), local_address="127.0.7.10")
    invite = _invite()
    invite.headers.insert_first("Via", "SIP/2.0/UDP 127.0.7.10:5060;branch=z9hG4bKours.s")
    invite.body = b"v=0\r\no=- 1 1 IN IP4 127.0.7.50\r\ns=-\r\nc=IN IP4 127.0.7.50\r\nt=0 0\r\n"
    invite.headers.set("Content-Type", "application/sdp")
    ok = make_response(invite, 200, to_tag="b1", body=invite.body)
    ok.headers.set("Content-Type", "application/sdp")
    assert p.core.receive_stray_response(ok, 5.0, source=SCSCF) == []
    # without a body there is nothing to leak: forwarded statelessly as the core does
    bare = make_response(invite, 200, to_tag="b1")
    assert _only(p.core.receive_stray_response(bare, 5.0, source=SCSCF), SendStateless)
