"""``imslab matrix`` end to end: every row's ladder of real calls, compared with the study.

One run of the whole matrix (every row of li.study, each a ladder of real calls in its own
worker process on its own 127.0.<160+i>.0/24), shared by the tests of this module: each row
compared with the study, the rows issue 10 is about checked on their evidence (case A's
ciphertext and its MITM attempt's failure point, case C's responder operator, both providers
on DH), each direction's WAV holding its own sender's tone, tshark decoding the X2/X3 the LEMF
received, and the reports. A second, small run withholds a rung: pke-b becomes "not possible".
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lab.matrix.parallel import run_rows
from lab.matrix.report import CallResult, write_html, write_json
from li.study import (
    ACCESS_EDGE_ROWS,
    CASE_VARIANTS,
    EXPECTATIONS,
    HOP_ROWS,
    OPERATOR_PSK_ROWS,
    ROAMING_ROWS,
    USER_LAYER_ROWS,
    Capability,
    Method,
    Need,
    Scenario,
    expectation,
)
from tests.conftest import require_tool

pytestmark = pytest.mark.slow

#: issue 13's rows run in tests/lab/test_matrix_variants.py (the intermediaries' in
#: tests/lab/test_matrix_hops.py, the access edge's in test_matrix_edge.py)
ISSUE_13 = (
    CASE_VARIANTS + OPERATOR_PSK_ROWS + USER_LAYER_ROWS + ROAMING_ROWS + HOP_ROWS + ACCESS_EDGE_ROWS
)
ROWS = [e for e in EXPECTATIONS if e not in ISSUE_13]

ARTEFACTS = Path(
    os.environ.get("IMSLAB_ARTEFACTS", Path(__file__).parents[2] / "build" / "test-artefacts")
)


@dataclass
class Run:
    results: dict[str, CallResult]
    work: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp("matrix")
    results = asyncio.run(
        run_rows(ROWS, work, jobs=4, subnet_base=160, media_seconds=1.0, bits=1024)
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)  # every rung's evidence, for a failure's story
    write_json(results, ARTEFACTS / "matrix-run.json", meta={"load": os.getloadavg()})
    yield Run(results={r.key: r for r in results}, work=work)


@pytest.mark.parametrize("key", [e.key for e in ROWS])
def test_row_reproduces_the_study(run: Run, key: str) -> None:
    r = run.results[key]
    assert r.differences == [], (r.differences, [o.summary() for o in r.rungs])
    tried = [o for o in r.rungs if not o.skipped]
    assert tried, r.rungs
    for o in tried:  # every rung was tasked; one that placed a call says where its output is
        assert o.xids, o
        if "before anything reached the wire" not in o.failure:
            assert o.lemf_dirs, o  # (no call: pke-a's MITM rungs, sakke to a non-IMS peer)
    if r.rung is not None:  # the ladder stopped at its first success
        assert r.rungs[-1].rung == r.rung and r.rungs[-1].audio_ok
        assert not any(o.audio_ok for o in r.rungs[:-1])


def test_case_a_ciphertext_only_and_the_mitm_attempt_fails_visibly(run: Run) -> None:
    a = run.results["pke-a/home"]
    first = a.rungs[0]
    assert first.rung == "own-pois" and first.call_ok and not first.audio_ok
    assert (Path(first.lemf_dirs["a"]) / "cc-encrypted.pcap").stat().st_size > 0  # ciphertext
    assert a.call_succeeded and a.rung is None
    attempt = run.results["pke-a-mitm/home"]
    tried = attempt.rungs[0]
    assert tried.rung == "mitm-both" and not tried.call_ok
    # the real failure point: alice's UE refuses the substitute before sending anything
    assert "before anything reached the wire" in tried.failure, tried.failure
    assert "not trusted" in tried.failure, tried.failure


def test_case_c_needs_the_responders_operator(run: Run) -> None:
    c = run.results["pke-c/home"]
    last = c.rungs[-1]
    assert last.rung == "operator-keys" and last.audio_from["keys"] == "b", last
    assert last.key_source == ["mikey-pke-escrow"]
    answers = run.results["pke-c/home-target-answers"]
    last = answers.rungs[-1]
    assert last.audio_from == {"keys": "a", "media": "a"}, last
    # the target answers: from-target is the callee's 1000 Hz
    assert abs(answers.tones_hz["from-target"] - 1000) < 40
    assert abs(answers.tones_hz["to-target"] - 440) < 40


def test_one_operator_and_both_providers(run: Run) -> None:
    one = run.results["pke-b-one/home"]
    assert [o.skipped for o in one.rungs if o.rung == "mitm-both"] == ["withheld"]
    assert any("only one operator" in n for o in one.rungs for n in o.notes)
    both = run.results["pke-b/home"]
    assert both.rungs[-1].substitutes_from == ["a", "b"]
    dh = run.results["dh/media-provider"]
    last = dh.rungs[-1]
    assert last.audio_from == {"keys": "a", "media": "m"} and last.media_rekeyed > 0, last
    visited = run.results["sdes/roaming-home-pcscf"]
    assert visited.rungs[0].call_ok and not visited.rungs[0].audio_ok  # the visited net alone
    assert visited.rung == "other-pois"


def test_each_direction_holds_its_own_tone(run: Run) -> None:
    for r in run.results.values():
        if not r.audio_recovered:
            continue
        target_calls = expectation(r.method, r.scenario).scenario is not (
            Scenario.HOME_TARGET_ANSWERS
        )
        want = {"from-target": 440, "to-target": 1000}
        if not target_calls:
            want = {"from-target": 1000, "to-target": 440}
        for direction, hz in want.items():
            assert abs(r.tones_hz[direction] - hz) < 40, (r.key, direction, r.tones_hz)


@pytest.fixture(scope="module")
def withheld(tmp_path_factory: pytest.TempPathFactory) -> CallResult:
    """pke-b climbing the ladder without the other operators' help (rung mitm-both withheld)."""
    (res,) = asyncio.run(
        run_rows(
            [expectation(Method.PKE_B, Scenario.HOME)],
            tmp_path_factory.mktemp("withheld"),
            jobs=1,
            subnet_base=200,
            media_seconds=0.8,
            bits=1024,
            withheld=[Capability.MITM_BOTH],
        )
    )
    return res


