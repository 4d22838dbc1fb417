"""RFC 4475 torture tests through the parser (datagram and stream).

Every message of ../shared/conformance/rfc4475/ is handled as its MANIFEST.tsv says: valid
ones parse and the listed properties are asserted; invalid ones raise SipParseError with the
listed status (or, where the RFC allows it, the offending header raises when accessed);
semantic ones parse and the element-level check (check_request / accessors) gives what the
element needs to answer as listed. The proxy helper runs the same files over UDP.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ims.sip import (
    AbsoluteUri,
    Message,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    TelUri,
    check_request,
    parse_message,
    parse_uri,
    unescape,
    uri_equal,
)

DIR = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "rfc4475"
if not DIR.is_dir():  # the repo may live elsewhere; fall back to the shared location
    DIR = Path("/work/shared/conformance/rfc4475")
pytestmark = pytest.mark.skipif(not DIR.is_dir(), reason="RFC 4475 vectors not present")


def load(name: str) -> bytes:
    return (DIR / name).read_bytes()


def manifest() -> list[tuple[str, str, str]]:
    with (DIR / "MANIFEST.tsv").open() as fh:
        rows = list(csv.reader(fh, delimiter="\t"))[1:]
    return [(r[0], r[1], r[3]) for r in rows]


def req(name: str) -> Request:
    m = parse_message(load(name))
    assert isinstance(m, Request)
    return m


# -- valid (§3.1.1) ---------------------------------------------------------------------
def check_wsinv(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "INVITE"
    assert isinstance(m.uri, SipUri) and "unknownparam" in m.uri.params
    assert m.to is not None and m.to.tag == "1918181833n"
    assert m.from_ is not None and m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.cseq is not None and (m.cseq.seq, m.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("s") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (route,) = m.routes
    assert isinstance(route.uri, SipUri) and route.uri.lr
    assert route.uri.params.get("unknownwith") == "value"
    (c,) = m.contacts
    assert c.display_name == 'Quoted string ""'
    assert c.params.get("newparam") == "newvalue" and "secondparam" in c.params and c.q == 0.33
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


def check_intmeth(m: Message) -> None:
    assert isinstance(m, Request)
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.via is not None and m.via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.to is not None and m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_ is not None and m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.from_.params.get_unquoted("fromParam''~+*_!.-%") == "работающий"
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.cseq is not None and m.cseq.method == m.method
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def check_esc01(m: Message) -> None:
    assert isinstance(m, Request) and isinstance(m.uri, SipUri)
    assert unescape(m.uri.user or "") == "sips:user@example.com"
    assert m.to is not None and uri_equal(m.to.uri, parse_uri("sip:user@example.com"))
    assert m.from_ is not None and unescape(m.from_.sip_uri.user or "") == "I have spaces"
    (c,) = m.contacts
    cu = c.sip_uri
    assert uri_equal(cu, parse_uri("sip:caller@host5.example.net;lr;name=value%25%34%31"))
    assert unescape(cu.params.get("n%61me") or "") == "value%41"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"
    assert m.content_type == "application/sdp"


def check_escnull(m: Message) -> None:
    assert m.to is not None and unescape(m.to.sip_uri.user or "") == "null-\x00-null"
    users = [unescape(c.sip_uri.user or "") for c in m.contacts]
    assert users == ["\x00", "\x00\x00"]


def check_esc02(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "RE%47IST%45R"
    assert m.to is not None and m.to.display_name == "%Z%45"
    assert m.via is not None and m.via.branch == "z9hG4bK209%fzsnel234"
    assert [c.sip_uri.host for c in m.contacts] == ["host1.example.com", "host3.example.com"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def check_lwsdisp(m: Message) -> None:
    assert m.from_ is not None and m.from_.display_name == "caller" and m.from_.tag == "323"


def check_longreq(m: Message) -> None:
    assert m.to is not None and m.to.display_name is not None
    assert "extreme" * 10 in m.to.display_name
    assert len(m.vias) == 34 and m.vias[0].host == "sip33.example.com"
    assert m.vias[-2].host == "sip1.example.com" and m.vias[-1].host == "host.example.com"
    assert m.from_ is not None and len(m.from_.sip_uri.user or "") > 100
    assert m.call_id is not None and m.call_id.endswith("longcallid")
    assert len(m.body) == int(m.headers.get("l") or "-1") == 150


def check_dblreq(m: Message) -> None:
    assert isinstance(m, Request) and m.method == "REGISTER" and m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def check_semiuri(m: Message) -> None:
    assert isinstance(m, Request) and isinstance(m.uri, SipUri)
    assert m.uri.user == "user;par=u%40example.net" and m.uri.host == "example.com"
    assert m.headers.get_list("Accept")[-1] == "message/sipfrag"


def check_transports(m: Message) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(m: Message) -> None:
    assert m.content_type == "multipart/mixed"
    assert len(m.body) == 553 and m.body.startswith(b"--7a9cbec02ceef655\r\n")
    assert b"\x00" in m.body or any(b > 0x7F for b in m.body)  # binary part kept as bytes


def check_unreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 200
    assert m.reason.startswith("= 2**3 * 5**2 но сто девяносто девять")


def check_noreason(m: Message) -> None:
    assert isinstance(m, Response) and m.status == 100 and m.reason == ""


VALID: dict[str, Callable[[Message], None]] = {
    "wsinv.dat": check_wsinv,
    "intmeth.dat": check_intmeth,
    "esc01.dat": check_esc01,
    "escnull.dat": check_escnull,
    "esc02.dat": check_esc02,
    "lwsdisp.dat": check_lwsdisp,
    "longreq.dat": check_longreq,
    "dblreq.dat": check_dblreq,
    "semiuri.dat": check_semiuri,
    "transports.dat": check_transports,
    "mpart01.dat": check_mpart01,
    "unreason.dat": check_unreason,
    "noreason.dat": check_noreason,
}

# invalid (§3.1.2): status and the header (None = start line / framing) that fails
INVALID: dict[str, tuple[int, str | None]] = {
    "badinv01.dat": (400, "Via"),
    "clerr.dat": (400, "Content-Length"),
    "ncl.dat": (400, "Content-Length"),
    "scalar02.dat": (400, "CSeq"),
    "scalarlg.dat": (400, "CSeq"),
    "quotbal.dat": (400, "To"),
    "ltgtruri.dat": (400, None),
    "lwsruri.dat": (400, None),
    "lwsstart.dat": (400, None),
    "trws.dat": (400, None),
    "escruri.dat": (400, None),
    "badaspec.dat": (400, "To"),
    "baddn.dat": (400, "From"),
    "badvers.dat": (505, None),
    "mismatch01.dat": (400, "CSeq"),
    "mismatch02.dat": (400, "CSeq"),
    "bigcode.dat": (400, None),
}
# invalid messages the RFC lets an element accept, with what we do instead
LENIENT = {"baddate.dat", "regbadct.dat"}


def test_manifest_is_fully_covered() -> None:
    rows = manifest()
    assert len(rows) == 49
    names = {r[0] for r in rows}
    assert names == set(VALID) | set(INVALID) | LENIENT | set(SEMANTIC)
    for name, _, cls in rows:
        if name in VALID:
            expected = "valid"
        elif name in INVALID or name in LENIENT:
            expected = "invalid"
        else:
            expected = "semantic"
        assert cls == expected, name


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid(name: str) -> None:
    data = load(name)
    msg = parse_message(data)
    VALID[name](msg)
    # and through the stream parser, byte by byte (dblreq: both messages come out)
    if name == "dblreq.dat":
        # on a stream both messages frame by their Content-Length; the octets after the
        # INVITE's 150-octet body ("C\r\n\r\n") cannot be framed (§18.3). The two good
        # messages come back, the error is recorded and raised by the next feed
        p = StreamParser()
        first, second = p.feed(data)
        check_dblreq(first)
        assert isinstance(second, Request) and second.method == "INVITE"
        assert p.error is not None and p.error.header == "Content-Length"
        assert p.unparsed == b"C\r\n\r\n"
        with pytest.raises(SipParseError) as ei:
            p.feed(b"")
        assert ei.value is p.error
    elif b"Content-Length" in data or b"\nl:" in data or b"\nL:" in data:
        (again,) = _stream(data)
        VALID[name](again)


def _stream(data: bytes) -> list[Request | Response]:
    p = StreamParser()
    out: list[Request | Response] = []
    for i in range(len(data)):
        out += p.feed(data[i : i + 1])
    return out


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid(name: str) -> None:
    status, header = INVALID[name]
    with pytest.raises(SipParseError) as ei:
        parse_message(load(name))
    assert ei.value.status_hint == status
    assert ei.value.header == header
    assert ei.value.offset is not None  # says where


def test_invalid_through_stream_parser() -> None:
    for name in INVALID:
        if name == "clerr.dat":
            # on a stream a Content-Length larger than what arrived just means "wait"
            p = StreamParser()
            assert p.feed(load(name)) == [] and p.buffered == len(load(name))
            continue
        with pytest.raises(SipParseError) as ei:
            _stream(load(name))
        assert ei.value.status_hint == INVALID[name][0], name


def test_baddate_accepted_date_not_interpreted() -> None:
    m = req("baddate.dat")
    assert m.headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"
    check_request(m)


def test_regbadct_contact_rejected_when_used() -> None:
    """§3.1.2.13: the Contact needs <> (it has an escaped header); whoever reads the Contact
    (the registrar) gets a 400, the URI's ?Route is never taken as a parameter."""
    m = req("regbadct.dat")
    with pytest.raises(SipParseError) as ei:
        m.contacts  # noqa: B018
    assert ei.value.status_hint == 400 and ei.value.header == "Contact"


