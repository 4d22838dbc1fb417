"""Issue 11 finding 9 (LEMF part): bounded resources where X2/X3 arrives.

Before the fix the LEMF had no connection limit and no read timeout (300 connections x 1 MB
partial PDU held 302 MB indefinitely) and PDUs for unknown XIDs created directories forever.
Now: a global and a per-source connection cap (the excess is closed at once), a read timeout
that also frees a partial PDU, and a cap on the tasks (XIDs) the LEMF keeps state for: a PDU
beyond it is not stored, so the connection is closed without acknowledging it (the POI keeps
it in its spool and alarms) -- overload answered, never a hang, never a silent loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from pathlib import Path

import pytest

from li.lemf.receiver import LemfServer
from tests.security.li_helpers import HOST, closed_by_peer, send_and_checkpoint, sip_pdu

pytestmark = pytest.mark.timeout(60)

XID = uuid.UUID("0b5e55ed-0000-4000-8000-000000000009")


async def open_from(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port, local_addr=(source, 0)), 5.0)


async def test_per_source_and_global_connection_caps(tmp_path: Path) -> None:
    async with LemfServer(
        tmp_path / "out",
        host=HOST,
        plain_tcp=True,
        max_connections=6,
        max_connections_per_source=3,
        read_timeout=30.0,
    ) as lemf:
        conns = [await open_from("127.0.7.10", lemf.port) for _ in range(5)]
        try:
            closed = [await closed_by_peer(r, 1.0) for r, _ in conns]
            # the first three stay open (idle, within the read timeout); the excess is closed
            assert closed == [False, False, False, True, True]
            more = [await open_from("127.0.7.11", lemf.port) for _ in range(3)]
            conns += more
            closed = [await closed_by_peer(r, 1.0) for r, _ in more]
            assert closed == [False, False, False]  # another source: 3 + 3 = global cap 6
            # the global cap: a seventh from a third source is closed; the LEMF still serves
            # a source that frees a slot
            r7, w7 = await open_from("127.0.7.12", lemf.port)
            conns.append((r7, w7))
            assert await closed_by_peer(r7, 1.0)
            assert lemf.refused_connections >= 3
            _, w0 = conns[0]
            w0.close()
            await asyncio.sleep(0.2)
            assert await send_and_checkpoint(
                HOST, lemf.port, sip_pdu(XID, 0, nfid="poi-1"), timeout=5.0
            )
        finally:
            for _, w in conns:
                w.close()


async def test_read_timeout_frees_idle_and_partial_pdus(tmp_path: Path) -> None:
    """A connection that sends a header claiming a 1 MB PDU and then stalls is closed after
    the read timeout, and the buffered partial PDU is freed."""
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True, read_timeout=0.5) as lemf:
        idle_r, idle_w = await open_from("127.0.7.20", lemf.port)
        r, w = await open_from("127.0.7.21", lemf.port)
        head = bytearray(sip_pdu(XID, 0, nfid="poi-1")[:40])
        struct.pack_into("!I", head, 8, (1 << 20) - 100)  # payload length: almost 1 MB
        w.write(bytes(head) + bytes(5000))
        await w.drain()
        await asyncio.sleep(0.1)
        assert lemf.buffered_bytes >= 5000
        assert await closed_by_peer(r, 3.0)
        assert await closed_by_peer(idle_r, 3.0)
        assert lemf.buffered_bytes == 0
        assert lemf.timeouts >= 2
        for wr in (w, idle_w):
            wr.close()


async def test_state_per_unknown_xid_is_bounded_and_never_acknowledged(tmp_path: Path) -> None:
    """PDUs for 40 XIDs against a cap of 10: at most 10 task directories, and the Keepalive
    after the refused ones is not acknowledged (the sender must keep them)."""
    out = tmp_path / "out"
    async with LemfServer(out, host=HOST, plain_tcp=True, max_xids=10) as lemf:
        data = b"".join(sip_pdu(uuid.UUID(int=XID.int + i), 0, nfid="poi-1") for i in range(40))
        assert not await send_and_checkpoint(HOST, lemf.port, data)
        # task directories (the readable per-call names beside them are symlinks into them)
        dirs = [
            p
            for p in out.iterdir()
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        ]
        assert len(dirs) <= 10
        assert lemf.mediation is not None and lemf.mediation.stats.refused >= 1
        # the XIDs it holds still work
        assert await send_and_checkpoint(HOST, lemf.port, sip_pdu(XID, 1, nfid="poi-1"))


async def test_many_connections_do_not_hang_the_lemf(tmp_path: Path) -> None:
    """200 connections each with a partial PDU: refused or timed out, the LEMF keeps
    serving and its buffered bytes stay under max_connections x max_pdu_size."""
    async with LemfServer(
        tmp_path / "out",
        host=HOST,
        plain_tcp=True,
        max_connections=32,
        max_connections_per_source=32,
        read_timeout=1.0,
        max_pdu_size=64 << 10,
    ) as lemf:
        writers = []
        try:
            for i in range(200):
                with contextlib.suppress(OSError, TimeoutError):
                    r, w = await open_from(f"127.0.7.{30 + i % 8}", lemf.port)
                    w.write(sip_pdu(XID, i, nfid="poi-1")[:60])
                    writers.append(w)
            await asyncio.sleep(0.2)
            assert lemf.active_connections <= 32
            assert lemf.buffered_bytes <= 32 * (64 << 10)
        finally:
            for w in writers:
                w.close()
        # once the stalled ones timed out, a POI gets through
        await asyncio.sleep(1.5)
        assert await send_and_checkpoint(HOST, lemf.port, sip_pdu(XID, 2, nfid="poi-1"))


async def test_connections_that_never_start_tls_are_dropped(tmp_path: Path) -> None:
    """Connections that never start TLS are dropped at the handshake timeout; a POI with a
    certificate still gets through."""
    from tests.security.li_helpers import lemf_pki, poi_tls

    pki = lemf_pki(tmp_path / "pki")
    async with LemfServer(
        tmp_path / "out", host=HOST, ssl=pki.server_context(), handshake_timeout=0.5
    ) as lemf:
        conns = [await open_from("127.0.7.40", lemf.port) for _ in range(4)]
        assert all([await closed_by_peer(r, 5.0) for r, _ in conns])
        for _, w in conns:
            w.close()
        tls = poi_tls(pki, "poi-1")
        assert await send_and_checkpoint(HOST, lemf.port, sip_pdu(XID, 0, nfid="poi-1"), tls=tls)
