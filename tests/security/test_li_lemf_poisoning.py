"""Issue 11 finding 8: a third party must not be able to erase X2/X3 records at the LEMF.

Before the fix one forged PDU (NFID of a real POI, sequence 2^30) over unauthenticated TCP
made the LEMF drop *and acknowledge* every genuine PDU after it, and the exporter deleted them
from its spool. Now: the LEMF takes X2/X3 only over mutual TLS (plain TCP only with an explicit
flag), binds the certificate's identity to the NFID the PDUs carry, keys the duplicate filter
on the authenticated sender, and drops a PDU as a duplicate only when it is byte-identical to
one it stored (so it never acknowledges a PDU it did not store).
"""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import pytest

from li.lemf.receiver import LemfServer
from li.x2x3.exporter import DeliveryDestination, X2X3Exporter
from li.x2x3.pdu import PayloadDirection
from tests.security.li_helpers import (
    HOST,
    lemf_pki,
    poi_tls,
    send_and_checkpoint,
    sip_pdu,
)

pytestmark = pytest.mark.timeout(60)

XID = uuid.UUID("0b5e55ed-0000-4000-8000-000000000008")
DID = uuid.UUID("0b5e55ed-0000-4000-8000-0000000000d1")
GENUINE = 60


async def deliver_genuine(
    tmp_path: Path, port: int, tls: ssl.SSLContext | None, n: int = GENUINE
) -> X2X3Exporter:
    """The genuine POI "pcscf-a": ``n`` X2 PDUs (sequence 0..n-1), drained (all acked)."""
    exp = X2X3Exporter(tmp_path / "spool", nf_id="pcscf-a", backoff_initial=0.01)
    exp.add_destination(DeliveryDestination(did=DID, host=HOST, port=port, tls=tls))
    exp.bind_task(XID, [DID])
    await exp.start()
    for i in range(n):
        msg = f"INFO sip:bob@ims.test SIP/2.0\r\nCall-ID: g{i}@x\r\nCSeq: 1 INFO\r\n\r\n"
        exp.send_x2(
            xid=XID,
            correlation_id=i + 1,
            payload=msg.encode(),
            direction=PayloadDirection.TO_TARGET,
        )
    assert await exp.drain(timeout=20)
    return exp


async def test_plain_tcp_is_refused_unless_explicitly_allowed(tmp_path: Path) -> None:
    """No TLS context and no ``plain_tcp=True``: the LEMF refuses to start."""
    with pytest.raises(ValueError, match="plain TCP"):
        LemfServer(tmp_path / "out", host=HOST)


async def test_forged_sequence_over_plain_tcp_erases_nothing(tmp_path: Path) -> None:
    """Plain TCP (explicitly allowed): a forged PDU naming the genuine POI with sequence
    2^30 must not make the LEMF drop and acknowledge the genuine stream."""
    async with LemfServer(tmp_path / "out", host=HOST, plain_tcp=True) as lemf:
        assert lemf.mediation is not None
        lemf.mediation.record_delivered = True
        forged = sip_pdu(XID, 1 << 30, nfid="pcscf-a", text="MESSAGE")
        await send_and_checkpoint(HOST, lemf.port, forged)
        exp = await deliver_genuine(tmp_path, lemf.port, None)
        await exp.close()
        genuine = [d for d in lemf.mediation.delivered if d[2] is not None and d[2] < GENUINE]
        # every genuine PDU (sequence 0..59) is stored: none was "a duplicate" of the forgery
        assert sorted(s for _, _, s in genuine) == list(range(GENUINE))
        assert lemf.mediation.stats.duplicates == 0