# -- semantic (§3.2–§3.4): the parser gives the element what it needs --------------------
def sem_badbranch(m: Request) -> None:
    check_request(m)
    assert m.via is not None and m.via.branch == "z9hG4bK" and not m.via.is_rfc3261_branch


def _check_fails(m: Request, status: int, header: str | None = None, **kw: object) -> None:
    with pytest.raises(SipParseError) as ei:
        check_request(m, **kw)  # type: ignore[arg-type]
    assert ei.value.status_hint == status
    if header is not None:
        assert ei.value.header == header


def sem_insuf(m: Request) -> None:
    _check_fails(m, 400, "To")
    assert m.to is None and m.from_ is None and m.call_id is None and m.max_forwards is None


def sem_unkscm(m: Request) -> None:
    assert isinstance(m.uri, AbsoluteUri) and m.uri.scheme == "nobodyknowsthisscheme"
    _check_fails(m, 416)


def sem_novelsc(m: Request) -> None:
    assert isinstance(m.uri, AbsoluteUri) and m.uri.scheme == "soap.beep"
    _check_fails(m, 416, schemes=("sip", "sips"))


def sem_unksm2(m: Request) -> None:
    check_request(m)
    assert m.to is not None and isinstance(m.to.uri, AbsoluteUri)
    assert m.to.uri.raw == "isbn:2983792873"
    assert m.from_ is not None and m.from_.uri.encode() == "http://www.example.com"
    (c,) = m.contacts
    assert c.uri.encode() == "name:John_Smith"


