"""rtpengine (Debian's rtpengine-daemon, userspace forwarding only) as the media provider's relay.

rtpengine runs with ``--table=-1`` (no kernel module) and ``--config-file=none``: with Debian's
default /etc/rtpengine/rtpengine.conf it does not start here, because that file says
``interface = any``, which rtpengine resolves as a host name ("Failed to resolve 'any'", fatal);
its ``table = 0`` only costs a "FAILED TO CREATE KERNEL TABLE 0" error and a userspace fallback
(fatal with ``--no-fallback``). See docs/deployment.md.

Driven over its ng control protocol (bencode over UDP, each message prefixed by a cookie the
reply echoes) like a P-CSCF would, with our SDES offer and answer (RFC 4568 lines made by
``ims.sdes``): the ``a=crypto`` lines pass through unchanged (SDES passthrough: no suites of
rtpengine's own, no DTLS), ``c=``/``m=`` point at rtpengine, and SRTP from each side reaches the
other byte for byte, decryptable with the sender's SDES key, the way LI recovers it: the LEMF's
late-join decryptor, keyed only from the SDP an IRI-POI would have reported, decrypts what
crossed the relay. A forged packet is passed on too (rtpengine does not authenticate SRTP it
passes through; the receiving UE must). As root, the media provider's CC-POI (our
``PassiveTapPoi``, tasked with the target's address) is fed by a packet tap on the relay's
interface and reports exactly the target's packets on rtpengine's path.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ims.media.rtp import RtpPacket, decode_rtp, encode_rtp
from ims.media.srtp import LateJoinDecryptor, SrtpReceiver, SrtpSender
from ims.sdes.attribute import CryptoAttribute
from ims.sdes.negotiation import keys_of, make_offer
from li.poi.cc import CcRecord, PassiveTapPoi, flow_correlation_id
from li.poi.iri import TargetDirection
from proxies.ng import decode_reply, encode_request

RTPENGINE = shutil.which("rtpengine") or "/usr/bin/rtpengine"
RELAY = "127.0.201.42"  # the media provider's relay address (this test only)
ALICE, BOB = "127.0.202.1", "127.0.203.1"  # the two UEs' media addresses
NG_PORT = 2223  # rtpengine's ng port, as the lab's anchor control port
SUITE = "AES_CM_128_HMAC_SHA1_80"
# rtpengine 10.5 offers every suite it knows besides the offerer's; these flags keep it to ours
OTHER_SUITES = [
    "AEAD_AES_256_GCM",
    "AEAD_AES_128_GCM",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_192_CM_HMAC_SHA1_80",
    "AES_192_CM_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_32",
    "F8_128_HMAC_SHA1_80",
    "F8_128_HMAC_SHA1_32",
    "NULL_HMAC_SHA1_80",
    "NULL_HMAC_SHA1_32",
]
PASSTHROUGH = {"SDES": [f"no-{s}" for s in OTHER_SUITES], "DTLS": "off"}

pytestmark = [pytest.mark.peer, pytest.mark.timeout(60)]


class Ng:
    """A bounded ng client: cookie, bencoded dict; retransmits, checks the echoed cookie."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)

    def __call__(self, command: str, **args: object) -> dict[str, Any]:
        cookie = os.urandom(6).hex().encode()
        msg = encode_request(cookie, command, args)
        for _ in range(6):
            self.sock.sendto(msg, self.server)
            try:
                while True:
                    data, _ = self.sock.recvfrom(65535)
                    got, reply = decode_reply(data)
                    if got == cookie:
                        return reply
            except TimeoutError:
                continue
        raise AssertionError(f"rtpengine at {self.server} does not answer {command}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def rtpengine(tmp_path: Path) -> Iterator[Ng]:
    if not Path(RTPENGINE).exists():
        pytest.skip("rtpengine is not installed (apt-get install rtpengine-daemon)")
    log = (tmp_path / "rtpengine.log").open("w")
    proc = subprocess.Popen(
        [RTPENGINE, "--config-file=none", "--foreground", "--log-stderr", "--table=-1"]
        + [f"--interface={RELAY}", f"--listen-ng={RELAY}:{NG_PORT}"]
        + ["--port-min=41000", "--port-max=41999", f"--pidfile={tmp_path / 'rtpengine.pid'}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    ng = Ng((RELAY, NG_PORT))
    try:
        assert ng("ping") == {"result": b"pong"}
        yield ng
    finally:
        ng.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _sdp(addr: str, port: int, crypto: CryptoAttribute) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:{crypto.encode()}\r\na=sendrecv\r\n"
    )


def _media(sdp: bytes) -> tuple[str, int, list[str]]:
    text = sdp.decode()
    conn = re.search(r"^c=IN IP4 (\S+)", text, re.M)
    port = re.search(r"^m=audio (\d+) ", text, re.M)
    assert conn and port, text
    return conn.group(1), int(port.group(1)), re.findall(r"^a=crypto:(.*?)\r?$", text, re.M)


def test_rtpengine_relays_sdes_srtp_untouched(rtpengine: Ng) -> None:
    ng = rtpengine
    # alice and bob: one UDP socket each (their RTP ports)
    alice = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bob = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s, addr in ((alice, ALICE), (bob, BOB)):
        s.bind((addr, 0))
        s.settimeout(1.0)
    a_port, b_port = alice.getsockname()[1], bob.getsockname()[1]
    a_crypto = next(c for c in make_offer() if c.suite == SUITE)
    b_crypto = CryptoAttribute.parse(f"1 {SUITE} inline:" + _inline(os.urandom(30)))
    call = {"call-id": f"rtpe-{os.urandom(4).hex()}", "from-tag": "alice-tag"}
    try:
        offer = ng("offer", sdp=_sdp(ALICE, a_port, a_crypto), **call, **PASSTHROUGH)
        assert offer["result"] == b"ok", offer
        assert isinstance(offer["sdp"], bytes)
        relay_for_bob = _media(offer["sdp"])
        answer = ng(
            "answer",
            sdp=_sdp(BOB, b_port, b_crypto),
            **call,
            **{"to-tag": "bob-tag"},
            **PASSTHROUGH,
        )
        assert answer["result"] == b"ok", answer
        assert isinstance(answer["sdp"], bytes)
        relay_for_alice = _media(answer["sdp"])
        # c=/m= point at the relay; the SDES lines are the endpoints' own, nothing added
        assert relay_for_bob[0] == relay_for_alice[0] == RELAY
        assert relay_for_bob[2] == [a_crypto.encode()]
        assert relay_for_alice[2] == [b_crypto.encode()]

        for sender, dst, key, receiver in (
            (alice, relay_for_alice[:2], keys_of(a_crypto), bob),
            (bob, relay_for_bob[:2], keys_of(b_crypto), alice),
        ):
            tx = SrtpSender(key)
            rx = SrtpReceiver(key)
            # LI: the sender's key as the SDP crossing the signalling carried it (what an IRI-POI
            # reports), decrypting from the sixth packet on (a late join)
            sdp_lines = relay_for_bob[2] if sender is alice else relay_for_alice[2]
            li = LateJoinDecryptor(keys_of(CryptoAttribute.parse(sdp_lines[0])))
            got = []
            for seq in range(20):
                rtp = RtpPacket(
                    payload_type=0,
                    sequence_number=1000 + seq,
                    timestamp=160 * seq,
                    ssrc=0x1000 + dst[1],
                    payload=bytes([seq]) * 160,
                )
                srtp = tx.protect(encode_rtp(rtp))
                assert srtp is not None
                sender.sendto(srtp, dst)
                data = receiver.recvfrom(2048)[0]
                assert data == srtp  # byte for byte: no re-keying, no re-encryption
                got.append(data)
            for seq, data in enumerate(got):
                plain = rx.unprotect(data)
                assert plain is not None and decode_rtp(plain).payload == bytes([seq]) * 160
            for seq, data in enumerate(got[5:], start=5):
                plain = li.unprotect(data)
                assert plain is not None and decode_rtp(plain).payload == bytes([seq]) * 160

        # a forged packet (auth tag altered) is passed on: authenticating is the UE's job
        srtp = SrtpSender(keys_of(a_crypto)).protect(
            encode_rtp(RtpPacket(payload_type=0, sequence_number=5, timestamp=0, ssrc=7))
        )
        assert srtp is not None
        forged = srtp[:-1] + bytes([srtp[-1] ^ 1])
        alice.sendto(forged, relay_for_alice[:2])
        assert bob.recvfrom(2048)[0] == forged
        assert SrtpReceiver(keys_of(a_crypto)).unprotect(forged) is None

        deleted = ng("delete", **call)
        assert deleted["result"] == b"ok", deleted
        assert isinstance(deleted.get("totals"), dict)
    finally:
        alice.close()
        bob.close()


def _udp_on_lo(raw: socket.socket) -> list[tuple[tuple[str, int], tuple[str, int], bytes]]:
    """The IPv4/UDP datagrams captured so far on lo (each once: the received copy)."""
    out: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    while True:
        try:
            frame, meta = raw.recvfrom(65535)
        except BlockingIOError:
            return out
        if meta[2] != socket.PACKET_HOST or frame[12:14] != b"\x08\x00":
            continue  # lo shows each packet twice (outgoing + received); IPv4 only
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue
        sport, dport, length = struct.unpack("!HHH", ip[ihl : ihl + 6])
        src = (socket.inet_ntoa(ip[12:16]), sport)
        dst = (socket.inet_ntoa(ip[16:20]), dport)
        out.append((src, dst, ip[ihl + 8 : ihl + length]))


@pytest.mark.skipif(os.geteuid() != 0, reason="a packet tap (AF_PACKET) needs root")
def test_passive_cc_tap_on_rtpengines_path(rtpengine: Ng) -> None:
    """The media provider's CC-POI (:class:`PassiveTapPoi`, tasked with the target's address,
    no signalling) fed by a packet tap on the relay's interface: it reports every packet to and
    from alice on rtpengine's path, as sent, with the right direction and flow correlation ID,
    and nothing of other flows; the LEMF decryptor recovers alice's media from the records."""
    ng = rtpengine
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    raw.bind(("lo", 0))
    raw.setblocking(False)
    alice = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bob = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s, addr in ((alice, ALICE), (bob, BOB)):
        s.bind((addr, 0))
        s.settimeout(1.0)
    a_port = alice.getsockname()[1]
    a_crypto = next(c for c in make_offer() if c.suite == SUITE)
    b_crypto = CryptoAttribute.parse(f"1 {SUITE} inline:" + _inline(os.urandom(30)))
    call = {"call-id": f"tap-{os.urandom(4).hex()}", "from-tag": "alice-tag"}
    xid = uuid.uuid4()
    records: list[CcRecord] = []
    tap = PassiveTapPoi(element="rtpengine-m", emit=records.append)
    tap.activate(xid, ALICE)
    try:
        offer = ng("offer", sdp=_sdp(ALICE, a_port, a_crypto), **call, **PASSTHROUGH)
        answer = ng(
            "answer",
            sdp=_sdp(BOB, bob.getsockname()[1], b_crypto),
            **call,
            **{"to-tag": "bob-tag"},
            **PASSTHROUGH,
        )
        assert isinstance(offer["sdp"], bytes) and isinstance(answer["sdp"], bytes)
        to_relay_from_alice = _media(answer["sdp"])[:2]
        to_relay_from_bob = _media(offer["sdp"])[:2]
        sent: dict[TargetDirection, list[bytes]] = {d: [] for d in TargetDirection}
        for seq in range(10):
            for sender, dst, crypto, receiver, d in (
                (alice, to_relay_from_alice, a_crypto, bob, TargetDirection.FROM_TARGET),
                (bob, to_relay_from_bob, b_crypto, alice, TargetDirection.TO_TARGET),
            ):
                rtp = RtpPacket(
                    payload_type=0, sequence_number=seq, timestamp=160 * seq, ssrc=int(d) + 1
                )
                srtp = SrtpSender(keys_of(crypto)).protect(encode_rtp(rtp))
                assert srtp is not None
                sender.sendto(srtp, dst)
                receiver.recvfrom(2048)
                sent[d].append(srtp)
        # the tap sees the relay's interface; other traffic on lo is not rtpengine's path
        for src, dst, data in _udp_on_lo(raw):
            if RELAY in (src[0], dst[0]) and NG_PORT not in (src[1], dst[1]):
                tap.observe(src=src, dst=dst, data=data, rtcp=False, now=0.0)
        ng("delete", **call)
    finally:
        raw.close()
        alice.close()
        bob.close()
    by_dir = {d: [r for r in records if r.direction is d] for d in TargetDirection}
    # alice -> relay (from target) and relay -> alice (to target): each packet once, as sent
    assert [r.data for r in by_dir[TargetDirection.FROM_TARGET]] == sent[
        TargetDirection.FROM_TARGET
    ]
    assert [r.data for r in by_dir[TargetDirection.TO_TARGET]] == sent[TargetDirection.TO_TARGET]
    assert len(records) == 20  # nothing of the relay <-> bob legs
    assert {r.xid for r in records} == {xid}
    cid = flow_correlation_id("rtpengine-m", ALICE, a_port)  # the tap's own, per target flow
    assert {r.correlation_id for r in records} == {cid}
    # the LEMF's part: keys from the IRI (the SDP) decrypt the tapped content
    dec = LateJoinDecryptor(keys_of(a_crypto))
    assert all(dec.unprotect(r.data) is not None for r in by_dir[TargetDirection.FROM_TARGET])


def _inline(key_salt: bytes) -> str:
    import base64

    return base64.b64encode(key_salt).decode()


async def test_rtpengine_anchor_behind_anchor_control(tmp_path: Path) -> None:
    """:class:`RtpengineAnchor` as a P-CSCF drives it: the access side offers, the core side
    answers; each Allocation names rtpengine's port facing each side (the same ports on both
    attaches), media relays between the sides, a re-offer from the core side keeps the ports,
    and release returns rtpengine's counters per side."""
    from lab.rtpengine import RtpengineDaemon
    from lab.topology import Element
    from proxies.media_anchor import AnchorError
    from proxies.rtpengine import NgClient, RtpengineAnchor

    if not Path(RTPENGINE).exists():
        pytest.skip("rtpengine is not installed (apt-get install rtpengine-daemon)")
    element = Element(
        name="anchor-t",
        role="anchor",
        operator="m",
        address=RELAY,
        control_port=NG_PORT + 2,
        rtp_ports=(42000, 42099),
        engine="rtpengine",
    )
    daemon = RtpengineDaemon(element)
    await daemon.start()
    anchor = RtpengineAnchor(NgClient((RELAY, NG_PORT + 2), local_address="127.0.0.1"))
    ue, core = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), None
    try:
        ue.bind((ALICE, 0))
        core = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        core.bind((BOB, 0))
        for s in (ue, core):
            s.settimeout(1.0)
        offer = await anchor.attach("c1@x", 0, "access", ue.getsockname(), label="term")
        answer = await anchor.attach("c1@x", 0, "core", core.getsockname(), label="term")
        assert offer == answer
        assert offer.access[0] == offer.core[0] == RELAY
        assert 42000 <= offer.access[1] <= 42099 and 42000 <= offer.core[1] <= 42099
        assert offer.access != offer.core
        for n in range(3):
            ue.sendto(b"\x80\x00" + bytes([n]) * 40, offer.access)
            assert core.recvfrom(2048)[0] == b"\x80\x00" + bytes([n]) * 40
        core.sendto(b"\x80\x00back" * 4, offer.core)
        assert ue.recvfrom(2048)[0] == b"\x80\x00back" * 4
        # a re-INVITE from the core side: a re-offer, then the access side's answer
        again = await anchor.attach("c1@x", 0, "core", core.getsockname(), label="term")
        assert await anchor.attach("c1@x", 0, "access", ue.getsockname(), label="term") == again
        assert again == offer
        stats = await anchor.release("c1@x")
        assert stats["from_access_packets"] == 3 and stats["from_core_packets"] == 1, stats
        assert await anchor.release("c1@x") == {}  # nothing left of it
        with pytest.raises(AnchorError):
            await anchor.attach("c2@x", 0, "sideways", None)
    finally:
        anchor.close()
        ue.close()
        if core is not None:
            core.close()
        await daemon.stop()
    # an anchor that does not answer: the bounded wait ends in AnchorError
    silent = RtpengineAnchor(NgClient((RELAY, NG_PORT + 2), timeout=0.5))
    with pytest.raises(AnchorError, match="does not answer"):
        await silent.attach("c3@x", 0, "access", None)
    silent.close()
