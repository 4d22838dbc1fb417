"""tshark decodes the X2/X3 PDUs *as our exporter puts them on the wire* (live loopback capture)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from li.lemf.receiver import LemfServer
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import PayloadDirection, address_attributes
from tests.conftest import require_tool

HOST = "127.0.6.13"
XID = uuid.UUID("abcdefab-cdef-4abc-8def-abcdefabcdef")
DID = uuid.UUID("abcdefab-cdef-4abc-8def-000000000001")
SIP = (
    b"MESSAGE sip:bob@ims.test SIP/2.0\r\nCall-ID: wire-{i}@ims.test\r\nCSeq: 1 MESSAGE\r\n"
    b"From: <sip:alice@ims.test>;tag=1\r\nTo: <sip:bob@ims.test>\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.peer
async def test_tshark_decodes_live_exporter_traffic(tmp_path: Path) -> None:
    tshark = require_tool("tshark")
    cap = tmp_path / "wire.pcap"
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        port = lemf.port
        proc = subprocess.Popen(
            [tshark, "-i", "lo", "-f", f"tcp port {port}", "-w", str(cap)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            seen = b""
            async with asyncio.timeout(20):
                while b"Capturing on" not in seen:
                    line = await asyncio.to_thread(proc.stderr.readline)
                    if not line:
                        pytest.skip(f"cannot capture on lo here: {seen!r}")
                    seen += line
            await asyncio.sleep(0.5)  # the capture starts a moment after the message
            # chunk_bytes=1: every PDU in its own write (framing across TCP segments)
            exp = X2X3Exporter(tmp_path / "spool", nf_id="pcscf-1", chunk_bytes=1)
            exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
            exp.bind_task(XID, [DID])
            async with exp:
                for i in range(3):
                    exp.send_x2(
                        xid=XID,
                        correlation_id=7,
                        payload=SIP.replace(b"{i}", str(i).encode()),
                        direction=PayloadDirection.FROM_TARGET,
                    )
                    exp.send_x3(
                        xid=XID,
                        correlation_id=7,
                        payload=bytes([0x80, 0, 0, i])
                        + bytes(4)
                        + (0xBEEF).to_bytes(4, "big")
                        + bytes(160),
                        direction=PayloadDirection.TO_TARGET,
                        attributes=address_attributes(("127.0.6.1", 4000), ("127.0.6.2", 4002)),
                    )
                assert await exp.drain(timeout=20)
            time.sleep(0.5)  # let dumpcap write the last packets
        finally:
            proc.send_signal(signal.SIGINT)  # SIGINT: dumpcap flushes and closes the file
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(cap),
            "-d",
            f"tcp.port=={port},5gli",
            "-Y",
            "li5g.type==1 || li5g.type==2",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=;",
            "-T",
            "fields",
            "-e",
            "li5g.type",
            "-e",
            "li5g.sq",
            "-e",
            "li5g.xid",
            "-e",
            "sip.Call-ID",
            "-e",
            "rtp.ssrc",
            "-e",
            "rtp.seq",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    rows = [r.split("\t") for r in out]
    x2 = [r for r in rows if r[0] == "1"]
    x3 = [r for r in rows if r[0] == "2"]
    assert [r[3] for r in x2] == [f"wire-{i}@ims.test" for i in range(3)]
    assert [int(r[5]) for r in x3] == [0, 1, 2] and {int(r[4], 16) for r in x3} == {0xBEEF}
    assert {r[2] for r in rows} == {str(XID)}
    # per-task sequence numbers 0..5 in send order (li5g.sq shows each TLV value twice)
    assert [int(r[1].split(";")[0]) for r in rows] == list(range(6))
