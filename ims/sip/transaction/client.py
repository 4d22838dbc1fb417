"""Client transactions (RFC 3261 §17.1) over real messages; the tables are in
:mod:`.client_tables` (figures 5 and 6).

A :class:`ClientTransaction` wraps a :class:`~.machine.Machine` and turns its abstract actions
into events: ``SEND_REQUEST`` resends the very bytes sent first, ``SEND_ACK`` sends the ACK this
module builds for a 300-699 (§17.1.1.3), ``PASS_RESPONSE`` hands the response to the TU.
Matching (§17.1.3): a response belongs to the transaction whose branch is the top Via branch
and whose method is the CSeq method (a CANCEL shares the INVITE's branch).

:func:`build_cancel` builds a CANCEL per §9.1; the layer holds it until a provisional response
has arrived ("the client MUST wait for the arrival of a provisional response").
"""

from __future__ import annotations

from enum import Enum

from ims.sip.errors import SipBuildError
from ims.sip.headers import Headers
from ims.sip.message import Request, Response
from ims.sip.transport.flow import Flow

from .client_tables import (
    INVITE_CLIENT,
    NON_INVITE_CLIENT,
    InviteClientInput,
    InviteClientState,
    NonInviteClientInput,
)
from .events import (
    Event,
    ResponseReceived,
    SendMessage,
    StrayResponse,
    TransactionTimedOut,
    TransportFailed,
)
from .machine import Action, Machine
from .timers import TimerConfig

ClientKey = tuple[str, str]


def client_key(branch: str, method: str) -> ClientKey:
    """§17.1.3: branch (case-sensitive as sent) + CSeq method."""
    return (branch, "INVITE" if method == "ACK" else method)


def _first_via(request: Request) -> str:
    via = request.via
    if via is None:
        raise SipBuildError("request has no Via")
    return via.encode()


def build_ack(request: Request, response: Response) -> Request:
    """ACK for a 300-699 response to ``request`` (RFC 3261 §17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, CSeq method ACK, To from the
    response (with its tag), a single Via equal to the INVITE's top Via, and the INVITE's
    Route header fields.
    """
    h = Headers()
    h.add("Via", _first_via(request))
    for route in request.headers.get_all("Route"):
        h.add("Route", route)
    h.add("Max-Forwards", "70")
    for name, source in (("From", request), ("To", response), ("Call-ID", request)):
        value = source.headers.get(name)
        if value is None:
            raise SipBuildError(f"cannot build ACK: no {name}")
        h.add(name, value)
    cseq = request.cseq
    if cseq is None:
        raise SipBuildError("cannot build ACK: no CSeq")
    h.add("CSeq", f"{cseq.seq} ACK")
    h.add("Content-Length", "0")
    return Request("ACK", request.uri, h)


def build_cancel(request: Request) -> Request:
    """CANCEL for ``request`` (RFC 3261 §9.1).

    Request-URI, Call-ID, To, From and the CSeq number equal to the request's (To without a
    new tag), CSeq method CANCEL, a single Via equal to the request's top Via (same branch, so
    the server matches it to the INVITE, §9.2), and the request's Route header fields.
    """
    h = Headers()
    h.add("Via", _first_via(request))
    for route in request.headers.get_all("Route"):
        h.add("Route", route)
    h.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        value = request.headers.get(name)
        if value is None:
            raise SipBuildError(f"cannot build CANCEL: no {name}")
        h.add(name, value)
    cseq = request.cseq
    if cseq is None:
        raise SipBuildError("cannot build CANCEL: no CSeq")
    h.add("CSeq", f"{cseq.seq} CANCEL")
    h.add("Content-Length", "0")
    return Request("CANCEL", request.uri, h)


