"""Exporter -> LEMF over real loopback TCP: ordered delivery, outage without loss, spool."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from li.lemf.receiver import LemfServer
from li.pcap import parse_ip, read_pcap
from li.x2x3.exporter import DeliveryDestination, ExporterAlarm, SpoolFullError, X2X3Exporter
from li.x2x3.framing import PduFramer, split_pdus
from li.x2x3.pdu import (
    Attribute,
    OpaqueAttribute,
    PayloadDirection,
    Pdu,
    PduType,
    SequenceNumber,
    SourcePort,
    Timestamp,
    address_attributes,
    decode_pdu,
    encode_pdu,
    keepalive_ack,
    network_function_id,
)
from li.x2x3.spool import Spool

HOST = "127.0.6.1"
XID = uuid.UUID("11111111-2222-4333-8444-555555555555")
DID = uuid.UUID("99999999-8888-4777-8666-555555555555")
CID = 0x1234


def rtp(i: int) -> bytes:
    return (
        bytes([0x80, 0])
        + (i & 0xFFFF).to_bytes(2, "big")
        + (i * 160).to_bytes(4, "big")
        + (0xCAFE).to_bytes(4, "big")
        + bytes(160)
    )


async def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


def seqs_in_capture(path: Path) -> list[int]:
    out = []
    for rec in read_pcap(path):
        seg = parse_ip(rec)
        assert seg is not None
        pdu = decode_pdu(seg.payload)
        assert pdu.sequence_number is not None
        out.append(pdu.sequence_number)
    return out


def send(exp: X2X3Exporter, i: int) -> int:
    return exp.send_x3(
        xid=XID,
        correlation_id=CID,
        payload=rtp(i),
        direction=PayloadDirection.FROM_TARGET,
        attributes=address_attributes(("127.0.6.5", 40000), ("127.0.6.6", 40002)),
    )


async def test_receiver_outage_loses_nothing(tmp_path: Path) -> None:
    """5,000 PDUs; the receiver goes down mid-stream while the exporter keeps producing.

    The outage is gated on events, not on a sleep: the receiver is stopped once 1,500 PDUs
    have arrived; the exporter produces the remaining PDUs while every reconnect attempt is
    refused (we wait until several attempts have failed), then a new receiver is started on
    the same port and output directory. All 5,000 must be on disk exactly once, in order.
    """
    out = tmp_path / "lemf"
    lemf = LemfServer(out, host=HOST, port=0, plain_tcp=True)
    await lemf.start()
    port = lemf.port
    assert lemf.mediation is not None
    first = lemf.mediation
    first.record_delivered = True
    exp = X2X3Exporter(
        tmp_path / "spool",
        nf_id="pcscf-test",
        backoff_initial=0.01,
        backoff_max=0.05,
        chunk_bytes=16 << 10,
        keepalive_interval=0.5,
    )
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
    exp.bind_task(XID, [DID])
    await exp.start()
    sent = []
    for i in range(2500):
        sent.append(send(exp, i))
        if i % 50 == 0:
            await asyncio.sleep(0)
    await wait_for(lambda: first.stats.pdus >= 1500)
    await lemf.close()  # the receiver is down from here on
    failures_at_stop = exp.status(DID).connect_failures
    for i in range(2500, 5000):
        sent.append(send(exp, i))
        if i % 50 == 0:
            await asyncio.sleep(0)
    await wait_for(lambda: exp.status(DID).connect_failures >= failures_at_stop + 5)
    st = exp.status(DID)
    assert not st.connected and st.pending_bytes > 0
    assert sent == list(range(5000))

    lemf2 = LemfServer(out, host=HOST, port=port, plain_tcp=True)
    await lemf2.start()
    assert lemf2.mediation is not None
    second = lemf2.mediation
    second.record_delivered = True
    assert await exp.drain(timeout=60)
    await exp.close()
    await lemf2.close()

    got = [s for _, _, s in first.delivered] + [s for _, _, s in second.delivered]
    assert got == list(range(5000))  # exactly once, in order
    assert first.stats.gaps == 0 and second.stats.gaps == 0
    assert {p for p, _, _ in first.delivered} == {"pcscf-test"}
    call_dir = out / str(XID) / f"{CID:016x}"
    assert seqs_in_capture(call_dir / "x2x3.pcap") == list(range(5000))
    assert len(list(read_pcap(call_dir / "cc-encrypted.pcap"))) == 5000
    assert (out.stat().st_mode & 0o777) == 0o700
    assert (call_dir.stat().st_mode & 0o777) == 0o700
    for f in call_dir.iterdir():
        assert (f.stat().st_mode & 0o777) == 0o600, f
    assert exp.status(DID).pending_bytes == 0
    # fully delivered segments are deleted from the spool
    assert sum(p.stat().st_size for p in (tmp_path / "spool" / str(DID)).glob("*.seg")) < 9 << 20


async def test_keepalive_answered_by_lemf_and_exporter(tmp_path: Path) -> None:
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        reader, writer = await asyncio.open_connection(HOST, lemf.port)
        from li.x2x3.pdu import PduType, encode_pdu, keepalive

        writer.write(encode_pdu(keepalive(0xDEADBEEF)))
        await writer.drain()
        framer = PduFramer()
        pdus = []
        async with asyncio.timeout(5):
            while not pdus:
                pdus = framer.feed(await reader.read(100))
        assert pdus[0].pdu_type is PduType.KEEPALIVE_ACK and pdus[0].sequence_number == 0xDEADBEEF
        writer.write(b"\x00\x05\x00\x09" + bytes(36))  # unknown PDU type: connection closed
        async with asyncio.timeout(5):
            assert await reader.read(100) == b""
        writer.close()


async def test_spool_full_raises_and_alarms(tmp_path: Path) -> None:
    alarms: list[ExporterAlarm] = []
    exp = X2X3Exporter(tmp_path / "spool", spool_max_bytes=5000, on_alarm=alarms.append)
    # destination nobody listens on (port 9 on our loopback range: refused)
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=9))
    exp.bind_task(XID, [DID])
    await exp.start()
    n = 0
    with pytest.raises(SpoolFullError):
        for i in range(100):
            send(exp, i)
            n += 1
    assert 10 < n < 40
    assert [a.kind for a in alarms] == ["spool-full"]
    assert exp.status(DID).refused_pdus == 1
    await exp.close()
    # the spool and the sequence numbers survive a restart of the exporter
    exp2 = X2X3Exporter(tmp_path / "spool", spool_max_bytes=5000)
    exp2.add_destination(DeliveryDestination(did=DID, host=HOST, port=9))
    assert exp2.status(DID).pending_bytes == exp.status(DID).pending_bytes > 0
    # the refused PDU consumed sequence number n: the LEMF will see that gap (visible loss)
    assert exp2.next_sequence(XID) == n + 1
    await exp2.close()


def test_spool_recovers_from_torn_write(tmp_path: Path) -> None:
    from li.x2x3.pdu import encode_pdu, keepalive

    sp = Spool(tmp_path / "s", segment_bytes=200)
    pdus = [encode_pdu(keepalive(i)) for i in range(10)]
    for p in pdus:
        sp.append(p)
    sp.flush()
    assert sp.read(0, 100) == pdus[0] + pdus[1]
    sp.ack(48 * 5)
    sp.close()
    segs = sorted((tmp_path / "s").glob("*.seg"))
    with open(segs[-1], "ab") as fh:
        fh.write(pdus[0][:20])  # a crash in the middle of a write
    sp2 = Spool(tmp_path / "s", segment_bytes=200)
    assert sp2.acked == 48 * 5 and sp2.end == 480
    data = b""
    pos = sp2.acked
    while pos < sp2.end:
        chunk = sp2.read(pos, 1000)
        data += chunk
        pos += len(chunk)
    assert data == b"".join(pdus[5:])


async def test_mutual_tls_delivery_and_refusal(tmp_path: Path) -> None:
    from li.x1.tlsutil import client_context, make_lab_pki

    pki = make_lab_pki(tmp_path / "pki", server_name="lemf", client_name="pcscf-1", hosts=(HOST,))
    async with LemfServer(tmp_path / "out", host=HOST, ssl=pki.server_context()) as lemf:
        assert lemf.mediation is not None
        # a POI without a client certificate never gets a PDU through
        rogue = X2X3Exporter(tmp_path / "rogue", backoff_initial=0.01, backoff_max=0.02)
        rogue.add_destination(
            DeliveryDestination(did=DID, host=HOST, port=lemf.port, tls=client_context(pki.ca))
        )
        rogue.bind_task(XID, [DID])
        await rogue.start()
        send(rogue, 0)
        await wait_for(lambda: rogue.status(DID).connects + rogue.status(DID).connect_failures >= 3)
        assert lemf.mediation.stats.pdus == 0
        await rogue.close()
        exp = X2X3Exporter(tmp_path / "spool", keepalive_interval=0.2)
        exp.add_destination(
            DeliveryDestination(did=DID, host=HOST, port=lemf.port, tls=pki.client_context())
        )
        exp.bind_task(XID, [DID])
        async with exp:
            for i in range(100):
                send(exp, i)
            assert await exp.drain(timeout=20)
        assert lemf.mediation.stats.pdus == 100 and lemf.mediation.stats.gaps == 0


async def test_silent_peer_is_dropped_and_data_kept(tmp_path: Path) -> None:
    """A receiver that accepts TCP but never answers Keepalives: the exporter gives up on it
    after keepalive_timeout, reconnects, and keeps everything spooled (nothing confirmed)."""
    received = bytearray()
    conns = 0

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        while data := await reader.read(65536):
            received.extend(data)
        writer.close()

    server = await asyncio.start_server(black_hole, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    exp = X2X3Exporter(
        tmp_path / "spool", keepalive_interval=0.05, keepalive_timeout=0.2, backoff_initial=0.01
    )
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
    exp.bind_task(XID, [DID])
    async with exp:
        for i in range(10):
            send(exp, i)
        await wait_for(lambda: conns >= 3)
        st = exp.status(DID)
        assert st.keepalive_acks == 0 and st.pending_bytes > 0
        assert "timed out" in st.last_error
    server.close()
    await server.wait_closed()
    # every connection re-sent the same PDUs from the start of the spool
    pdus = [p for p in PduFramer().feed(bytes(received)) if p.pdu_type.name == "X3"]
    assert [p.sequence_number for p in pdus[:10]] == list(range(10))
    assert len(pdus) >= 20


async def test_two_pois_one_call(tmp_path: Path) -> None:
    """X2 from the P-CSCF and X3 from the media anchor, same XID and correlation ID: one call
    directory, both POIs listed, sequence numbers tracked per POI (no false gaps)."""
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        assert lemf.mediation is not None
        exps = []
        for name in ("pcscf-1", "anchor-1"):
            e = X2X3Exporter(tmp_path / name, nf_id=name, keepalive_interval=0.2)
            e.add_destination(DeliveryDestination(did=DID, host=HOST, port=lemf.port))
            e.bind_task(XID, [DID])
            await e.start()
            exps.append(e)
        pcscf, anchor = exps
        sip = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: two-pois\r\nCSeq: 1 INVITE\r\n\r\n"
        for i in range(20):
            pcscf.send_x2(
                xid=XID, correlation_id=CID, payload=sip, direction=PayloadDirection.FROM_TARGET
            )
            send(anchor, i)
        for e in exps:
            assert await e.drain(timeout=20)
            await e.close()
        call = lemf.mediation.calls[(str(XID), CID)]
        assert call.pois == {"pcscf-1", "anchor-1"}
        assert call.x2_pdus == 20 and call.x3_pdus == 20 and call.gaps == []
        assert lemf.mediation.stats.gaps == 0 and lemf.mediation.stats.calls == 1


async def test_delivery_types_filter(tmp_path: Path) -> None:
    """X1 deliveryType is enforced: an X2Only destination gets no X3, an X3Only task no X2."""
    did2 = uuid.UUID("99999999-8888-4777-8666-000000000002")
    async with (
        LemfServer(tmp_path / "a", host=HOST, plain_tcp=True) as a,
        LemfServer(tmp_path / "b", host=HOST, plain_tcp=True) as b,
    ):
        assert a.mediation is not None and b.mediation is not None
        exp = X2X3Exporter(tmp_path / "spool", keepalive_interval=0.2)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=a.port, delivery="X2Only"))
        exp.add_destination(DeliveryDestination(did=did2, host=HOST, port=b.port))
        exp.bind_task(XID, [DID, did2])
        other = uuid.uuid4()
        exp.bind_task(other, [DID, did2], "X3Only")
        async with exp:
            send(exp, 0)  # X3 -> only b
            exp.send_x2(
                xid=XID, correlation_id=CID, payload=b"x", direction=PayloadDirection.FROM_TARGET
            )
            assert (
                exp.send_x2(
                    xid=other,
                    correlation_id=CID,
                    payload=b"x",
                    direction=PayloadDirection.FROM_TARGET,
                )
                == -1
            )
            assert await exp.drain(timeout=20)
            assert exp.status(DID).filtered_pdus == 2
        assert (a.mediation.stats.x2, a.mediation.stats.x3) == (1, 0)
        assert (b.mediation.stats.x2, b.mediation.stats.x3) == (1, 1)


async def test_exporter_restart_delivers_spooled_pdus(tmp_path: Path) -> None:
    """PDUs spooled while the LEMF was unreachable are delivered by the *next* exporter
    process (same spool directory), in order, and numbering continues after them."""
    probe = await asyncio.start_server(lambda r, w: None, HOST, 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nobody listens on `port` now
    exp = X2X3Exporter(tmp_path / "spool", nf_id="poi", backoff_initial=0.01)
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
    exp.bind_task(XID, [DID])
    async with exp:
        for i in range(100):
            send(exp, i)
        await wait_for(lambda: exp.status(DID).connect_failures >= 2)
    async with LemfServer(tmp_path / "out", host=HOST, port=port, plain_tcp=True) as lemf:
        assert lemf.mediation is not None
        lemf.mediation.record_delivered = True
        exp2 = X2X3Exporter(tmp_path / "spool", nf_id="poi", keepalive_interval=0.2)
        exp2.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
        exp2.bind_task(XID, [DID])
        async with exp2:
            assert send(exp2, 100) == 100
            assert await exp2.drain(timeout=20)
        assert [s for _, _, s in lemf.mediation.delivered] == list(range(101))


def test_spool_read_smaller_than_a_header(tmp_path: Path) -> None:
    from li.x2x3.pdu import encode_pdu, keepalive

    sp = Spool(tmp_path / "s")
    pdus = [encode_pdu(keepalive(i)) for i in range(3)]
    for p in pdus:
        sp.append(p)
    pos, got = 0, []
    while pos < sp.end:
        chunk = sp.read(pos, 1)  # always at least one whole PDU
        got.append(chunk)
        pos += len(chunk)
    assert got == pdus
    sp.close()


async def test_peer_that_never_reads_is_dropped(tmp_path: Path) -> None:
    """A receiver that accepts but never reads: the TCP window fills, the exporter gives up
    after the keepalive timeout rather than blocking, and reconnects; the data stays spooled."""
    conns: list[asyncio.StreamWriter] = []

    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(writer)
        writer.transport.pause_reading()

    server = await asyncio.start_server(stuck, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    exp = X2X3Exporter(
        tmp_path / "spool", keepalive_timeout=0.3, backoff_initial=0.01, spool_max_bytes=64 << 20
    )
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
    exp.bind_task(XID, [DID])
    async with exp:
        for i in range(40000):  # ~10 MB: more than the socket buffers hold
            send(exp, i)
            if i % 1000 == 0:
                await asyncio.sleep(0)
        await wait_for(lambda: len(conns) >= 2, timeout=30)
        st = exp.status(DID)
        assert st.pending_bytes > 0 and st.keepalive_acks == 0
    for w in conns:
        w.transport.abort()
    server.close()
    await server.wait_closed()


# -- the hot path: encode once, batch, checkpoint per N bytes ------------------------------


def _reference(pdu: Pdu, *, nf_id: str, seq: int, now: float) -> bytes:
    """What the exporter must write for ``pdu``: the straightforward stamping + encode_pdu."""
    extra: list[Attribute] = []
    if pdu.opaque(6) is None:
        extra.append(network_function_id(nf_id))
    if pdu.sequence_number is None:
        extra.append(SequenceNumber(value=seq))
    if pdu.find(Timestamp) is None:
        extra.append(Timestamp.from_float(now))
    return encode_pdu(pdu.with_attributes(*extra, first=True))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([PduType.X2, PduType.X3]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**64 - 1),
    st.lists(
        st.one_of(
            st.builds(lambda v: OpaqueAttribute(type=4, value=v), st.binary(max_size=30)),
            st.builds(lambda v: OpaqueAttribute(type=6, value=v), st.binary(max_size=10)),
            st.builds(lambda v: SequenceNumber(value=v), st.integers(0, 2**32 - 1)),
            st.builds(lambda s: Timestamp(seconds=s, nanoseconds=5), st.integers(0, 2**32 - 1)),
            st.builds(lambda p: SourcePort(port=p), st.integers(0, 0xFFFF)),
        ),
        max_size=5,
    ),
    st.binary(max_size=300),
    st.floats(0, 2**32 - 2, allow_nan=False),
)
def test_spooled_bytes_equal_the_reference_encoding(
    ptype: PduType,
    fmt: int,
    direction: int,
    cid: int,
    attrs: list[Attribute],
    payload: bytes,
    now: float,
) -> None:
    """Header templates and cached TLVs produce exactly the bytes of ``encode_pdu`` on the
    stamped PDU, for PDUs with and without their own sequence/timestamp/NFID, twice over
    (second time from the caches), including the same attribute tuple object again."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        exp = X2X3Exporter(d, nf_id="nf-α", clock=lambda: now)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=9))
        exp.bind_task(XID, [DID])
        pdu = Pdu(
            pdu_type=ptype,
            payload_format=fmt,
            payload_direction=direction,
            xid=XID,
            correlation_id=cid,
            attributes=tuple(attrs),
            payload=payload,
        )
        expected = b""
        for _ in range(3):
            seq = exp.send_pdu(pdu)
            expected += _reference(pdu, nf_id="nf-α", seq=seq, now=now)
        link = exp._links[DID]
        got = link.spool.read(0, 1 << 20)
        link.spool.close()
        assert got == expected


