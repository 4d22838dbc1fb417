"""Matrix results: a row's record (its capability ladder, rung by rung), the terminal table and
the JSON report; the HTML report is :mod:`lab.matrix.html`.

The table shows the study's answer beside the observation; a row that disagrees says
"MISMATCH" and its differences are listed under the table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    #: operators whose delivery held CC their own network decrypted (an e2ae anchor)
    en_clair: list[str] = field(default_factory=list)
    repeated: str = ""  # the call was placed twice: why, and the first attempt
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
            expected_needs=exp.needs_text().split(" + "),
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
        r.scenario + (f" (without {', '.join(r.withheld)})" if r.withheld else ""),
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


def write_html(results: Sequence[CallResult], path: Path, *, meta: dict[str, Any]) -> None:
    """The HTML report (:mod:`lab.matrix.html`)."""
    from lab.matrix.html import write_html as _write

    _write(results, path, meta=meta)
