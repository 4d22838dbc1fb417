"""asyncio UDP transport for SIP (RFC 3261 §18.1.1, §18.2.1): one datagram is one message.

The protocol object only moves bytes: each datagram goes to ``on_datagram(data, flow)``; the
endpoint parses it and feeds the transaction layer.  On the default asyncio loop the
datagram transport allocates ``max_size`` (256 KiB) bytes per ``recvfrom``, which is above
glibc's mmap threshold and costs ~20 us per datagram (../shared/reference/peers.md); we lower it
to 65,535 (the largest UDP payload), which keeps every legal datagram.  uvloop needs no fix.

ICMP errors (§18.4, §17.1.4): an unconnected UDP socket hears of them only with Linux's
``IP_RECVERR``.  We set it, and when the loop reports an error we read the socket's error queue
(``MSG_ERRQUEUE`` on a dup of the descriptor, which works on the default loop and on uvloop): its
``msg_name`` is the destination the failed datagram was sent to, which ``on_unreachable`` gets,
so the endpoint can fail the transactions towards it at once instead of waiting for timer B/F.
The kernel may rate-limit ICMP (off-loopback), so this is best effort and the timers stay
the backstop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from ims.log import get_logger
from ims.sip.transport.flow import Address, Flow

from .errors import SipTransportError

log = get_logger("sip.transport.udp")

UDP_MAX_SIZE = 65535
_IP_RECVERR = 11  # <linux/in.h>; not exported by the socket module
_IPV6_RECVERR = 25  # <linux/in6.h>


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the fix for the default loop's 256 KiB per-datagram buffer (see module docstring)
        if hasattr(transport, "max_size"):
            transport.max_size = UDP_MAX_SIZE
        self.owner._enable_recverr(transport.get_extra_info("socket"))

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        remote = (str(addr[0]), int(addr[1]))
        self.owner.received += 1
        self.owner.on_datagram(data, Flow("UDP", remote, self.owner.local))

    def error_received(self, exc: Exception) -> None:
        self.owner.errors += 1
        log.info("udp error", error=str(exc), local=self.owner.local)
        self.owner._drain_errqueue(str(exc))


class UdpTransport:
    """A bound UDP socket: ``send(data, remote)``; received datagrams go to ``on_datagram``."""

    kind = "UDP"

    def __init__(
        self,
        on_datagram: Callable[[bytes, Flow], None],
        on_unreachable: Callable[[Address, str], None] | None = None,
    ) -> None:
        self.on_datagram = on_datagram
        self.on_unreachable = on_unreachable
        self._recverr = False
        self.local: Address = ("0.0.0.0", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self.received = 0
        self.sent = 0
        self.errors = 0

    async def bind(
        self, host: str, port: int, *, reuse_port: bool = False, sock: socket.socket | None = None
    ) -> Address:
        """Bind ``host:port``; ``reuse_port``: with ``SO_REUSEPORT``, so that several worker
        processes share the address (the kernel picks one per source address and port);
        ``sock``: use this bound socket instead (host and port are then ignored)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock
            )
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port), reuse_port=reuse_port or None
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

    def set_buffer_sizes(
        self, receive: int | None = None, send: int | None = None
    ) -> tuple[int, int]:
        """Ask the kernel for ``SO_RCVBUF`` / ``SO_SNDBUF`` of these sizes (bytes; None keeps
        the current one) and return the sizes in effect (Linux doubles the request and caps
        it at ``net.core.rmem_max`` / ``wmem_max``). Best effort: a refused size is logged.
        Call after :meth:`bind`."""
        sock = None if self._transport is None else self._transport.get_extra_info("socket")
        if sock is None:
            raise SipTransportError("UDP transport is not bound")
        for opt, size in ((socket.SO_RCVBUF, receive), (socket.SO_SNDBUF, send)):
            if size is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError as exc:
                log.info("socket buffer size refused", option=opt, size=size, error=str(exc))
        return (
            int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)),
            int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)),
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- ICMP (see module docstring) ---------------------------------------------------------
    def _enable_recverr(self, sock: object) -> None:
        if sys.platform != "linux" or sock is None:
            return
        try:
            family = getattr(sock, "family", socket.AF_INET)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)  # type: ignore[attr-defined]
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)  # type: ignore[attr-defined]
            self._recverr = True
        except (OSError, AttributeError):
            self._recverr = False

    def _drain_errqueue(self, reason: str) -> None:
        if not self._recverr or self._transport is None:
            return
        sock = self._transport.get_extra_info("socket")
        if sock is None:
            return
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return
        try:
            for _ in range(64):  # bounded
                try:
                    _data, _anc, _flags, addr = dup.recvmsg(
                        1, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
                    )
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if addr and self.on_unreachable is not None:
                    self.on_unreachable((str(addr[0]), int(addr[1])), reason)
        finally:
            dup.close()  # the duplicate descriptor only
