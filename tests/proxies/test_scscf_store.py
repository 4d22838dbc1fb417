"""Two S-CSCF instances over one shared store (issue 18), on both backends: a user registered
through one is served by the other, the nonce of one verifies at the other, a replay is refused
by both, and a restarted instance finds every registration. Sans-I/O: ``decide`` with a clock.

RFC 3327 §5.3: "the registrar MUST store the Path header values along with the contact", and
§5.4: a request for the AOR is sent with a preloaded Route set from that Path."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from ims.sip.auth import DigestClient
from ims.sip.dialog import Local, build_invite, build_register
from ims.sip.message import Request, Response
from ims.sip.trust import TrustPolicy
from ims.store import Store, StoreError
from proxies.base import Forward, Hop
from proxies.scscf import HomeServer, Peer
from proxies.subscribers import SubscriberDb, SubscriberRecord
from tests.store_backends import Backend

ALICE = SubscriberRecord(
    impi="alice@ims-a.test", impus=("sip:alice@ims-a.test", "tel:+493011"), password="alice-pw"
)
LOCAL = Local(host="127.0.7.151", port=5060, user="alice")
PCSCF = ("127.0.7.10", 5060)
PEER = ("127.0.7.21", 5060)
FROM_PCSCF = SimpleNamespace(remote=PCSCF, transport="udp")
FROM_PEER = SimpleNamespace(remote=PEER, transport="udp")
T0 = time.time()


@pytest.fixture(autouse=True)
def _wall_clock_now() -> None:
    """``now`` near the real clock for each test: the Redis server reclaims records at their
    wall-clock ``expires_at``, so a time taken at import would be stale by the later tests."""
    global T0
    T0 = time.time()


def _instance(store: Store, address: str) -> Any:
    server = HomeServer(
        "scscf-a",
        address,
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={"ims-b.test": Peer(hop=Hop(*PEER), trusted=True)},
        tel_domains={},
        trust=TrustPolicy.of(trusted=[PCSCF, PEER]),
        store=store,
    )
    server.now = lambda: T0  # type: ignore[method-assign]
    return server


def _register() -> Request:
    reg = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)
    reg.headers.add("Path", "<sip:term@127.0.7.10:5060;lr>")
    return reg


async def _decide(server: Any, request: Request, flow: Any = FROM_PCSCF) -> Any:
    return await server.decide(request.copy(), flow, None)


def _invite() -> Request:
    local = Local(host="127.0.7.161", port=5060, user="bob")
    return build_invite("sip:alice@ims-a.test", local=local, from_="sip:bob@ims-b.test")


async def test_registered_at_one_instance_reached_through_the_other(backend: Backend) -> None:
    one, two = _instance(backend.open(), "127.0.7.11"), _instance(backend.open(), "127.0.7.12")
    first = _register()
    challenge = await _decide(one, first)
    assert isinstance(challenge, Response) and challenge.status == 401
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    ok = await _decide(two, retry)  # the nonce one issued verifies at two
    assert isinstance(ok, Response) and ok.status == 200
    # the same credentials at the first instance: the shared nonce count refuses the replay
    replay = await _decide(one, retry)
    assert isinstance(replay, Response) and replay.status == 403
    assert one.registered("tel:+493011") and two.registered("sip:alice@ims-a.test")
    fwd = await _decide(one, _invite(), FROM_PEER)
    assert isinstance(fwd, Forward)
    assert fwd.request.uri.encode() == "sip:alice@127.0.7.151:5060"
    assert fwd.request.headers.get_list("Route") == ["<sip:term@127.0.7.10:5060;lr>"]
    assert fwd.hop.addr == PCSCF


async def test_a_restarted_instance_finds_the_registrations(backend: Backend) -> None:
    one = _instance(backend.open(), "127.0.7.11")
    first = _register()
    challenge = await _decide(one, first)
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    assert (await _decide(one, retry)).status == 200
    backend.restart_server()  # Redis: the server too; SQLite: only the file holds the state
    restarted = _instance(backend.open(), "127.0.7.11")
    fwd = await _decide(restarted, _invite(), FROM_PEER)
    assert isinstance(fwd, Forward) and fwd.hop.addr == PCSCF
    replay = await _decide(restarted, retry)
    assert isinstance(replay, Response) and replay.status == 403


async def test_store_unreachable_is_a_503(backend: Backend) -> None:
    """RFC 3261 §21.5.4: "The server is temporarily unable to process the request due to a
    temporary overloading or maintenance of the server." An S-CSCF whose store is gone answers
    503 (the proxies' error path uses the StoreError's status_hint), never a crash."""
    if backend.kind != "redis":
        pytest.skip("an SQLite file does not go away while open")
    one = _instance(backend.open(), "127.0.7.11")
    assert backend.server is not None
    backend.server.kill()
    with pytest.raises(StoreError) as e:
        await _decide(one, _invite(), FROM_PEER)
    assert e.value.status_hint == 503