async def test_mtls_refuses_strangers_and_foreign_nfids(tmp_path: Path) -> None:
    """Mutual TLS: a client without a certificate gets no handshake; a POI with a valid
    certificate for another identity ("mallory") may not send as "pcscf-a": its PDU is not
    stored, its Keepalive never acknowledged. The genuine POI's PDUs all arrive."""
    pki = lemf_pki(tmp_path / "pki")
    out = tmp_path / "out"
    async with LemfServer(out, host=HOST, ssl=pki.server_context()) as lemf:
        assert lemf.mediation is not None
        lemf.mediation.record_delivered = True
        forged = sip_pdu(XID, 1 << 30, nfid="pcscf-a", text="MESSAGE")
        assert not await send_and_checkpoint(HOST, lemf.port, forged)  # plain TCP: no TLS
        assert not await send_and_checkpoint(HOST, lemf.port, forged, tls=poi_tls(pki, "mallory"))
        assert lemf.mediation.stats.pdus == 0
        assert not (out / str(XID)).exists()
        assert lemf.refused_pdus >= 1

        exp = await deliver_genuine(tmp_path, lemf.port, poi_tls(pki, "pcscf-a"))
        await exp.close()
        got = lemf.mediation.delivered
        assert sorted(s for _, _, s in got) == list(range(GENUINE))
        assert {p for p, _, _ in got} == {"pcscf-a"}
        assert lemf.mediation.stats.duplicates == 0


async def test_duplicate_is_dropped_only_when_identical_to_a_stored_pdu(tmp_path: Path) -> None:
    """The authenticated POI re-sends a PDU byte for byte (what its spool does after a
    reconnect): dropped as a duplicate. The same sequence number with other content: stored
    and counted as a conflict, never silently dropped."""
    pki = lemf_pki(tmp_path / "pki")
    tls = poi_tls(pki, "pcscf-a")
    async with LemfServer(tmp_path / "out", host=HOST, ssl=pki.server_context()) as lemf:
        med = lemf.mediation
        assert med is not None
        med.record_delivered = True
        first = sip_pdu(XID, 5, nfid="pcscf-a", text="INFO")
        assert await send_and_checkpoint(HOST, lemf.port, first, tls=tls)
        assert await send_and_checkpoint(HOST, lemf.port, first, tls=tls)
        assert len(med.delivered) == 1 and med.stats.duplicates == 1
        other = sip_pdu(XID, 5, nfid="pcscf-a", text="MESSAGE")
        assert await send_and_checkpoint(HOST, lemf.port, other, tls=tls)
        assert len(med.delivered) == 2 and med.stats.conflicts == 1
        # a sequence number far ahead and then the stream going on from 6: all stored
        jump = sip_pdu(XID, 1 << 30, nfid="pcscf-a", text="NOTIFY")
        nxt = sip_pdu(XID, 6, nfid="pcscf-a", text="INFO")
        assert await send_and_checkpoint(HOST, lemf.port, jump + nxt, tls=tls)
        assert [s for _, _, s in med.delivered] == [5, 5, 1 << 30, 6]


async def test_duplicate_filter_survives_a_restart_and_is_bounded(tmp_path: Path) -> None:
    """After a LEMF restart a re-sent stored PDU is still recognised (state on disk, 0600),
    and the filter keeps at most ``max_streams`` senders x tasks."""
    pki = lemf_pki(tmp_path / "pki")
    tls = poi_tls(pki, "pcscf-a")
    out = tmp_path / "out"
    first = sip_pdu(XID, 9, nfid="pcscf-a", text="INFO")
    async with LemfServer(out, host=HOST, ssl=pki.server_context()) as lemf:
        assert await send_and_checkpoint(HOST, lemf.port, first, tls=tls)
    async with LemfServer(out, host=HOST, ssl=pki.server_context(), max_streams=8) as lemf:
        med = lemf.mediation
        assert med is not None
        assert await send_and_checkpoint(HOST, lemf.port, first, tls=tls)
        assert med.stats.duplicates == 1 and med.stats.pdus == 0
        for i in range(20):
            xid = uuid.UUID(int=XID.int + 1 + i)
            assert await send_and_checkpoint(
                HOST, lemf.port, sip_pdu(xid, 0, nfid="pcscf-a"), tls=tls
            )
        assert len(med.dedup) <= 8
    for p in out.rglob("*"):
        if p.is_file():
            assert p.stat().st_mode & 0o077 == 0, p
