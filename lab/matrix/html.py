"""``matrix.html``: the study's table as measured, for an LI engineer.

One self-contained page (links to the LEMF's files are relative to it):

* the summary table -- observed (call, keys, audio, lowest rung, LI needed) beside the study's
  answer; a row that disagrees is red and listed above the table;
* per row: the study's quote with its section and seed line, the TS 33.106 / Q7-Q8 statement,
  the capability ladder (every rung tried: what was granted, the call's outcome and failure
  point, keys per operator and their source, audio per direction, task XIDs, LEMF directories),
  the SIP ladder of the deciding call drawn from the LEMF's ``iri.jsonl`` across every POI (the
  registration apart, the MITM's key-management rewrite marked), a spectrogram with time and
  frequency axes per recovered direction, an ``<audio>`` player and links to the WAV, pcap and
  JSON files.

Every element id derives from the row key, so ids are unique in the page.
"""

from __future__ import annotations

import base64
import html
import json
import os
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lab.matrix.report import CallResult, RungOutcome, table_row
from lab.matrix.sipladder import ladder_steps, ladder_svg, registration_dirs
from lab.matrix.spectrogram import spectrogram_png

_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222} table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;vertical-align:top}
tr.mismatch td{background:#fbb} tr.agree td{background:#dfd} tr.success td{background:#dfd}
tr.skipped td{color:#888} .mismatch-list{background:#fbb;padding:.5em 1em;border:2px solid #c00}
section{margin-top:2em;border-top:2px solid #036} blockquote{border-left:4px solid #036;
margin:.5em 0;padding:.2em .8em;background:#f4f6fa} .files a{margin-right:.8em}
figure{display:inline-block;margin:.5em 1.5em .5em 0} code{font-size:12px}
"""


def slug(key: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in key)


def row_id(r: CallResult) -> str:
    """The row's id stem: its key, and the rungs withheld (a row may run with and without)."""
    return slug(r.key + ("/without/" + "/".join(r.withheld) if r.withheld else ""))


def _e(text: object) -> str:
    return html.escape(str(text))


def _rel(path: str | Path, base: Path) -> str:
    return os.path.relpath(Path(path), base).replace(os.sep, "/")


def spectrogram_svg(wav: str, *, svg_id: str, title: str) -> str:
    """A spectrogram (PNG) inside an SVG with time and frequency axes and their labels."""
    try:
        with wave.open(wav, "rb") as w:
            rate = w.getframerate()
            pcm = w.readframes(min(w.getnframes(), 4 * rate))
    except (OSError, EOFError, wave.Error) as exc:
        return f'<p id="{_e(svg_id)}"><em>cannot read {_e(wav)}: {_e(exc)}</em></p>'
    png = spectrogram_png(pcm, scale=2)
    pw = int.from_bytes(png[16:20], "big")
    ph = int.from_bytes(png[20:24], "big")
    seconds = len(pcm) / 2 / rate
    left, top, bottom, right = 56, 22, 40, 24
    width, height = left + pw + right, top + ph + bottom
    nyquist = rate / 2
    out = [
        f'<svg id="{_e(svg_id)}" class="spectrogram" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="10">',
        f'<text x="{left}" y="13" font-size="12">{_e(title)}</text>',
        f'<image x="{left}" y="{top}" width="{pw}" height="{ph}" '
        f'href="data:image/png;base64,{base64.b64encode(png).decode()}"/>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>',
    ]
    for hz in range(0, int(nyquist) + 1, 1000):  # frequency axis
        y = top + ph - ph * hz / nyquist
        out.append(
            f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="#333"/>'
            f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end">{hz}</text>'
        )
    step = 0.25 if seconds <= 2 else 0.5
    t = 0.0
    while t <= seconds + 1e-9:  # time axis
        xx = left + pw * t / seconds if seconds else left
        out.append(
            f'<line x1="{xx:.1f}" y1="{top + ph}" x2="{xx:.1f}" y2="{top + ph + 4}" '
            'stroke="#333"/>'
            f'<text x="{xx:.1f}" y="{top + ph + 15}" text-anchor="middle">{t:g}</text>'
        )
        t += step
    out.append(
        f'<text class="axis-label" x="{left + pw / 2}" y="{height - 4}" '
        'text-anchor="middle">time (s)</text>'
        f'<text class="axis-label" x="12" y="{top + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + ph / 2})">frequency (Hz)</text></svg>'
    )
    return "".join(out)


def _files(outcome: RungOutcome, base: Path, sid: str) -> str:
    links = []
    for op, d in sorted(outcome.lemf_dirs.items()):
        for name in (
            "audio-from-target.wav",
            "audio-to-target.wav",
            "cc.pcap",
            "cc-encrypted.pcap",
            "x2x3.pcap",
            "iri.jsonl",
            "summary.json",
        ):
            p = Path(d) / name
            if p.exists():
                links.append(f'<a href="{_e(_rel(p, base))}">{_e(op)}: {_e(name)}</a>')
    for direction, wav in sorted(outcome.wavs.items()):
        links.append(f'<a href="{_e(_rel(wav, base))}">decrypted {_e(direction)}.wav</a>')
    return f'<p class="files" id="{sid}-files">LEMF files: {" ".join(links) or "none"}</p>'


def _rungs_table(r: CallResult, sid: str) -> str:
    head = (
        "<tr><th>rung</th><th>granted (X1 tasks)</th><th>call</th><th>keys in the LEMF "
        "(per operator)</th><th>audio per direction</th><th>audio from</th><th>task XIDs</th>"
        "<th>notes</th></tr>"
    )
    rows = []
    for o in r.rungs:
        rid = f"{sid}-rung-{o.rung}"
        if o.skipped:
            rows.append(
                f'<tr id="{rid}" class="skipped"><td>{_e(o.rung)}</td>'
                f'<td colspan="7">skipped: {_e(o.skipped)}</td></tr>'
            )
            continue
        cls = "success" if o.audio_ok else "tried"
        call = "ok" if o.call_ok else f"FAILED: {_e(o.failure)}"
        keys = "<br>".join(f"{_e(op)}: {_e(', '.join(v) or 'none')}" for op, v in o.keys.items())
        audio = "<br>".join(
            f"{_e(d)}: {'ok' if a['ok'] else 'no'} (peak {a['peak_hz']:.0f} Hz, "
            f"expected {a['expected_hz']:.0f} Hz)"
            for d, a in sorted(o.audio.items())
        )
        src = (
            f"keys: {_e(o.audio_from['keys'])} ({_e(', '.join(o.key_source))}); "
            f"media: {_e(o.audio_from['media'])}"
            if o.audio_from
            else ""
        )
        if o.substitutes_from:
            src += f"<br>substitutes from: {_e(', '.join(o.substitutes_from))}"
        if o.media_rekeyed:
            src += f"<br>media re-keyed: {o.media_rekeyed} packets"
        xids = "<br>".join(f"{_e(op)}: <code>{_e(x)}</code>" for op, x in o.xids.items())
        notes = "<br>".join(_e(n) for n in o.notes)
        if o.repeated:
            notes = f"<b>repeated</b>: {_e(o.repeated)}<br>{notes}"
        rows.append(
            f'<tr id="{rid}" class="{cls}"><td>{_e(o.rung)}</td><td>{_e(", ".join(o.grants))}'
            f"</td><td>{call}</td><td>{keys}</td><td>{audio or 'none'}</td><td>{src}</td>"
            f"<td>{xids}</td><td>{notes}</td></tr>"
        )
    return f'<table id="{sid}-rungs" class="rungs">{head}{"".join(rows)}</table>'


def _section(r: CallResult, base: Path) -> str:
    sid = f"row-{row_id(r)}"
    tried = [o for o in r.rungs if not o.skipped]
    shown = next((o for o in tried if o.audio_ok), tried[0] if tried else None)
    verdict = (
        '<p class="agree">Observed as in the study.</p>'
        if r.reproduced
        else '<div class="mismatch-list"><strong>Mismatch with the study:</strong><ul>'
        + "".join(f"<li>{_e(d)}</li>" for d in r.differences)
        + "</ul></div>"
    )
    parts = [
        f'<section id="{sid}"><h2>{_e(r.key)}'
        + (f" (withheld: {_e(', '.join(r.withheld))})" if r.withheld else "")
        + "</h2>",
        f"<blockquote>{_e(r.quote)}<br><small>study section {_e(r.section)}, seed line "
        f"{r.seed_line}</small></blockquote>",
        f"<p>Study: lowest rung <b>{_e(r.expected_rung or 'none')}</b>, LI needed "
        f"<b>{_e(' + '.join(r.expected_needs))}</b>. Observed: lowest rung "
        f"<b>{_e(r.rung or 'none')}</b>, LI needed <b>{_e(' + '.join(r.needs))}</b>"
        + (f" (withheld: {_e(', '.join(r.withheld))})" if r.withheld else "")
        + ".</p>",
        verdict,
        f'<p id="{sid}-ts33106">{_e(r.ts33106)}</p>',
        "<h3>Capability ladder (one real call per rung)</h3>",
        _rungs_table(r, sid),
    ]
    if shown is not None:
        dirs = [Path(d) for d in shown.lemf_dirs.values()]
        target = "target UE"
        parts.append(
            f"<h3>SIP ladder of the {_e(shown.rung)} call (from the LEMF's iri.jsonl, every "
            "POI)</h3>"
        )
        parts.append(ladder_svg(ladder_steps(dirs), target=target, svg_id=f"{sid}-sip"))
        parts.append("<h4>Registration</h4>")
        parts.append(
            ladder_svg(
                ladder_steps(registration_dirs(dirs), registration=True),
                target=target,
                peer="registrar side",
                svg_id=f"{sid}-register",
            )
        )
        parts.append(_files(shown, base, sid))
        for direction, wav in sorted(shown.wavs.items()):
            a = shown.audio.get(direction, {})
            title = f"{direction}: peak {a.get('peak_hz', 0):.0f} Hz"
            did = f"{sid}-{direction}"
            parts.append(
                f'<figure id="{did}-figure">'
                + spectrogram_svg(wav, svg_id=f"{did}-spectrogram", title=title)
                + f'<figcaption><audio id="{did}-audio" controls preload="none" '
                f'src="{_e(_rel(wav, base))}"></audio></figcaption></figure>'
            )
    parts.append("</section>")
    return "".join(parts)


def _meta_line(meta: dict[str, Any]) -> str:
    known = ("rows", "reproduced", "seconds", "lemf")
    text = (
        f"{meta.get('reproduced', '?')} of {meta.get('rows', '?')} rows reproduce the study; "
        f"run time {meta.get('seconds', '?')} s; LEMF output in {meta.get('lemf', '?')}."
    )
    rest = {k: v for k, v in meta.items() if k not in known}
    if "cpus" in rest or "jobs" in rest:
        text += f" {rest.pop('jobs', '?')} rows at a time on {rest.pop('cpus', '?')} CPUs"
        if "load" in rest:
            load = rest.pop("load")
            text += ", load average " + (
                " / ".join(f"{x:.2f}" for x in load) if isinstance(load, list) else str(load)
            )
        text += "."
    if rest.get("withheld") == []:
        rest.pop("withheld")
    elif "withheld" in rest:
        text += f" Rungs withheld: {', '.join(map(str, rest.pop('withheld')))}."
    # anything else the run recorded, as it was recorded
    text += "".join(f" {k}: {json.dumps(v)}." for k, v in sorted(rest.items()))
    return _e(text)


def write_html(results: Sequence[CallResult], path: Path, *, meta: dict[str, Any]) -> None:
    base = path.parent
    from lab.matrix.report import COLUMNS

    mismatched = [r for r in results if not r.reproduced]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>imslab matrix</title>",
        f"<style>{_CSS}</style></head><body><h1>imslab matrix: the study's table, measured</h1>",
        f'<p id="meta">{_meta_line(meta)}</p>',
    ]
    if mismatched:
        parts.append(
            '<div id="mismatches" class="mismatch-list"><strong>'
            f"{len(mismatched)} row(s) disagree with the study:</strong><ul>"
            + "".join(
                f'<li><a href="#row-{row_id(r)}">{_e(r.key)}</a>: '
                f"{_e('; '.join(r.differences))}</li>"
                for r in mismatched
            )
            + "</ul></div>"
        )
    parts.append('<table id="summary"><tr>' + "".join(f"<th>{_e(c)}</th>" for c in COLUMNS))
    parts.append("<th>study section</th></tr>")
    for r in results:
        cls = "agree" if r.reproduced else "mismatch"
        cells = "".join(f"<td>{_e(c)}</td>" for c in table_row(r))
        parts.append(
            f'<tr id="summary-{row_id(r)}" class="{cls}">{cells}<td>'
            f'<a href="#row-{row_id(r)}">{_e(r.section)}</a></td></tr>'
        )
    parts.append("</table>")
    parts.extend(_section(r, base) for r in results)
    parts.append("</body></html>")
    path.write_text("".join(parts))
