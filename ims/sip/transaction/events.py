"""Events the :class:`~.layer.TransactionLayer` returns to its transaction user (TU).

Named in the past tense (STYLE.md §6).  The TU (UA core, dialog layer, proxy core) consumes
them in order; :class:`SendMessage` is for the transport adapter (the endpoint), which puts
``data`` on the wire and reports failures back with ``layer.transport_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ims.sip.message import Request, Response
from ims.sip.transport.flow import Flow

if TYPE_CHECKING:
    from .client import ClientTransaction
    from .server import ServerTransaction


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (not ACK). Answer it with ``layer.respond(transaction, response, now)``.

    For a CANCEL, ``cancelled`` is the INVITE server transaction it matches (§9.2), or None
    (answer 481).
    """

    request: Request
    flow: Flow
    transaction: ServerTransaction
    cancelled: ServerTransaction | None = None


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK matching no server transaction: the ACK to a 2xx (§17.2.3, §13.3.1.4)."""

    request: Request
    flow: Flow


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for a client transaction (retransmissions absorbed by the machine)."""

    response: Response
    flow: Flow
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response the TU must handle outside a transaction's normal flow.

    Either it matched no client transaction (late responses, 2xx after the INVITE client
    ended), or it is a further 2xx reaching an INVITE client transaction in RFC 6026's
    Accepted state (a retransmission, or another fork's 2xx); then ``transaction`` is set.
    Either way the TU does what RFC 3261 says for such 2xx: a UA core ACKs it (§13.2.2.4), a
    proxy forwards it statelessly (§16.7).
    """

    response: Response
    flow: Flow
    transaction: ClientTransaction | None = None


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F (client) or H (server, no ACK) fired. A client TU acts as on a 408."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport failed for this transaction (§17.1.4, §17.2.4; act as on a 503)."""

    transaction: ClientTransaction | ServerTransaction
    reason: str


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The machine reached Terminated; the layer no longer knows the transaction."""

    transaction: ClientTransaction | ServerTransaction


@dataclass(frozen=True, slots=True)
class SendMessage:
    """Put ``data`` (the encoded ``message``) on the wire along ``flow``.

    For TCP/TLS, ``flow.connection`` names the connection to use when it is still open;
    otherwise the adapter connects to ``flow.remote`` (§18.2.2, §18.1.1).
    """

    message: Request | Response
    data: bytes
    flow: Flow
    transaction: ClientTransaction | ServerTransaction | None = None


Event = (
    RequestReceived
    | AckReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimedOut
    | TransportFailed
    | TransactionTerminated
    | SendMessage
)
