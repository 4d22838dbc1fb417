"""``call.pcap``: the intercepted SIP as plain SIP/UDP plus the decrypted RTP/RTCP, time-ordered,
which sngrep and Wireshark (tshark) open as one call; summary.json's counts are the files'
counts; a readable name beside the ids (issue 16, item 4)."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import struct
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from ims.media.keys import SrtpKeys
from ims.media.rtp import RtpPacket, encode_rtp
from ims.media.srtp import SrtpSender
from ims.sdes import crypto_for
from li.lemf.callpcap import CallPcap, sip_addresses, via_sent_by
from li.lemf.mediation import Mediation
from li.pcap import parse_ip, read_pcap
from li.x2x3.pdu import (
    MatchedTargetIdentifier,
    PayloadDirection,
    Pdu,
    Timestamp,
    address_attributes,
    encode_pdu,
    x2_pdu,
    x3_pdu,
)
from tests.conftest import require_tool

XID = uuid.UUID("0ca11ca1-0000-4000-8000-00000000c0de")
CID = 0xC0FFEE
SUITE = "AES_CM_128_HMAC_SHA1_80"
CALL_ID = "callpcap-1@127.0.8.101"
UE_A = ("127.0.8.101", 5060)  # the target's UE
PCSCF = ("127.0.8.10", 5060)
SCSCF = ("127.0.8.11", 5060)
MEDIA_A = ("127.0.8.101", 40100)
MEDIA_B = ("127.0.8.42", 30002)  # the far end's media (an anchor)
T0 = 1_800_000_000.0
LEMF_PORT = 50123
N = 50  # RTP packets per direction


def sip(start: str, cseq: str, to_tag: str | None, sdp: str | None = None) -> bytes:
    body = sdp.encode() if sdp else b""
    ctype = "Content-Type: application/sdp\r\n" if sdp else ""
    to = "<sip:bob@ims-b.test>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{start}\r\nVia: SIP/2.0/UDP {UE_A[0]}:{UE_A[1]};branch=z9hG4bK-{cseq.split()[0]}\r\n"
        f"From: <sip:alice@ims-a.test>;tag=a1\r\nTo: {to}\r\nCall-ID: {CALL_ID}\r\n"
        f"CSeq: {cseq}\r\nContact: <sip:alice@{UE_A[0]}>\r\n{ctype}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def sdp(addr: tuple[str, int], crypto: str) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {addr[0]}\r\ns=-\r\nc=IN IP4 {addr[0]}\r\nt=0 0\r\n"
        f"m=audio {addr[1]} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\na=crypto:{crypto}\r\n"
    )


def rtp(ssrc: int, i: int) -> bytes:
    return encode_rtp(
        RtpPacket(
            payload_type=0, sequence_number=i, timestamp=i * 160, ssrc=ssrc, payload=b"\xff" * 160
        )
    )


def sender_report(ssrc: int, n: int) -> bytes:
    """An RTCP SR (RFC 3550 §6.4.1) without report blocks."""
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0xE0000000 + n, 0, n * 160, n, n * 160)


def _pdu(kind: str, payload: bytes, direction: PayloadDirection, ts: float, **kw: Any) -> Pdu:
    make = x2_pdu if kind == "x2" else x3_pdu
    attrs = (*kw.get("attributes", ()), Timestamp.from_float(ts))
    if kind == "x2":
        attrs = (*attrs, MatchedTargetIdentifier(value="sip:alice@ims-a.test"))
    return make(xid=XID, correlation_id=CID, payload=payload, direction=direction, attributes=attrs)


def call_pdus() -> list[tuple[float, Pdu]]:
    """A whole call as two IRI-POIs (P-CSCF, S-CSCF) and a CC-POI report it, in time order."""
    offer, answer = crypto_for(SUITE, 1), crypto_for(SUITE, 1)
    up = SrtpSender(
        SrtpKeys(suite=SUITE, master_key=offer.master_key, master_salt=offer.master_salt)
    )
    down = SrtpSender(
        SrtpKeys(suite=SUITE, master_key=answer.master_key, master_salt=answer.master_salt)
    )
    out: list[tuple[float, Pdu]] = []
    fwd, back = PayloadDirection.FROM_TARGET, PayloadDirection.TO_TARGET

    def both_hops(t: float, msg: bytes, direction: PayloadDirection) -> None:
        hops = [(UE_A, PCSCF), (PCSCF, SCSCF)]
        if direction == back:
            hops = [(b, a) for a, b in reversed(hops)]
        for i, (src, dst) in enumerate(hops):
            ts = t + 0.002 * i
            out.append(
                (ts, _pdu("x2", msg, direction, ts, attributes=address_attributes(src, dst)))
            )

    both_hops(
        T0,
        sip("INVITE sip:bob@ims-b.test SIP/2.0", "1 INVITE", None, sdp(MEDIA_A, str(offer))),
        fwd,
    )
    both_hops(T0 + 0.10, sip("SIP/2.0 180 Ringing", "1 INVITE", "b1"), back)
    both_hops(T0 + 0.20, sip("SIP/2.0 200 OK", "1 INVITE", "b1", sdp(MEDIA_B, str(answer))), back)
    both_hops(T0 + 0.21, sip("ACK sip:bob@127.0.8.111 SIP/2.0", "1 ACK", "b1"), fwd)
    for i in range(N):
        t = T0 + 0.25 + 0.02 * i
        for sender, ssrc, src, dst, direction in (
            (up, 0xA11CE, MEDIA_A, MEDIA_B, fwd),
            (down, 0xB0B, MEDIA_B, MEDIA_A, back),
        ):
            srtp = sender.protect(rtp(ssrc, 1000 + i))
            assert srtp is not None
            attrs = address_attributes(src, dst)
            out.append((t, _pdu("x3", srtp, direction, t, attributes=attrs)))
            if i == N - 1:  # one SRTCP sender report each way
                srtcp = sender.protect_rtcp(sender_report(ssrc, N))
                assert srtcp is not None
                out.append((t + 0.001, _pdu("x3", srtcp, direction, t + 0.001, attributes=attrs)))
    t_end = T0 + 0.25 + 0.02 * N + 0.05
    both_hops(t_end, sip("BYE sip:bob@127.0.8.111 SIP/2.0", "2 BYE", "b1"), fwd)
    both_hops(t_end + 0.02, sip("SIP/2.0 200 OK", "2 BYE", "b1"), back)
    return out


class Ticks:
    """A monotonic clock that moves 1 s per reading: every debounced summary write happens,
    so which files are written when does not depend on the machine's speed."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def deliver(out_dir: Path, pdus: list[tuple[float, Pdu]]) -> Path:
    med = Mediation(out_dir, lemf_addr=("127.0.8.60", LEMF_PORT), monotonic=Ticks())
    for _, pdu in pdus:
        med.handle(pdu, encode_pdu(pdu), ("127.0.8.10", 40000))
    med.flush()
    med.close()
    return out_dir / str(XID) / f"{CID:016x}"