class ClientTransaction:
    """One INVITE or non-INVITE client transaction."""

    __slots__ = (
        "_ack_data",
        "_heap_deadline",
        "ack",
        "branch",
        "cancel_pending",
        "cancel_transaction",
        "data",
        "flow",
        "key",
        "last_response",
        "machine",
        "method",
        "request",
    )

    def __init__(self, request: Request, flow: Flow, config: TimerConfig) -> None:
        if request.method == "ACK":
            raise SipBuildError("ACK is never sent in a client transaction (§17.1.1.3)")
        via = request.via
        if via is None or not via.branch:
            raise SipBuildError("a request sent in a transaction needs a top Via with a branch")
        self.request = request
        self.flow = flow
        self.method = request.method
        self.branch: str = via.branch
        self.key = client_key(self.branch, self.method)
        spec = INVITE_CLIENT if self.method == "INVITE" else NON_INVITE_CLIENT
        self.machine = Machine(spec, config=config, reliable=flow.reliable)
        self.data = request.encode()
        self.last_response: Response | None = None
        self.ack: Request | None = None
        self._ack_data = b""
        self.cancel_pending = False
        self.cancel_transaction: ClientTransaction | None = None
        self._heap_deadline: float | None = None

    # -- introspection -----------------------------------------------------------------------
    @property
    def state(self) -> Enum:
        return self.machine.state  # type: ignore[no-any-return]

    @property
    def terminated(self) -> bool:
        return self.machine.terminated

    @property
    def is_invite(self) -> bool:
        return self.method == "INVITE"

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.method} {self.branch} {self.state.name}>"

    # -- inputs ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Event]:
        return self._outputs(self.machine.start(now), None)

    def classify(self, response: Response) -> Enum:
        if self.is_invite:
            if response.status < 200:
                return InviteClientInput.PROVISIONAL
            if response.status < 300:
                return InviteClientInput.SUCCESS
            return InviteClientInput.FAILURE
        if response.status < 200:
            return NonInviteClientInput.PROVISIONAL
        return NonInviteClientInput.FINAL

    def receive_response(self, response: Response, flow: Flow, now: float) -> list[Event]:
        """Feed a matching response. Raises TransactionProtocolError if the figure has no arrow."""
        accepted = self.machine.state is InviteClientState.ACCEPTED
        actions = self.machine.fire(self.classify(response), now)
        if accepted:
            # RFC 6026 "2xx / to TU" in Accepted: reported as a StrayResponse (see events.py)
            return [StrayResponse(response, flow, self)]
        if Action.PASS_RESPONSE in actions:
            self.last_response = response
        return self._outputs(actions, response, flow)

    def timer_outputs(self, now: float) -> list[Event]:
        out: list[Event] = []
        for _event, actions in self.machine.handle_timer(now):
            out.extend(self._outputs(actions, None))
        return out

    def transport_error(self, now: float, reason: str) -> list[Event]:
        event = (
            InviteClientInput.TRANSPORT_ERROR
            if self.is_invite
            else NonInviteClientInput.TRANSPORT_ERROR
        )
        return self._outputs(self.machine.fire(event, now), None, reason=reason)

    def _outputs(
        self,
        actions: list[Action],
        response: Response | None,
        flow: Flow | None = None,
        *,
        reason: str = "",
    ) -> list[Event]:
        out: list[Event] = []
        for action in actions:
            if action is Action.SEND_REQUEST:
                out.append(SendMessage(self.request, self.data, self.flow, self))
            elif action is Action.SEND_ACK:
                assert response is not None
                if self.ack is None:
                    self.ack = build_ack(self.request, response)
                    self._ack_data = self.ack.encode()
                out.append(SendMessage(self.ack, self._ack_data, self.flow, self))
            elif action is Action.PASS_RESPONSE:
                assert response is not None and flow is not None
                out.append(ResponseReceived(response, flow, self))
            elif action is Action.INFORM_TIMEOUT:
                out.append(TransactionTimedOut(self))
            elif action is Action.INFORM_TRANSPORT_ERROR:
                out.append(TransportFailed(self, reason))
            else:  # pragma: no cover - the client tables use no other output
                raise AssertionError(action)
        return out
