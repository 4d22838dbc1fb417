"""REGISTER handling (RFC 3261 §10.3) on real messages: digest 401 -> authorized 200, 403,
404, 420, 423, wildcard removal, binding listing, and the location router using it."""

from __future__ import annotations

from ims.sip.auth import DigestClient
from ims.sip.message import Request, Response
from ims.sip.parser import parse_message
from ims.sip.proxy.location import LocationRouter
from ims.sip.proxy.routing import Forward, Respond, RoutingContext
from ims.sip.registrar import (
    BindingStore,
    Registrar,
    aor_of,
    contact_key,
    digest_authenticator,
)
from ims.sip.transport import Peer
from ims.sip.uri import parse_uri


def register(
    user: str = "alice",
    contact: str = "<sip:alice@127.0.3.2:5061>",
    *,
    extra: str = "",
    cseq: int = 1,
    call_id: str = "reg1",
) -> Request:
    text = (
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.3.2:5061;branch=z9hG4bKr1\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{user}@example.com>;tag=f1\r\n"
        f"To: <sip:{user}@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        + (f"Contact: {contact}\r\n" if contact else "")
        + extra
        + "Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(text.encode())
    assert isinstance(msg, Request)
    return msg


def test_digest_challenge_then_200_with_binding() -> None:
    auth = digest_authenticator("example.com", {"alice": "secret"}, ("MD5",), secret=b"k" * 32)
    reg = Registrar(BindingStore(), authenticate=auth)
    req = register(extra="Expires: 600\r\n")
    r401 = reg.handle(req, 100.0)
    assert r401.status == 401
    challenge = r401.headers.get("WWW-Authenticate") or ""
    assert challenge.startswith("Digest") and 'realm="example.com"' in challenge
    retry = DigestClient("alice", "secret").authorize(req, r401)
    r200 = reg.handle(retry, 101.0)
    assert r200.status == 200, r200.reason
    assert r200.headers.get_all("Contact") == ["<sip:alice@127.0.3.2:5061>;expires=600"]
    assert [b.uri for b in reg.store.lookup("sip:alice@example.com", 102.0)] == [
        "sip:alice@127.0.3.2:5061"
    ]


def test_wrong_password_and_foreign_aor() -> None:
    auth = digest_authenticator(
        "example.com", {"alice": "secret", "bob": "pw"}, ("SHA-256",), secret=b"k" * 32
    )
    reg = Registrar(BindingStore(), authenticate=auth)
    req = register()
    r401 = reg.handle(req, 0.0)
    bad = DigestClient("alice", "wrong").authorize(req, r401)
    assert reg.handle(bad, 1.0).status == 401
    # bob authenticates correctly but tries to register alice's AOR: 403 (§10.3 step 4)
    other = DigestClient("bob", "pw").authorize(req, r401)
    assert reg.handle(other, 1.0).status == 403


def test_open_registrar_rules() -> None:
    reg = Registrar(BindingStore(min_expires=60), known_aors=lambda aor: "nobody" not in aor)
    assert reg.handle(register("nobody"), 0.0).status == 404
    r = reg.handle(register(extra="Expires: 10\r\n"), 0.0)
    assert r.status == 423 and r.headers.get("Min-Expires") == "60"
    r = reg.handle(register(extra="Require: foo\r\n"), 0.0)
    assert r.status == 420 and r.headers.get("Unsupported") == "foo"
    # two contacts with q, then a query (no Contact) lists them, then * removes them
    r = reg.handle(
        register(contact='<sip:a@127.0.3.2:5061>;q=0.5, "Al" <sip:a@127.0.3.5:5061>;q=1'), 0.0
    )
    assert r.status == 200 and len(r.headers.get_all("Contact")) == 2
    q = reg.handle(register(contact="", cseq=2), 10.0)
    assert q.status == 200
    assert q.headers.get_all("Contact")[0].startswith('"Al" <sip:a@127.0.3.5:5061>;q=1.0;')
    star = reg.handle(register(contact="*", extra="Expires: 0\r\n", cseq=3), 20.0)
    assert star.status == 200 and star.headers.get_all("Contact") == []
    bad_star = reg.handle(register(contact="*", cseq=4), 20.0)
    assert bad_star.status == 400


def test_contact_key_is_rfc3261_uri_equality() -> None:
    a = contact_key(parse_uri("sip:%61lice@EXAMPLE.com;transport=UDP;foo=bar"))
    b = contact_key(parse_uri("sip:alice@example.com;transport=udp"))
    c = contact_key(parse_uri("sip:alice@example.com:5060"))
    assert a == b and a != c
    assert aor_of(parse_uri("sip:Bob@Example.COM:5070;x=y")) == "sip:Bob@example.com"
    assert aor_of(parse_uri("tel:+123")) is None


def test_location_router_forks_to_bindings_and_answers_unknown_users() -> None:
    reg = Registrar(BindingStore())
    router = LocationRouter(reg, is_known_user=lambda aor: aor == "sip:carol@example.com")
    reg.handle(register(contact="<sip:alice@127.0.3.2:5061>, <sip:alice@127.0.3.4:5061>"), 0.0)

    def ctx(has_route: bool = False) -> RoutingContext:
        return RoutingContext(
            source=Peer(transport="udp", host="127.0.3.9", port=5060),
            now=1.0,
            has_route=has_route,
            is_local=lambda u: False,
            is_our_domain=lambda u: getattr(u, "host", "") == "example.com",
        )

    inv = register()
    inv.method = "INVITE"
    inv.uri = parse_uri("sip:alice@example.com")
    d = router.route(inv, ctx())
    assert isinstance(d, Forward) and {t.uri.encode() for t in d.targets} == {
        "sip:alice@127.0.3.2:5061",
        "sip:alice@127.0.3.4:5061",
    }
    inv.uri = parse_uri("sip:carol@example.com")
    d = router.route(inv, ctx())
    assert isinstance(d, Respond) and d.status == 480
    inv.uri = parse_uri("sip:dave@example.com")
    d = router.route(inv, ctx())
    assert isinstance(d, Respond) and d.status == 404
    inv.uri = parse_uri("sip:x@elsewhere.test")
    d = router.route(inv, ctx())
    assert isinstance(d, Forward) and d.targets[0].uri.encode() == "sip:x@elsewhere.test"
    r = router.route(register("zed"), ctx())
    assert isinstance(r, Respond) and isinstance(r.response, Response)
    assert r.response.status == 200
