"""Issue 13 items 2 and 5: security ending at the access edge, as matrix rows, on LEMF files.

One run of :data:`li.study.ACCESS_EDGE_ROWS` (each row a ladder of real calls in its own worker
process on 127.0.<240+i>.0/24): the target asks for SDES to the access edge (3GPP TS 33.328
e2ae, ``a=3ge2ae:requested``); the P-CSCF gives each side the anchor's own keys and the anchor
decrypts and re-encrypts. At home (study Q4, line 69: "The provider would have an obligation to
deliver unencrypted ("en clair") intercept subject's media when encrypted tunnels terminate in
their network") and for the roamer whose media security ends at the visited P-CSCF (clause 3,
TS 33.106, line 249: "The visited network shall intercept only those UMTS services that the
visited network provides to the target subscriber."). Each test reads what the agency received:
``summary.json`` (streams decrypted by the network, no key used), the intercepted CC (plain
G.711 RTP, readable without keys), each direction's WAV (440 Hz from the caller, 1000 Hz from the
callee).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.matrix.combine import direction_tones
from lab.matrix.parallel import run_rows
from lab.matrix.report import CallResult
from li.pcap import parse_ip, read_pcap
from li.study import ACCESS_EDGE_ROWS, Need

pytestmark = pytest.mark.slow

ROWS = [*ACCESS_EDGE_ROWS]
TARGET_CALLS = {"from-target": 440.0, "to-target": 1000.0}


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, CallResult]]:
    work = tmp_path_factory.mktemp("edge")
    results = asyncio.run(
        run_rows(ROWS, work, jobs=2, subnet_base=240, media_seconds=1.0, bits=1024)
    )
    yield {r.key: r for r in results}


@pytest.mark.parametrize("key", [e.key for e in ROWS])
def test_edge_row_reproduces_the_study(rows: dict[str, CallResult], key: str) -> None:
    r = rows[key]
    assert r.differences == [], (r.differences, [o.summary() for o in r.rungs])
    assert r.needs == [Need.NOTHING.value]


@pytest.mark.parametrize(
    ("key", "op", "statement"),
    [
        ("sdes-e2ae/home", "a", "Q4: the encryption terminates in the provider's network"),
        (
            "sdes-e2ae/roaming-visited-pcscf",
            "v",
            "TS 33.106: the visited network intercepts the service it provides",
        ),
    ],
)
def test_the_terminating_network_delivers_the_media_en_clair(
    rows: dict[str, CallResult], key: str, op: str, statement: str
) -> None:
    r = rows[key]
    (o,) = [o for o in r.rungs if not o.skipped]
    assert o.rung == "own-pois" and o.call_ok and o.audio_from == {"keys": op, "media": op}
    assert o.en_clair == [op] and o.key_source == ["none: CC delivered en clair"]
    assert r.ts33106.startswith(statement)
    d = Path(o.lemf_dirs[op])
    summary = json.loads((d / "summary.json").read_text())
    streams = [s for s in summary["streams"] if s["packets"] > 10]
    assert {s["direction"] for s in streams} == {"from-target", "to-target"}
    for s in streams:  # decrypted by the network; the LEMF used no key
        assert s["decrypted_by_network"] and s["plain_rtp"] and s["key"] is None, s
        assert s["payload_types"] == [0], s
    # what arrived over X3 is G.711 RTP as it is, not SRTP: every packet's payload is PCMU
    payloads = [
        seg.payload
        for rec in read_pcap(d / "cc-encrypted.pcap")
        if (seg := parse_ip(rec)) is not None
    ]
    assert len(payloads) > 40
    rtp = [p for p in payloads if p[1] & 0x7F == 0]  # RTCP aside
    assert rtp and all(len(p) == 12 + 160 for p in rtp)  # no SRTP auth tag: as sent, clear
    tones = direction_tones(d, TARGET_CALLS)
    assert set(tones) == set(TARGET_CALLS) and all(t["ok"] for t in tones.values()), tones