async def test_batched_delivery_checkpoints_per_bytes_not_per_pdu(tmp_path: Path) -> None:
    """3,000 PDUs produced in bursts: all arrive in order, in few writes, with about one
    Keepalive checkpoint per ``checkpoint_bytes`` instead of one per PDU."""
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        assert lemf.mediation is not None
        lemf.mediation.record_delivered = True
        exp = X2X3Exporter(tmp_path / "spool", nf_id="poi", checkpoint_bytes=32 << 10)
        exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=lemf.port))
        exp.bind_task(XID, [DID])
        async with exp:
            for i in range(3000):
                send(exp, i)
                if i % 100 == 99:
                    await asyncio.sleep(0)
            assert await exp.drain(timeout=30)
            status = exp.status(DID)
        total = status.delivered_bytes
        assert [s for _, _, s in lemf.mediation.delivered] == list(range(3000))
    assert status.pending_bytes == 0 and total > 3000 * 200
    # one checkpoint per 32 KiB (+ the final one per burst at most), never one per PDU
    assert 0 < status.keepalives_sent <= total // (32 << 10) + 40
    assert status.keepalives_sent < 3000 // 20


async def test_spool_keeps_sent_bytes_until_their_checkpoint_is_acked(tmp_path: Path) -> None:
    """A receiver that reads everything but answers no Keepalive: the exporter sends the
    data, yet nothing leaves the spool (only an Ack of a later Keepalive confirms it)."""
    got = bytearray()
    acks_sent = 0
    keepalives: list[int] = []
    answer = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal acks_sent
        framer = PduFramer()
        while data := await reader.read(65536):
            got.extend(data)
            for pdu in framer.feed(data):
                if pdu.pdu_type is PduType.KEEPALIVE:
                    keepalives.append(pdu.sequence_number or 0)
                    if answer.is_set():
                        writer.write(encode_pdu(keepalive_ack(pdu.sequence_number or 0)))
                        acks_sent += 1
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    exp = X2X3Exporter(tmp_path / "spool", checkpoint_interval=0.01, keepalive_timeout=30)
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port))
    exp.bind_task(XID, [DID])
    async with server, exp:
        for i in range(500):
            send(exp, i)
        spooled = exp.status(DID).pending_bytes
        await wait_for(lambda: len(got) >= spooled and bool(keepalives))
        assert exp.status(DID).pending_bytes == spooled  # sent, checkpointed, not acked
        answer.set()
        send(exp, 500)  # new data -> a new checkpoint, which is answered
        assert await exp.drain(timeout=10)
        assert exp.status(DID).pending_bytes == 0 and acks_sent >= 1
    assert len(split_pdus(bytes(got))) >= 501
