"""SIP/SIPS/tel URIs: parse -> fields -> encode round trip; RFC 3261 §19.1.4 and RFC 3966 §4
comparison examples; invalid URIs."""

from __future__ import annotations

import pytest

from ims.sip import AbsoluteUri, SipParseError, SipUri, TelUri, escape, parse_uri, unescape
from ims.sip.uri import uri_equal

ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sips:alice:secretword@atlanta.com;transport=tcp",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:alice@192.0.2.4:5070",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10]:5070;transport=tcp;lr",
    "sip:127.0.1.5;lr;maddr=127.0.1.6;ttl=2",
    "tel:+1-201-555-0123",
    "tel:7042;phone-context=example.com",
    "tel:863-1234;phone-context=+1-914-555",
    "urn:service:sos",
    "mailto:jj@example.org",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip(text: str) -> None:
    assert parse_uri(text).encode() == text


def test_sip_fields() -> None:
    u = parse_uri("sips:alice:pw@[2001:db8::10]:5061;transport=TLS;lr;maddr=10.0.0.1?X=1&Y=2")
    assert isinstance(u, SipUri) and u.secure
    assert (u.user, u.password, u.host, u.port) == ("alice", "pw", "[2001:db8::10]", 5061)
    assert u.transport == "tls" and u.lr and u.maddr == "10.0.0.1"
    assert u.headers == (("X", "1"), ("Y", "2"))
    assert u.host_port == "[2001:db8::10]:5061" and u.aor == "sips:alice@[2001:db8::10]"
    v = u.with_param("ttl", "5").without_param("lr").without_headers()
    assert v.encode() == "sips:alice:pw@[2001:db8::10]:5061;transport=TLS;maddr=10.0.0.1;ttl=5"


def test_tel_fields() -> None:
    t = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert isinstance(t, TelUri) and t.is_global and t.digits == "+12015550123"
    loc = parse_uri("tel:7042;phone-context=example.com")
    assert isinstance(loc, TelUri) and not loc.is_global and loc.phone_context == "example.com"


EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    (
        "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
        "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
    ),
    (
        "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
        "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
    ),
    ("tel:+1-201-555-0123", "tel:+12015550123"),
    ("tel:7042;phone-context=example.com", "tel:7042;phone-context=EXAMPLE.com"),
    ("tel:+1234;a=1;b=2", "tel:+1234;b=2;a=1"),
    ("tel:863-1234;phone-context=+1-914-555", "tel:8631234;phone-context=+1914555"),
]
NOT_EQUAL = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=10.0.0.1", "sip:alice@atlanta.com"),
    ("tel:+1234", "tel:1234;phone-context=+1"),
    ("tel:+1234", "tel:+1234;ext=1"),
    ("tel:+1234", "sip:+1234@example.com;user=phone"),
]


@pytest.mark.parametrize("a,b", EQUAL)
def test_equal(a: str, b: str) -> None:
    assert uri_equal(parse_uri(a), parse_uri(b)) and uri_equal(parse_uri(b), parse_uri(a))


@pytest.mark.parametrize("a,b", NOT_EQUAL)
def test_not_equal(a: str, b: str) -> None:
    assert not uri_equal(parse_uri(a), parse_uri(b))
    assert not uri_equal(parse_uri(b), parse_uri(a))


def test_absolute_uri_comparison() -> None:
    assert uri_equal(parse_uri("URN:service:sos"), parse_uri("urn:service:sos"))
    assert isinstance(parse_uri("soap.beep://192.0.2.103:3002"), AbsoluteUri)


def test_escaping() -> None:
    assert escape("I have spaces") == "I%20have%20spaces"
    assert unescape(escape('a@b:c<>"é')) == 'a@b:c<>"é'
    assert unescape("%e2%82%ac") == "€"
    assert unescape("100%") == "100%" and unescape("%zz") == "%zz"
    assert escape("alice+1;x=y") == "alice+1;x=y"  # user-unreserved kept


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:a@b:99999",
        "sip:a@b:x",
        "sip:a@[::1",
        "sip:a@[::1]x",
        "sip:a b@c",
        "sip:a@b@c",
        "sip:a@b;=x",
        "sip:a@b;x=",
        "sip:a@b?x",
        "sip:a@host_name",
        "<sip:a@b>",
        "tel:1234",
        "tel:+",
        "tel:+12a",
        "notascheme",
        "1sip:a@b",
        "http:",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(SipParseError) as ei:
        parse_uri(text)
    assert ei.value.status_hint == 400


def test_aor_canonical_and_user_phone() -> None:
    a = parse_uri("sip:%61lice@AtLanta.COM:5070;transport=tcp?X=1")
    b = parse_uri("sip:alice@atlanta.com")
    assert isinstance(a, SipUri) and isinstance(b, SipUri)
    assert a.aor == b.aor == "sip:alice@atlanta.com"
    phone = parse_uri("sip:+1-212-555-1212;ext=12@gateway.com;user=phone")
    assert isinstance(phone, SipUri)
    tel = phone.as_tel()
    assert tel is not None and tel.digits == "+12125551212" and tel.params.get("ext") == "12"
    assert uri_equal(tel, parse_uri("tel:+12125551212;ext=12"))
    assert b.as_tel() is None
    assert isinstance(parse_uri("sip:abc@h;user=phone"), SipUri)
    assert parse_uri("sip:abc@h;user=phone").as_tel() is None  # type: ignore[union-attr]
