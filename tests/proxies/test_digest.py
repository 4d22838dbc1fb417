"""The S-CSCF registrar and the Internet proxy's 407 on the shared digest code
(``ims.sip.auth.DigestServer`` / ``DigestClient``): challenge, answer, stale nonce, wrong password,
nonce-count replay, SHA-256 when configured. Sans-I/O: the element is the router of its proxy
core, fed with ``receive_request(request, source, now)`` on a chosen clock; nothing is sent."""

from __future__ import annotations

from typing import Any

from ims.sip.auth import DigestClient
from ims.sip.dialog import Local, build_invite, build_register
from ims.sip.message import Request, Response
from ims.sip.proxy import ForwardRequest, Peer, SendResponse
from ims.sip.uri import parse_uri
from proxies.scscf import DomainPeer, HomeServer
from proxies.subscribers import SubscriberDb, SubscriberRecord

ALICE = SubscriberRecord(
    impi="alice@ims-a.test", impus=("sip:alice@ims-a.test", "tel:+493011"), password="alice-pw"
)
LOCAL = Local(host="127.0.7.151", port=5060, user="alice")
SOURCE = Peer(transport="udp", host="127.0.7.151", port=5060)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _server(
    *, ims: bool = True, algorithms: tuple[str, ...] = ("MD5",)
) -> tuple[HomeServer, Clock]:
    server = HomeServer(
        "scscf-a",
        "127.0.7.11",
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={
            "ims-b.test": DomainPeer(
                hop=Peer(transport="udp", host="127.0.7.21", port=5060), trusted=True
            )
        },
        tel_domains={},
        ims=ims,
        digest_algorithms=algorithms,
    )
    return server, Clock()


def _register() -> Request:
    return build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)


def _decide(server: HomeServer, request: Request, clock: Clock | None = None) -> Any:
    """The final response the core sent for ``request`` (no transaction layer here: it goes
    statelessly to the Via), or the request it forwarded."""
    now = 1000.0 if clock is None else clock.t
    actions = server.core.receive_request(request.copy(), SOURCE, now)
    for a in actions:
        if isinstance(a, ForwardRequest):
            return a
        msg = a.response if isinstance(a, SendResponse) else getattr(a, "message", None)
        if isinstance(msg, Response) and msg.status >= 200:
            return msg
    raise AssertionError(f"nothing decided: {actions}")


def test_register_challenge_then_200_with_service_route() -> None:
    server, _ = _server()
    first = _register()
    challenge = _decide(server, first)
    assert isinstance(challenge, Response) and challenge.status == 401
    offered = [h.get("algorithm") for h in challenge.www_authenticate]
    assert offered == ["MD5"]  # what SIPp 3.6 can answer
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    ok = _decide(server, retry)
    assert isinstance(ok, Response) and ok.status == 200
    assert ok.headers.get_list("Service-Route") == ["<sip:orig@127.0.7.11:5060;lr>"]
    assert server.registered("tel:+493011", now=1000.0)


def test_stale_nonce_wrong_password_and_replay() -> None:
    server, clock = _server()
    first = _register()
    challenge = _decide(server, first)
    client = DigestClient("alice@ims-a.test", "alice-pw")
    retry = client.authorize(first, challenge)
    assert _decide(server, retry, clock).status == 200
    # the very same credentials again (nc not raised): a replay, refused
    replay = _decide(server, retry, clock)
    assert replay.status == 403
    # a correct answer to a nonce older than its lifetime: 401 with stale=true
    clock.t += server.digest.nonce_lifetime + 1
    late = _decide(server, client.authorize(first, challenge), clock)
    assert late.status == 401
    assert [h.get("stale") for h in late.www_authenticate] == ["true"]
    # a wrong password is refused outright, not challenged again
    wrong = DigestClient("alice@ims-a.test", "guess").authorize(first, late)
    assert _decide(server, wrong, clock).status == 403


def test_sha256_when_configured() -> None:
    server, _ = _server(algorithms=("SHA-256", "MD5"))
    first = _register()
    challenge = _decide(server, first)
    assert [h.get("algorithm") for h in challenge.www_authenticate] == ["SHA-256", "MD5"]
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    assert retry.authorization[0].get("algorithm") == "SHA-256"
    assert _decide(server, retry).status == 200


def test_internet_proxy_challenges_its_own_users_with_407() -> None:
    server, _ = _server(ims=False)
    invite = build_invite(
        "sip:bob@ims-b.test", local=LOCAL, from_="sip:alice@ims-a.test", body=b"v=0\r\n"
    )
    challenge = _decide(server, invite)
    assert isinstance(challenge, Response) and challenge.status == 407
    assert challenge.proxy_authenticate and not challenge.www_authenticate
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(invite, challenge)
    assert retry.headers.get("Proxy-Authorization") is not None
    forward = _decide(server, retry)
    assert isinstance(forward, ForwardRequest) and forward.peer.addr == ("127.0.7.21", 5060)


def test_register_digest_uri_may_name_the_registrar_host_only() -> None:
    """SIPp digests ``sip:<address it sent to>``; a REGISTER is accepted with that, but a digest
    uri naming some user's URI is not (and an INVITE must always digest its Request-URI)."""
    server, _ = _server()
    first = _register()
    challenge = _decide(server, first)
    client = DigestClient("alice@ims-a.test", "alice-pw")
    as_sipp = first.copy()
    as_sipp.uri = parse_uri("sip:127.0.7.10:5060")
    retry = client.authorize(as_sipp, challenge)
    retry.uri = first.uri  # the request still goes to sip:ims-a.test
    assert _decide(server, retry).status == 200
    other = first.copy()
    other.uri = parse_uri("sip:bob@ims-a.test")
    forged = client.authorize(other, challenge)
    forged.uri = first.uri
    assert (_decide(server, forged)).status == 403


def test_internet_proxy_bounds_unanswered_register_challenges_per_source() -> None:
    """Issue 11, finding 9 at the Internet proxy (it faces its users directly): beyond 16
    unanswered REGISTER challenges from one address, REGISTERs get 503 with Retry-After (RFC
    3261 §21.5.4: "The server MAY indicate when the client should retry the request in a
    Retry-After header field"); another address is still challenged; an answered challenge
    stops counting, and after Timer J (32 s) the address is challenged again."""
    server, clock = _server(ims=False)
    statuses = [_decide(server, _register(), clock).status for _ in range(20)]
    assert statuses == [401] * 16 + [503] * 4
    busy = _decide(server, _register(), clock)
    assert busy.status == 503 and busy.headers.get("Retry-After")
    other = Local(host="127.0.7.152", port=5060, user="alice")
    req = build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=other, expires=600)
    elsewhere = server.core.receive_request(
        req, Peer(transport="udp", host="127.0.7.152", port=5060), clock.t
    )
    assert [getattr(a, "response", getattr(a, "message", None)).status for a in elsewhere] == [401]
    clock.t += 33.0  # Timer J: the unanswered challenges no longer count
    first = _register()
    challenge = _decide(server, first, clock)
    assert challenge.status == 401
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    assert _decide(server, retry, clock).status == 200
    assert server.admission is not None and server.admission.refused == 5
