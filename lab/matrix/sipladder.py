"""SIP ladder diagrams drawn from the LEMF's own ``iri.jsonl`` across every POI of a call.

The LEMF records each SIP message once per POI that reported it, with the POI's name and the
direction relative to the target. The ladder puts the target's UE on the left, the POIs in the
order the call crossed them, the peer on the right; a message from the target arrives at a POI
from its left neighbour, one towards the target from its right neighbour. A MITM's key record
(``source: mitm``) is drawn on its POI's lifeline: that is where the ``a=key-mgmt`` payload was
rewritten. Each message has a row of its own and every column is as wide as the longest label,
so labels never overlap.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderStep:
    """One message as one POI reported it (or a MITM's rewrite marker: ``mark``)."""

    time: float
    poi: str
    towards_target: bool
    label: str
    mark: str = ""  # non-empty: an annotation on the POI's lifeline, not an arrow


def _records(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _label(sip: dict[str, Any]) -> str:
    if "method" in sip:
        text = str(sip["method"])
    else:
        text = f"{sip.get('status', '?')} {sip.get('reason', '')}".strip()
    sdp = sip.get("sdp") or {}
    km: set[str] = set(sdp.get("session_key_mgmt") or [])
    crypto = False
    for m in sdp.get("media") or []:
        km |= set(m.get("key_mgmt") or [])
        crypto |= bool(m.get("crypto"))
    if km:
        text += f" [key-mgmt: {', '.join(sorted(km))}]"
    elif crypto:
        text += " [SDES crypto]"
    elif sdp:
        text += " [SDP]"
    return text


def ladder_steps(call_dirs: Iterable[Path], *, registration: bool = False) -> list[LadderStep]:
    """The ladder of the calls (or, ``registration``, the REGISTERs) in these LEMF dirs."""
    out: list[LadderStep] = []
    for d in call_dirs:
        # the LEMF files a task's REGISTERs apart from its calls (registrations.jsonl)
        log = d / ("registrations.jsonl" if registration else "iri.jsonl")
        for rec in _records(log):
            if rec.get("type") == "sip":
                sip = rec.get("sip") or {}
                is_reg = str(sip.get("cseq", "")).endswith("REGISTER")
                if is_reg != registration:
                    continue
                out.append(
                    LadderStep(
                        time=float(rec.get("time") or 0),
                        poi=str(rec.get("poi")),
                        towards_target=rec.get("direction") == "to-target",
                        label=_label(sip),
                    )
                )
            elif (
                rec.get("type") == "key-record" and rec.get("source") == "mitm" and not registration
            ):
                what = "keys to the LEMF" if rec.get("available") else str(rec.get("reason"))
                out.append(
                    LadderStep(
                        time=float(rec.get("time") or 0),
                        poi=str(rec.get("poi")),
                        towards_target=False,
                        label="",
                        mark=f"MITM rewrote a=key-mgmt: {what}",
                    )
                )
    out.sort(key=lambda h: h.time)
    return out


def registration_dirs(dirs: Iterable[Path]) -> list[Path]:
    """The task directories of these LEMF call (or task) directories that hold a REGISTER:
    the LEMF files registrations per task, in ``<xid>/registrations.jsonl``."""
    found: list[Path] = []
    for d in dirs:
        for task in (d, d.parent):
            if task not in found and any(
                r.get("type") == "sip" for r in _records(task / "registrations.jsonl")
            ):
                found.append(task)
    return found


def ladder_svg(
    steps: Sequence[LadderStep], *, target: str = "target UE", peer: str = "peer", svg_id: str
) -> str:
    """The ladder as inline SVG (``svg_id`` must be unique in the page)."""
    if not steps:
        return f'<p id="{html.escape(svg_id)}"><em>no IRI records</em></p>'
    pois: list[str] = []
    for h in steps:
        if h.poi not in pois:
            pois.append(h.poi)
    arrows = [h for h in steps if not h.mark]
    if arrows and arrows[0].towards_target:
        pois.reverse()  # the call came to the target: the first POI is the farthest
    nodes = [target, *pois, peer]
    longest = max([len(h.label) for h in arrows] + [len(n) for n in nodes] + [10])
    col = int(longest * 6.6) + 24
    left, top, row = 70, 44, 24
    width = left + col * len(nodes) + 10
    height = top + row * len(steps) + 16
    x = {n: left + col // 2 + i * col for i, n in enumerate(nodes)}
    for h in steps:
        if h.mark:
            width = max(width, int(x[h.poi] + 9 + len(h.mark) * 6.6 + 10))
    marker = f"{svg_id}-arrow"
    out = [
        f'<svg id="{html.escape(svg_id)}" class="sip-ladder" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" font-family="monospace" font-size="11">',
        f'<defs><marker id="{html.escape(marker)}" markerWidth="8" markerHeight="8" refX="8" '
        'refY="4" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#036"/></marker></defs>',
        '<text x="4" y="14" fill="#666">t (s)</text>',
    ]
    for n in nodes:
        out.append(
            f'<text class="lifeline" x="{x[n]}" y="16" text-anchor="middle" font-weight="bold">'
            f"{html.escape(n)}</text>"
            f'<line x1="{x[n]}" y1="24" x2="{x[n]}" y2="{height - 6}" stroke="#999"/>'
        )
    t0 = steps[0].time
    for i, h in enumerate(steps):
        y = top + i * row
        out.append(f'<text x="4" y="{y + 4}" fill="#666">{h.time - t0:7.3f}</text>')
        at = nodes.index(h.poi)
        if h.mark:
            out.append(
                f'<circle cx="{x[h.poi]}" cy="{y}" r="5" fill="#c00"/>'
                f'<text class="mitm-mark" x="{x[h.poi] + 9}" y="{y + 4}" fill="#c00">'
                f"{html.escape(h.mark)}</text>"
            )
            continue
        src = nodes[at + 1] if h.towards_target else nodes[at - 1]
        x1, x2 = x[src], x[h.poi]
        out.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="#036" '
            f'marker-end="url(#{html.escape(marker)})"/>'
            f'<text class="msg" x="{(x1 + x2) / 2}" y="{y - 4}" text-anchor="middle">'
            f"{html.escape(h.label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