def test_withholding_the_other_operators_makes_case_b_impossible(withheld: CallResult) -> None:
    res = withheld
    assert res.rung is None and res.needs == [Need.NOT_POSSIBLE.value]
    assert [o.rung for o in res.rungs if o.skipped == "withheld"] == ["mitm-both"]
    assert res.rungs[-1].rung == "mitm-media" and not res.rungs[-1].audio_ok
    assert res.differences  # now it disagrees with the study, and says so
    assert "lowest rung: study mitm-both, observed none" in res.differences


@pytest.mark.peer
def test_tshark_decodes_x2_x3(run: Run) -> None:
    tshark = require_tool("tshark")
    sdes = run.results["sdes/home"]
    call_dir = Path(sdes.lemf_dirs["a"])
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(call_dir / "x2x3.pcap"),
            "-d",
            f"tcp.port=={_lemf_port(call_dir)},5gli",
            "-E",
            "occurrence=f",
            "-T",
            "fields",
            "-e",
            "li5g.type",
            "-e",
            "li5g.pf",
            "-e",
            "sip.Method",
            "-e",
            "sdp.crypto.crypto_suite",
            "-e",
            "rtp.ssrc",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    rows = [line.split("\t") for line in out if line.strip()]
    assert any(r[0] == "1" and r[2] == "INVITE" for r in rows)  # X2 with the SIP INVITE
    assert any(r[0] == "1" and r[3] == "AES_CM_128_HMAC_SHA1_80" for r in rows)  # SDES seen
    assert sum(1 for r in rows if r[0] == "2" and r[1] == "8" and r[4]) > 50  # X3 RTP


def _lemf_port(call_dir: Path) -> int:
    """The LEMF's TCP port: the destination port of the pcap's first packet."""
    from li.pcap import parse_ip, read_pcap

    for rec in read_pcap(call_dir / "x2x3.pcap"):
        seg = parse_ip(rec)
        if seg is not None:
            return int(seg.dport)
    raise AssertionError("empty x2x3.pcap")


