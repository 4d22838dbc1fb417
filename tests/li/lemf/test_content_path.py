"""The LEMF's per-packet content path (Mediation._content) against the general path.

X3 of a call the LEMF already knows skips the decoded :class:`~li.x2x3.pdu.Pdu` (issue 19:
the LEMF's cost per intercepted packet). What it writes must be what the general path
writes, byte for byte: the same PDUs fed once through ``handle_raw`` (the receiver's entry
point) and once through ``decode_pdu`` + ``handle`` must leave the same files, counters,
duplicates and gaps behind.
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pylibsrtp
import pytest

from ims.media.keys import SrtpKeys
from li.keys import KeyRecord, KeySource, Sender
from li.lemf import mediation
from li.lemf.mediation import Mediation
from li.poi.export import cc_sender
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.framing import PduFramer
from li.x2x3.pdu import decode_pdu

SUITE = "AES_CM_128_HMAC_SHA1_80"
XID = uuid.UUID("5e0a2c1b-7d3f-4e5a-9b6c-0d1e2f3a4b5c")
PEER = ("127.0.6.40", 40000)
SENDER = "anchor-1"


def _keys(call: int, side: str) -> tuple[bytes, bytes]:
    seed = bytes(f"{call}{side}", "ascii").ljust(30, b"k")
    return seed[:16], seed[16:30]


def exported(tmp_path: Path, calls: int = 3, packets: int = 60) -> list[bytes]:
    """The PDUs an anchor's CC-POI and IRI side produce (key records, then SRTP both ways),
    as the exporter spools them."""
    exp = X2X3Exporter(tmp_path / "spool", nf_id=SENDER)
    did = uuid.uuid4()
    exp.add_destination(DeliveryDestination(did=did, host="127.0.0.1", port=9))
    exp.bind_task(XID, [did])
    x3 = cc_sender(exp).x3
    tx = {}
    for c in range(calls):
        for side, sender in (("a", Sender.OFFERER), ("b", Sender.ANSWERER)):
            k, s = _keys(c, side)
            exp.send_key_record(
                xid=XID,
                correlation_id=c + 1,
                record=KeyRecord(
                    call_id=f"call-{c}",
                    source=KeySource.SDES,
                    sender=sender,
                    keys=SrtpKeys(suite=SUITE, master_key=k, master_salt=s),
                ),
            )
            tx[c, side] = pylibsrtp.Session(
                pylibsrtp.Policy(
                    key=k + s,
                    ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                    srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
                )
            )
    for i in range(packets):
        for c in range(calls):
            for side, direction in (("a", 3), ("b", 2)):
                pt = 0 if side == "a" else 8  # PCMU one way, PCMA the other
                rtp = struct.pack("!BBHII", 0x80, pt, 100 + i, 160 * i, 0x1000 * c + ord(side))
                srtp = tx[c, side].protect(rtp + bytes(range(i, i + 160)))
                x3(XID, c + 1, direction, srtp, ("10.0.0.1", 40000 + c), ("10.0.0.2", 50000 + c))
    spool = exp._links[did].spool
    data = spool.read(spool.acked, spool.end - spool.acked)
    assert len(data) == spool.end - spool.acked  # one spool segment (8 MB) holds it all
    return split_raw(data)


def split_raw(data: bytes) -> list[bytes]:
    return list(PduFramer(max_pdu_size=1 << 16).feed_raw(data))


def files(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".dedup" not in p.parts and p.name != "summary.json":
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def summaries(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(root.rglob("summary.json")):
        s = json.loads(p.read_text())
        s.pop("revision")
        out[str(p.relative_to(root))] = s
    return out


def test_content_path_writes_what_the_general_path_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = exported(tmp_path)
    # the stream as a LEMF may see it: one PDU re-sent (a reconnect), one never arrives
    resent = raws[40]
    lost = raws[50]
    feed = [r for r in raws if r is not lost]
    feed.insert(60, resent)
    fast = Mediation(tmp_path / "fast", clock=lambda: 0.0, monotonic=lambda: 0.0)
    slow = Mediation(tmp_path / "slow", clock=lambda: 0.0, monotonic=lambda: 0.0)
    decoded = []
    monkeypatch.setattr(mediation, "decode_pdu", lambda r: decoded.append(r) or decode_pdu(r))
    stored = [fast.handle_raw(r, PEER, SENDER) for r in feed]
    monkeypatch.undo()
    # the general decode only for the key records (X2): they name the calls and the sender,
    # so every X3 after them takes the content path
    assert len(decoded) == 6 and all(r[2:4] == b"\x00\x01" for r in decoded)
    for r in feed:
        slow.handle(decode_pdu(r), r, PEER, SENDER)
    fast.flush()
    slow.flush()
    assert stored.count(False) == 1  # the re-sent PDU, dropped as a duplicate
    assert fast.stats == slow.stats
    assert (fast.stats.duplicates, fast.stats.gaps, fast.stats.missing) == (1, 1, 1)
    assert fast.stats.x3 == len(raws) - 6 - 1
    got, want = files(tmp_path / "fast"), files(tmp_path / "slow")
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    assert summaries(tmp_path / "fast") == summaries(tmp_path / "slow")
    streams = [s for c in fast.calls.values() for s in c.streams.values()]
    assert len(streams) == 6 and all(s.decrypted >= 59 and not s.failures for s in streams)
    assert sum(1 for n in got if n.endswith(".wav")) == 6


def test_summary_rewrites_are_paced_over_all_calls(tmp_path: Path) -> None:
    """30 calls at once with a budget of 5 summary.json rewrites a second: a checkpoint
    writes no more than the budget allows (state changes first), the rest follow at later
    checkpoints, and a flush writes every call's summary with what its files hold."""
    raws = exported(tmp_path, calls=30, packets=4)
    now = [100.0]
    m = Mediation(
        tmp_path / "out", clock=lambda: 0.0, monotonic=lambda: now[0], summaries_per_second=5
    )

    def written() -> int:
        return sum(c.revision for c in m.calls.values())

    for r in raws:
        m.handle_raw(r, PEER, SENDER)
    assert written() <= 5  # the bucket starts full: 5 rewrites, then none
    m.checkpoint()
    assert written() <= 5  # no time has passed: no new tokens
    pending = sum(1 for c in m.calls.values() if c.summary_stale)
    assert pending >= 25
    now[0] += 1.0
    m.checkpoint()
    assert 5 < written() <= 10
    m.flush()
    for call in m.calls.values():
        summary = json.loads((call.dir / "summary.json").read_text())
        assert summary["x3_pdus"] == 8 and summary["keys_available"]
        assert sum(s["decrypted"] for s in summary["streams"]) == 8
