"""Matrix results: the per-call record, the terminal table, and the JSON + HTML reports.

The HTML is one self-contained file: a summary table (observed vs the study, differences in
red), then per call a SIP ladder diagram drawn (SVG) from the IRI records the LEMF received and
a spectrogram (PNG, :mod:`lab.matrix.spectrogram`) of each recovered audio direction.
"""

from __future__ import annotations

import base64
import html
import json
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.matrix.spectrogram import spectrogram_png


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderStep:
    """One SIP message seen by an IRI-POI: who sent it to whom, and its first line."""

    time: float
    src: str
    dst: str
    label: str
    poi: str = ""


@dataclass(slots=True, kw_only=True)
class RungOutcome:
    """One rung of a row's capability ladder: what was granted and what its real call gave."""

    rung: str
    grants: list[str] = field(default_factory=list)
    skipped: str = ""  # why no call was placed at this rung (withheld, nothing new)
    call_ok: bool = False
    failure: str = ""  # where the call failed (the UE, a SIP status, the media)
    keys: dict[str, list[str]] = field(default_factory=dict)  # operator -> LEMF key sources
    audio: dict[str, dict[str, Any]] = field(default_factory=dict)  # direction -> tone check
    audio_ok: bool = False  # both directions, each its own tone
    audio_from: dict[str, str] = field(default_factory=dict)  # keys/media -> operator
    key_source: list[str] = field(default_factory=list)  # sources of the keys that worked
    lemf_dirs: dict[str, str] = field(default_factory=dict)  # operator -> LEMF call directory
    xids: dict[str, str] = field(default_factory=dict)  # operator -> task XID
    substitutes_from: list[str] = field(default_factory=list)  # operators' CAs used by a MITM
    media_rekeyed: int = 0
    user_applied: bool = False
    wavs: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return f"{self.rung}: skipped ({self.skipped})"
        call = "call ok" if self.call_ok else f"call FAILED ({self.failure})"
        keys = "; ".join(f"{op}: {', '.join(v) or 'none'}" for op, v in self.keys.items())
        audio = ", ".join(
            f"{d} {'ok' if a['ok'] else 'no'} ({a['peak_hz']:.0f} Hz)"
            for d, a in sorted(self.audio.items())
        )
        return f"{self.rung}: {call}; keys {keys or 'none'}; audio {audio or 'none'}"


