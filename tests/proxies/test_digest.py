"""The S-CSCF registrar and the Internet proxy's 407 on the shared digest code
(``ims.sip.auth.DigestServer`` / ``DigestClient``): challenge, answer, stale nonce, wrong password,
nonce-count replay, SHA-256 when configured. Sans-I/O: ``decide`` is called directly with a
chosen clock, nothing is sent."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ims.sip.auth import DigestClient
from ims.sip.dialog import Local, build_invite, build_register
from ims.sip.message import Request, Response
from ims.sip.uri import parse_uri
from proxies.base import Forward, Hop
from proxies.scscf import HomeServer, Peer
from proxies.subscribers import SubscriberDb, SubscriberRecord

ALICE = SubscriberRecord(
    impi="alice@ims-a.test", impus=("sip:alice@ims-a.test", "tel:+493011"), password="alice-pw"
)
LOCAL = Local(host="127.0.7.151", port=5060, user="alice")
FLOW = SimpleNamespace(remote=("127.0.7.151", 5060), transport="udp")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _server(*, ims: bool = True, algorithms: tuple[str, ...] = ("MD5",)) -> tuple[Any, Clock]:
    clock = Clock()
    server = HomeServer(
        "scscf-a",
        "127.0.7.11",
        domain="ims-a.test",
        subscribers=SubscriberDb([ALICE]),
        peers={"ims-b.test": Peer(hop=Hop("127.0.7.21", 5060), trusted=True)},
        tel_domains={},
        ims=ims,
        digest_algorithms=algorithms,
    )
    server.now = clock  # type: ignore[method-assign]
    return server, clock


def _register() -> Request:
    return build_register("sip:ims-a.test", "sip:alice@ims-a.test", local=LOCAL, expires=600)


async def _decide(server: Any, request: Request) -> Any:
    return await server.decide(request.copy(), FLOW, None)


async def test_register_challenge_then_200_with_service_route() -> None:
    server, _ = _server()
    first = _register()
    challenge = await _decide(server, first)
    assert isinstance(challenge, Response) and challenge.status == 401
    offered = [h.get("algorithm") for h in challenge.www_authenticate]
    assert offered == ["MD5"]  # what SIPp 3.6 can answer
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    ok = await _decide(server, retry)
    assert isinstance(ok, Response) and ok.status == 200
    assert ok.headers.get_list("Service-Route") == ["<sip:orig@127.0.7.11:5060;lr>"]
    assert server.registered("tel:+493011")


async def test_stale_nonce_wrong_password_and_replay() -> None:
    server, clock = _server()
    first = _register()
    challenge = await _decide(server, first)
    client = DigestClient("alice@ims-a.test", "alice-pw")
    retry = client.authorize(first, challenge)
    assert (await _decide(server, retry)).status == 200
    # the very same credentials again (nc not raised): a replay, refused
    replay = await _decide(server, retry)
    assert replay.status == 403
    # a correct answer to a nonce older than its lifetime: 401 with stale=true
    clock.t += server.digest.nonce_lifetime + 1
    late = await _decide(server, client.authorize(first, challenge))
    assert late.status == 401
    assert [h.get("stale") for h in late.www_authenticate] == ["true"]
    # a wrong password is refused outright, not challenged again
    wrong = DigestClient("alice@ims-a.test", "guess").authorize(first, late)
    assert (await _decide(server, wrong)).status == 403


async def test_sha256_when_configured() -> None:
    server, _ = _server(algorithms=("SHA-256", "MD5"))
    first = _register()
    challenge = await _decide(server, first)
    assert [h.get("algorithm") for h in challenge.www_authenticate] == ["SHA-256", "MD5"]
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(first, challenge)
    assert retry.authorization[0].get("algorithm") == "SHA-256"
    assert (await _decide(server, retry)).status == 200


async def test_internet_proxy_challenges_its_own_users_with_407() -> None:
    server, _ = _server(ims=False)
    invite = build_invite(
        "sip:bob@ims-b.test", local=LOCAL, from_="sip:alice@ims-a.test", body=b"v=0\r\n"
    )
    challenge = await _decide(server, invite)
    assert isinstance(challenge, Response) and challenge.status == 407
    assert challenge.proxy_authenticate and not challenge.www_authenticate
    retry = DigestClient("alice@ims-a.test", "alice-pw").authorize(invite, challenge)
    assert retry.headers.get("Proxy-Authorization") is not None
    forward = await _decide(server, retry)
    assert isinstance(forward, Forward) and forward.hop.addr == ("127.0.7.21", 5060)


async def test_register_digest_uri_may_name_the_registrar_host_only() -> None:
    """SIPp digests ``sip:<address it sent to>``; a REGISTER is accepted with that, but a digest
    uri naming some user's URI is not (and an INVITE must always digest its Request-URI)."""
    server, _ = _server()
    first = _register()
    challenge = await _decide(server, first)
    client = DigestClient("alice@ims-a.test", "alice-pw")
    as_sipp = first.copy()
    as_sipp.uri = parse_uri("sip:127.0.7.10:5060")
    retry = client.authorize(as_sipp, challenge)
    retry.uri = first.uri  # the request still goes to sip:ims-a.test
    assert (await _decide(server, retry)).status == 200
    other = first.copy()
    other.uri = parse_uri("sip:bob@ims-a.test")
    forged = client.authorize(other, challenge)
    forged.uri = first.uri
    assert (await _decide(server, forged)).status == 403