def test_reports(run: Run, tmp_path: Path) -> None:
    results = list(run.results.values())
    write_json(results, tmp_path / "m.json", meta={})
    write_html(results, tmp_path / "m.html", meta={})
    doc = json.loads((tmp_path / "m.json").read_text())
    assert len(doc["calls"]) == len(ROWS)
    assert all(c["reproduced"] for c in doc["calls"])
    assert all(c["rungs"] and c["ts33106"] for c in doc["calls"])
    assert os.path.getsize(tmp_path / "m.html") > 10_000


# --- the HTML report, as Chromium renders it ------------------------------------------------


class _Dom(HTMLParser):
    """The elements of Chromium's rendered DOM (--dump-dom): tag, attributes, text inside."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA PNG (Chromium's screenshots)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat, width, height, bpp = 8, b"", 0, 0, 3
    while pos < len(png):
        (length,) = struct.unpack("!I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack("!IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[i] for i in range(stride) if i % bpp < 3))
        prev = line
    return width, height, rows


@pytest.mark.peer
def test_report_in_chromium(run: Run, withheld: CallResult, tmp_path: Path) -> None:
    """The page Chromium renders: expected vs observed (a mismatch in red), the ladder of
    rungs, SIP ladders from the LEMF over every POI with the MITM's rewrite, spectrograms with
    axes, audio players and links that resolve, task XIDs, unique ids; a screenshot is kept."""
    chromium = require_tool("chromium")
    results = [withheld, *run.results.values()]  # the withheld row disagrees with the study
    page = tmp_path / "matrix.html"
    write_html(results, page, meta={"rows": len(results)})
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom_text = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    dom = _Dom()
    dom.feed(dom_text)
    ids = [a["id"] for _, a in dom.elements if "id" in a]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1][:5]
    summary = [a for t, a in dom.elements if t == "tr" and a.get("id", "").startswith("summary-")]
    assert len(summary) == len(results)
    assert [a["class"] for a in summary].count("mismatch") == 1
    assert any(a.get("id") == "mismatches" for _, a in dom.elements)
    text = " ".join(dom.texts)
    assert "study: rung / LI needed" in text and "LI needed (observed)" in text
    # every row's capability ladder, with the rungs it tried and their task XIDs
    for r in results:
        tried = [o for o in r.rungs if not o.skipped]
        assert all(o.xids["a" if "a" in o.xids else next(iter(o.xids))] in text for o in tried)
    rung_rows = [a["id"] for t, a in dom.elements if t == "tr" and "-rung-" in a.get("id", "")]
    assert "row-pke-b-home-rung-mitm-both" in rung_rows
    # SIP ladders from iri.jsonl over every POI: pke-b's shows B's POIs and the MITM's rewrite
    assert "row-pke-b-home-sip" in ids and "row-pke-b-home-register" in ids
    assert "MITM rewrote a=key-mgmt: keys to the LEMF" in text
    assert "pcscf-b" in text and "REGISTER" in text
    # spectrograms with axes and labels, one per recovered direction, each with a player
    spectrograms = [i for i in ids if i.endswith("-spectrogram")]
    assert len(spectrograms) >= 2 * sum(r.audio_recovered for r in run.results.values())
    assert text.count("frequency (Hz)") == len(spectrograms) == text.count("time (s)")
    audios = [a for t, a in dom.elements if t == "audio"]
    assert len(audios) == len(spectrograms) and all("controls" in a for a in audios)
    for a in audios:
        assert (tmp_path / a["src"]).resolve().is_file(), a["src"]
    links = [a["href"] for t, a in dom.elements if t == "a" and not a["href"].startswith("#")]
    assert any(h.endswith(".pcap") for h in links) and any(h.endswith(".jsonl") for h in links)
    assert any(h.endswith(".wav") for h in links) and any(h.endswith(".json") for h in links)
    for h in links:
        assert (tmp_path / h).resolve().exists(), h
    # the screenshot: kept as an artefact; the mismatch row is rendered red
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / "matrix.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1200,700", page.as_uri()],
        capture_output=True,
        check=True,
        timeout=120,
    )
    width, height, rows = _png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 700)
    reds = sum(
        1
        for row in rows
        for i in range(0, len(row), 3)
        if row[i] > 240 and 170 < row[i + 1] < 200 and 170 < row[i + 2] < 200
    )
    assert reds > 2000, reds  # #fbb: the mismatch list and the mismatch row
