"""Digest authentication: our server against our client, RFC 2617 §3.5 vector, stale nonces."""

from __future__ import annotations

from ims.sip.headers import parse_auth
from proxies.digest import DigestServer, digest_response
from ue.digest import DigestClient


def test_rfc2617_example_vector() -> None:
    # RFC 2617 §3.5 (HTTP, but the same computation): Mufasa / Circle Of Life
    assert (
        digest_response(
            username="Mufasa",
            realm="testrealm@host.com",
            password="Circle Of Life",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_client_answers_server_challenge() -> None:
    server = DigestServer("ims-a.test", lifetime=60)
    client = DigestClient("alice@ims-a.test", "pw")
    challenge = parse_auth(server.challenge(100.0))
    creds = parse_auth(client.authorization(challenge, "REGISTER", "sip:ims-a.test"))
    assert server.verify(creds, "REGISTER", "pw", 101.0) == "ok"
    assert server.verify(creds, "REGISTER", "wrong", 101.0) == "bad"
    assert server.verify(creds, "INVITE", "pw", 101.0) == "bad"  # method is covered
    assert server.verify(creds, "REGISTER", "pw", 200.0) == "stale"
    # a nonce this server never issued
    other = DigestServer("ims-a.test")
    forged = parse_auth(client.authorization(parse_auth(other.challenge(100.0)), "REGISTER", "x"))
    assert server.verify(forged, "REGISTER", "pw", 101.0) == "bad"


def test_rfc2617_without_qop() -> None:
    server = DigestServer("r")
    challenge = parse_auth(f'Digest realm="r", nonce="{server.nonce(5.0)}"')
    creds = parse_auth(DigestClient("u", "p").authorization(challenge, "INVITE", "sip:x@r"))
    assert creds.get("qop") is None
    assert server.verify(creds, "INVITE", "p", 6.0) == "ok"
