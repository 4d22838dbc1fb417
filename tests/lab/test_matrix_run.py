"""``imslab matrix`` end to end: every row of the study reproduced by a real call.

One run of the whole matrix (all methods x scenarios of li.study) on 127.0.8.0/24, shared by the
tests of this module: each row compared with the study (including the one-operator case B
failure, the visited-network case and the separate media provider), the SDES WAVs holding
440 Hz in both directions, tshark decoding the X2/X3 the LEMF received, and the reports.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.matrix.report import CallResult, write_html, write_json
from lab.matrix.runner import MatrixRunner, select
from li.study import EXPECTATIONS
from tests.conftest import require_tool

pytestmark = pytest.mark.slow


@dataclass
class Run:
    results: dict[str, CallResult]
    lemf_port: int
    work: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    work = tmp_path_factory.mktemp("matrix")
    old = os.environ.get("IMSLAB_PKI")
    os.environ["IMSLAB_PKI"] = str(work / "pki")

    async def go() -> Run:
        async with MatrixRunner(work, subnet="127.0.8", media_seconds=1.0, bits=1024) as r:
            results = {e.key: await r.run(e) for e in select()}
            assert r.lemf is not None
            return Run(results=results, lemf_port=r.lemf.port, work=work)

    try:
        return asyncio.run(go())
    finally:
        if old is None:
            os.environ.pop("IMSLAB_PKI", None)
        else:
            os.environ["IMSLAB_PKI"] = old


@pytest.mark.parametrize("key", [e.key for e in EXPECTATIONS])
def test_row_reproduces_the_study(run: Run, key: str) -> None:
    r = run.results[key]
    assert r.differences == [], (r.differences, r.notes)


def test_the_key_rows(run: Run) -> None:
    one = run.results["pke-b-one/home"]
    assert one.call_succeeded and not one.keys_recovered and not one.audio_recovered
    assert any("only one operator" in n for n in one.notes), one.notes
    both = run.results["pke-b/home"]
    assert both.keys_recovered and both.audio_recovered
    case_a = run.results["pke-a/home"]
    assert not case_a.call_succeeded
    assert any("rejected" in n for n in case_a.notes), case_a.notes
    visited = run.results["sdes/roaming-home-pcscf"]
    assert visited.call_succeeded and visited.cc_count > 0 and not visited.keys_recovered
    assert run.results["sdes/roaming-visited-pcscf"].audio_recovered
    provider = run.results["sdes/media-provider"]
    assert provider.audio_recovered and "both providers" in provider.needs
    dh = run.results["dh/home"]
    assert "MITM media" in dh.needs and dh.audio_recovered


def test_sdes_wavs_hold_440_hz_both_ways(run: Run) -> None:
    r = run.results["sdes/home"]
    assert set(r.wavs) == {"from-target", "to-target"}
    for direction, hz in r.tones_hz.items():
        assert abs(hz - 440) < 8000 / 256, (direction, hz)


@pytest.mark.peer
def test_tshark_decodes_x2_x3(run: Run) -> None:
    tshark = require_tool("tshark")
    xid_dirs = list((run.work / "lemf").glob("*/*/x2x3.pcap"))
    sdes = run.results["sdes/home"]
    pcap = next(
        p
        for p in xid_dirs
        if p.parent.joinpath("summary.json").exists()
        and json.loads(p.parent.joinpath("summary.json").read_text()).get("call_id")
        and Path(sdes.wavs["from-target"]).parent == p.parent
    )
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(pcap),
            "-d",
            f"tcp.port=={run.lemf_port},5gli",
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


def test_reports(run: Run, tmp_path: Path) -> None:
    results = list(run.results.values())
    write_json(results, tmp_path / "m.json", meta={})
    write_html(results, tmp_path / "m.html", meta={})
    doc = json.loads((tmp_path / "m.json").read_text())
    assert len(doc["calls"]) == len(EXPECTATIONS)
    assert all(c["reproduced"] for c in doc["calls"])
    html = (tmp_path / "m.html").read_text()
    assert html.count("<svg") >= 10 and "data:image/png" in html
