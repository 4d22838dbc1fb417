"""Message Via API and the per-header typed cache."""

from __future__ import annotations

import pytest

from ims.sip.errors import SipBuildError
from ims.sip.headers import Via
from ims.sip.message import Request
from ims.sip.parser import parse_message

RAW = (
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.2.1:5070;branch=z9hG4bKa, SIP/2.0/TCP 127.0.2.2;branch=z9hG4bKb\r\n"
    b"Route: <sip:p.example;lr>\r\n"
    b"From: <sip:a@a>;tag=1\r\nTo: <sip:b@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_push_and_replace_top_via_keep_the_parsed_list() -> None:
    msg = parse_message(RAW)
    assert isinstance(msg, Request)
    parsed = msg.vias
    ours = Via("UDP", "127.0.2.3", 5060, msg.via.params.set("branch", "z9hG4bKc"))  # type: ignore[union-attr]
    msg.push_via(ours)
    assert msg.vias[0] is ours and msg.vias[1:] == parsed  # no re-parse: same objects
    assert [v.branch for v in parse_message(msg.encode()).vias] == [
        "z9hG4bKc",
        "z9hG4bKa",
        "z9hG4bKb",
    ]
    stamped = ours.with_param("received", "127.0.2.9")
    msg.replace_top_via(stamped)
    assert msg.via is stamped
    again = parse_message(msg.encode())
    assert again.via == stamped and len(again.vias) == 3
    with pytest.raises(SipBuildError):
        Request("OPTIONS", "sip:x", []).replace_top_via(ours)


def test_editing_one_header_keeps_the_others_parsed() -> None:
    msg = parse_message(RAW)
    vias, routes = msg.vias, msg.routes
    msg.headers.remove("Route")  # a proxy stripping its own Route (§16.4)
    assert msg.vias is vias  # still cached
    assert msg.routes == [] and routes  # Route re-read
    msg.headers.add("Via", "SIP/2.0/UDP 127.0.2.4;branch=z9hG4bKd")
    assert len(msg.vias) == 3  # Via changed: re-parsed
    copy = msg.copy()
    assert copy.vias == msg.vias and copy.vias is not msg.vias  # the copy has its own list
