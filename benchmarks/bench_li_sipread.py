"""What reading SIP costs LI: the IRI-POI's and the LEMF's readers against the full parse.

Both LI readers go through ``ims.sip`` (issue 15: SIP read one way). This script times, per
message of real-shaped calls (``tests/li/poi/sipmsgs.py``: INVITE with SDP, 100, 180, 200
with SDP, ACK, BYE, 200), in interleaved rounds:

* ``full``: ``ims.sip.parse_message`` with validation and the fields a proxy reads (the anchor:
  what every element already pays for each message);
* ``poi``: ``li.poi.sipview.parse`` (bytes in, the POI's view out);
* ``lemf``: ``li.lemf.sipinfo.summarise`` (bytes in, the LEMF's summary with its SDP out).

Run: ``.venv/bin/python benchmarks/bench_li_sipread.py [--calls 300] [--rounds 7]``; prints
µs per message (median of the rounds) and the ratio to ``full``, with the load average.
Numbers go to docs/benchmarks/li.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from ims.sip import parse_message
from li.lemf.sipinfo import summarise
from li.poi.sipview import parse as poi_parse
from tests.li.poi.sipmsgs import call as call_msgs


def _full(raw: bytes) -> object:
    m = parse_message(raw)
    return (m.call_id, m.cseq, m.from_, m.to, m.via, m.body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    msgs = [raw for i in range(args.calls) for raw, _ in call_msgs(f"bench-{i}")]
    cases: dict[str, Callable[[bytes], object]] = {
        "full": _full,
        "poi": poi_parse,
        "lemf": summarise,
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for raw in msgs:
                fn(raw)
            times[name].append((time.perf_counter() - t0) / len(msgs) * 1e6)
    us = {k: round(statistics.median(v), 2) for k, v in times.items()}
    print(
        json.dumps(
            {
                "messages": len(msgs),
                "us_per_message": us,
                "ratio_to_full": {k: round(v / us["full"], 2) for k, v in us.items()},
                "load": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            }
        )
    )


if __name__ == "__main__":
    main()
