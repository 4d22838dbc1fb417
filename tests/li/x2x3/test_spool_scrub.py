"""The spool zeroes what is acknowledged (keys must not outlive delivery) and still recovers."""

from __future__ import annotations

import uuid
from pathlib import Path

from li.x2x3.pdu import PayloadDirection, encode_pdu, x2_pdu
from li.x2x3.spool import Spool

XID = uuid.UUID("0b5e55ed-0000-4000-8000-0000000005c0")


def pdu(i: int) -> bytes:
    return encode_pdu(
        x2_pdu(
            xid=XID,
            correlation_id=i,
            payload=f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY{i:04d}".encode(),
            direction=PayloadDirection.TO_TARGET,
        )
    )


def test_acked_bytes_are_zeroed_and_recovery_keeps_the_rest(tmp_path: Path) -> None:
    pdus = [pdu(i) for i in range(10)]
    sp = Spool(tmp_path / "s")
    for p in pdus:
        sp.append(p)
    half = sum(len(p) for p in pdus[:5])
    assert sp.read(0, 1 << 20) == b"".join(pdus)  # sent (and so flushed) first
    sp.ack(half)
    on_disk = b"".join(f.read_bytes() for f in (tmp_path / "s").glob("*.seg"))
    assert on_disk[:half] == bytes(half)  # the acknowledged part holds no key any more
    assert b"KEY0004" not in on_disk and b"KEY0005" in on_disk
    sp.close()
    again = Spool(tmp_path / "s")  # recovery walks from the acknowledged offset
    assert again.acked == half and again.end == sum(len(p) for p in pdus)
    assert again.read(half, 1 << 20) == b"".join(pdus[5:])
    again.ack(again.end)
    assert b"KEY" not in b"".join(f.read_bytes() for f in (tmp_path / "s").glob("*.seg"))
    again.close()
