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


NEW_VIA = "SIP/2.0/UDP 127.0.2.5:5080;branch=z9hG4bKnew"
NEW_ROUTE = "<sip:q.example;lr>"

# (name of the mutation, header it touches, edit) for every Headers mutation path; each is
# applied after a cached read and the next read must see the edited header.
HEADER_EDITS = [
    ("add", lambda h, n, v: h.add(n, v)),
    ("add compact", lambda h, n, v: h.add({"Via": "v"}.get(n, n), v)),
    ("insert_first", lambda h, n, v: h.insert_first(n, v)),
    ("set", lambda h, n, v: h.set(n.upper(), v)),
    ("remove", lambda h, n, v: h.remove(n.lower())),
    ("pop_first", lambda h, n, v: h.pop_first(n)),
    ("pop_first_element", lambda h, n, v: h.pop_first_element(n)),
]


def _read(msg: Request, name: str) -> list[str]:
    if name == "Via":
        return [v.encode() for v in msg.vias]
    values = msg.routes if name == "Route" else msg.record_routes
    return [a.encode() for a in values]


def _fresh(msg: Request, name: str) -> list[str]:
    """What a parse of the wire form says (no cache involved)."""
    again = parse_message(msg.encode())
    assert isinstance(again, Request)
    return _read(again, name)


@pytest.mark.parametrize("name", ["Via", "Route", "Record-Route"])
@pytest.mark.parametrize(("label", "edit"), HEADER_EDITS, ids=[e[0] for e in HEADER_EDITS])
def test_every_header_mutation_invalidates_the_cached_list(
    name: str, label: str, edit: object
) -> None:
    raw = RAW.replace(
        b"Route: <sip:p.example;lr>\r\n",
        b"Route: <sip:p.example;lr>\r\nRecord-Route: <sip:r1.example;lr>, <sip:r2.example;lr>\r\n",
    )
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    before = _read(msg, name)
    assert before and _read(msg, name) == before  # cached read
    value = {"Via": NEW_VIA, "Route": NEW_ROUTE, "Record-Route": NEW_ROUTE}[name]
    edit(msg.headers, name, value)  # type: ignore[operator]
    after = _read(msg, name)
    assert after == _fresh(msg, name)
    assert after != before, label


def test_message_via_edits_are_seen_by_the_next_read() -> None:
    msg = parse_message(RAW)
    assert isinstance(msg, Request)
    assert len(msg.vias) == 2  # cached
    msg.push_via(Via("UDP", "127.0.2.6", 5090, msg.via.params.set("branch", "z9hG4bKp")))  # type: ignore[union-attr]
    assert [v.branch for v in msg.vias] == ["z9hG4bKp", "z9hG4bKa", "z9hG4bKb"]
    assert [v.encode() for v in msg.vias] == [v.encode() for v in parse_message(msg.encode()).vias]
    msg.replace_top_via(msg.vias[1])
    assert [v.branch for v in msg.vias] == ["z9hG4bKa", "z9hG4bKa", "z9hG4bKb"]
    msg.headers.pop_first_element("Via")  # a proxy removing its Via from a response
    assert [v.branch for v in msg.vias] == ["z9hG4bKa", "z9hG4bKb"]


def test_copies_do_not_share_mutable_caches() -> None:
    msg = parse_message(
        RAW.replace(b"Content-Length", b"Contact: <sip:a@127.0.2.1>\r\nContent-Length")
    )
    assert isinstance(msg, Request)
    vias, routes, contacts = msg.vias, msg.routes, msg.contacts  # all cached
    copy = msg.copy()
    assert copy.vias == vias and copy.vias is not vias
    assert copy.routes == routes and copy.routes is not routes
    assert copy.contacts == contacts and copy.contacts is not contacts
    copy.push_via(Via("UDP", "127.0.2.7", 5060, vias[0].params.set("branch", "z9hG4bKq")))
    copy.headers.remove("Route")
    copy.contacts.append(copy.contacts[0])  # a caller scribbling on its own list
    assert msg.vias == vias and len(msg.vias) == 2
    assert msg.routes == routes and len(msg.routes) == 1
    assert len(msg.contacts) == 1
    assert len(copy.vias) == 3 and copy.routes == []
    msg.headers.set("Via", NEW_VIA)  # and edits of the original do not reach the copy
    assert len(msg.vias) == 1 and len(copy.vias) == 3


def test_tags_and_branches_are_unique_and_random() -> None:
    from ims.sip.message import BRANCH_COOKIE, new_branch, new_call_id, new_tag

    tags = {new_tag() for _ in range(2000)}
    branches = {new_branch() for _ in range(2000)}
    assert len(tags) == 2000 and len(branches) == 2000
    assert all(len(t) == 12 and int(t, 16) >= 0 for t in tags)  # 48 random bits (>= 32)
    assert all(b.startswith(BRANCH_COOKIE) and len(b) == 7 + 16 for b in branches)
    # every hex digit position varies: no fixed prefix or counter
    assert all(len({t[i] for t in tags}) > 8 for i in range(12))
    assert new_call_id("h.example").endswith("@h.example")
