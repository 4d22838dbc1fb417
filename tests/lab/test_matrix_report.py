"""Matrix report pieces: spectrogram/PNG, the SIP ladder from iri.jsonl, the table, JSON, HTML."""

from __future__ import annotations

import json
import math
import re
import struct
import wave
import zlib
from pathlib import Path

from lab.matrix.html import spectrogram_svg, write_html
from lab.matrix.report import CallResult, RungOutcome, format_table, write_json
from lab.matrix.sipladder import ladder_steps, ladder_svg, registration_dirs
from lab.matrix.spectrogram import _fft, peak_frequency, spectrogram_png


def tone(freq: float, seconds: float = 0.5, rate: int = 8000) -> bytes:
    n = int(seconds * rate)
    return struct.pack(
        f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )


def test_fft_matches_dft() -> None:
    x = [complex(math.sin(i) + (i % 3)) for i in range(16)]
    dft = [
        sum(
            x[n] * complex(math.cos(-2 * math.pi * k * n / 16), math.sin(-2 * math.pi * k * n / 16))
            for n in range(16)
        )
        for k in range(16)
    ]
    assert all(abs(a - b) < 1e-9 for a, b in zip(_fft(x), dft, strict=True))


def test_peak_frequency_finds_the_tone() -> None:
    assert abs(peak_frequency(tone(440)) - 440) < 8000 / 256
    assert abs(peak_frequency(tone(1000)) - 1000) < 8000 / 256
    assert peak_frequency(b"") == 0.0


def test_png_is_valid() -> None:
    png = spectrogram_png(tone(440), scale=1)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack("!II", png[16:24])
    assert height == 128 and width == 30  # 15 frames, 2 px each at scale 1
    idat_len = struct.unpack("!I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert len(raw) == height * (width + 1)
    # the 440 Hz bin (row from the top: 127 - 14) is the darkest
    rows = [raw[i * (width + 1) + 1 : (i + 1) * (width + 1)] for i in range(height)]
    darkest = min(range(height), key=lambda i: sum(rows[i]))
    assert abs((127 - darkest) - round(440 / 31.25)) <= 1


def _wav(path: Path, freq: float) -> str:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(freq, 1.0))
    return str(path)


def test_spectrogram_has_axes_and_labels(tmp_path: Path) -> None:
    svg = spectrogram_svg(_wav(tmp_path / "a.wav", 1000), svg_id="s1", title="to-target")
    assert 'id="s1"' in svg and "time (s)" in svg and "frequency (Hz)" in svg
    ticks = re.findall(r'text-anchor="end">(\d+)</text>', svg)
    assert ticks == ["0", "1000", "2000", "3000", "4000"]
    assert "data:image/png;base64," in svg


def _lemf_dir(root: Path, name: str, records: list[dict[str, object]]) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "iri.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d


def _sip(t: float, poi: str, direction: str, **sip: object) -> dict[str, object]:
    return {"type": "sip", "time": t, "poi": poi, "direction": direction, "sip": sip}


def test_sip_ladder_from_iri_over_every_poi(tmp_path: Path) -> None:
    sdp = {"media": [{"key_mgmt": ["mikey"], "crypto": []}]}
    a = _lemf_dir(
        tmp_path / "xid-a",
        "call",
        [
            _sip(1.0, "pcscf-a", "from-target", method="INVITE", cseq="1 INVITE", sdp=sdp),
            {"type": "key-record", "time": 1.01, "poi": "pcscf-a", "source": "mitm",
             "available": True},
            _sip(1.02, "scscf-a", "from-target", method="INVITE", cseq="1 INVITE", sdp=sdp),
            _sip(1.2, "scscf-a", "to-target", status=200, reason="OK", cseq="1 INVITE", sdp=sdp),
            _sip(1.21, "pcscf-a", "to-target", status=200, reason="OK", cseq="1 INVITE"),
        ],
    )  # fmt: skip
    b = _lemf_dir(
        tmp_path / "xid-b",
        "call",
        [_sip(1.05, "pcscf-b", "from-target", method="INVITE", cseq="1 INVITE", sdp=sdp)],
    )
    # the LEMF files a task's registrations apart from its calls (li.lemf.registration)
    (tmp_path / "xid-a" / "registrations.jsonl").write_text(
        json.dumps(_sip(0.5, "pcscf-a", "from-target", method="REGISTER", cseq="1 REGISTER")) + "\n"
    )
    steps = ladder_steps([a, b])
    assert [h.poi for h in steps] == [
        "pcscf-a",
        "pcscf-a",
        "scscf-a",
        "pcscf-b",
        "scscf-a",
        "pcscf-a",
    ]
    assert steps[1].mark.startswith("MITM rewrote a=key-mgmt")
    assert steps[0].label == "INVITE [key-mgmt: mikey]"
    svg = ladder_svg(steps, svg_id="l1")
    lifelines = re.findall(r'class="lifeline" x="(\d+)"[^>]*>([^<]+)<', svg)
    assert [n for _, n in lifelines] == ["target UE", "pcscf-a", "scscf-a", "pcscf-b", "peer"]
    # one row per message: no two labels share a y; labels fit in a column
    ys = re.findall(r'class="msg" x="[\d.]+" y="(\d+)"', svg)
    assert len(ys) == len(set(ys)) == 5
    col = int(lifelines[1][0]) - int(lifelines[0][0])
    assert all(len(h.label) * 6.6 < col for h in steps)
    assert "MITM rewrote a=key-mgmt: keys to the LEMF" in svg
    # the registration is drawn apart, from the task directory of the call's
    reg = registration_dirs([a])
    assert [d.name for d in reg] == ["xid-a"]
    assert [h.label for h in ladder_steps(reg, registration=True)] == ["REGISTER"]
    assert ladder_steps([a], registration=True) == []


