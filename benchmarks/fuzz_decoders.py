"""Long mutation-fuzz run of every network decoder: SIP, SDP, MIKEY, X2/X3, X1 XML, X1 handler.

    .venv/bin/python benchmarks/fuzz_decoders.py [--inputs 1000000] [--decoders sip,x1,...]
                                                 [--seed 1] [--max-seconds 900]

The suite runs a short hypothesis pass per decoder (tests/ims/*/test_*fuzz*/robustness,
tests/li/x1/test_x1_fuzz.py); this is the long run whose result goes into docs/benchmarks.md.
Inputs are mutations of real seeds (RFC 4475 messages, the SDP/MIKEY vectors, encoded X2/X3
PDUs and X1 requests of every type): bit flips, byte insertions/deletions, chunk splices and
duplications, truncations, interesting tokens (XML encodings, huge numbers, separators), plus
plain random bytes. A decoder may raise only its declared ``DecodeError``; anything else is
counted (and the first few printed with their input), as is any single input that costs more
than ``--slow`` seconds of CPU (a hang candidate; CPU time, because on a shared machine wall
clock measures the scheduler). The X1 handler must never raise at all: it answers
every body with an X1 response document.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ims.errors import DecodeError  # noqa: E402
from ims.log import configure  # noqa: E402

Decoder = Callable[[bytes], object]

TOKENS = [
    b"\x00",
    b"\xff\xff\xff\xff",
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"=",
    b"%",
    b"4294967296",
    b"-1",
    b"99999999999999999999",
    b'encoding="x-bogus"',
    b'encoding="utf-16"',
    b'encoding="UTF-32"',
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"&a;",
    b"xsi:type=",
    b"Content-Length: 999999",
    b"sip:",
    b"tel:",
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
    b"a=key-mgmt:mikey ",
]


def _seeds_sip() -> list[bytes]:
    d = Path("/work/shared/conformance/rfc4475")
    out = [p.read_bytes() for p in sorted(d.glob("*.dat"))] if d.is_dir() else []
    out.append(
        b"INVITE sip:bob@ims.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
        b"Max-Forwards: 70\r\nFrom: <sip:alice@ims.test>;tag=1\r\nTo: <sip:bob@ims.test>\r\n"
        b"Call-ID: c1@h\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1>\r\n"
        b"Route: <sip:127.0.0.1;lr>\r\nContent-Length: 0\r\n\r\n"
    )
    return out


def _seeds_sdp() -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "tests/vectors/sdp").glob("*.sdp"))]


def _seeds_mikey() -> list[bytes]:
    return [
        bytes.fromhex("".join(p.read_text().split()))
        for p in sorted((ROOT / "tests/vectors/mikey").glob("*.hex"))
        if "_invalid" not in p.name and "_truncated" not in p.name
    ]


def _seeds_x2x3() -> list[bytes]:
    from li.x2x3.pdu import (
        PayloadDirection,
        SequenceNumber,
        address_attributes,
        encode_pdu,
        keepalive,
        network_function_id,
        x2_pdu,
        x3_pdu,
    )

    xid = uuid.UUID("00000000-0000-4000-8000-00000000f022")
    attrs = (
        network_function_id("pcscf-a"),
        SequenceNumber(value=7),
        *address_attributes(("127.0.0.1", 5060), ("127.0.0.2", 5060)),
    )
    seeds = [
        encode_pdu(
            x2_pdu(
                xid=xid,
                correlation_id=5,
                payload=_seeds_sip()[-1],
                direction=PayloadDirection.TO_TARGET,
                attributes=attrs,
            )
        ),
        encode_pdu(
            x3_pdu(
                xid=xid,
                correlation_id=5,
                payload=bytes([0x80, 0, 0, 1]) + bytes(168),
                direction=PayloadDirection.FROM_TARGET,
                attributes=attrs,
            )
        ),
        encode_pdu(keepalive(3)),
    ]
    return seeds


def _x1_requests() -> list[bytes]:
    from li.x1.model import (
        DeliveryType,
        DestinationDetails,
        MessageType,
        TargetIdentifier,
        TaskDetails,
        X1Header,
        X1Request,
    )
    from li.x1.xml import encode_request

    xid = uuid.UUID("29f28e1c-f230-486a-a860-f5a784ab9172")
    did = uuid.UUID("19867c20-8c94-473e-b9cd-8b72b7b05fd4")
    h = X1Header(admf_id="admf-1", ne_id="ne-1", timestamp="2023-11-14T22:13:20.000000Z")
    task = TaskDetails(
        xid=xid,
        targets=(TargetIdentifier(kind="sipUri", value="sip:alice@ims.test"),),
        delivery_type=DeliveryType.X2_AND_X3,
        dids=(did,),
    )
    dest = DestinationDetails(
        did=did, delivery_type=DeliveryType.X2_AND_X3, host="127.0.0.1", port=50100
    )
    reqs = [
        X1Request(message_type=MessageType.CREATE_DESTINATION, header=h, destination=dest),
        X1Request(message_type=MessageType.ACTIVATE_TASK, header=h, task=task),
        X1Request(message_type=MessageType.MODIFY_TASK, header=h, task=task),
        X1Request(message_type=MessageType.GET_TASK_DETAILS, header=h, xid=xid),
        X1Request(message_type=MessageType.DEACTIVATE_TASK, header=h, xid=xid),
        X1Request(message_type=MessageType.GET_ALL_DETAILS, header=h),
        X1Request(message_type=MessageType.REMOVE_DESTINATION, header=h, did=did),
    ]
    return [encode_request(r) for r in reqs] + [encode_request(reqs)]


def _dec_sip() -> Decoder:
    from ims.sip import parse_message

    return parse_message


def _dec_sdp() -> Decoder:
    from ims.sdp import SessionDescription

    return SessionDescription.parse


def _dec_mikey() -> Decoder:
    from ims.mikey.message import decode_message

    return decode_message


def _dec_x2x3() -> Decoder:
    from li.x2x3.framing import split_pdus
    from li.x2x3.keyrecord import decode_key_record, is_key_record
    from li.x2x3.pdu import decode_pdu

    def run(data: bytes) -> object:
        try:
            pdu = decode_pdu(data)
        except DecodeError:
            return split_pdus(data, max_pdu_size=1 << 16)
        if is_key_record(pdu):
            decode_key_record(pdu)
        return pdu

    return run


def _dec_x1() -> Decoder:
    from li.x1.xml import decode_request_message, decode_response, parse_request_document

    def run(data: bytes) -> object:
        try:
            return [decode_request_message(el) for el in parse_request_document(data)]
        except DecodeError:
            return decode_response(data)

    return run


def _dec_x1_handler() -> Decoder:
    from li.x1.handler import X1Handler
    from li.x1.store import X1Store

    handler = X1Handler(X1Store(":memory:"), ne_id="ne-1")

    def run(data: bytes) -> object:
        out = handler.handle(data, now=1_700_000_000.0, peer_admf="admf-1")
        if not out.startswith(b"<?xml"):
            raise AssertionError("the X1 handler answered something that is not XML")
        return out

    return run


# X1 handler: it must answer every body, so its only "allowed" exception is none at all
DECODERS: dict[str, tuple[Callable[[], Decoder], Callable[[], list[bytes]], bool]] = {
    "sip": (_dec_sip, _seeds_sip, True),
    "sdp": (_dec_sdp, _seeds_sdp, True),
    "mikey": (_dec_mikey, _seeds_mikey, True),
    "x2x3": (_dec_x2x3, _seeds_x2x3, True),
    "x1": (_dec_x1, _x1_requests, True),
    "x1-handler": (_dec_x1_handler, _x1_requests, False),
}


def mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    if rng.random() < 0.05:
        return rng.randbytes(rng.randrange(0, 512))
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 5, 8))):
        op = rng.randrange(8)
        n = len(data)
        pos = rng.randrange(n + 1)
        if op == 0 and n:  # bit flip
            i = rng.randrange(n)
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # random bytes inserted
            data[pos:pos] = rng.randbytes(rng.randrange(1, 9))
        elif op == 2 and n:  # delete a run
            del data[pos : pos + rng.randrange(1, 33)]
        elif op == 3:  # token
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 4 and n:  # duplicate a chunk
            a = rng.randrange(n)
            chunk = data[a : a + rng.randrange(1, 65)]
            data[pos:pos] = chunk * rng.choice((1, 2, 16))
        elif op == 5:  # truncate
            del data[pos:]
        elif op == 6 and n:  # interesting byte
            data[rng.randrange(n)] = rng.choice((0, 0x7F, 0x80, 0xFF, 0x20, 0x0A))
        else:  # splice another seed
            other = rng.choice(seeds)
            data[pos:] = other[rng.randrange(len(other) + 1) :]
    return bytes(data)


def run_one(
    name: str, inputs: int, seed: int, max_seconds: float, slow: float
) -> dict[str, object]:
    make, seeds_of, declared_only = DECODERS[name]
    decoder, seeds = make(), seeds_of()
    rng = random.Random(f"{seed}:{name}")
    ok = declared = undeclared = slow_inputs = 0
    worst = worst_cpu = 0.0
    shown = slow_shown = 0
    start = time.perf_counter()
    deadline = start + max_seconds
    i = 0
    for i in range(1, inputs + 1):  # noqa: B007 - i is reported
        data = mutate(rng, seeds)
        t0 = time.perf_counter()
        c0 = time.thread_time()
        try:
            decoder(data)
            ok += 1
        except DecodeError:
            if declared_only:
                declared += 1
            else:
                undeclared += 1
        except Exception:
            undeclared += 1
            if shown < 3:
                shown += 1
                print(f"[{name}] undeclared exception on {data[:200]!r}", file=sys.stderr)
                traceback.print_exc()
        # CPU time of this thread, not wall clock: on a shared machine a preempted input is
        # not a slow one (the wall-clock worst case is reported apart)
        cpu = time.thread_time() - c0
        worst = max(worst, time.perf_counter() - t0)
        worst_cpu = max(worst_cpu, cpu)
        if cpu > slow:
            slow_inputs += 1
            if slow_shown < 3:
                slow_shown += 1
                print(f"[{name}] {cpu:.2f} s CPU on {data[:300]!r}", file=sys.stderr)
        if t0 > deadline:
            break
    elapsed = time.perf_counter() - start
    return {
        "decoder": name,
        "inputs": i,
        "accepted": ok,
        "declared_errors": declared,
        "undeclared": undeclared,
        "slow": slow_inputs,
        "worst_ms": round(worst * 1000, 2),
        "worst_cpu_ms": round(worst_cpu * 1000, 2),
        "seconds": round(elapsed, 1),
        "per_second": int(i / elapsed) if elapsed else 0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1_000_000)
    ap.add_argument("--decoders", default=",".join(DECODERS))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="per decoder")
    ap.add_argument("--slow", type=float, default=0.5, help="CPU seconds: a hang candidate")
    args = ap.parse_args()
    configure(level="ERROR")  # the decoders log every refusal; the counts are the result
    load = os.getloadavg()
    print(f"fuzz: seed {args.seed}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'decoder':<11} {'inputs':>9} {'accepted':>9} {'DecodeError':>11} {'undeclared':>10} "
        f"{'slow':>5} {'worst ms':>9} {'cpu ms':>7} {'s':>7} {'/s':>7}"
    )
    bad = 0
    for name in args.decoders.split(","):
        r = run_one(name, args.inputs, args.seed, args.max_seconds, args.slow)
        bad += int(r["undeclared"]) + int(r["slow"])  # type: ignore[call-overload]
        print(
            f"{r['decoder']:<11} {r['inputs']:>9} {r['accepted']:>9} {r['declared_errors']:>11} "
            f"{r['undeclared']:>10} {r['slow']:>5} {r['worst_ms']:>9} {r['worst_cpu_ms']:>7} "
            f"{r['seconds']:>7} "
            f"{r['per_second']:>7}",
            flush=True,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
