"""All RFC 4475 torture messages over UDP against a running `imslab run sip-proxy`.

Each message of ../shared/conformance/rfc4475/ is sent, byte-exact, from 127.0.3.10 to a proxy
subprocess serving ``example.com``; the answers (the proxy routes them by the message's own Via:
the source address as ``received`` and the Via's port, §18.2.2) are collected on every port the
messages name and matched by Via branch + Call-ID. Expectations follow MANIFEST.tsv and the RFC
sections: invalid requests get 400 (505 for the unknown version), responses that fail to parse
or whose top Via is not the proxy's are dropped, semantic cases get their status (416, 420 with
Unsupported, 415 with Accept, 483, 401 with a challenge, 406...), REGISTERs store their
contacts, and the proxy still answers OPTIONS afterwards.

Several vectors share a Via branch and sent-by (e.g. cparam01/cparam02): to the proxy the
second is a retransmission of the first transaction, as RFC 3261 §17.2.3 says. They are sent
to a second proxy instance so each vector gets its own transaction; regaut01 goes to a third
instance that requires digest authentication.
"""

from __future__ import annotations

import random
import re
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.test_sipp_proxy import RunningProxy, start_proxy, stop_proxy

pytestmark = [pytest.mark.peer]

CLIENT_IPS = [f"127.0.3.{n}" for n in range(100, 200)]  # answers go to the source IP
SECOND = {"cparam02.dat", "regescrt.dat", "unkscm.dat"}
AUTH = {"regaut01.dat"}

# file -> accepted statuses (None: dropped, nothing may come back; "any": a final response
# that is not a parse rejection)
ANY = "any"
ANY_OR_400 = "any or 400"
EXPECTED: dict[str, object] = {
    # valid
    "wsinv.dat": ANY, "intmeth.dat": ANY, "esc01.dat": ANY, "escnull.dat": {200},
    "esc02.dat": ANY, "lwsdisp.dat": ANY, "longreq.dat": ANY, "dblreq.dat": {200},
    "semiuri.dat": ANY, "transports.dat": ANY, "mpart01.dat": ANY,
    "unreason.dat": None, "noreason.dat": None,
    # invalid
    "badinv01.dat": {400}, "clerr.dat": {400}, "ncl.dat": {400}, "scalar02.dat": {400},
    "scalarlg.dat": None, "quotbal.dat": {400}, "ltgtruri.dat": {400}, "lwsruri.dat": {400},
    "lwsstart.dat": {400}, "trws.dat": {400}, "escruri.dat": ANY_OR_400, "baddate.dat": ANY_OR_400,
    "regbadct.dat": {400, 200}, "badaspec.dat": {400}, "baddn.dat": {400},
    "badvers.dat": {505}, "mismatch01.dat": {400}, "mismatch02.dat": {400},
    "bigcode.dat": None,
    # semantic
    "badbranch.dat": ANY, "insuf.dat": {400}, "unkscm.dat": {416}, "novelsc.dat": {416},
    "unksm2.dat": ANY, "bext01.dat": {420}, "invut.dat": {415}, "regaut01.dat": {401},
    "multi01.dat": {400}, "mcl01.dat": {400}, "bcast.dat": None, "zeromf.dat": {483},
    "cparam01.dat": {200}, "cparam02.dat": {200}, "regescrt.dat": {200},
    "sdp01.dat": {406, 400}, "inv2543.dat": ANY,
}  # fmt: skip

_VIA = re.compile(rb"^(?:via|v)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_BRANCH = re.compile(rb"branch[ \t]*=[ \t]*([^;, \t\r\n]+)", re.I)
_PORT = re.compile(rb"/[ \t]*[A-Za-z]+[ \t]+[^;, \t:]+(?:[ \t]*:[ \t]*([0-9]+))?")
_CALLID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)


def _key(data: bytes) -> tuple[bytes, bytes]:
    """(top Via branch, first Call-ID) of a message, as raw bytes."""
    head = _unfold(data)
    via = _VIA.search(head)
    branch = _BRANCH.search(via.group(1)) if via else None
    cid = _CALLID.search(head)
    return (branch.group(1) if branch else b"", cid.group(1).strip() if cid else b"")


def _unfold(data: bytes) -> bytes:
    head = data.split(b"\r\n\r\n", 1)[0]
    return re.sub(rb"\r\n[ \t]+", b" ", head)


def _reply_ports(data: bytes) -> set[int]:
    via = _VIA.search(_unfold(data))
    port = _PORT.search(via.group(1)) if via else None
    ports = {5060, 5061}
    if port and port.group(1):
        ports.add(int(port.group(1)))
    return ports


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[dict[str, RunningProxy]]:
    users = tmp_path / "users.toml"
    users.write_text('realm = "example.com"\n[users]\n"j.user" = "secret"\n')
    started: dict[str, RunningProxy] = {}
    try:
        # --allow-net: vectors carry Routes to 127.0.0.1 and names; the proxy answers those
        # 500 (no reachable next hop) instead of sending outside this test's range
        common = ("--domain", "example.com", "--allow-net", "127.0.3.0/24")
        started["a"] = start_proxy(0, *common)
        started["b"] = start_proxy(0, *common)
        started["auth"] = start_proxy(0, *common, "--users", str(users))
        yield started
    finally:
        for p in started.values():
            stop_proxy(p)