def sem_bext01(m: Request) -> None:
    check_request(m)
    assert m.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def sem_invut(m: Request) -> None:
    check_request(m)
    assert m.content_type == "application/unknownformat" and len(m.body) == 40


def sem_regaut01(m: Request) -> None:
    check_request(m)
    (auth,) = m.authorization
    assert auth.scheme == "NoOneKnowsThisScheme" and auth.get("opaque-data") == "here"


def sem_multi01(m: Request) -> None:
    _check_fails(m, 400)


def sem_mcl01(m: Request) -> None:
    _check_fails(m, 400, "Content-Length")
    with pytest.raises(SipParseError):
        StreamParser().feed(load("mcl01.dat"))


def sem_zeromf(m: Request) -> None:
    check_request(m)
    assert m.max_forwards == 0


def sem_cparam01(m: Request) -> None:
    (c,) = m.contacts
    # addr-spec form: ;unknownparam is a *header* parameter, not a URI parameter
    assert "unknownparam" in c.params and isinstance(c.uri, SipUri) and not c.uri.params


def sem_cparam02(m: Request) -> None:
    (c,) = m.contacts
    assert isinstance(c.uri, SipUri) and "unknownparam" in c.uri.params and not c.params


def sem_regescrt(m: Request) -> None:
    (c,) = m.contacts
    assert isinstance(c.uri, SipUri)
    assert c.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert unescape(c.uri.headers[0][1]) == "<sip:sip.example.com>"


