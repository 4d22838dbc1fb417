"""MIKEY throughput: complete exchanges per second per mode, plus codec and PRF rates.

An "exchange" is initiator ``initiate`` + responder ``receive`` (+ initiator ``receive`` of the
R_MESSAGE when the mode has one), i.e. both sides' full work, in one Python thread. RSA keys
(2048 bit) and certificates are made once, outside the timed loop. Each measurement is bounded
by a count *and* a time budget; the best of ``--repeat`` runs is reported.

    .venv/bin/python benchmarks/bench_mikey.py [--seconds 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from ims.mikey.certs import TrustStore, issue_credentials, make_ca
from ims.mikey.constants import DhGroup, EncrAlg
from ims.mikey.kdf import prf
from ims.mikey.message import decode_message
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.replay import ReplayCache

NOW = time.time()


def rate(fn: Callable[[], Any], seconds: float, max_count: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while n < max_count and time.perf_counter() < deadline:
            fn()
            n += 1
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ca = make_ca("bench CA", now=NOW)
    alice = issue_credentials(ca, "sip:alice@ims.lab", now=NOW)
    bob = issue_credentials(ca, "sip:bob@ims.lab", now=NOW)
    trust = TrustStore((ca.certificate,))
    psk = os.urandom(16)

    def two_way(ini: Any, resp: Any) -> None:
        reply = resp.receive(ini.initiate(NOW), NOW)
        assert reply.ok, reply.error
        if reply.message is not None:
            ini.receive(reply.message, NOW)

    cache = ReplayCache(window=1e9, max_entries=10_000)
    cases: list[tuple[str, Callable[[], None]]] = [
        (
            "PSK, AES-CM KEMAC, no V",
            lambda: two_way(
                PskInitiator(psk=psk, verification=False), PskResponder(psk=psk, replay=cache)
            ),
        ),
        (
            "PSK, AES-CM KEMAC, with V",
            lambda: two_way(PskInitiator(psk=psk), PskResponder(psk=psk, replay=cache)),
        ),
        (
            "PSK, AES-KW KEMAC, with V",
            lambda: two_way(
                PskInitiator(psk=psk, encr_alg=EncrAlg.AES_KW_128),
                PskResponder(psk=psk, replay=cache),
            ),
        ),
        (
            "PKE (RSA-2048, CA chain), with V",
            lambda: two_way(
                PkeInitiator(credentials=alice, responder_certificate=bob.certificate),
                PkeResponder(credentials=bob, trust=trust, replay=cache),
            ),
        ),
        (
            "DH-SIGN OAKLEY 5 (RSA-2048)",
            lambda: two_way(
                DhInitiator(credentials=alice, trust=trust, group=DhGroup.OAKLEY_5),
                DhResponder(credentials=bob, trust=trust, replay=cache),
            ),
        ),
        (
            "DH-SIGN OAKLEY 2 (RSA-2048)",
            lambda: two_way(
                DhInitiator(credentials=alice, trust=trust, group=DhGroup.OAKLEY_2),
                DhResponder(credentials=bob, trust=trust, replay=cache),
            ),
        ),
        (
            "DHHMAC OAKLEY 5",
            lambda: two_way(
                DhHmacInitiator(
                    psk=psk, group=DhGroup.OAKLEY_5, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
                ),
                DhHmacResponder(psk=psk, replay=cache),
            ),
        ),
        (
            "DHHMAC OAKLEY 1",
            lambda: two_way(
                DhHmacInitiator(
                    psk=psk, group=DhGroup.OAKLEY_1, idr="sip:bob@ims.lab", idi="sip:alice@ims.lab"
                ),
                DhHmacResponder(psk=psk, replay=cache),
            ),
        ),
        (
            "RSA-R (RSA-2048, CA chain)",
            lambda: two_way(
                RsaRInitiator(credentials=alice, trust=trust, replay=ReplayCache()),
                RsaRResponder(credentials=bob, trust=trust, replay=cache),
            ),
        ),
    ]
    sample = PskInitiator(psk=psk).initiate(NOW)
    pk_sample = PkeInitiator(credentials=alice, responder_certificate=bob.certificate).initiate(NOW)
    tgk192 = os.urandom(192)
    label = os.urandom(25)
    micro: list[tuple[str, Callable[[], None]]] = [
        (f"decode PSK_INIT ({len(sample)} B)", lambda: decode_message(sample)),
        (f"decode+encode PK_INIT ({len(pk_sample)} B)", lambda: decode_message(pk_sample).encode()),
        ("PRF 16-byte TGK -> 16-byte TEK", lambda: prf(psk, label, 16)),
        ("PRF 192-byte DH secret -> 16-byte TEK", lambda: prf(tgk192, label, 16)),
    ]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs; best of {args.repeat} x {args.seconds}s"
    )
    print("| exchange (both sides) | exchanges/s | ms/exchange |")
    print("|---|---:|---:|")
    for name, fn in cases:
        r = rate(fn, args.seconds, 100_000, args.repeat)
        print(f"| {name} | {r:,.0f} | {1000 / r:.2f} |")
    print()
    print("| operation | ops/s |")
    print("|---|---:|")
    for name, fn in micro:
        print(f"| {name} | {rate(fn, args.seconds / 2, 1_000_000, args.repeat):,.0f} |")


if __name__ == "__main__":
    main()
