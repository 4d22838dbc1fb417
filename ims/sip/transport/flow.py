"""Where a SIP message came from or goes to: the transport, the peer, the connection.

A :class:`Flow` is what the transaction layer knows of the transport (RFC 3261 §18): its kind
(reliability decides the timers, §17), the remote address, our local address, and for TCP/TLS
the id of the connection, so a response goes back on the connection its request came in on
(§18.2.2) and a client reuses an open connection (§18.1.1).  It is plain data: the socket
adapters beside it (:mod:`.udp`, :mod:`.stream`) fill it in, the transaction layer above
keys its transactions' destinations by it, and the proxy core's next hop
(:class:`ims.sip.proxy.hooks.Peer`) becomes one when a branch is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]

TRANSPORTS = ("UDP", "TCP", "TLS")
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061}


def normalize_transport(name: str) -> str:
    """``"udp"`` -> ``"UDP"``; raises ``ValueError`` for a transport we do not run."""
    upper = name.upper()
    if upper not in TRANSPORTS:
        raise ValueError(f"unsupported SIP transport {name!r}")
    return upper


@dataclass(frozen=True, slots=True)
class Flow:
    """The transport-level path of one message."""

    transport: str
    remote: Address
    local: Address | None = None
    connection: int | None = None

    @property
    def reliable(self) -> bool:
        """TCP and TLS are reliable: no retransmissions, zero D/I/J/K (§17)."""
        return self.transport != "UDP"

    def __str__(self) -> str:
        conn = f"#{self.connection}" if self.connection is not None else ""
        return f"{self.transport}{conn}:{self.remote[0]}:{self.remote[1]}"