def sem_sdp01(m: Request) -> None:
    check_request(m)
    assert m.headers.get_list("Accept") == ["text/nobodyKnowsThis"]
    assert m.content_type == "application/sdp"


def sem_inv2543(m: Request) -> None:
    check_request(m)  # no Max-Forwards, no Content-Length, no branch: still processed
    assert m.max_forwards is None and m.via is not None and m.via.branch is None
    assert m.body.startswith(b"v=0") and m.body.endswith(b"RTP/AVP 0\r\n")
    assert isinstance(m.to, object) and m.to is not None
    # addr-spec form: ;user=phone binds to the header field (RFC 3261 §20.10)
    assert m.to.params.get("user") == "phone" and m.to.sip_uri.user == "+16505552222"


def sem_bcast(m: Message) -> None:
    assert isinstance(m, Response)
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]


SEMANTIC: dict[str, Callable[[Any], None]] = {
    "badbranch.dat": sem_badbranch,
    "insuf.dat": sem_insuf,
    "unkscm.dat": sem_unkscm,
    "novelsc.dat": sem_novelsc,
    "unksm2.dat": sem_unksm2,
    "bext01.dat": sem_bext01,
    "invut.dat": sem_invut,
    "regaut01.dat": sem_regaut01,
    "multi01.dat": sem_multi01,
    "mcl01.dat": sem_mcl01,
    "bcast.dat": sem_bcast,
    "zeromf.dat": sem_zeromf,
    "cparam01.dat": sem_cparam01,
    "cparam02.dat": sem_cparam02,
    "regescrt.dat": sem_regescrt,
    "sdp01.dat": sem_sdp01,
    "inv2543.dat": sem_inv2543,
}


@pytest.mark.parametrize("name", sorted(SEMANTIC))
def test_semantic(name: str) -> None:
    m = parse_message(load(name))
    SEMANTIC[name](m)


def test_tel_uri_in_headers_is_typed() -> None:
    assert isinstance(parse_uri("tel:+1-201-555-0123"), TelUri)


# messages whose header lines are already canonical ("Name: value", no folding, one correct
# Content-Length): re-encoding gives back the same bytes
CANONICAL = {
    "badbranch.dat", "baddate.dat", "bcast.dat", "bext01.dat", "cparam01.dat", "cparam02.dat",
    "esc02.dat", "insuf.dat", "invut.dat", "lwsdisp.dat", "mpart01.dat", "multi01.dat",
    "noreason.dat", "novelsc.dat", "regbadct.dat", "sdp01.dat", "unkscm.dat", "unksm2.dat",
    "unreason.dat", "zeromf.dat",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(VALID) | LENIENT | set(SEMANTIC)))
def test_re_encode(name: str) -> None:
    data = load(name)
    msg = parse_message(data)
    wire = msg.encode()
    if name in CANONICAL:
        assert wire == data
    again = parse_message(wire)
    # same fields in the same order (Content-Length rewritten to the body length)
    strip = [(n, v) for n, v in msg.headers if n.lower() not in ("content-length", "l")]
    assert [(n, v) for n, v in again.headers if n.lower() not in ("content-length", "l")] == strip
    assert again.body == msg.body and again.start_line() == msg.start_line()


@pytest.mark.parametrize("name", sorted(set(VALID) | set(SEMANTIC) | {"baddate.dat"}))
def test_every_registered_header_parses(name: str) -> None:
    """Through the registry's per-header parsers, every field of the accepted messages parses
    (Via, name-addrs, CSeq, auth, option tags, numbers, value;params)."""
    msg = parse_message(load(name))
    for hname, _ in msg.headers:
        values = msg.parsed(hname)
        assert len(values) >= (0 if hname.lower() in ("supported", "k", "accept") else 1)
