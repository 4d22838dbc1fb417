"""What the LEMF container wrote for one LI task, checked where it was written.

Run inside the ``lemf`` container (its image has the project installed) by
``deploy/compose-ci.sh``: ``python3 - XID CALLER_HZ CALLEE_HZ [CALLS] < deploy/check_lemf.py``.
It waits (bounded) until CALLS (default 1) calls of the task are complete, then checks in each
the IRI (the INVITE, its 200 and the BYE), the keys the LEMF recovered, both directions of
content decrypted into WAVs carrying the tones the two UEs sent, and the LI file modes (0600
files, 0700 directories). Prints one JSON report; exit status 1 with the reasons when anything is
missing.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

from lab.matrix.combine import tone_in_wav

STATE = Path(os.environ.get("IMSLAB_STATE", "/var/lib/imslab"))  # the LEMF writes below it
POLLS, POLL_INTERVAL = 40, 0.5  # 20 s for the LEMF to see the BYE and flush the call


def _summaries(xid: str) -> list[tuple[Path, dict[str, object]]]:
    out = []
    for path in sorted(STATE.rglob("summary.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being rewritten (tmp + rename): read it on the next pass
        if isinstance(data, dict) and data.get("xid") == xid:
            out.append((path, data))
    return out


def _iri(call_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (call_dir / "iri.jsonl").read_text().splitlines()]


def _label(rec: dict[str, object]) -> str:
    sip = rec.get("sip")
    if isinstance(sip, dict):
        return str(sip.get("method") or sip.get("status") or "?")
    return str(rec.get("type"))


def main(xid: str, caller_hz: float, callee_hz: float, expected_calls: int = 1) -> int:
    """The target is the caller: ``audio-from-target.wav`` carries the caller's tone."""
    calls: list[tuple[Path, dict[str, object]]] = []
    for _ in range(POLLS):
        found = _summaries(xid)
        calls = [(p, s) for p, s in found if s.get("established")]
        if len(calls) >= expected_calls and all(s.get("complete") for _, s in calls):
            break
        time.sleep(POLL_INTERVAL)
    problems: list[str] = []
    found = _summaries(xid)
    # the target's REGISTER (the call client registers first) is IRI too, under its own Call-ID
    others = [p.parent for p, s in found if not s.get("established")]
    report: dict[str, object] = {
        "xid": xid,
        "calls": len(calls),
        "other_records": {d.name: sorted({_label(r) for r in _iri(d)}) for d in others},
    }
    if len(calls) != expected_calls:
        problems.append(
            f"{len(calls)} established calls for task {xid} (expected {expected_calls})"
        )
    checked = []
    for path, summary in calls:
        call_report: dict[str, object] = {}
        problems += [
            f"{path.parent.name}: {p}"
            for p in _check_call(path.parent, summary, caller_hz, callee_hz, call_report)
        ]
        checked.append(call_report)
    report["checked"] = checked
    report["problems"] = problems
    print(json.dumps(report, indent=1))
    return 1 if problems else 0


def _check_call(
    call_dir: Path,
    summary: dict[str, object],
    caller_hz: float,
    callee_hz: float,
    report: dict[str, object],
) -> list[str]:
    problems: list[str] = []
    report |= {"dir": str(call_dir), "files": summary.get("files")}
    if not summary.get("complete") or summary.get("ended") != "BYE":
        problems.append("summary.json never said the call ended with a BYE")
    iri = _iri(call_dir)
    labels = [_label(r) for r in iri]
    report["iri"] = labels
    for want in ("INVITE", "200", "BYE"):
        if want not in labels:
            problems.append(f"no {want} in iri.jsonl")
    report["iri_pois"] = sorted({str(r.get("poi")) for r in iri})
    keys_file = call_dir / "keys.jsonl"
    keys = keys_file.read_text().splitlines() if keys_file.exists() else []
    report["keys"] = len(keys)
    if not keys or not summary.get("keys_available"):
        problems.append("no keys recovered")
    streams = summary.get("streams")
    assert isinstance(streams, list)
    report["streams"] = [
        {k: s.get(k) for k in ("direction", "packets", "decrypted", "decrypt_failures")}
        for s in streams
    ]
    if len(streams) != 2 or not all(s.get("decrypted") for s in streams):
        problems.append("not both directions decrypted")
    if summary.get("sequence_gaps"):
        problems.append(f"sequence gaps: {summary['sequence_gaps']}")
    tones: dict[str, list[float]] = {}
    for name, hz in (("audio-from-target.wav", caller_hz), ("audio-to-target.wav", callee_hz)):
        wav = call_dir / name
        tones[name] = [f for f in (caller_hz, callee_hz) if tone_in_wav(wav, f)[0]]
        if tones[name] != [hz]:
            problems.append(f"{name}: tones {tones[name]}, expected only {hz:g} Hz")
    report["tones"] = tones
    for p in [call_dir, *call_dir.iterdir()]:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode != (0o700 if p.is_dir() else 0o600):
            problems.append(f"{p.name} has mode {mode:o}")
    return problems


if __name__ == "__main__":
    expected = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    sys.exit(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), expected))
