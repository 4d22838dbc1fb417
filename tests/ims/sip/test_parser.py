"""Parser tests: decode -> check fields -> re-encode (RFC 3261 §7, §18.3)."""

from __future__ import annotations

import pytest

from ims.sip import (
    Headers,
    NameAddr,
    Params,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    Via,
    make_response,
    new_branch,
    parse_message,
)

SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 127.0.1.1\r\ns=-\r\n"
    b"c=IN IP4 127.0.1.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@127.0.1.1:5060;transport=udp>;expires=60;q=0.5\r\n"
    b"X-Unknown: keep me, exactly\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)


def test_invite_fields_and_round_trip() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "bob"
    via = msg.via
    assert via is not None
    assert (via.transport, via.host, via.port, via.branch) == (
        "UDP",
        "127.0.1.1",
        5060,
        "z9hG4bK776asdhds",
    )
    assert via.has_rport and via.rport is None
    assert msg.max_forwards == 70
    assert msg.to is not None and msg.to.display_name == "Bob" and msg.to.tag is None
    assert msg.from_ is not None and msg.from_.display_name == "Alice"
    assert msg.from_.tag == "1928301774"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq is not None and (msg.cseq.seq, msg.cseq.method) == (314159, "INVITE")
    (c,) = msg.contacts
    assert c.expires == 60 and c.q == 0.5
    assert isinstance(c.uri, SipUri) and c.uri.transport == "udp" and c.uri.port == 5060
    assert msg.headers.get("x-unknown") == "keep me, exactly"
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP
    assert msg.encode() == INVITE


