"""SIP parser throughput: an INVITE with SDP, parsed (and parsed + re-encoded), messages/s.

Run: ``.venv/bin/python benchmarks/bench_sip_parser.py [--n 20000] [--sippy-path DIR]``.
With ``--sippy-path`` (a site-packages directory holding sippy 2.5.0, e.g. from
``python3 -m venv /tmp/sippyvenv && /tmp/sippyvenv/bin/pip install sippy==2.5.0``) the same
message also goes through sippy's parser on the same machine for a side-by-side figure.
Every iteration parses a fresh copy (a distinct branch/tag/Call-ID), so no cache helps.
Numbers go to docs/benchmarks/sip-parser.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from ims.sip import StreamParser, parse_message
from ims.sip import uri as uri_module

SDP = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 127.0.1.1\r\n"
    "s=-\r\n"
    "c=IN IP4 127.0.1.1\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/SAVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
    "a=sendrecv\r\n"
)


def invite(i: int) -> bytes:
    head = (
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK{i:016x};rport\r\n"
        "Max-Forwards: 70\r\n"
        'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
        f"From: Alice <sip:alice@atlanta.example.com>;tag={i:08x}\r\n"
        f"Call-ID: {i:012x}@pc33.atlanta.example.com\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:alice@127.0.1.1:5060;transport=udp>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO\r\n"
        "User-Agent: imslab-bench\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    )
    return (head + SDP).encode()


Case = tuple[str, Callable[[Any], object], list[Any]]


def run(cases: list[Case], repeat: int) -> None:
    """Interleaved rounds (every case once per round) so load spikes from other processes
    hit all cases alike; process CPU time, not wall time, because the lab VM's two cores are
    shared with other jobs. Reports the best and the median round."""
    runs: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(repeat):
        for name, fn, msgs in cases:
            start = time.process_time()
            for m in msgs:
                fn(m)
            runs[name].append((time.process_time() - start) / len(msgs))
    for name, _, _ in cases:
        best, med = min(runs[name]), statistics.median(runs[name])
        print(
            f"{name:34s} best {best * 1e6:6.1f} us  median {med * 1e6:6.1f} us  "
            f"{1 / best:9,.0f} msg/s"
        )


def typed(data: bytes) -> object:
    m = parse_message(data)
    return (m.vias, m.from_, m.to, m.cseq, m.call_id, m.contacts, m.max_forwards, m.content_type)


def stream(data: bytes) -> object:
    return StreamParser().feed(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000, help="messages per round")
    ap.add_argument("--repeat", type=int, default=15, help="rounds")
    ap.add_argument("--no-uri-cache", action="store_true", help="disable the URI memo")
    ap.add_argument("--sippy-path", help="site-packages dir containing sippy (optional)")
    args = ap.parse_args()
    if args.no_uri_cache:
        uri_module.URI_CACHE_MAX = 0
    msgs = [invite(i) for i in range(args.n)]
    print(
        f"INVITE+SDP: {len(msgs[0])} bytes, {args.n} messages x {args.repeat} runs, "
        f"Python {sys.version.split()[0]}"
    )
    cases: list[Case] = [
        ("parse_message (validated)", parse_message, msgs),
        ("parse_message(validate=False)", lambda d: parse_message(d, validate=False), msgs),
        ("parse + typed accessors", typed, msgs),
        ("parse + encode", lambda d: parse_message(d).encode(), msgs),
        ("StreamParser.feed (one message)", stream, msgs),
    ]
    if args.sippy_path:
        sys.path.insert(0, args.sippy_path)
        from sippy.SipRequest import SipRequest  # type: ignore[import-not-found]

        def sippy_typed(d: str) -> object:
            r = SipRequest(d)
            return (
                [v.getBranch() for v in r.getHFBodys("via")],
                r.getHFBody("from").getUrl(),
                r.getHFBody("to").getUrl(),
                r.getHFBody("cseq").getCSeq(),
                r.getHFBody("call-id"),
                r.getHFBody("contact").getUrl(),
                r.getHFBody("max-forwards"),
                r.getBody(),
            )

        smsgs = [m.decode() for m in msgs]
        cases += [
            ("sippy SipRequest(buf)", SipRequest, smsgs),
            ("sippy + typed accessors", sippy_typed, smsgs),
            ("sippy + str()", lambda d: str(SipRequest(d)), smsgs),
        ]
    run(cases, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
