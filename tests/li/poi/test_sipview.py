"""The POI's SIP reader: compact forms, folding, responses, garbage (RFC 3261 §7.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from li.poi.sipview import NotSipError, SipView, parse


def test_request_with_compact_and_folded_headers() -> None:
    raw = (
        b"INVITE sip:bob@ims-b.test SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.8.1;branch=z9hG4bKab, SIP/2.0/UDP 127.0.8.2;branch=z9hG4bKcd\r\n"
        b"f: <sip:alice@ims-a.test>;tag=1\r\n"
        b"t: <sip:bob@ims-b.test>\r\n"
        b"i: abc@host\r\n"
        b"CSeq: 7\r\n INVITE\r\n"
        b"P-Asserted-Identity: <sip:alice@ims-a.test>\r\n"
        b"P-Asserted-Identity: <tel:+493011>\r\n"
        b"c: application/sdp\r\n\r\nv=0\r\n"
    )
    m = parse(raw)
    assert (m.method, m.status, m.call_id, m.cseq) == ("INVITE", None, "abc@host", 7)
    assert m.branch == "z9hG4bKab" and m.to_tag is None
    assert m.pai == ("<sip:alice@ims-a.test>", "<tel:+493011>")
    assert m.sdp == b"v=0\r\n" and m.first_line == "INVITE sip:bob@ims-b.test"


def test_response() -> None:
    raw = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        b"To: <sip:b@y>;tag=9\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    m = parse(raw)
    assert (m.status, m.method, m.to_tag, m.reason) == (180, "INVITE", "9", "Ringing")
    assert m.sdp is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe",
        b"INVITE\r\n\r\n",
        b"SIP/2.0 abc OK\r\nCall-ID: c\r\nCSeq: 1 X\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"BYE sip:x SIP/2.0\r\nCall-ID: c\r\n\r\n",
    ],
)
def test_unreadable(raw: bytes) -> None:
    with pytest.raises(NotSipError):
        parse(raw)


@given(st.binary(max_size=300))
def test_never_raises_anything_else(raw: bytes) -> None:
    try:
        parse(raw)
    except NotSipError:
        pass


def test_the_hook_path_reads_the_elements_message_without_parsing_again() -> None:
    """On a hook the POI gets the message the element parsed: the view reads that object
    (same facts as from the bytes) and parses nothing it does not ask for."""
    from ims.sip import parse_message
    from tests.li.poi.sipmsgs import call

    for raw, _ in call("c-hook"):
        message = parse_message(raw)
        view = SipView.of(message, raw)
        again = parse(raw)
        assert view.message is message and view.raw is raw
        for name in ("method", "status", "call_id", "cseq", "from_", "to", "pai", "sdp"):
            assert getattr(view, name) == getattr(again, name), name
        assert view.to_tag == again.to_tag and view.first_line == again.first_line


def test_a_cseq_the_element_never_parsed_is_checked_on_the_hook_path() -> None:
    """RFC 3261 §20.16: ``CSeq = "CSeq" HCOLON 1*DIGIT LWS Method``; a lazily parsed message
    with a CSeq that does not match it is unreadable, not a crash."""
    from ims.sip import parse_message

    raw = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: c\r\nCSeq: one OPTIONS\r\n\r\n"
    with pytest.raises(NotSipError):
        SipView.of(parse_message(raw, validate=False), raw)


def test_bare_lf_is_not_sip() -> None:
    """RFC 3261 §7: the start line and each header end in CRLF; the POI reads what the element
    accepted, through the same parser, so a bare-LF message is unreadable to both."""
    with pytest.raises(NotSipError):
        parse(b"BYE sip:x SIP/2.0\nCall-ID: c\nCSeq: 1 BYE\n\n")
