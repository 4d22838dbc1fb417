"""Digest nonces shared by instances (ims.sip.auth over ims.store), on both backends.

RFC 7616 §3.4: "The nc value is the hexadecimal count of the number of requests (including the
current request) that the client has sent with the nonce value in this request. ... The
purpose of this parameter is to allow the server to detect request replays by maintaining its
own copy of this count -- if the same nc value is seen twice, then the request is a replay."
"""

from __future__ import annotations

import time

import pytest

from ims.sip.auth import DigestClient, DigestServer
from ims.sip.message import Request
from ims.sip.parser import parse_message
from ims.store import Store
from ims.store.shared import shared_secret
from tests.ims.sip.test_auth import REGISTER, lookup
from tests.store_backends import Backend

NOW = time.time()


@pytest.fixture(autouse=True)
def _wall_clock_now() -> None:
    """``now`` near the real clock for each test: the Redis server reclaims records at their
    wall-clock ``expires_at``, so a time taken at import would be stale by the later tests."""
    global NOW
    NOW = time.time()


REALM = "ims.example.test"


def _server(store: Store) -> DigestServer:
    secret = shared_secret(store, f"digest/{REALM}", NOW)
    return DigestServer(REALM, secret, algorithms=("MD5",), nonce_store=store)


def _register() -> Request:
    m = parse_message(REGISTER)
    assert isinstance(m, Request)
    return m


def test_instances_share_the_secret_and_the_nonce_counts(backend: Backend) -> None:
    one, two = _server(backend.open()), _server(backend.open())
    assert one.secret == two.secret  # created once, read by the second instance
    req = _register()
    client = DigestClient("alice", "wonderland")
    challenge = one.challenge_response(req, NOW)
    first = client.authorize(req, challenge)
    assert two.verify(first, NOW + 1, lookup).ok  # issued by one, verified by two
    # the same nc at the other instance: a replay, refused
    assert one.verify(first, NOW + 2, lookup).reason == "nonce count replayed"
    second = client.authorize(req, challenge)  # nc=00000002
    assert one.verify(second, NOW + 3, lookup).ok
    assert two.verify(second, NOW + 4, lookup).reason == "nonce count replayed"


def test_replay_refused_after_a_restart(backend: Backend) -> None:
    one = _server(backend.open())
    req = _register()
    creds = DigestClient("alice", "wonderland").authorize(req, one.challenge_response(req, NOW))
    assert one.verify(creds, NOW + 1, lookup).ok
    backend.restart_server()
    restarted = _server(backend.open())
    assert restarted.secret == one.secret
    assert restarted.verify(creds, NOW + 2, lookup).reason == "nonce count replayed"


def test_per_user_bound_refuses_rather_than_forgets(backend: Backend) -> None:
    """Evicting a user's oldest nonce raises the user's floor: that nonce is then refused as
    stale (a fresh challenge), never accepted again with an old nc."""
    server = _server(backend.open())
    server.max_nonces_per_user = 2
    req = _register()
    used = []
    for i in range(3):
        creds = DigestClient("alice", "wonderland").authorize(
            req, server.challenge_response(req, NOW + i)
        )
        assert server.verify(creds, NOW + i, lookup).ok
        used.append(creds)
    res = server.verify(used[0], NOW + 3, lookup)
    assert not res.ok and res.stale and res.reason == "nonce no longer tracked"
    assert server.verify(used[2], NOW + 3, lookup).reason == "nonce count replayed"
