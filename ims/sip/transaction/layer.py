"""The sans-I/O SIP transaction layer (RFC 3261 §17, §18.2.1-§18.2.2, §9; RFC 3581).

The layer owns every client and server transaction of one element.  It is fed parsed
messages or raw bytes with the :class:`~.flow.Flow` they came on and ``now``; it returns
events (:mod:`.events`) for the transaction user and :class:`~.events.SendMessage` for the
transport adapter.  One timer for the whole layer: ``get_timer()`` is the earliest deadline of
all transactions (a heap with lazy invalidation), ``handle_timer(now)`` fires what is due.

What it does on receipt (§18.2.1, §17.2.3, §17.1.3):

* bytes -> :func:`~ims.sip.parser.parse_message`; a request that fails to parse is answered
  statelessly with the error's ``status_hint`` (400, 505, 513...) when a Via, From, To,
  Call-ID and CSeq can be recovered from the raw header lines, otherwise dropped and logged;
  a bad response is dropped (§18.1.2).  Requests also pass
  :func:`~ims.sip.message.check_request` (missing To/From/CSeq/Call-ID -> 400, scheme -> 416).
* requests: ``received`` is added to the top Via when its host is not the source address,
  and ``rport`` is filled in when the client asked for it (RFC 3581 §4).
* a request matching a server transaction is a retransmission (the machine resends the last
  response, or absorbs it); an ACK that matches is consumed by the INVITE server transaction;
  an ACK that matches nothing is the ACK to a 2xx -> :class:`~.events.AckReceived`.
* a response matching a client transaction feeds it if its top Via names the sent-by of the
  Via we sent (§18.1.2; otherwise it is discarded and logged, ``stats["via_mismatch"]``);
  a response matching no transaction is a :class:`~.events.StrayResponse` (the TU decides:
  a proxy checks the Via is its own, §16.7).

Responses from a server transaction go where §18.2.2 says (:meth:`TransactionLayer.response_flow`).
A network input the RFC figure has no arrow for (a 1xx after the final response) is logged and
dropped; the same from the TU (a second final response) raises
:class:`~.machine.TransactionProtocolError`.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable

from ims.log import get_logger
from ims.sip.errors import SipBuildError, SipParseError
from ims.sip.headers import Headers, Via, parse_vias
from ims.sip.message import REASONS, Request, Response, check_request, make_response
from ims.sip.parser import is_keepalive, parse_message
from ims.sip.transport.flow import DEFAULT_PORTS, Flow

from .client import ClientKey, ClientTransaction, build_cancel, client_key
from .client_tables import InviteClientState
from .events import (
    AckReceived,
    Event,
    RequestReceived,
    SendMessage,
    StrayResponse,
    TransactionTerminated,
)
from .machine import TransactionProtocolError
from .server import ServerKey, ServerTransaction, server_key
from .timers import TimerConfig

log = get_logger("sip.transaction")

Transaction = ClientTransaction | ServerTransaction


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def stamp_via(request: Request, flow: Flow) -> None:
    """§18.2.1 and RFC 3581 §4: add ``received`` / fill ``rport`` in the top Via, in place."""
    via = request.via
    if via is None:
        return
    source_ip, source_port = flow.remote
    new = via
    if via.has_rport and via.rport is None:
        new = new.with_param("received", source_ip).with_param("rport", str(source_port))
    elif _bare(via.host).lower() != source_ip.lower():
        new = new.with_param("received", source_ip)
    if new is not via:
        request.replace_top_via(new)


def same_sent_by(a: Via, b: Via) -> bool:
    """Whether two Vias name the same sent-by (host case-insensitive, an absent port being
    the transport's default), as §18.1.2 compares a response's top Via with ours."""
    if _bare(a.host).lower() != _bare(b.host).lower():
        return False
    pa = a.port or DEFAULT_PORTS.get(a.transport.upper(), 5060)
    pb = b.port or DEFAULT_PORTS.get(b.transport.upper(), 5060)
    return pa == pb


def response_flow(request: Request, flow: Flow) -> Flow:
    """Where a response to ``request`` (received on ``flow``) goes, RFC 3261 §18.2.2.

    Reliable transports: the connection the request came on (``flow.connection``); if it has
    closed, a new connection to the ``received`` address and the sent-by port.  Unreliable:
    ``maddr`` if present; else ``received`` with ``rport`` (RFC 3581); else ``received`` (or
    the sent-by host) with the sent-by port (default 5060).
    """
    via = request.via
    if via is None:
        return flow
    default = DEFAULT_PORTS.get(via.transport.upper(), 5060)
    host = via.received or _bare(via.host)
    if flow.reliable:
        return Flow(flow.transport, (host, via.port or default), flow.local, flow.connection)
    if via.maddr:
        return Flow(flow.transport, (_bare(via.maddr), via.port or default), flow.local)
    if via.rport is not None:
        return Flow(flow.transport, (host, via.rport), flow.local)
    return Flow(flow.transport, (host, via.port or default), flow.local)


# raw header lines for answering a request the parser refused (§8.2.6.1 copies these)
_RAW_FIELD_RE = re.compile(
    rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([^\r\n]*(?:\r\n[ \t]+[^\r\n]*)*)",
    re.IGNORECASE | re.MULTILINE,
)
_CANON = {
    b"v": "Via",
    b"via": "Via",
    b"f": "From",
    b"from": "From",
    b"t": "To",
    b"to": "To",
    b"i": "Call-ID",
    b"call-id": "Call-ID",
    b"cseq": "CSeq",
}
# a request start line, however broken after the method (extra/leading LWS, RFC 4475
# lwsruri/lwsstart): a method token then whitespace; a response starts with "SIP/"
_REQUEST_START_RE = re.compile(rb"^(?:\r\n)*[ \t]*([A-Za-z0-9!%*_+`'~.-]+)[ \t]")
# the sent-by of a Via that does not parse as a whole (RFC 4475 badinv01): enough to route
_SENT_BY_RE = re.compile(
    r"[ \t]*SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*([A-Za-z]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?",
    re.IGNORECASE,
)


def _raw_fields(data: bytes) -> Headers | None:
    """Via/From/To/Call-ID/CSeq recovered from the raw lines of a request that did not parse
    (§8.2.6.1), or None when ``data`` is not a request or is an ACK (never answered, §17.2.1)."""
    m = _REQUEST_START_RE.match(data)
    if m is None or m.group(1) == b"ACK":  # "SIP/2.0 ..." does not match: a response
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    h = Headers()
    for f in _RAW_FIELD_RE.finditer(head):
        try:
            value = re.sub(rb"\r\n[ \t]+", b" ", f.group(2)).decode("utf-8").strip()
        except UnicodeDecodeError:
            continue
        if value:
            h.add(_CANON[f.group(1).lower()], value)
    return h


def _top_via(raw_vias: list[str]) -> Via | None:
    """The top Via of raw Via field values: parsed if it parses, else its sent-by alone
    (transport, host, port) read leniently, else None (nowhere to send an answer)."""
    if not raw_vias:
        return None
    try:
        vias = parse_vias(raw_vias[0])
    except SipParseError:
        vias = []
    if vias:
        return vias[0]
    m = _SENT_BY_RE.match(raw_vias[0])
    if m is None:
        return None
    port = int(m.group(3)) if m.group(3) else None
    if port is not None and not 0 < port < 65536:
        port = None
    return Via(m.group(1).upper(), m.group(2), port)


def error_response_for(data: bytes, status: int, reason: str | None = None) -> Response | None:
    """A stateless ``status`` response to the raw request ``data`` that did not parse.

    Copies the raw Via, From, To, Call-ID and CSeq lines (§8.2.6.1); returns None when ``data``
    is not a request (or is an ACK), or when no top Via sent-by can be read from it (there is
    nowhere to send the answer). A Via that does not parse as a whole still routes by its
    sent-by (RFC 4475 badinv01). Use :meth:`TransactionLayer.refuse` to also route it.
    """
    refused = _refusal(data, status, reason, None)
    return None if refused is None else refused[0]


def _refusal(
    data: bytes, status: int, reason: str | None, flow: Flow | None
) -> tuple[Response, Flow | None] | None:
    h = _raw_fields(data)
    if h is None:
        return None
    raw_vias = h.get_all("Via")
    via = _top_via(raw_vias)
    if via is None:
        return None
    out_flow = None
    if flow is not None:
        # §18.2.1 / RFC 3581 as for any request: the answer follows received/rport
        probe = Request("OPTIONS", "sip:x", Headers([("Via", via.encode())]))
        stamp_via(probe, flow)
        stamped = probe.via
        assert stamped is not None
        out_flow = response_flow(probe, flow)
        if stamped is not via and via.branch is not None:
            # a well-formed top Via (a lenient sent-by has no branch): the answer carries it
            # with received/rport, as a transaction's response would
            try:
                h.pop_first_element("Via")
                h.insert_first("Via", stamped.encode())
            except SipParseError:
                pass
    out = Headers(
        (name, value) for name, value in h if name in ("Via", "From", "To", "Call-ID", "CSeq")
    )
    return Response(status, reason or REASONS.get(status), out), out_flow


class TransactionLayer:
    """All transactions of one SIP element (see module docstring)."""

    def __init__(
        self,
        timers: TimerConfig | None = None,
        *,
        uri_schemes: Iterable[str] = ("sip", "sips", "tel"),
        max_message_size: int = 65535,
    ) -> None:
        self.timers = timers or TimerConfig()
        self.uri_schemes = tuple(uri_schemes)
        self.max_message_size = max_message_size
        self.clients: dict[ClientKey, ClientTransaction] = {}
        self.servers: dict[ServerKey, ServerTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = 0
        self.stats: dict[str, int] = {
            "received": 0,
            "parse_errors": 0,
            "error_responses": 0,
            "retransmissions_absorbed": 0,
            "dropped": 0,
            "stray_responses": 0,
            "via_mismatch": 0,
        }

    # ================================================================ inbound
    def receive_bytes(self, data: bytes, flow: Flow, now: float) -> list[Event]:
        """One datagram (or one framed stream message) from ``flow``."""
        if is_keepalive(data):
            return []
        if len(data) > self.max_message_size:
            return self.refuse(data, flow, SipParseError("message too large", status_hint=513))
        try:
            message = parse_message(data)
        except SipParseError as exc:
            return self.refuse(data, flow, exc)
        return self.receive(message, flow, now, raw=data)

    def refuse(self, data: bytes, flow: Flow, exc: SipParseError) -> list[Event]:
        """Answer a request that did not parse (``exc.status_hint``), statelessly.

        Sent whenever a top Via sent-by can be read (even from a Via that does not parse, or
        after a broken request line) and routed per §18.2.2 with the source address as
        ``received`` and RFC 3581 ``rport``; a response or an ACK is dropped (§18.1.2, §17.2.1).
        """
        self.stats["parse_errors"] += 1
        refused = _refusal(data, exc.status_hint, _reason(exc), flow)
        if refused is None:
            log.info("dropped unparsable message", peer=str(flow), error=str(exc))
            self.stats["dropped"] += 1
            return []
        response, out_flow = refused
        assert out_flow is not None
        log.info(
            "answered unparsable request", peer=str(flow), status=exc.status_hint, error=str(exc)
        )
        self.stats["error_responses"] += 1
        return self.send_stateless(response, out_flow)

    def receive(
        self, message: Request | Response, flow: Flow, now: float, *, raw: bytes | None = None
    ) -> list[Event]:
        """A parsed message from ``flow``."""
        self.stats["received"] += 1
        try:
            if isinstance(message, Request):
                return self._receive_request(message, flow, now)
            return self._receive_response(message, flow, now)
        except SipParseError as exc:
            # a header the parser kept raw failed when matching needed it
            if isinstance(message, Request) and message.method != "ACK":
                return self.refuse(raw if raw is not None else message.encode(), flow, exc)
            self.stats["dropped"] += 1
            log.info("dropped message", peer=str(flow), error=str(exc))
            return []

    def _receive_request(self, request: Request, flow: Flow, now: float) -> list[Event]:
        try:
            check_request(request, schemes=self.uri_schemes)
        except SipParseError as exc:
            if request.method == "ACK":  # never answer an ACK (§17.2.1)
                self.stats["dropped"] += 1
                return []
            raise exc
        stamp_via(request, flow)
        key = server_key(request)
        found = self.servers.get(key)
        if request.method == "ACK":
            if found is None or not found.is_invite:
                return [AckReceived(request, flow)]
            return self._network_input(found, lambda: found.ack(request, flow, now))
        if found is not None:
            self.stats["retransmissions_absorbed"] += 1
            return self._network_input(found, lambda: found.retransmission(now))
        tx = ServerTransaction(request, flow, response_flow(request, flow), self.timers, key)
        self.servers[key] = tx
        cancelled = None
        if request.method == "CANCEL":
            target = self.servers.get(server_key(request, method="INVITE"))
            if target is not None and target.is_invite:
                cancelled = target
        events: list[Event] = [RequestReceived(request, flow, tx, cancelled)]
        events.extend(tx.start(now))
        return events + self._after(tx)

    def _receive_response(self, response: Response, flow: Flow, now: float) -> list[Event]:
        via, cseq = response.via, response.cseq
        tx = None
        if via is not None and via.branch and cseq is not None:
            tx = self.clients.get(client_key(via.branch, cseq.method))
        if tx is None:
            self.stats["stray_responses"] += 1
            return [StrayResponse(response, flow)]
        sent = tx.request.via
        if via is not None and sent is not None and not same_sent_by(via, sent):
            # §18.1.2: the top Via must name the sent-by we put in the request; a response
            # that does not was misdelivered (or forged with our branch): discard it
            self.stats["dropped"] += 1
            self.stats["via_mismatch"] += 1
            log.info(
                "response with a foreign top Via discarded (RFC 3261 §18.1.2)",
                peer=str(flow),
                sent_by=f"{via.host}:{via.port}",
                ours=f"{sent.host}:{sent.port}",
            )
            return []
        cancel_was_pending = tx.cancel_pending
        events = self._network_input(tx, lambda: tx.receive_response(response, flow, now))
        if cancel_was_pending and tx.is_invite:
            if response.status < 200:
                tx.cancel_pending = False
                events.extend(self._send_cancel(tx, now))
            else:
                tx.cancel_pending = False  # too late: the final response is already here
        return events

    def _network_input(self, tx: Transaction, fire: Callable[[], list[Event]]) -> list[Event]:
        try:
            events = fire()
        except TransactionProtocolError as exc:
            self.stats["dropped"] += 1
            log.debug("input not in the RFC figure: dropped", error=str(exc))
            return []
        return events + self._after(tx)

    # ================================================================ TU API
    def send_request(
        self, request: Request, flow: Flow, now: float
    ) -> tuple[ClientTransaction, list[Event]]:
        """Start a client transaction for ``request`` (which carries its top Via with a fresh
        branch) towards ``flow``. ACK is not sent this way: use :meth:`send_stateless`."""
        tx = ClientTransaction(request, flow, self.timers)
        if tx.key in self.clients:
            raise SipBuildError(f"a client transaction with branch {tx.branch} already exists")
        self.clients[tx.key] = tx
        events = tx.start(now)
        return tx, events + self._after(tx)

    def respond(
        self, transaction: ServerTransaction, response: Response, now: float
    ) -> list[Event]:
        """Send ``response`` through ``transaction`` (raises TransactionProtocolError if the
        transaction is past the point where that response is allowed)."""
        events = transaction.respond(response, now)
        if transaction.is_invite and response.status >= 300:
            # RFC 2543 ACKs carry our To tag: register the key they will match (§17.2.3)
            to = response.to
            via = transaction.request.via
            if to is not None and to.tag and via is not None and not via.is_rfc3261_branch:
                transaction.ack_key = server_key(transaction.request, to_tag=to.tag)
                self.servers[transaction.ack_key] = transaction
        return events + self._after(transaction)

    def cancel(self, transaction: ClientTransaction, now: float) -> list[Event]:
        """Cancel an INVITE client transaction (§9.1).

        Before any provisional response the CANCEL is held and sent when the first 1xx
        arrives; after a final response it is too late and nothing is sent.  The CANCEL's own
        client transaction is ``transaction.cancel_transaction``.
        """
        if not transaction.is_invite or transaction.terminated:
            return []
        if transaction.cancel_transaction is not None or transaction.cancel_pending:
            return []
        if transaction.state is InviteClientState.CALLING:
            transaction.cancel_pending = True
            return []
        if transaction.state is not InviteClientState.PROCEEDING:
            return []
        return self._send_cancel(transaction, now)

    def _send_cancel(self, transaction: ClientTransaction, now: float) -> list[Event]:
        cancel = build_cancel(transaction.request)
        ctx, events = self.send_request(cancel, transaction.flow, now)
        transaction.cancel_transaction = ctx
        return events

    def send_stateless(self, message: Request | Response, flow: Flow) -> list[Event]:
        """Bytes out without a transaction: the ACK to a 2xx, a proxy's stateless forwarding."""
        return [SendMessage(message, message.encode(), flow, None)]

    def send_stateless_response(self, response: Response, request_flow: Flow) -> list[Event]:
        """A response routed per §18.2.2 from the flow its request came on (no transaction)."""
        probe = Request("OPTIONS", "sip:x", Headers([("Via", response.headers.get("Via") or "")]))
        try:
            out_flow = response_flow(probe, request_flow)
        except SipParseError:
            out_flow = request_flow
        return self.send_stateless(response, out_flow)

    def transport_error(self, transaction: Transaction, reason: str, now: float) -> list[Event]:
        """The adapter could not send for ``transaction`` (§17.1.4, §17.2.4)."""
        if transaction.terminated:
            return []
        return self._network_input(transaction, lambda: transaction.transport_error(now, reason))

    def make_response(
        self, request: Request, status: int, reason: str | None = None, to_tag: str | None = None
    ) -> Response:
        """Convenience re-export of :func:`ims.sip.message.make_response`."""
        return make_response(request, status, reason, to_tag)

    # ================================================================ timers
    def get_timer(self) -> float | None:
        """Earliest deadline over all transactions, or None."""
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if tx._heap_deadline == deadline and not tx.terminated:
                return deadline
            heapq.heappop(heap)  # stale entry
        return None

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every transaction timer due at ``now``."""
        events: list[Event] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(heap)
            if tx._heap_deadline != deadline or tx.terminated:
                continue
            tx._heap_deadline = None
            events.extend(tx.timer_outputs(now))
            events.extend(self._after(tx))
        return events

    # ================================================================ bookkeeping
    def _after(self, tx: Transaction) -> list[Event]:
        """Re-arm the heap for ``tx`` or forget it when it terminated."""
        if tx.terminated:
            tx._heap_deadline = None
            if isinstance(tx, ClientTransaction):
                if self.clients.get(tx.key) is tx:
                    del self.clients[tx.key]
            else:
                if self.servers.get(tx.key) is tx:
                    del self.servers[tx.key]
                if tx.ack_key is not None and self.servers.get(tx.ack_key) is tx:
                    del self.servers[tx.ack_key]
            return [TransactionTerminated(tx)]
        deadline = tx.machine.get_timer()
        if deadline is not None and deadline != tx._heap_deadline:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, tx))
        tx._heap_deadline = deadline
        return []

    def find_invite_server(self, request: Request) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL or ACK ``request`` refers to (§9.2)."""
        tx = self.servers.get(server_key(request, method="INVITE"))
        return tx if tx is not None and tx.is_invite else None

    @property
    def pending(self) -> int:
        return len(self.clients) + len(self.servers)


def _reason(exc: SipParseError) -> str | None:
    if exc.status_hint == 400:
        text = str(exc).split(": ", 1)[-1]
        return ("Bad Request - " + text)[:120].replace("\r", " ").replace("\n", " ")
    return None