@pytest.fixture(scope="module")
def call_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pdus = call_pdus()
    # arrival order is not time order: the CC-POI's X3 overtakes the X2 of the 200 OK (so
    # the answerer's SRTP waits for its key), and the POIs' connections interleave
    x2 = [p for p in pdus if p[1].pdu_type.name == "X2"]
    x3 = [p for p in pdus if p[1].pdu_type.name == "X3"]
    head = [p for p in x2 if p[0] < T0 + 0.2]
    arrival = head + x3[:40] + [p for p in x2 if p not in head] + x3[40:]
    rng = random.Random(16)
    tail = arrival[len(head) :]
    for i in range(0, len(tail) - 3, 4):  # local shuffles inside a window
        window = tail[i : i + 4]
        rng.shuffle(window)
        tail[i : i + 4] = window
    return deliver(tmp_path_factory.mktemp("lemf"), head + tail)


def _tshark(*args: str) -> str:
    res = subprocess.run(
        [require_tool("tshark"), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return res.stdout


def test_call_pcap_is_time_ordered_sip_and_plain_media(call_dir: Path) -> None:
    records = list(read_pcap(call_dir / "call.pcap"))
    times = [r.ts for r in records]
    assert times == sorted(times)
    segs = [parse_ip(r) for r in records]
    assert all(s is not None and s.proto == 17 for s in segs)
    sips = [s.payload for s in segs if s is not None and b"SIP/2.0" in s.payload[:80]]
    assert len(sips) == 12  # 6 messages x 2 hops
    # the SIP is the message as intercepted, between the addresses the POI saw
    first = segs[0]
    assert first is not None and first.payload.startswith(b"INVITE sip:bob@ims-b.test SIP/2.0")
    assert (first.src, first.sport, first.dst, first.dport) == (*UE_A, *PCSCF)
    media = [s for s in segs if s is not None and s.sport in (MEDIA_A[1], MEDIA_B[1])]
    assert len(media) == 2 * N + 2
    assert all(len(s.payload) in (172, 28) for s in media)  # plain RTP / RTCP SR: no auth tag


def test_tshark_sees_one_call_whose_sdp_sets_up_the_rtp(call_dir: Path) -> None:
    pcap = str(call_dir / "call.pcap")
    sip_rows = _tshark(
        "-r", pcap, "-Y", "sip", "-T", "fields", "-e", "frame.number", "-e", "sip.Call-ID"
    )
    sip_frames = {int(r.split("\t")[0]): r.split("\t")[1] for r in sip_rows.splitlines()}
    assert set(sip_frames.values()) == {CALL_ID}
    # Wireshark's VoIP Calls / RTP Player tie a stream to a call through the SDP that set it
    # up: every RTP packet must name a SIP frame of this call as its set-up frame
    rtp_rows = _tshark(
        "-r", pcap, "-Y", "rtp", "-T", "fields", "-e", "rtp.setup-frame", "-e", "rtp.setup-method"
    ).splitlines()
    assert len(rtp_rows) == 2 * N
    for row in rtp_rows:
        frame, method = row.split("\t")
        assert method == "SDP" and int(frame) in sip_frames
    streams = _tshark("-r", pcap, "-q", "-z", "rtp,streams")
    rows = [ln for ln in streams.splitlines() if "g711U" in ln]
    assert len(rows) == 2
    for ln in rows:
        assert re.search(rf"g711U\s+{N}\s+0 \(0\.0%\)", ln), ln
    stats = _tshark("-r", pcap, "-q", "-z", "sip,stat")
    assert "INVITE          :     2 Packets" in stats
    assert "SIP 200 OK              :     4 Packets" in stats
    assert _tshark(
        "-r", pcap, "-Y", "rtcp.pt == 200", "-T", "fields", "-e", "rtcp.senderssrc"
    ).split() == [
        "0x000a11ce",
        "0x00000b0b",
    ]
    # nothing malformed, no expert warning
    assert _tshark("-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning") == ""


def test_sngrep_opens_one_dialog_with_its_rtp(call_dir: Path, tmp_path: Path) -> None:
    sngrep = require_tool("sngrep")
    out = tmp_path / "sngrep.pcap"
    res = subprocess.run(
        [sngrep, "-N", "-c", "-r", "-I", str(call_dir / "call.pcap"), "-O", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert "Dialog count: 1" in res.stdout
    # what sngrep saved for its dialog: the SIP and the RTP it tied to it
    saved = [parse_ip(r) for r in read_pcap(out)]
    assert sum(1 for s in saved if s is not None and b"SIP/2.0" in s.payload[:80]) == 12
    assert sum(1 for s in saved if s is not None and s.sport in (MEDIA_A[1], MEDIA_B[1])) >= 2 * N
    # the X2/X3 delivery itself is no call to sngrep (the SIP sits inside X2 PDUs)
    res = subprocess.run(
        [sngrep, "-N", "-I", str(call_dir / "x2x3.pcap"), "-O", str(tmp_path / "x.pcap")],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Dialog count: 0" in res.stdout


def test_summary_counts_are_the_files(call_dir: Path) -> None:
    summary = json.loads((call_dir / "summary.json").read_text())
    iri_lines = (call_dir / "iri.jsonl").read_text().splitlines()
    assert summary["iri_events"] == len(iri_lines) == 12 > 0
    assert summary["x2x3_port"] == LEMF_PORT
    counts = summary["file_records"]
    for name in ("x2x3.pcap", "cc.pcap", "cc-encrypted.pcap", "call.pcap"):
        assert counts[name] == len(list(read_pcap(call_dir / name))), name
    assert counts["iri.jsonl"] == len(iri_lines)
    assert counts["keys.jsonl"] == len((call_dir / "keys.jsonl").read_text().splitlines())
    assert summary["call_pcap"] == {
        "sip_messages": 12,
        "media_packets": 2 * N + 2,
        "held_back": 0,
        "not_representable": 0,
        # the BYE ends the call: everything is written then; the shuffled copies of the BYE
        # and its 200 that arrive after it are older than the file's end: merged, twice
        "rewrites": 2,
    }
    assert counts["cc.pcap"] == 2 * N + 2


def test_readable_name_beside_the_ids(call_dir: Path) -> None:
    summary = json.loads((call_dir / "summary.json").read_text())
    out = call_dir.parent.parent
    link = out / summary["name"]
    assert summary["name"] == f"2027-01-15T08-00-00Z_alice@ims-a.test_{CID:016x}"
    assert link.is_symlink() and os.readlink(link) == f"{XID}/{CID:016x}"
    assert link.resolve() == call_dir.resolve()
    # one level only: a glob over OUT/*/*/summary.json still sees each call once
    assert list(out.glob("*/*/summary.json")) == [call_dir / "summary.json"]


def test_restart_continues_call_pcap(tmp_path: Path) -> None:
    pdus = call_pdus()
    half = len(pdus) // 2
    deliver(tmp_path, pdus[:half])
    call_dir = deliver(tmp_path, pdus[half:])  # a new LEMF process on the same output
    records = list(read_pcap(call_dir / "call.pcap"))
    assert len(records) == 12 + 2 * N + 2
    assert [r.ts for r in records] == sorted(r.ts for r in records)
    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["restarts"] == 1
    assert summary["file_records"]["call.pcap"] == len(records)
    assert summary["file_records"]["iri.jsonl"] == 12
    assert len(list(tmp_path.glob("2027-*"))) == 1  # the same readable name, not a second


def test_held_back_then_appended_and_a_late_packet_rewrites(tmp_path: Path) -> None:
    cp = CallPcap(tmp_path / "call.pcap", holdback=2.0)
    for i in range(10):
        cp.add_media(rtp(1, i), T0 + i, (*MEDIA_A, *MEDIA_B))
    cp.write()  # PDU time has reached T0+9: what is 2 s older goes out, in order
    assert [r.ts for r in read_pcap(tmp_path / "call.pcap")] == [T0 + i for i in range(8)]
    assert cp.summary()["held_back"] == 2 and cp.rewrites == 0
    size = (tmp_path / "call.pcap").stat().st_size
    cp.add_media(rtp(1, 99), T0 + 3.5, (*MEDIA_A, *MEDIA_B))  # late: older than the file
    cp.add_media(rtp(1, 10), T0 + 12, (*MEDIA_A, *MEDIA_B))
    cp.write()
    times = [r.ts for r in read_pcap(tmp_path / "call.pcap")]
    assert times == sorted(times) and T0 + 3.5 in times and len(times) == 11
    assert cp.rewrites == 1 and (tmp_path / "call.pcap").stat().st_size > size
    cp.release()  # the end: nothing held back
    assert len(list(read_pcap(tmp_path / "call.pcap"))) == 12 == cp.packets
    assert cp.summary()["held_back"] == 0
    assert (tmp_path / "call.pcap").stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("*.tmp"))
    # a new CallPcap on the same file (a restarted LEMF) counts what is there
    assert CallPcap(tmp_path / "call.pcap").packets == 12


def test_sip_addresses_without_address_attributes() -> None:
    invite = sip("INVITE sip:bob@ims-b.test SIP/2.0", "1 INVITE", None)
    assert via_sent_by(invite) == UE_A
    req = x2_pdu(xid=XID, correlation_id=CID, payload=invite, direction=1)
    assert sip_addresses(req) == (UE_A, ("192.0.2.1", 5060))
    resp = x2_pdu(
        xid=XID, correlation_id=CID, payload=sip("SIP/2.0 200 OK", "1 INVITE", "b"), direction=2
    )
    assert sip_addresses(resp) == (("192.0.2.1", 5060), UE_A)
    assert (
        via_sent_by(b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP host.example;branch=z\r\n\r\n")
        is None
    )
    compact = b"BYE sip:x SIP/2.0\r\nv: SIP/2.0/UDP [::1]:5070;branch=z\r\n\r\n"
    assert via_sent_by(compact) == ("::1", 5070)


def test_sdes_keys_are_blanked_in_call_pcap(call_dir: Path) -> None:
    keys = [json.loads(x) for x in (call_dir / "keys.jsonl").read_text().splitlines()]
    assert len(keys) == 2
    data = (call_dir / "call.pcap").read_bytes()
    for k in keys:
        inline = base64.b64encode(bytes.fromhex(k["master_key"] + k["master_salt"]))
        assert inline not in data
        assert inline in (call_dir / "x2x3.pcap").read_bytes()  # the delivered record keeps it
    sips = [
        s.payload for s in (parse_ip(r) for r in read_pcap(call_dir / "call.pcap")) if s is not None
    ]
    invite = next(p for p in sips if p.startswith(b"INVITE"))
    assert re.search(rb"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:X{40}\r\n", invite)
    head, body = invite.split(b"\r\n\r\n", 1)
    assert f"Content-Length: {len(body)}".encode() in head
