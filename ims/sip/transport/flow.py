"""The addresses of the SIP transport layer (RFC 3261 §18): one type per concept.

* :data:`Address`: an IP socket address, ``(host, port)``, as sockets take it.
* :class:`Peer`: where to send, or where to listen: transport, host and port -- a next hop
  resolved from a URI (:meth:`Peer.from_uri`, RFC 3263 §4 without DNS), a configured peer, a
  proxy's listening address. Its transport is written as in a URI's ``transport=`` parameter
  (``udp``, ``tcp``, ``tls``), the form configuration uses.
* :class:`Flow`: the path one message actually took: the transport as in a Via's
  sent-protocol (``UDP``, ``TCP``, ``TLS``; reliability decides the timers, §17), the remote
  address, our local address, and for TCP/TLS the id of the connection, so a response goes back
  on the connection its request came in on (§18.2.2) and a client reuses an open connection
  (§18.1.1). :attr:`Flow.peer` is the :class:`Peer` at its other end.

They are plain data: the socket adapters beside them (:mod:`.udp`, :mod:`.stream`) fill in
flows, the transaction layer above keys its transactions' destinations by them, and the proxy
core (:mod:`ims.sip.proxy`) routes to peers. Other "addresses" in the tree are other concepts
under their own names (docs/architecture.md, "Addresses").
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    """The other end of a hop: transport (``udp``/``tcp``/``tls``), host and port."""

    transport: str
    host: str
    port: int

    @property
    def addr(self) -> Address:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Flow:
    """The transport-level path of one message."""

    transport: str
    remote: Address
    local: Address | None = None
    connection: int | None = None

    @property
    def peer(self) -> Peer:
        """The :class:`Peer` at the other end (where a reply to this flow is sent)."""
        return Peer(transport=self.transport.lower(), host=self.remote[0], port=self.remote[1])

    @property
    def reliable(self) -> bool:
        """TCP and TLS are reliable: no retransmissions, zero D/I/J/K (§17)."""
        return self.transport != "UDP"

    def __str__(self) -> str:
        conn = f"#{self.connection}" if self.connection is not None else ""
        return f"{self.transport}{conn}:{self.remote[0]}:{self.remote[1]}"
