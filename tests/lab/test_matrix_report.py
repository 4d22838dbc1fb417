"""Matrix report pieces: pure-Python spectrogram/PNG, ladder SVG, JSON and HTML writers."""

from __future__ import annotations

import json
import math
import struct
import wave
import zlib
from pathlib import Path

from lab.matrix.report import CallResult, LadderStep, format_table, write_html, write_json
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


def _result(tmp_path: Path) -> CallResult:
    wav = tmp_path / "a.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(440))
    return CallResult(
        key="sdes/home",
        method="sdes",
        scenario="home",
        section="2.2",
        call_succeeded=True,
        keys_recovered=True,
        audio_recovered=True,
        needs=["nothing extra"],
        differences=["keys: study True, observed False"],
        ladder=[
            LadderStep(time=1.0, src="ue-a", dst="pcscf", label="INVITE sip:bob@x"),
            LadderStep(time=1.1, src="pcscf", dst="ue-a", label="100 Trying"),
        ],
        wavs={"from-target": str(wav)},
        tones_hz={"from-target": 437.5},
    )


def test_table_json_html(tmp_path: Path) -> None:
    r = _result(tmp_path)
    text = format_table([r])
    assert "DIFFERS" in text and "! sdes/home: keys" in text
    write_json([r], tmp_path / "m.json", meta={"run": 1})
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["calls"][0]["reproduced"] is False
    assert doc["calls"][0]["ladder"][0]["label"] == "INVITE sip:bob@x"
    write_html([r], tmp_path / "m.html", meta={"run": 1})
    page = (tmp_path / "m.html").read_text()
    assert "<svg" in page and "INVITE sip:bob@x" in page
    assert "data:image/png;base64," in page and "peak 438 Hz" in page
    write_html([r], tmp_path / "m2.html", meta={"rows": 23, "reproduced": 22, "seconds": 30})
    assert "22 of 23 rows reproduce the study" in (tmp_path / "m2.html").read_text()
