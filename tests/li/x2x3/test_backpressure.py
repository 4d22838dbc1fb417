"""Exporter batching and back-pressure against a LEMF that cannot keep up (issue 19).

* ``send_x3_many`` spools exactly the bytes of one ``send_x3`` per item, all or nothing;
* a batching CC sender gathers one event-loop iteration into one ``send_x3_many``;
* a deliberately slowed LEMF over mutual TLS: the exporter is held back by its window, the
  rest waits in its spool, the link is never declared dead while the LEMF keeps
  acknowledging, nothing is lost, and both sides report the lag.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from li.lemf.receiver import LemfServer
from li.poi.export import cc_sender
from li.x1.tlsutil import make_lab_pki
from li.x2x3.exporter import DeliveryDestination, ExporterAlarm, SpoolFullError, X2X3Exporter
from li.x2x3.framing import PduFramer
from li.x2x3.pdu import address_attributes, decode_pdu

HOST = "127.0.6.51"
XID = uuid.UUID("0f1e2d3c-4b5a-4968-8776-655443322110")
DID = uuid.UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
SRC, DST = ("127.0.6.52", 40000), ("127.0.6.53", 50000)
ATTRS = address_attributes(SRC, DST)


def rtp(i: int) -> bytes:
    return bytes([0x80, 0]) + i.to_bytes(2, "big") + bytes(8) + bytes([i & 0xFF]) * 160


def exporter(path: Path, **kw: object) -> X2X3Exporter:
    exp = X2X3Exporter(path, nf_id="anchor-bp", clock=lambda: 1_700_000_000.5, **kw)  # type: ignore[arg-type]
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=9))
    exp.bind_task(XID, [DID])
    return exp


def spooled(exp: X2X3Exporter) -> bytes:
    spool = exp._links[DID].spool
    data = spool.read(spool.acked, spool.end - spool.acked) if spool.end > spool.acked else b""
    assert len(data) == spool.end - spool.acked  # one spool segment (8 MB) holds it all
    return data


def test_send_x3_many_spools_the_bytes_of_send_x3(tmp_path: Path) -> None:
    one, many = exporter(tmp_path / "one"), exporter(tmp_path / "many")
    items = [(XID, 7 + i % 3, 2 + i % 2, rtp(i), ATTRS) for i in range(50)]
    for xid, cid, d, data, attrs in items:
        one.send_x3(xid=xid, correlation_id=cid, direction=d, payload=data, attributes=attrs)
    assert many.send_x3_many(items) == 50
    assert spooled(many) == spooled(one) and len(spooled(one)) > 50 * 160
    assert many.status(DID).pdus_spooled == one.status(DID).pdus_spooled == 50
    pdus = [decode_pdu(r) for r in PduFramer().feed_raw(spooled(many))]
    assert [p.sequence_number for p in pdus] == list(range(50))  # one counter per task


def test_send_x3_many_is_all_or_nothing_when_the_spool_is_full(tmp_path: Path) -> None:
    alarms: list[ExporterAlarm] = []
    exp = exporter(tmp_path / "s", spool_max_bytes=20_000, on_alarm=alarms.append)
    assert exp.send_x3_many([(XID, 1, 3, rtp(i), ATTRS) for i in range(40)]) == 40
    before = spooled(exp)
    with pytest.raises(SpoolFullError):
        exp.send_x3_many([(XID, 1, 3, rtp(i), ATTRS) for i in range(40, 100)])
    assert spooled(exp) == before  # none of the refused batch
    status = exp.status(DID)
    assert status.refused_pdus == 60 and status.spool_full
    assert [a.kind for a in alarms] == ["spool-full"]
    # the refused PDUs used their sequence numbers: the LEMF will see the loss as a gap
    exp._links[DID].spool.ack(exp._links[DID].spool.end)
    exp.send_x3_many([(XID, 1, 3, rtp(0), ATTRS)])
    last = decode_pdu(next(iter(PduFramer().feed_raw(spooled(exp)))))
    assert last.sequence_number == 100
    assert [a.kind for a in alarms] == ["spool-full", "spool-ok"]


async def test_batching_cc_sender_gathers_one_loop_iteration(tmp_path: Path) -> None:
    direct, batched = exporter(tmp_path / "d"), exporter(tmp_path / "b")
    send_direct, sender = cc_sender(direct), cc_sender(batched, batch=True)
    for i in range(30):
        send_direct.x3(XID, 4, 3, rtp(i), SRC, DST)
        sender.x3(XID, 4, 3, rtp(i), SRC, DST)
    assert spooled(batched) == b""  # gathered until the end of this iteration
    await asyncio.sleep(0)
    assert spooled(batched) == spooled(direct) and batched.status(DID).pdus_spooled == 30
    assert sender.refused == 0


async def test_slow_lemf_gets_everything_and_both_sides_report_the_lag(tmp_path: Path) -> None:
    """The LEMF spends 2 ms per PDU (blocking its loop, as CPU would): 1,500 PDUs take it
    3 s, three times the exporter's keepalive timeout, and the exporter's window holds
    about 1.8 s of its work. The LEMF keeps acknowledging as it goes, so the link stays up
    (one connection, no re-sent tail); what does not fit the window waits in the spool."""
    pki = make_lab_pki(tmp_path / "pki", server_name="lemf", client_name="anchor-bp", hosts=(HOST,))
    n = 1500
    async with LemfServer(tmp_path / "out", host=HOST, ssl=pki.server_context()) as lemf:
        m = lemf.mediation
        assert m is not None
        handle_raw = m.handle_raw

        def slow(raw: bytes, peer: tuple[str, int], sender: str | None = None) -> bool:
            time.sleep(0.002)
            return handle_raw(raw, peer, sender)

        m.handle_raw = slow  # type: ignore[method-assign]
        exp = X2X3Exporter(
            tmp_path / "spool",
            nf_id="anchor-bp",
            keepalive_timeout=1.0,
            window_bytes=256 << 10,
            checkpoint_bytes=16 << 10,
        )
        exp.add_destination(
            DeliveryDestination(did=DID, host=HOST, port=lemf.port, tls=pki.client_context())
        )
        exp.bind_task(XID, [DID])
        async with exp:
            sent = exp.send_x3_many([(XID, 9, 3, rtp(i), ATTRS) for i in range(n)])
            waiting = exp.status(DID).pending_bytes
            assert await exp.drain(timeout=120)
            status = exp.status(DID)
        lemf.write_status()
        st = json.loads((tmp_path / "out" / "lemf-status.json").read_text())
    assert sent == n and waiting > 256 << 10  # more than the window: the spool held the rest
    # nothing lost, nothing twice, one connection throughout
    assert m.stats.x3 == n and m.stats.gaps == 0 and m.stats.duplicates == 0
    assert status.connects == 1 and status.pending_bytes == 0 and status.refused_pdus == 0
    # the lag is visible on both sides, well beyond the keepalive timeout
    assert status.max_lag_s > 1.0 and status.lag_s == 0.0
    assert m.stats.max_lag_s > 1.0 and st["max_lag_s"] == m.stats.max_lag_s
    assert st["x3"] == n and st["keepalives"] >= 1
