"""asyncio UDP transport for SIP (RFC 3261 §18.1.1, §18.2.1): one datagram is one message.

The protocol object only moves bytes: each datagram goes to ``on_datagram(data, flow)``; the
endpoint parses it and feeds the transaction layer.  On the default asyncio loop the
datagram transport allocates ``max_size`` (256 KiB) bytes per ``recvfrom``, which is above
glibc's mmap threshold and costs ~20 us per datagram (../shared/reference/peers.md); we lower it
to 65,535 (the largest UDP payload), which keeps every legal datagram.  uvloop needs no fix.

ICMP errors reach an unconnected UDP socket only as ``error_received`` without a peer address on
Linux, so they are logged and counted; transactions learn of an unreachable peer by timer B/F.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ims.log import get_logger
from ims.sip.transaction.flow import Address, Flow

from .errors import SipTransportError

log = get_logger("sip.transport.udp")

UDP_MAX_SIZE = 65535


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the fix for the default loop's 256 KiB per-datagram buffer (see module docstring)
        if hasattr(transport, "max_size"):
            transport.max_size = UDP_MAX_SIZE

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        remote = (str(addr[0]), int(addr[1]))
        self.owner.received += 1
        self.owner.on_datagram(data, Flow("UDP", remote, self.owner.local))

    def error_received(self, exc: Exception) -> None:
        self.owner.errors += 1
        log.info("udp error", error=str(exc), local=self.owner.local)


class UdpTransport:
    """A bound UDP socket: ``send(data, remote)``; received datagrams go to ``on_datagram``."""

    kind = "UDP"

    def __init__(self, on_datagram: Callable[[bytes, Flow], None]) -> None:
        self.on_datagram = on_datagram
        self.local: Address = ("0.0.0.0", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self.received = 0
        self.sent = 0
        self.errors = 0

    async def bind(self, host: str, port: int) -> Address:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.local = (str(sockname[0]), int(sockname[1]))
        return self.local

    def send(self, data: bytes, remote: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise SipTransportError(f"UDP transport {self.local} is closed")
        try:
            self._transport.sendto(data, remote)
        except OSError as exc:  # e.g. EHOSTUNREACH, EMSGSIZE
            self.errors += 1
            raise SipTransportError(str(exc)) from exc
        self.sent += 1

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