def test_compact_forms_and_folding() -> None:
    data = (
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/TCP a.example.com;branch=z9hG4bK1,\r\n SIP/2.0/UDP b.example.com:5062"
        b";branch=z9hG4bK2;received=10.0.0.1\r\n"
        b"f: <sip:a@example.com>;tag=1\r\nt: sip:x@example.com\r\ni: abc@h\r\n"
        b"CSeq: 1 OPTIONS\r\nm: *\r\nk: path, 100rel\r\nl: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert [v.host for v in msg.vias] == ["a.example.com", "b.example.com"]
    assert msg.vias[1].received == "10.0.0.1" and msg.vias[1].port == 5062
    assert msg.call_id == "abc@h"
    assert msg.contact_star and msg.contacts == []
    assert msg.supported == ["path", "100rel"]
    assert msg.headers.get("Content-Length") == "0"
    assert msg.headers.names()[0] == "v"


def test_headers_container_operations() -> None:
    h = Headers([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("To", "<sip:a@b>")])
    h.insert_first("v", "SIP/2.0/UDP p;branch=z9hG4bK0")
    assert h.get_all("via") == ["SIP/2.0/UDP p;branch=z9hG4bK0", "SIP/2.0/UDP a;branch=z9hG4bK1"]
    h.set("TO", "<sip:c@d>")
    assert h.get("t") == "<sip:c@d>"
    assert h.pop_first("Via") == "SIP/2.0/UDP p;branch=z9hG4bK0"
    h.add("Route", "<sip:r1;lr>, <sip:r2;lr>")
    assert h.pop_first_element("Route") == "<sip:r1;lr>"
    assert h.get("Route") == "<sip:r2;lr>"
    assert h.remove("route") == 1 and "Route" not in h


def test_make_response_copies_8_2_6() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    resp = make_response(req, 180, to_tag="abc")
    assert isinstance(resp, Response) and resp.reason == "Ringing"
    assert resp.to is not None and resp.to.tag == "abc"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.cseq == req.cseq and resp.call_id == req.call_id
    again = parse_message(resp.encode())
    assert isinstance(again, Response) and again.status == 180


def test_build_and_encode_typed_values() -> None:
    via = Via("UDP", "127.0.1.1", 5060, Params.of(branch=new_branch(), rport=None))
    req = Request(
        "OPTIONS",
        "sip:bob@127.0.1.2",
        [("Via", via.encode()), ("To", NameAddr(SipUri("127.0.1.2", user="bob")).encode())],
    )
    data = req.encode()
    assert data.startswith(b"OPTIONS sip:bob@127.0.1.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.1:5060;")
    assert data.endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    "data,status",
    [
        (b"OPTIONS sip:a@b SIP/3.0\r\nl: 0\r\n\r\n", 505),
        (b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n", 400),
        (b"SIP/2.0 99 Weird\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 10\r\n\r\nabc", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", 400),
    ],
)
def test_errors_carry_status(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as ei:
        parse_message(data)
    assert ei.value.status_hint == status


def test_stream_parser_byte_by_byte_and_trailing() -> None:
    p = StreamParser()
    got = []
    stream = b"\r\n\r\n" + INVITE + INVITE[:50]
    for i in range(len(stream)):
        got += p.feed(stream[i : i + 1])
    assert len(got) == 1 and got[0].encode() == INVITE
    assert p.keepalives == 1
    assert p.buffered == 50


def test_stream_parser_limits() -> None:
    with pytest.raises(SipParseError) as ei:
        StreamParser(max_message_size=200).feed(INVITE)
    assert ei.value.status_hint in (413, 513)
    with pytest.raises(SipParseError) as ei:
        StreamParser().feed(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n")
    assert ei.value.status_hint == 400 and ei.value.header == "Content-Length"


def test_value_params_headers() -> None:
    data = (
        b"SUBSCRIBE sip:bob@ims.test SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.1.1;branch=z9hG4bKvp\r\n"
        b"From: <sip:a@ims.test>;tag=1\r\nTo: <sip:bob@ims.test>\r\nCall-ID: vp@h\r\n"
        b"CSeq: 1 SUBSCRIBE\r\n"
        b"Event: reg ; id = 7\r\n"
        b"Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;spi-c=1111, ipsec-3gpp;alg=hmac-md5-96\r\n"
        b'Content-Type: multipart/mixed;boundary="b 1"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    m = parse_message(data)
    (ev,) = m.value_params("o")
    assert ev.value == "reg" and ev.params.get("id") == "7"
    sc = m.value_params("Security-Client")
    assert [s.params.get("alg") for s in sc] == ["hmac-sha-1-96", "hmac-md5-96"]
    ct = m.content_type_params
    assert ct is not None and ct.value == "multipart/mixed"
    assert ct.params.get_unquoted("boundary") == "b 1"
    m.headers.set("Event", ";id=1")
    with pytest.raises(SipParseError):
        m.value_params("Event")


def test_stream_parser_large_body_byte_by_byte_parses_head_once() -> None:
    """A 60 kB body fed one octet at a time: the head is parsed once, not once per octet."""
    import time

    body = bytes(range(256)) * 234
    msg = (
        b"MESSAGE sip:a@127.0.1.2 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.1.1;branch=z9hG4bK1\r\n"
        b"From: <sip:b@127.0.1.1>;tag=1\r\nTo: <sip:a@127.0.1.2>\r\nCall-ID: big@h\r\n"
        b"CSeq: 1 MESSAGE\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    p = StreamParser(max_message_size=70000)
    start = time.perf_counter()
    out = []
    for i in range(len(msg)):
        out += p.feed(msg[i : i + 1])
    assert time.perf_counter() - start < 5.0
    assert len(out) == 1 and out[0].body == body and p.buffered == 0


def test_get_list_splits_only_list_headers() -> None:
    h = Headers(
        [
            ("Allow", "INVITE, ACK,BYE"),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("WWW-Authenticate", 'Digest realm="a", nonce="b"'),
            ("X-Custom", "a, b"),
        ]
    )
    assert h.get_list("allow") == ["INVITE", "ACK", "BYE"]
    assert h.get_list("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert h.get_list("WWW-Authenticate") == ['Digest realm="a", nonce="b"']
    assert h.get_list("X-Custom") == ["a", "b"]


def test_registry_parsers() -> None:
    from ims.sip import AuthHeader, CSeq
    from ims.sip.headers import ValueParams, header_parser, parse_header

    msg = parse_message(INVITE)
    assert [type(v) for v in msg.parsed("v")] == [Via]
    assert isinstance(msg.parsed("From")[0], NameAddr)
    assert msg.parsed("CSeq") == [msg.cseq] and isinstance(msg.cseq, CSeq)
    assert msg.parsed("Max-Forwards") == [70]
    assert msg.parsed("X-Unknown") == ["keep me, exactly"]
    ct = msg.parsed("c")[0]
    assert isinstance(ct, ValueParams) and ct.value == "application/sdp"
    assert parse_header("Allow", "INVITE, ACK") == ["INVITE", "ACK"]
    assert parse_header("Supported", "") == []
    assert parse_header("Contact", "*") == ["*"]
    (challenge,) = parse_header("WWW-Authenticate", 'Digest realm="r", nonce="n"')
    assert isinstance(challenge, AuthHeader)
    assert header_parser("X-Nothing") is None
    for name, bad in [
        ("Max-Forwards", "256"),
        ("Require", "a b"),
        ("Call-ID", "a b"),
        ("Expires", "-1"),
        ("Route", "sip:a@b, <sip:c"),
    ]:
        with pytest.raises(SipParseError) as ei:
            parse_header(name, bad)
        assert ei.value.header is not None


def test_typed_cache_namespaces_and_invalidation() -> None:
    msg = parse_message(INVITE)
    assert [a.uri.encode() for a in msg.addresses("Contact")] == [
        "sip:alice@127.0.1.1:5060;transport=udp"
    ]
    assert not msg.contact_star and len(msg.contacts) == 1  # not confused by the cache above
    msg.headers.set("Contact", "*")
    assert msg.contact_star and msg.contacts == []  # mutation dropped the cached value
    msg.headers.insert_first("Via", "SIP/2.0/TCP 127.0.1.9;branch=z9hG4bKtop")
    assert msg.via is not None and msg.via.host == "127.0.1.9" and len(msg.vias) == 2


def test_error_location_points_into_the_value() -> None:
    data = INVITE.replace(b"branch=z9hG4bK776asdhds;rport", b"branch=z9hG4bK776asdhds;;rport")
    with pytest.raises(SipParseError) as ei:
        parse_message(data)
    exc = ei.value
    assert exc.header == "Via" and exc.column is not None
    # the parser stopped at the second ';' (a parameter name was expected there)
    assert exc.offset is not None and data[exc.offset : exc.offset + 6] == b";rport"
    line_start = data.index(b"Via:")
    assert line_start < exc.offset < data.index(b"\r\n", line_start)


def test_compact_encoding() -> None:
    msg = parse_message(INVITE)
    small = msg.encode(compact=True)
    assert len(small) < len(INVITE)
    assert b"\r\nv: SIP/2.0/UDP" in small and b"\r\nl: " in small and b"\r\nf: Alice" in small
    again = parse_message(small)
    assert again.vias == msg.vias and again.from_ == msg.from_ and again.body == msg.body
    assert again.headers.get("X-Unknown") == "keep me, exactly"
    assert again.encode() != INVITE and msg.encode() == INVITE


def test_stream_parser_returns_good_messages_before_an_error() -> None:
    """Messages framed in the same feed before a malformed one are returned, not lost; the
    error is recorded (with the failed message's bytes) and raised by the next feed."""
    bad = b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n"  # no Content-Length
    p = StreamParser()
    got = p.feed(INVITE + b"\r\n\r\n" + INVITE + bad)
    assert [m.encode() for m in got] == [INVITE, INVITE]
    assert p.keepalives == 1
    assert p.error is not None and p.error.header == "Content-Length"
    assert p.unparsed == bad
    with pytest.raises(SipParseError) as ei:
        p.feed(INVITE)
    assert ei.value is p.error
    # an error with nothing framed before it in that call raises at once
    q = StreamParser()
    with pytest.raises(SipParseError):
        q.feed(bad)
    assert q.error is not None and q.unparsed == bad
    # a message that frames but fails validation stays unparsed too (to answer it)
    broken = INVITE.replace(b"CSeq: ", b"CSeq: x", 1)
    r = StreamParser()
    assert [m.encode() for m in r.feed(INVITE + broken)] == [INVITE]
    assert r.error is not None and r.unparsed == broken