@dataclass(slots=True, kw_only=True)
class CallResult:
    """What one matrix row's ladder of calls gave LI, next to what the study says it should."""

    key: str
    method: str
    scenario: str
    section: str
    quote: str = ""
    seed_line: int = 0
    expected_rung: str | None = None
    expected_needs: list[str] = field(default_factory=list)
    expected_keys: bool = False
    expected_audio: bool = False
    expected_call: bool = True
    withheld: list[str] = field(default_factory=list)
    rung: str | None = None  # lowest rung with both directions' audio (None: not possible)
    rungs: list[RungOutcome] = field(default_factory=list)
    call_succeeded: bool = False
    keys_recovered: bool = False
    audio_recovered: bool = False
    needs: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    tones_hz: dict[str, float] = field(default_factory=dict)  # direction -> peak frequency
    notes: list[str] = field(default_factory=list)
    ts33106: str = ""
    ladder: list[LadderStep] = field(default_factory=list)
    wavs: dict[str, str] = field(default_factory=dict)  # direction -> LEMF WAV path
    lemf_dirs: dict[str, str] = field(default_factory=dict)
    xids: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    @classmethod
    def for_expectation(cls, exp: Any) -> CallResult:
        """An empty result carrying the study's row (li.study.Expectation)."""
        return cls(
            key=exp.key,
            method=exp.method.value,
            scenario=exp.scenario.value,
            section=exp.section,
            quote=exp.quote,
            seed_line=exp.seed_line,
            expected_rung=exp.rung.value if exp.rung is not None else None,
            expected_needs=[n.value for n in sorted(exp.needs, key=lambda n: list(type(n)).index(n))],
            expected_keys=exp.keys_recoverable,
            expected_audio=exp.audio_recoverable,
            expected_call=exp.call_succeeds,
        )

    @property
    def reproduced(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["reproduced"] = self.reproduced
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CallResult:
        d = {k: v for k, v in d.items() if k != "reproduced"}
        d["rungs"] = [RungOutcome(**r) for r in d.get("rungs", [])]
        d["ladder"] = [LadderStep(**s) for s in d.get("ladder", [])]
        return cls(**d)


COLUMNS = (
    "method",
    "scenario",
    "call",
    "keys",
    "audio",
    "lowest rung",
    "LI needed (observed)",
    "study: rung / LI needed",
    "verdict",
)


def _yn(v: bool) -> str:
    return "yes" if v else "no"


def table_row(r: CallResult) -> tuple[str, ...]:
    return (
        r.method,
        r.scenario,
        "ok" if r.call_succeeded else "FAILED",
        _yn(r.keys_recovered),
        _yn(r.audio_recovered),
        r.rung or "none",
        " + ".join(r.needs),
        f"{r.expected_rung or 'none'} / {' + '.join(r.expected_needs)}",
        "as in the study" if r.reproduced else "MISMATCH",
    )


def format_table(results: Sequence[CallResult]) -> str:
    """The terminal table (plain text, fixed columns)."""
    rows = [COLUMNS, *(table_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    mismatched = [r for r in results if not r.reproduced]
    if mismatched:
        lines.append("")
        lines.append(f"{len(mismatched)} row(s) differ from the study:")
        for r in mismatched:
            for d in r.differences:
                lines.append(f"! {r.key}: {d}")
    return "\n".join(lines)


def write_json(results: Sequence[CallResult], path: Path, *, meta: dict[str, Any]) -> None:
    doc = {"meta": meta, "calls": [r.to_json() for r in results]}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def ladder_svg(steps: Sequence[LadderStep]) -> str:
    """A SIP ladder diagram: one lifeline per address, one arrow per message, in time order."""
    if not steps:
        return "<p><em>no IRI for this call</em></p>"
    nodes: list[str] = []
    for s in steps:
        for n in (s.src, s.dst):
            if n not in nodes:
                nodes.append(n)
    col, row, left, top = 190, 22, 90, 40
    width = left + col * (len(nodes) - 1) + 110
    height = top + row * len(steps) + 20
    x = {n: left + i * col for i, n in enumerate(nodes)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="monospace" font-size="11">',
        '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="8" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker></defs>',
    ]
    for n in nodes:
        out.append(
            f'<text x="{x[n]}" y="16" text-anchor="middle">{html.escape(n)}</text>'
            f'<line x1="{x[n]}" y1="24" x2="{x[n]}" y2="{height - 8}" stroke="#999"/>'
        )
    t0 = steps[0].time
    for i, s in enumerate(steps):
        y = top + i * row
        x1, x2 = x[s.src], x[s.dst]
        out.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#036" marker-end="url(#a)"/>'
            f'<text x="{(x1 + x2) / 2}" y="{y - 3}" text-anchor="middle">'
            f"{html.escape(s.label)}</text>"
            f'<text x="4" y="{y + 4}" fill="#666">{s.time - t0:6.3f}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _spectrogram_img(wav: str) -> str:
    try:
        with wave.open(wav, "rb") as w:
            pcm = w.readframes(min(w.getnframes(), 4 * w.getframerate()))
    except (OSError, EOFError, wave.Error) as exc:
        return f"<p><em>cannot read {html.escape(wav)}: {html.escape(str(exc))}</em></p>"
    data = base64.b64encode(spectrogram_png(pcm)).decode()
    return f'<img alt="spectrogram" src="data:image/png;base64,{data}"/>'


_CSS = """
body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px} .bad{background:#fdd}
.ok{background:#dfd} section{margin-top:2em;border-top:2px solid #036}
"""


def _meta_line(meta: dict[str, Any]) -> str:
    """The run's facts as a sentence (rows, how many reproduce the study, time, LEMF output)."""
    known = ("rows", "reproduced", "seconds", "lemf")
    text = (
        f"{meta.get('reproduced', '?')} of {meta.get('rows', '?')} rows reproduce the study; "
        f"run time {meta.get('seconds', '?')} s; LEMF output in {meta.get('lemf', '?')}."
    )
    rest = {k: v for k, v in meta.items() if k not in known}
    if rest:
        text += " " + json.dumps(rest, sort_keys=True)
    return html.escape(text)


def write_html(results: Sequence[CallResult], path: Path, *, meta: dict[str, Any]) -> None:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>imslab matrix</title>",
        f"<style>{_CSS}</style></head><body><h1>imslab matrix</h1>",
        f"<p>{_meta_line(meta)}</p><table><tr>",
        "".join(f"<th>{c}</th>" for c in COLUMNS),
        "<th>study section</th></tr>",
    ]
    for r in results:
        cls = "ok" if r.reproduced else "bad"
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in table_row(r))
        parts.append(
            f"<tr class='{cls}'>{cells}<td><a href='#{html.escape(r.key)}'>"
            f"{html.escape(r.section)}</a></td></tr>"
        )
    parts.append("</table>")
    for r in results:
        parts.append(f"<section id='{html.escape(r.key)}'><h2>{html.escape(r.key)}</h2><ul>")
        parts.append(
            f"<li>study: keys {_yn(r.expected_keys)}, audio {_yn(r.expected_audio)}, "
            f"needs {html.escape(' + '.join(r.expected_needs))} (section {html.escape(r.section)})"
            "</li>"
        )
        parts.append(
            f"<li>observed: call {'ok' if r.call_succeeded else 'failed'}, keys "
            f"{_yn(r.keys_recovered)}, audio {_yn(r.audio_recovered)}</li>"
        )
        parts.append(f"<li>TS 33.106: {html.escape(r.ts33106)}</li>")
        for d in r.differences:
            parts.append(f"<li class='bad'>difference: {html.escape(d)}</li>")
        for n in r.notes:
            parts.append(f"<li>{html.escape(n)}</li>")
        poi = r.ladder[0].poi if r.ladder else ""
        parts.append(
            f"</ul><h3>SIP ladder (from IRI: each message once, as {html.escape(poi or 'the POI')}"
            " received or sent it)</h3>"
        )
        parts.append(ladder_svg(r.ladder))
        for direction, wav in sorted(r.wavs.items()):
            tone = r.tones_hz.get(direction)
            label = f"{direction}: peak {tone:.0f} Hz" if tone is not None else direction
            parts.append(f"<h3>recovered audio {html.escape(label)}</h3>")
            parts.append(_spectrogram_img(wav))
        parts.append("</section>")
    parts.append("</body></html>")
    path.write_text("".join(parts))
