"""Benchmark: X2/X3 PDUs per second, exporter -> LEMF over loopback, LEMF writing to disk.

    .venv/bin/python benchmarks/bench_x2x3.py [--pdus 50000] [--tls] [--separate]

Measures (1) the PDU codec alone (encode + decode of an X3 RTP PDU), and (2) the delivery
pipeline: the exporter stamps, spools (disk) and sends each PDU; the LEMF frames, decodes,
de-duplicates, correlates and writes x2x3.pcap and cc-encrypted.pcap for the call. The
clock runs from the first send to the moment the exporter has the LEMF's Keepalive-Ack for
the last PDU (i.e. everything is on the LEMF's disk). ``--separate`` runs the LEMF in its
own process (two cores), else both share one event loop (one core).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path

from li.lemf.receiver import LemfServer
from li.x1.tlsutil import make_lab_pki
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import PayloadDirection, address_attributes, decode_pdu, encode_pdu, x3_pdu

XID = uuid.UUID("00000000-0000-4000-8000-00000000be7c")
DID = uuid.UUID("00000000-0000-4000-8000-0000000000d1")
RTP = bytes([0x80, 0, 0, 1]) + bytes(8) + bytes(160)  # 172-byte G.711 20 ms packet
ATTRS = address_attributes(("127.0.0.1", 40000), ("127.0.0.1", 40002))


def bench_codec(n: int) -> tuple[float, float]:
    pdu = x3_pdu(
        xid=XID,
        correlation_id=1,
        payload=RTP,
        direction=PayloadDirection.FROM_TARGET,
        attributes=ATTRS,
    )
    t0 = time.perf_counter()
    for _ in range(n):
        raw = encode_pdu(pdu)
    t1 = time.perf_counter()
    for _ in range(n):
        decode_pdu(raw)
    t2 = time.perf_counter()
    return n / (t1 - t0), n / (t2 - t1)


def _lemf_process(out: str, pki: str | None, port_q: mp.Queue, stop_ev: mp.Event) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        ctx = None
        if pki:
            from li.x1.tlsutil import server_context

            p = Path(pki)
            ctx = server_context(p / "server.pem", p / "server.key", p / "ca.pem")
        async with LemfServer(
            out, host="127.0.0.1", port=0, ssl=ctx, plain_tcp=ctx is None
        ) as lemf:
            port_q.put(lemf.port)
            while not stop_ev.is_set():
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def bench_pipeline(n: int, tls: bool, separate: bool, workdir: Path) -> dict[str, float]:
    pki = make_lab_pki(workdir / "pki", hosts=("127.0.0.1",)) if tls else None
    proc = None
    lemf = None
    if separate:
        q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
        stop_ev = mp.Event()
        proc = mp.Process(
            target=_lemf_process,
            args=(str(workdir / "out"), str(workdir / "pki") if tls else None, q, stop_ev),
        )
        proc.start()
        port = q.get(timeout=30)
    else:
        lemf = LemfServer(
            workdir / "out",
            host="127.0.0.1",
            port=0,
            ssl=pki.server_context() if pki else None,
            plain_tcp=pki is None,
        )
        await lemf.start()
        port = lemf.port
    exp = X2X3Exporter(
        workdir / "spool", nf_id="bench", spool_max_bytes=2 << 30, keepalive_interval=1.0
    )
    exp.add_destination(
        DeliveryDestination(
            did=DID, host="127.0.0.1", port=port, tls=pki.client_context() if pki else None
        )
    )
    exp.bind_task(XID, [DID])
    await exp.start()
    t0 = time.perf_counter()
    for i in range(n):
        exp.send_x3(
            xid=XID,
            correlation_id=1,
            payload=RTP,
            direction=PayloadDirection.FROM_TARGET,
            attributes=ATTRS,
        )
        if i % 256 == 255:
            await asyncio.sleep(0)
    t_sent = time.perf_counter()
    ok = await exp.drain(timeout=600)
    t1 = time.perf_counter()
    assert ok, "not everything was delivered"
    delivered = exp.status(DID).delivered_bytes
    await exp.close()
    if lemf is not None:
        await lemf.close()
    if proc is not None:
        stop_ev.set()
        proc.join(timeout=30)
    return {
        "pdus": n,
        "seconds": t1 - t0,
        "pdus_per_s": n / (t1 - t0),
        "mbytes_per_s": delivered / (t1 - t0) / 1e6,
        "produce_pdus_per_s": n / (t_sent - t0),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pdus", type=int, default=50_000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--separate", action="store_true")
    args = ap.parse_args()
    enc, dec = bench_codec(100_000)
    print(f"codec: encode {enc:,.0f} PDU/s, decode {dec:,.0f} PDU/s (X3, 172-byte RTP)")
    with tempfile.TemporaryDirectory() as d:
        r = asyncio.run(bench_pipeline(args.pdus, args.tls, args.separate, Path(d)))
    mode = ("TLS" if args.tls else "TCP") + (
        ", LEMF in its own process" if args.separate else ", one loop"
    )
    print(
        f"pipeline ({mode}): {r['pdus']:,} PDUs in {r['seconds']:.2f} s = "
        f"{r['pdus_per_s']:,.0f} PDU/s ({r['mbytes_per_s']:.1f} MB/s on the wire), "
        f"producer {r['produce_pdus_per_s']:,.0f} PDU/s"
    )


if __name__ == "__main__":
    main()
