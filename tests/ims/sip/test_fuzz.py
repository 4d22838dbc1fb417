"""Hypothesis fuzzing of the SIP decoders: only SipParseError (a DecodeError), never a hang.

Inputs: random bytes, mutations of real messages (RFC 4475 + a typical INVITE), random
chunkings for the stream parser, random text for the URI/header parsers, and pathological
inputs (long runs of quotes, separators, spaces) that would make a backtracking regex
explode, each under a wall-clock bound.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ims.errors import DecodeError
from ims.sip import (
    NameAddr,
    Params,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    Via,
    check_request,
    escape,
    parse_auth,
    parse_message,
    parse_name_addr,
    parse_uri,
    parse_vias,
    unescape,
)
from ims.sip.grammar import split_commas

RFC4475 = Path("/work/shared/conformance/rfc4475")
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@127.0.1.1:5060;transport=udp>;expires=60;q=0.5\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b'Authorization: Digest username="a", realm="r", nonce="n", uri="sip:b", response="0"\r\n'
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)
CORPUS = [INVITE] + (
    [p.read_bytes() for p in sorted(RFC4475.glob("*.dat"))] if RFC4475.is_dir() else []
)

FUZZ = settings(
    max_examples=int(os.environ.get("SIP_FUZZ_EXAMPLES", "300")),
    deadline=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def exercise(msg: Request | Response) -> None:
    """Every typed accessor either works or raises SipParseError."""
    for attr in (
        "vias",
        "cseq",
        "call_id",
        "from_",
        "to",
        "contacts",
        "contact_star",
        "routes",
        "record_routes",
        "max_forwards",
        "content_type",
        "expires",
        "require",
        "proxy_require",
        "supported",
        "authorization",
        "proxy_authorization",
        "www_authenticate",
        "proxy_authenticate",
    ):
        try:
            value = getattr(msg, attr)
            if attr == "contacts":
                for c in value:
                    c.expires  # noqa: B018
                    c.q  # noqa: B018
            if attr == "vias":
                for v in value:
                    v.rport, v.ttl  # noqa: B018
        except SipParseError:
            pass
    for name in ("Event", "Content-Type", "Security-Client", "Reason"):
        try:
            msg.value_params(name)
        except SipParseError:
            pass
    for name in {n for n, _ in msg.headers}:
        try:
            msg.parsed(name)
        except SipParseError:
            pass
    if isinstance(msg, Request):
        try:
            check_request(msg)
        except SipParseError:
            pass
    # what we encode parses back
    again = parse_message(msg.encode(), validate=False)
    assert type(again) is type(msg) and again.body == msg.body


def decode(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert isinstance(exc, DecodeError) and exc.status_hint in (400, 413, 505, 513)
        return
    exercise(msg)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    decode(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(base)))
        if op == 0 and base:  # delete a run
            del base[pos : pos + draw(st.integers(1, 20))]
        elif op == 1:  # insert interesting bytes
            ins = draw(
                st.sampled_from(
                    [
                        b" ",
                        b"\t",
                        b"\r\n",
                        b"\r\n ",
                        b",",
                        b";",
                        b'"',
                        b"<",
                        b">",
                        b":",
                        b"\\",
                        b"%",
                        b"%0",
                        b"=",
                        b"@",
                        b"\x00",
                        b"\xff",
                        b"[",
                        b"]",
                        b"?",
                        b"&",
                        b"9" * 12,
                    ]
                )
            )
            base[pos:pos] = ins
        elif op == 2 and base:  # flip a byte
            i = min(pos, len(base) - 1)
            base[i] = draw(st.integers(0, 255))
        else:  # duplicate a slice
            base[pos:pos] = base[pos : pos + draw(st.integers(1, 60))]
    return bytes(base)


@FUZZ
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    decode(data)


@FUZZ
@given(st.lists(st.sampled_from(CORPUS + [b"\r\n\r\n"]), min_size=1, max_size=4), st.data())
def test_stream_parser_chunking(messages: list[bytes], data: st.DataObject) -> None:
    """The stream parser frames the same messages whatever the chunking."""
    stream = b"".join(messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    whole: list[Request | Response] = []
    one = StreamParser()
    try:
        whole = one.feed(stream)
    except SipParseError:
        pass  # nothing framed before the error
    whole_err = one.error
    p = StreamParser()
    got: list[Request | Response] = []
    for c in chunks:
        try:
            got += p.feed(c)  # the messages before an error come back, the error is recorded
        except SipParseError as exc:
            assert exc is p.error
            break
        if p.error is not None:
            break
    err = p.error
    assert [m.encode() for m in got] == [m.encode() for m in whole]
    assert (err is None) == (whole_err is None)
    if err is not None and whole_err is not None:
        assert err.status_hint == whole_err.status_hint


@FUZZ
@given(st.binary(max_size=3000), st.integers(1, 64))
def test_stream_parser_random(data: bytes, step: int) -> None:
    p = StreamParser(max_message_size=1024)
    try:
        for i in range(0, len(data), step):
            for m in p.feed(data[i : i + step]):
                exercise(m)
    except SipParseError:
        pass


URI_ALPHABET = st.sampled_from(
    list("sipteluSIP:;@?&=%[]<>\"., -_+!~*'()/$#0123456789abcdefABCDEF\t\x00é")
)


@FUZZ
@given(st.text(URI_ALPHABET, max_size=120))
def test_uri_parser(text: str) -> None:
    for candidate in (text, "sip:" + text, "tel:" + text, "sips:" + text):
        try:
            uri = parse_uri(candidate)
        except SipParseError:
            continue
        assert parse_uri(uri.encode()).encode() == uri.encode()


@FUZZ
@given(st.text(URI_ALPHABET, max_size=160))
def test_header_value_parsers(text: str) -> None:
    for fn in (
        lambda t: parse_name_addr(t),
        lambda t: parse_vias(t),
        lambda t: parse_vias("SIP/2.0/UDP " + t),
        lambda t: parse_auth(t),
        lambda t: parse_auth("Digest " + t),
        lambda t: split_commas(t),
        lambda t: parse_name_addr('"x" <sip:a@b>;' + t),
    ):
        try:
            fn(text)
        except SipParseError:
            pass


HEAD = b"INVITE sip:a@b SIP/2.0\r\n"
PATHOLOGICAL = [
    HEAD + b"Via: SIP/2.0/UDP h" + b";a=b" * 20000 + b";\r\n\r\n",
    HEAD + b"To: " + b'"' * 40000 + b"\r\n\r\n",
    HEAD + b"To: " + b"a " * 20000 + b"\r\n\r\n",
    HEAD + b"To: " + b"a " * 20000 + b"<sip:x@y\r\n\r\n",
    HEAD + b"Contact: " + b"<sip:a@b>," * 5000 + b"\r\n\r\n",
    HEAD + b"Contact: " + b'"\\' * 20000 + b"\r\n\r\n",
    HEAD + b"X: " + b" " * 60000 + b"x\r\n\r\n",
    HEAD + b"X: y\r\n" * 5000 + b"\r\n",
    HEAD + b"From: <sip:" + b"a;" * 20000 + b"@b>\r\n\r\n",
    HEAD + b"Via: SIP/2.0/UDP " + b"[" * 30000 + b"\r\n\r\n",
    HEAD + b"Authorization: Digest " + b"a=b, " * 8000 + b"\r\n\r\n",
    b"\r\n" * 30000,
    b"SIP/2.0 200 " + b"x" * 60000 + b"\r\n\r\n",
]


@pytest.mark.parametrize("data", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_no_catastrophic_backtracking(data: bytes) -> None:
    start = time.perf_counter()
    decode(data)
    try:
        p = StreamParser(max_message_size=1 << 20)
        for m in p.feed(data):
            exercise(m)
    except SipParseError:
        pass
    assert time.perf_counter() - start < 2.0


TOKEN_TEXT = st.text(
    st.sampled_from(
        list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
    ),
    min_size=1,
    max_size=12,
)
HOSTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z][a-z0-9\-]{0,10}){0,3}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
PARAMS = st.lists(
    st.tuples(TOKEN_TEXT, st.one_of(st.none(), TOKEN_TEXT)),
    max_size=4,
    unique_by=lambda p: p[0].lower(),
).map(lambda items: Params(tuple(items)))


@FUZZ
@given(
    host=HOSTS,
    user=st.one_of(st.none(), st.text(min_size=1, max_size=20)),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    uparams=PARAMS,
    hparams=PARAMS,
    display=st.one_of(st.none(), st.text(max_size=20)),
    transport=st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS"]),
)
def test_typed_values_encode_then_parse(
    host: str,
    user: str | None,
    port: int | None,
    uparams: Params,
    hparams: Params,
    display: str | None,
    transport: str,
) -> None:
    """Whatever the builder API is given (user text escaped), encode -> parse gives it back."""
    uri = SipUri(host=host, user=None if user is None else escape(user), port=port, params=uparams)
    assert parse_uri(uri.encode()) == uri
    if user is not None:
        assert unescape(uri.user or "") == user
    addr = NameAddr(uri, display_name=display, params=hparams)
    back = parse_name_addr(addr.encode())
    assert back.uri == uri and back.params == hparams
    assert back.display_name == display
    via = Via(transport, host, port, hparams.set("branch", "z9hG4bKx"))
    assert parse_vias(via.encode()) == [via]
