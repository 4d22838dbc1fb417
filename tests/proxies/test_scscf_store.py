"""Two S-CSCF instances over one shared store (issue 18), on both backends: a user registered
through one is served by the other, the nonce of one verifies at the other, a replay is refused
by both, and a restarted instance finds every registration. Sans-I/O: the proxy core fed with
``receive_request(request, source, now)`` on the store's wall clock.

RFC 3327 §5.3: "the registrar MUST store the Path header values along with the contact", and
§5.4: a request for the AOR is sent with a preloaded Route set from that Path."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ims.sip.auth import DigestClient
from ims.sip.dialog import Local, build_invite, build_register
from ims.sip.message import Request, Response
from ims.sip.proxy import ForwardRequest, Peer, SendResponse
from ims.sip.trust import TrustPolicy
from ims.store import Store, StoreError
from ims.store.clock import wall_clock
from proxies.scscf import DomainPeer, HomeServer
from proxies.subscribers import SubscriberDb, SubscriberRecord
from tests.store_backends import Backend

ALICE = SubscriberRecord(
    impi="alice@ims-a.test", impus=("sip:alice@ims-a.test", "tel:+493011"), password="alice-pw"
)
LOCAL = Local(host="127.0.7.151", port=5060, user="alice")
PCSCF = ("127.0.7.10", 5060)
PEER = ("127.0.7.21", 5060)
FROM_PCSCF = Peer(transport="udp", host=PCSCF[0], port=PCSCF[1])
FROM_PEER = Peer(transport="udp", host=PEER[0], port=PEER[1])
T0 = time.time()


@pytest.fixture(autouse=True)
def _wall_clock_now() -> None:
    """``now`` near the real clock for each test: the Redis server reclaims records at their
    wall-clock ``expires_at``, so a time taken at import would be stale by the later tests."""
    global T0
    T0 = time.time()


def _instance(store: Store, address: str) -> HomeServer:
    server = HomeServer(
        "scscf-a",
        address,
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={"ims-b.test": DomainPeer(hop=FROM_PEER, trusted=True)},
        tel_domains={},
        trust=TrustPolicy.of(trusted=[PCSCF, PEER]),
        store=store,
    )
    return server


def _register() -> Request:
    reg = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)
    reg.headers.add("Path", "<sip:term@127.0.7.10:5060;lr>")
    return reg


def _decide(server: HomeServer, request: Request, source: Peer = FROM_PCSCF) -> Any:
    """The final response the core sent for ``request``, or the request it forwarded."""
    actions = server.core.receive_request(request.copy(), source, T0)
    for a in actions:
        if isinstance(a, ForwardRequest):
            return a
        msg = a.response if isinstance(a, SendResponse) else getattr(a, "message", None)
        if isinstance(msg, Response) and msg.status >= 200:
            return msg
    raise AssertionError(f"nothing decided: {actions}")


def _invite() -> Request:
    local = Local(host="127.0.7.161", port=5060, user="bob")
    return build_invite("sip:alice@ims-a.test", local=local, from_="sip:bob@ims-b.test")


def test_registered_at_one_instance_reached_through_the_other(backend: Backend) -> None:
    one, two = _instance(backend.open(), "127.0.7.11"), _instance(backend.open(), "127.0.7.12")
    first = _register()
    challenge = _decide(one, first)
    assert isinstance(challenge, Response) and challenge.status == 401
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    ok = _decide(two, retry)  # the nonce one issued verifies at two
    assert isinstance(ok, Response) and ok.status == 200
    # the same credentials at the first instance: the shared nonce count refuses the replay
    replay = _decide(one, retry)
    assert isinstance(replay, Response) and replay.status == 403
    assert one.registered("tel:+493011", T0) and two.registered("sip:alice@ims-a.test", T0)
    fwd = _decide(one, _invite(), FROM_PEER)
    assert isinstance(fwd, ForwardRequest)
    assert fwd.request.uri.encode() == "sip:alice@127.0.7.151:5060"
    assert fwd.request.headers.get_list("Route") == ["<sip:term@127.0.7.10:5060;lr>"]
    assert fwd.peer.addr == PCSCF


def test_a_restarted_instance_finds_the_registrations(backend: Backend) -> None:
    one = _instance(backend.open(), "127.0.7.11")
    first = _register()
    challenge = _decide(one, first)
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    assert (_decide(one, retry)).status == 200
    backend.restart_server()  # Redis: the server too; SQLite: only the file holds the state
    restarted = _instance(backend.open(), "127.0.7.11")
    fwd = _decide(restarted, _invite(), FROM_PEER)
    assert isinstance(fwd, ForwardRequest) and fwd.peer.addr == PCSCF
    replay = _decide(restarted, retry)
    assert isinstance(replay, Response) and replay.status == 403


def test_store_unreachable_is_a_503(backend: Backend) -> None:
    """RFC 3261 §21.5.4: "The server is temporarily unable to process the request due to a
    temporary overloading or maintenance of the server." An S-CSCF whose store is gone answers
    503 (the proxies' error path uses the StoreError's status_hint), never a crash."""
    if backend.kind != "redis":
        pytest.skip("an SQLite file does not go away while open")
    one = _instance(backend.open(), "127.0.7.11")
    assert backend.server is not None
    backend.server.kill()
    answer = _decide(one, _invite(), FROM_PEER)  # the core answers the router's StoreError
    assert isinstance(answer, Response) and answer.status == StoreError.status_hint == 503


def test_an_element_on_a_store_runs_its_core_on_the_wall_clock(backend: Backend) -> None:
    """Stored expiries are wall-clock (shared by instances, kept across restarts), so the
    element's core must decide on the same clock: ``ctx.now`` comes from ``Store.now``. A
    binding registered with a 600 s lifetime is live for a second instance at the real time
    now, and gone 600 s later (a monotonic ``now`` would be decades off either way)."""
    store = backend.open()
    one = _instance(store, "127.0.7.11")
    assert one.clock is not None and one.clock is store.now
    assert abs(one.now() - wall_clock()) < 5.0
    first = _register()
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, _decide(one, first))
    assert _decide(one, retry).status == 200
    two = _instance(backend.open(), "127.0.7.12")
    assert two.registered("sip:alice@ims-a.test", two.now())
    assert not two.registered("sip:alice@ims-a.test", two.now() + 601)
    # an element on no store keeps the loop's monotonic clock
    plain = HomeServer(
        "scscf-a",
        "127.0.7.13",
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={},
        tel_domains={},
    )
    assert plain.clock is None