def _bind_client(ports: list[int]) -> list[socket.socket]:
    for ip in random.sample(CLIENT_IPS, len(CLIENT_IPS)):
        socks: list[socket.socket] = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((ip, port))
                s.setblocking(False)
            return socks
        except OSError:
            for s in socks:
                s.close()
    raise AssertionError("no client address with free SIP ports in 127.0.3.100-199")


def _status(data: bytes) -> int | None:
    m = re.match(rb"SIP/2\.0 ([0-9]{3}) ", data)
    return int(m.group(1)) if m else None


def test_every_rfc4475_message_over_udp(
    conformance_dir: Path, proxies: dict[str, RunningProxy]
) -> None:
    vectors = conformance_dir / "rfc4475"
    manifest = [
        line.split("\t")[0] for line in (vectors / "MANIFEST.tsv").read_text().splitlines()[1:]
    ]
    assert set(manifest) == set(EXPECTED), "the manifest and this test disagree"
    messages = {name: (vectors / name).read_bytes() for name in manifest}
    ports = set().union(*(_reply_ports(m) for m in messages.values()))
    # the answers come back to the source IP and the ports the Vias name (5060, 5050...):
    # take a client IP of this range where all of them are free (tests may run concurrently)
    socks = _bind_client(sorted(ports))
    client_ip = socks[0].getsockname()[0]
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    sender = socks[0]  # client_ip:5060
    replies: list[bytes] = []

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            for key, _ in sel.select(timeout=left):
                data, _addr = key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
                replies.append(data)

    try:
        for name in manifest:
            target = proxies["auth" if name in AUTH else "b" if name in SECOND else "a"]
            sender.sendto(messages[name], (target.host, target.port))
            drain(0.02)
        drain(1.5)
        # the proxies still work: OPTIONS to each is answered 200
        for p in proxies.values():
            opt = (
                f"OPTIONS sip:{p.host}:{p.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {client_ip}:5060;branch=z9hG4bKafter{p.port}\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:t@example.com>;tag=1\r\n"
                f"To: <sip:{p.host}:{p.port}>\r\nCall-ID: after-{p.port}\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode()
            sender.sendto(opt, (p.host, p.port))
        drain(1.0)
    finally:
        for s in socks:
            sel.unregister(s)
            s.close()
        sel.close()

    by_key: dict[tuple[bytes, bytes], list[bytes]] = {}
    for r in replies:
        by_key.setdefault(_key(r), []).append(r)
    for p in proxies.values():
        got = by_key.get((f"z9hG4bKafter{p.port}".encode(), f"after-{p.port}".encode()), [])
        assert got and _status(got[0]) == 200, f"proxy {p.port} stopped answering OPTIONS"
        assert all(pr.proc.poll() is None for pr in proxies.values())

    failures = []
    for name in manifest:
        key = _key(messages[name])
        got = [r for r in by_key.get(key, []) if (_status(r) or 0) >= 200]
        # multi01 carries two Call-IDs; responses copy the first
        want = EXPECTED[name]
        if want is None:
            if got:
                failures.append(f"{name}: expected no answer, got {_status(got[0])}")
            continue
        if not got:
            failures.append(f"{name}: no final response")
            continue
        status = _status(got[0])
        if want == ANY_OR_400:
            continue
        if want == ANY:
            if status in (400, 505, 513):
                failures.append(f"{name}: a valid message was rejected with {status}")
        elif status not in want:  # type: ignore[operator]
            failures.append(f"{name}: expected {sorted(want)}, got {status}")  # type: ignore[call-overload]
        else:
            _check_details(name, got[0], failures)
    assert not failures, "\n".join(failures)


def _header(data: bytes, name: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        m.group(1)
        for m in re.finditer(rb"^" + name + rb"[ \t]*:[ \t]*([^\r\n]*)", head, re.I | re.M)
    ]


def _check_details(name: str, resp: bytes, failures: list[str]) -> None:
    if name == "bext01.dat":
        unsupported = b",".join(_header(resp, b"Unsupported"))
        for tag in (b"noProxiesSupportThis", b"norDoAnyProxiesSupportThis"):
            if tag not in unsupported:
                failures.append(f"bext01: Unsupported lacks {tag!r}: {unsupported!r}")
    elif name == "invut.dat":
        if not _header(resp, b"Accept"):
            failures.append("invut: 415 without Accept")
    elif name == "regaut01.dat":
        challenge = b" ".join(_header(resp, b"WWW-Authenticate"))
        if not challenge.startswith(b"Digest"):
            failures.append(f"regaut01: no Digest challenge: {challenge!r}")
    elif name == "cparam01.dat":
        # the parameter belongs to the Contact header field, not to the URI (§20.10)
        contact = b" ".join(_header(resp, b"Contact") + _header(resp, b"m"))
        if b"<sip:+19725552222@gw1.example.net>;unknownparam" not in contact:
            failures.append(f"cparam01: binding lost its header parameter: {contact!r}")
    elif name == "cparam02.dat":
        contact = b" ".join(_header(resp, b"Contact") + _header(resp, b"m"))
        if b"<sip:+19725552222@gw1.example.net;unknownparam>" not in contact:
            failures.append(f"cparam02: binding lost its URI parameter: {contact!r}")
    elif name == "regescrt.dat":
        contact = b" ".join(_header(resp, b"Contact") + _header(resp, b"m"))
        if b"?Route=%3Csip:sip.example.com%3E" not in contact:
            failures.append(f"regescrt: escaped header not stored: {contact!r}")
