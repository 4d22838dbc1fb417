"""Shared pieces of the LI security tests (tests/security/test_li_*.py, test_x1_*.py).

A lab X2/X3 PKI with one client certificate per POI (CN = the POI's NFID), raw TCP/TLS
senders that speak X2/X3 like an attacker would (any NFID, any sequence number), and small
waits. Every socket binds 127.0.0.0/8; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

from li.x1.tlsutil import LabPki, client_context, issue_client_cert, make_lab_pki
from li.x2x3.framing import PduFramer
from li.x2x3.pdu import (
    PayloadDirection,
    PduType,
    SequenceNumber,
    encode_pdu,
    keepalive,
    network_function_id,
    x2_pdu,
)

HOST = "127.0.7.1"


def lemf_pki(directory: Path) -> LabPki:
    """The X2/X3 PKI: the LEMF's server certificate; POI certificates via :func:`poi_tls`."""
    return make_lab_pki(directory, server_name="lemf", client_name="poi", hosts=(HOST,))


def poi_tls(pki: LabPki, name: str) -> ssl.SSLContext:
    """A client context for the POI ``name`` (its certificate's CN is ``name``)."""
    files = issue_client_cert(pki.ca.parent, name)
    return client_context(pki.ca, files.cert, files.key)


def sip_pdu(xid: uuid.UUID, seq: int, *, nfid: str, text: str = "OPTIONS", cid: int = 1) -> bytes:
    """One X2 PDU carrying a SIP message, with the NFID and sequence number a sender chose."""
    msg = (
        f"{text} sip:bob@ims.test SIP/2.0\r\nCall-ID: c{cid}@x\r\nCSeq: {seq & 0xFFFF} {text}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    return encode_pdu(
        x2_pdu(
            xid=xid,
            correlation_id=cid,
            payload=msg,
            direction=PayloadDirection.TO_TARGET,
            attributes=(network_function_id(nfid), SequenceNumber(value=seq)),
        )
    )


async def send_and_checkpoint(
    host: str,
    port: int,
    data: bytes,
    *,
    tls: ssl.SSLContext | None = None,
    ka_seq: int = 77,
    timeout: float = 5.0,
) -> bool:
    """Send ``data`` and a Keepalive; True when the LEMF answered it with a Keepalive-Ack
    (it then claims to hold everything before it), False when it closed the connection or
    refused the handshake."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls is not None else None
            ),
            timeout,
        )
    except (OSError, ssl.SSLError, TimeoutError):
        return False
    try:
        writer.write(data + encode_pdu(keepalive(ka_seq)))
        await writer.drain()
        framer = PduFramer()
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return False
                for pdu in framer.feed(chunk):
                    if pdu.pdu_type is PduType.KEEPALIVE_ACK and pdu.sequence_number == ka_seq:
                        return True
    except (OSError, ssl.SSLError, ConnectionError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the peer closes (EOF or reset) within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                if not await reader.read(4096):
                    return True
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True
