"""Digest authentication (RFC 7616, RFC 2617, RFC 3261 §22) against the RFC examples."""

from __future__ import annotations

import pytest

from ims.sip import Request, Response, SipParseError, parse_auth, parse_message
from ims.sip.auth import (
    DigestChallenge,
    DigestClient,
    DigestServer,
    challenges_of,
    digest_response,
)
from ims.sip.errors import SipBuildError


def test_rfc2617_section_3_5() -> None:
    assert (
        digest_response(
            username="Mufasa",
            password="Circle Of Life",
            realm="testrealm@host.com",
            method="GET",
            uri="/dir/index.html",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop="auth",
            nc="00000001",
            cnonce="0a4f113b",
        )
        == "6629fae49393a05397450978507c4ef1"
    )


@pytest.mark.parametrize(
    "algorithm,expected",
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str) -> None:
    challenge = DigestChallenge.from_header(
        parse_auth(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", '
            f"algorithm={algorithm}, "
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        )
    )
    assert challenge.qop == ("auth", "auth-int") and challenge.algorithm == algorithm
    client = DigestClient(
        "Mufasa",
        "Circle of Life",
        cnonce_factory=lambda: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    cred = client.credentials(challenge, "GET", "/dir/index.html")
    assert cred.get("response") == expected
    assert cred.get("nc") == "00000001" and cred.get("qop") == "auth"
    assert cred.get("opaque") == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    # the encoded header parses back to the same values
    assert parse_auth(cred.encode()).get("response") == expected
    # a second use of the same nonce increments nc
    assert client.credentials(challenge, "GET", "/dir/index.html").get("nc") == "00000002"


REGISTER = (
    b"REGISTER sip:ims.example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.10:5060;branch=z9hG4bKreg1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@ims.example.test>;tag=a1\r\n"
    b"To: <sip:alice@ims.example.test>\r\n"
    b"Call-ID: reg-1@127.0.1.10\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.1.10:5060>\r\n"
    b"Expires: 600\r\n"
    b"Content-Length: 0\r\n\r\n"
)
USERS = {"alice": "wonderland"}


def lookup(user: str, realm: str) -> str | None:
    assert realm == "ims.example.test"
    return USERS.get(user)


def _req() -> Request:
    m = parse_message(REGISTER)
    assert isinstance(m, Request)
    return m


@pytest.mark.parametrize("algorithms", [("SHA-256", "MD5"), ("MD5",)])
def test_register_challenge_round_trip(algorithms: tuple[str, ...]) -> None:
    server = DigestServer("ims.example.test", b"k" * 32, algorithms=algorithms)
    req = _req()
    assert not server.verify(req, 100.0, lookup).ok
    challenge = server.challenge_response(req, 100.0, to_tag="srv")
    wire = parse_message(challenge.encode())
    assert wire.status == 401  # type: ignore[union-attr]
    assert [c.algorithm for c in challenges_of(wire)] == list(algorithms)  # type: ignore[arg-type]
    retry = DigestClient("alice", "wonderland").authorize(req, wire)  # type: ignore[arg-type]
    assert retry.cseq is not None and retry.cseq.seq == 2
    assert retry.via is not None and retry.via.branch != "z9hG4bKreg1"
    assert retry.via.has_rport
    (cred,) = retry.authorization
    assert cred.get("algorithm") == algorithms[0]
    again = parse_message(retry.encode())
    assert isinstance(again, Request)
    result = server.verify(again, 130.0, lookup)
    assert result.ok and result.username == "alice"
    # the same credentials again (nc not increased) are a replay
    assert server.verify(again, 131.0, lookup).reason == "nonce count replayed"


def test_stale_nonce_wrong_password_forged_nonce() -> None:
    server = DigestServer("ims.example.test", b"s" * 32, nonce_lifetime=300)
    req = _req()
    ch = server.challenge_response(req, 1000.0)
    good = DigestClient("alice", "wonderland").authorize(req, ch)
    res = server.verify(good, 1000.0 + 301, lookup)
    assert not res.ok and res.stale  # correct response, old nonce: stale=true
    stale_ch = server.challenge_response(req, 1301.0, stale=True)
    assert DigestChallenge.from_header(stale_ch.www_authenticate[0]).stale
    bad = DigestClient("alice", "rabbit").authorize(req, ch)
    res = server.verify(bad, 1001.0, lookup)
    assert not res.ok and not res.stale and res.reason == "wrong response"
    other = DigestServer("ims.example.test", b"x" * 32)  # another secret: nonce not ours
    forged = DigestClient("alice", "wonderland").authorize(req, other.challenge_response(req, 1000))
    assert server.verify(forged, 1001.0, lookup).reason == "nonce not issued here"
    unknown = DigestClient("mallory", "x").authorize(req, ch)
    assert server.verify(unknown, 1001.0, lookup).reason == "unknown user"


def test_proxy_authentication_407() -> None:
    server = DigestServer("proxy.example.test", b"p" * 32, proxy=True, algorithms=("MD5",))
    req = _req()
    ch = server.challenge_response(req, 5.0)
    assert ch.status == 407 and ch.proxy_authenticate and not ch.www_authenticate
    retry = DigestClient("alice", "wonderland").authorize(req, ch)
    assert retry.proxy_authorization and not retry.authorization
    res = server.verify(retry, 6.0, lambda u, r: "wonderland" if u == "alice" else None)
    assert res.ok


def test_client_rejects_unusable_challenges() -> None:
    req = _req()
    server = DigestServer("r", b"z" * 32)
    ok = server.challenge_response(req, 0.0)
    ok.headers.set("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA-512-256')
    with pytest.raises(SipBuildError):
        DigestClient("a", "b").authorize(req, ok)
    ok.headers.set("WWW-Authenticate", "NoOneKnowsThisScheme opaque-data=here")
    with pytest.raises(SipBuildError):
        DigestClient("a", "b").authorize(req, ok)


def test_rfc2069_no_qop_and_auth_int() -> None:
    ch = DigestChallenge(realm="r", nonce="abc", algorithm="MD5")
    cred = DigestClient("u", "p").credentials(ch, "INVITE", "sip:b@h")
    assert cred.get("qop") is None and cred.get("nc") is None
    assert cred.get("response") == digest_response(
        username="u", password="p", realm="r", method="INVITE", uri="sip:b@h", nonce="abc", qop=None
    )
    ch2 = DigestChallenge(realm="r", nonce="abc", algorithm="SHA-256-sess", qop=("auth-int",))
    c2 = DigestClient("u", "p", cnonce_factory=lambda: "cn").credentials(
        ch2, "MESSAGE", "sip:b@h", b"hello"
    )
    assert c2.get("qop") == "auth-int"
    assert c2.get("response") == digest_response(
        username="u",
        password="p",
        realm="r",
        method="MESSAGE",
        uri="sip:b@h",
        nonce="abc",
        algorithm="SHA-256-sess",
        qop="auth-int",
        nc="00000001",
        cnonce="cn",
        body=b"hello",
    )


@pytest.mark.parametrize(
    "param,value,reason",
    [
        ("response", None, "incomplete credentials"),
        ("algorithm", "SHA-256", "algorithm SHA-256 not offered"),
        ("uri", '"sip:other@ims.example.test"', "digest uri does not match"),
        ("uri", '"not a uri"', "bad digest uri"),
        ("qop", "auth-int", "bad qop/nc/cnonce"),
        ("nc", "1", "bad qop/nc/cnonce"),
        ("nonce", '"%%%"', "wrong response"),
        ("realm", '"other"', "no credentials for realm"),
    ],
)
def test_verify_rejects_tampered_credentials(param: str, value: str | None, reason: str) -> None:
    server = DigestServer("ims.example.test", b"t" * 32, algorithms=("MD5",))
    req = _req()
    good = DigestClient("alice", "wonderland").authorize(req, server.challenge_response(req, 0.0))
    (cred,) = good.authorization
    params = cred.params.remove(param) if value is None else cred.params.set(param, value)
    good.headers.set("Authorization", type(cred)(cred.scheme, params).encode())
    res = server.verify(good, 1.0, lookup)
    assert not res.ok and res.reason == reason


def test_forged_nonce_formats_and_challenge_errors() -> None:
    server = DigestServer("r", b"t" * 32)
    assert server.nonce_age("not base64!", 0.0) is None
    assert server.nonce_age("AAAA", 0.0) is None
    future = server.make_nonce(100.0)
    assert server.nonce_age(future, 0.0) is None  # issued "in the future": not ours
    assert server.nonce_age(future, 150.0) == pytest.approx(50.0)
    with pytest.raises(SipParseError):
        DigestChallenge.from_header(parse_auth('Basic realm="x"'))
    with pytest.raises(SipParseError):
        DigestChallenge.from_header(parse_auth('Digest realm="x"'))
    with pytest.raises(SipBuildError):
        digest_response(
            username="u", password="p", realm="r", method="M", uri="u", nonce="n", algorithm="X"
        )
    with pytest.raises(SipBuildError):
        DigestClient("u", "p").credentials(
            DigestChallenge(realm="r", nonce="n", qop=("auth-conf",)), "M", "sip:a@b"
        )
    req = _req()
    with pytest.raises(SipBuildError):
        DigestClient("u", "p").authorize(req, Response(200))