def test_registration_ladder_from_the_tasks_registrations_file(tmp_path: Path) -> None:
    """The LEMF files a task's REGISTERs in ``<xid>/registrations.jsonl`` (li.lemf.registration),
    not as a call directory: the registration ladder reads them there, in time order across
    POIs, for a call directory of the task and for the task's own directory (a rung whose
    INVITE never reached the wire has no call directory)."""
    task = tmp_path / "xid-a"
    call = _lemf_dir(
        task, "call", [_sip(1.0, "pcscf-a", "from-target", method="INVITE", cseq="1 INVITE")]
    )
    (task / "registrations.jsonl").write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in (
                _sip(0.5, "pcscf-a", "from-target", method="REGISTER", cseq="1 REGISTER"),
                _sip(0.6, "pcscf-a", "to-target", status=401, reason="Unauthorized",
                     cseq="1 REGISTER"),
                _sip(0.55, "scscf-a", "from-target", method="REGISTER", cseq="1 REGISTER"),
            )
        )
    )  # fmt: skip
    for start in (call, task):
        reg = registration_dirs([start])
        assert reg == [task], start
        steps = ladder_steps(reg, registration=True)
        assert [(h.poi, h.label) for h in steps] == [
            ("pcscf-a", "REGISTER"),
            ("scscf-a", "REGISTER"),
            ("pcscf-a", "401 Unauthorized"),
        ]
    # the call's ladder stays the call's
    assert [h.label for h in ladder_steps([call])] == ["INVITE"]


def _result(tmp_path: Path) -> CallResult:
    wav = _wav(tmp_path / "a.wav", 440)
    return CallResult(
        key="sdes/home",
        method="sdes",
        scenario="home",
        section="2.2",
        quote="will reveal the media encryption keys",
        seed_line=66,
        expected_rung="own-pois",
        expected_needs=["nothing extra"],
        rung=None,
        needs=["not possible with any capability"],
        call_succeeded=True,
        differences=["lowest rung: study own-pois, observed none"],
        rungs=[
            RungOutcome(
                rung="own-pois",
                grants=["own POIs"],
                call_ok=True,
                keys={"a": []},
                xids={"a": "3f1c0000-0000-4000-8000-000000000001"},
                lemf_dirs={"a": str(tmp_path)},
                wavs={"from-target": wav},
                audio={"from-target": {"expected_hz": 440.0, "peak_hz": 437.5, "ok": True}},
            ),
            RungOutcome(rung="other-pois", skipped="withheld"),
        ],
        ts33106="TS 33.106: ...",
    )


def test_table_json_html(tmp_path: Path) -> None:
    r = _result(tmp_path)
    text = format_table([r])
    assert "MISMATCH" in text and "1 row(s) differ from the study:" in text
    assert "! sdes/home: lowest rung: study own-pois, observed none" in text
    write_json([r], tmp_path / "m.json", meta={"run": 1})
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["calls"][0]["reproduced"] is False
    assert doc["calls"][0]["rungs"][1]["skipped"] == "withheld"
    back = CallResult.from_json(doc["calls"][0])
    assert back.rungs[0].xids == r.rungs[0].xids and not back.reproduced
    meta = {"rows": 23, "reproduced": 22, "seconds": 30, "jobs": 4, "cpus": 2}
    write_html([r], tmp_path / "m.html", meta=meta | {"load": [2.5, 2.25, 3.0], "withheld": []})
    page = (tmp_path / "m.html").read_text()
    assert "22 of 23 rows reproduce the study" in page
    # the run's facts as a sentence, not a JSON dump
    assert "4 rows at a time on 2 CPUs, load average 2.50 / 2.25 / 3.00." in page
    assert "{" not in page.split("rows reproduce the study", 1)[1].split("</p>", 1)[0]
    assert 'class="mismatch"' in page and 'id="mismatches"' in page
    assert "3f1c0000-0000-4000-8000-000000000001" in page and "seed line 66" in page
    assert '<audio id="row-sdes-home-from-target-audio" controls' in page
    assert 'href="a.wav"' in page or 'src="a.wav"' in page
