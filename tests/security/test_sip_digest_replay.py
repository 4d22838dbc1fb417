"""Issue 11, finding 6: digest replay after the server forgot the nonce.

RFC 7616 §3.4 (nc): "The purpose of this parameter is to allow the server to detect request
replays by maintaining its own copy of this count -- if the same nc value is seen twice, then
the request is a replay." The memory is bounded; when it must make room it refuses (stale) the
nonces it may have forgotten instead of accepting them again. RFC 7616 §3.3: "an implementation
might choose to use one-time nonces": a response without qop (the RFC 2069 form) is one-time.
"""

from __future__ import annotations

import asyncio

from ims.sip.auth import DigestClient, DigestServer, digest_response
from ims.sip.dialog import Local, build_register
from ims.sip.message import Request, Response
from lab.orchestrator import Lab
from lab.ues import user_agent
from proxies.hooks import Direction
from tests.security.conftest import RawSip, sip_addr

REALM = "ims-a.test"
PASSWORDS = {f"u{i}": f"pw{i}" for i in range(40)} | {"alice": "alice-pw", "carol": "carol-pw"}


def lookup(user: str, _realm: str) -> str | None:
    return PASSWORDS.get(user)


def _authenticated(server: DigestServer, user: str, now: float) -> Request:
    local = Local(host="127.0.7.150", port=5060, user=user)
    req = build_register(f"sip:{REALM}", f"sip:{user}@{REALM}", local=local)
    challenge = server.challenge_response(req, now)
    return DigestClient(user, PASSWORDS[user]).authorize(req, challenge)


def test_one_users_authentications_cannot_evict_anothers_nonce() -> None:
    server = DigestServer(REALM, b"k" * 32, algorithms=("MD5",))
    captured = _authenticated(server, "alice", 10.0)
    assert server.verify(captured, 10.0, lookup).ok
    for i in range(4200):  # more than the global bound of 4,096
        t = 11.0 + i / 1e4  # each nonce issued and used at its own time
        assert server.verify(_authenticated(server, "carol", t), t, lookup).ok
        assert server.tracked_nonces <= server.max_nonces
    replay = server.verify(captured, 12.0, lookup)
    assert not replay.ok and replay.reason == "nonce count replayed"


def test_global_bound_refuses_what_it_forgot() -> None:
    server = DigestServer(REALM, b"k" * 32, algorithms=("MD5",), max_nonces=64)
    first = _authenticated(server, "u0", 1.0)
    assert server.verify(first, 1.0, lookup).ok
    for n in range(1, 400):  # 40 users x 10 fresh nonces each: the global memory overflows
        user = f"u{n % 40}"
        assert server.verify(_authenticated(server, user, 1.0 + n), 1.0 + n, lookup).ok
        assert server.tracked_nonces <= 64
    replay = server.verify(first, 401.0 - 200, lookup)  # still within the nonce lifetime
    assert not replay.ok and replay.stale  # forgotten -> refused with a fresh challenge


def test_per_user_bound_refuses_that_users_old_nonces() -> None:
    server = DigestServer(REALM, b"k" * 32, algorithms=("MD5",), max_nonces_per_user=8)
    old = _authenticated(server, "carol", 1.0)
    assert server.verify(old, 1.0, lookup).ok
    for n in range(20):
        assert server.verify(_authenticated(server, "carol", 2.0 + n), 2.0 + n, lookup).ok
    assert server.tracked_nonces == 8
    result = server.verify(old, 30.0, lookup)
    assert not result.ok and result.stale


def test_qop_less_response_is_single_use() -> None:
    server = DigestServer(REALM, b"k" * 32, algorithms=("MD5",))
    nonce = server.make_nonce(5.0)
    local = Local(host="127.0.7.150", port=5060, user="alice")
    req = build_register(f"sip:{REALM}", f"sip:alice@{REALM}", local=local)
    response = digest_response(
        username="alice", password="alice-pw", realm=REALM, method="REGISTER",
        uri=req.uri.encode(), nonce=nonce, qop=None,
    )  # fmt: skip
    req.headers.add(
        "Authorization",
        f'Digest username="alice", realm="{REALM}", nonce="{nonce}", '
        f'uri="{req.uri.encode()}", response="{response}", algorithm=MD5',
    )
    assert server.verify(req, 6.0, lookup).ok
    again = server.verify(req, 7.0, lookup)
    assert not again.ok and again.reason == "nonce count replayed"


async def test_replayed_register_after_4200_authentications_is_refused(lab: Lab) -> None:
    """alice registers through pcscf-a; carol authenticates 4,200 times against scscf-a's
    registrar; the REGISTER captured at scscf-a is replayed from another address with the
    attacker's Contact (qop=auth does not cover Contact). It must not be accepted."""
    scscf = lab.element("scscf-a").proxy
    captured: list[Request] = []

    def grab(ev: object) -> None:
        msg = getattr(ev, "message", None)
        if (
            getattr(ev, "direction", None) == Direction.IN
            and isinstance(msg, Request)
            and msg.method == "REGISTER"
            and msg.headers.get("Authorization")
        ):
            captured.append(msg.copy())

    scscf.sip_hooks.add(grab)
    async with user_agent(lab.topology, "alice") as alice:
        await alice.register()
    assert captured
    now = scscf.now()
    lookup_sub = scscf._lookup
    for i in range(4200):
        local = Local(host="127.0.7.102", port=5060, user="carol")
        req = build_register("sip:ims-a.test", "sip:carol@ims-a.test", local=local)
        ch = scscf.digest.challenge_response(req, now + i * 1e-4)
        authed = DigestClient("carol@ims-a.test", "carol-pw").authorize(req, ch)
        assert scscf.digest.verify(authed, now + i * 1e-4, lookup_sub).ok
    attacker = await RawSip.open()
    try:
        replay = captured[-1].copy()
        h = replay.headers
        h.remove("Via")
        h.insert_first(
            "Via", f"SIP/2.0/UDP {attacker.addr[0]}:{attacker.addr[1]};branch=z9hG4bKrp1"
        )
        h.remove("Route")
        h.set("Contact", f"<sip:alice@{attacker.addr[0]}:{attacker.addr[1]}>")
        attacker.send(replay.encode(), sip_addr(lab, "scscf-a"))
        final = await attacker.final(replay.call_id or "")
    finally:
        attacker.close()
    assert isinstance(final, Response) and final.status in (401, 403), final
    assert scscf.digest.tracked_nonces <= scscf.digest.max_nonces
    await asyncio.sleep(0)
    bindings = scscf.store.lookup("alice@ims-a.test", scscf.now())
    assert all(attacker.addr[0] not in b.uri for b in bindings)
