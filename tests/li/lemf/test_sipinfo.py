"""The LEMF's summary of an intercepted SIP message, read through ims.sip (RFC 3261 §7)."""

from __future__ import annotations

from li.lemf.sipinfo import summarise
from tests.li.poi.sipmsgs import KEY_A, call

INVITE_LF = (
    b"INVITE sip:bob@ims-b.test SIP/2.0\n"
    b"Via: SIP/2.0/UDP 127.0.8.1;branch=z9hG4bK1\n"
    b"f: <sip:alice@ims-a.test>;tag=a1\n"
    b"t: <sip:bob@ims-b.test>\n"
    b"i: lf-1\n"
    b"CSeq: 1\n INVITE\n"
    b"c: application/sdp\n\n"
    b"v=0\r\no=- 1 1 IN IP4 127.0.8.1\r\ns=-\r\nc=IN IP4 127.0.8.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJD\r\n"
)


def test_a_call_as_the_pois_send_it() -> None:
    """Every message of a call: start line, From/To with tags, Call-ID, CSeq, SDP keys."""
    msgs = [summarise(raw) for raw, _ in call("sum-1")]
    invite, ok = msgs[0], next(m for m in msgs if m.status == 200 and m.cseq_method == "INVITE")
    assert (invite.method, invite.request_uri, invite.call_id) == (
        "INVITE",
        "sip:bob@ims-b.test",
        "sum-1",
    )
    assert invite.from_uri == "sip:alice@ims-a.test" and invite.from_tag == "a1"
    assert invite.media and invite.media[0].crypto and invite.error is None
    assert KEY_A.hex() not in str(invite.public())  # the IRI view holds no key
    assert ok.to_tag is not None and ok.reason == "OK" and ok.has_sdp


def test_bare_lf_framing_is_repaired_once() -> None:
    """RFC 3261 §7.5 asks for CRLF; a capture with bare LFs (and a folded, compact header,
    §7.3.1) is still summarised, by the same parser after the line ends are repaired."""
    info = summarise(INVITE_LF)
    assert info.error is None and info.method == "INVITE" and info.call_id == "lf-1"
    assert info.cseq == "1 INVITE" and info.to_uri == "sip:bob@ims-b.test"
    assert [m.port for m in info.media] == [4000]


def test_an_unreadable_header_costs_only_itself() -> None:
    """A From that is not a name-addr (§20.20) is left out; the rest of the summary stays."""
    raw = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: bad <\r\n"
        b"To: <sip:b@y>;tag=9\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"
    )
    info = summarise(raw)
    assert info.from_uri is None and info.to_tag == "9" and info.status == 180
    assert info.call_id == "c" and info.cseq_method == "INVITE"


def test_what_does_not_parse_says_why() -> None:
    """A start line that is not SIP (§7.1) gives an empty summary with the parser's reason."""
    info = summarise(b"HELLO\r\n\r\n")
    assert info.method is None and info.status is None and info.error
    assert info.public() == {}
