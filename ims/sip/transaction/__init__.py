"""RFC 3261 §17 transactions, sans-I/O: state tables, timers, and the transaction layer.

See docs/sip-transaction-api.md for the public API and docs/sip-transactions.md for the design.
"""

from ims.sip.transport.flow import Address, Flow, normalize_transport

from .client import ClientTransaction, build_ack, build_cancel
from .events import (
    AckReceived,
    Event,
    RequestReceived,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .layer import (
    TransactionLayer,
    error_response_for,
    response_flow,
    same_sent_by,
    stamp_via,
)
from .machine import TransactionProtocolError
from .server import ServerTransaction
from .timers import TimerConfig, TimerName

__all__ = [
    "AckReceived",
    "Address",
    "ClientTransaction",
    "Event",
    "Flow",
    "RequestReceived",
    "ResponseReceived",
    "SendMessage",
    "ServerTransaction",
    "StrayResponse",
    "TimerConfig",
    "TimerName",
    "TransactionLayer",
    "TransactionProtocolError",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
    "build_ack",
    "build_cancel",
    "error_response_for",
    "normalize_transport",
    "response_flow",
    "same_sent_by",
    "stamp_via",
]
