"""Server transactions (RFC 3261 §17.2) over real messages; the tables are in
:mod:`.server_tables` (figures 7 and 8).

Matching (§17.2.3): with an RFC 3261 branch (``z9hG4bK`` magic cookie) a request belongs to the
transaction with the same top Via branch, the same sent-by and the same method (ACK matches
the INVITE).  Without the cookie (RFC 2543 peers) the fallback compares Request-URI, To tag,
From tag, Call-ID, CSeq and the top Via; an ACK to a non-2xx carries the To tag of our
response, so that response's key is registered too.  A CANCEL has its own transaction (method
CANCEL); the INVITE it cancels is the one with the same key and method INVITE (§9.2).

The 100 (Trying) an INVITE server transaction sends when the TU stays silent (§17.2.1) is
built here with :func:`~ims.sip.message.make_response`.
"""

from __future__ import annotations

from enum import Enum

from ims.sip.message import Request, Response, make_response
from ims.sip.transport.flow import Flow

from .events import AckReceived, Event, SendMessage, TransactionTimedOut, TransportFailed
from .machine import Action, Machine
from .server_tables import (
    INVITE_SERVER,
    NON_INVITE_SERVER,
    InviteServerInput,
    NonInviteServerInput,
)
from .timers import TimerConfig

ServerKey = tuple[str | int | None, ...]


def _host_port(host: str, port: int | None) -> tuple[str, int | None]:
    return (host.lower(), port)


def server_key(
    request: Request, *, method: str | None = None, to_tag: str | None = None
) -> ServerKey:
    """§17.2.3 key of ``request``: branch + sent-by + method, or the RFC 2543 fallback.

    ``method`` overrides the method (to find the INVITE a CANCEL targets); ``to_tag``
    overrides the To tag (the tag our response carried, matched by the ACK of RFC 2543).
    Raises :class:`~ims.sip.errors.SipParseError` on headers that do not parse.
    """
    via = request.via
    if via is None:
        raise ValueError("request without Via")
    m = method or request.method
    if m == "ACK":
        m = "INVITE"
    if via.is_rfc3261_branch:
        host, port = _host_port(via.host, via.port)
        return ("3261", via.branch, host, port, m)
    cseq = request.cseq
    to = request.to
    frm = request.from_
    return (
        "2543",
        request.uri.encode(),
        to_tag if to_tag is not None else (to.tag if to else None),
        frm.tag if frm else None,
        request.call_id,
        cseq.seq if cseq else None,
        m,
        via.encode(),
    )


class ServerTransaction:
    """One INVITE or non-INVITE server transaction."""

    __slots__ = (
        "_heap_deadline",
        "ack_key",
        "flow",
        "key",
        "last_data",
        "last_response",
        "machine",
        "method",
        "request",
        "response_flow",
    )

    def __init__(
        self, request: Request, flow: Flow, response_flow: Flow, config: TimerConfig, key: ServerKey
    ) -> None:
        self.request = request
        self.flow = flow
        self.response_flow = response_flow
        self.method = request.method
        self.key = key
        spec = INVITE_SERVER if self.method == "INVITE" else NON_INVITE_SERVER
        self.machine = Machine(spec, config=config, reliable=flow.reliable)
        self.last_response: Response | None = None
        self.last_data: bytes | None = None
        self.ack_key: ServerKey | None = None
        self._heap_deadline: float | None = None

    @property
    def state(self) -> Enum:
        return self.machine.state  # type: ignore[no-any-return]

    @property
    def terminated(self) -> bool:
        return self.machine.terminated

    @property
    def is_invite(self) -> bool:
        return self.method == "INVITE"

    @property
    def branch(self) -> str | None:
        via = self.request.via
        return via.branch if via else None

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.method} {self.branch} {self.state.name}>"

    # -- inputs ------------------------------------------------------------------------------
    def start(self, now: float) -> list[Event]:
        return self._outputs(self.machine.start(now))

    def classify(self, response: Response) -> Enum:
        if self.is_invite:
            if response.status < 200:
                return InviteServerInput.TU_PROVISIONAL
            if response.status < 300:
                return InviteServerInput.TU_SUCCESS
            return InviteServerInput.TU_FAILURE
        if response.status < 200:
            return NonInviteServerInput.TU_PROVISIONAL
        return NonInviteServerInput.TU_FINAL

    def respond(self, response: Response, now: float) -> list[Event]:
        """A response from the TU. Raises TransactionProtocolError if the figure forbids it."""
        actions = self.machine.fire(self.classify(response), now)
        return self._outputs(actions, response)

    def retransmission(self, now: float) -> list[Event]:
        event = InviteServerInput.REQUEST if self.is_invite else NonInviteServerInput.REQUEST
        return self._outputs(self.machine.fire(event, now))

    def ack(self, request: Request, flow: Flow, now: float) -> list[Event]:
        """An ACK matching this INVITE transaction: consumed (Completed, Confirmed) or, in the
        RFC 6026 Accepted state, passed to the TU."""
        actions = self.machine.fire(InviteServerInput.ACK, now)
        out = self._outputs(actions)
        if Action.PASS_ACK in actions:
            out.append(AckReceived(request, flow))
        return out

    def timer_outputs(self, now: float) -> list[Event]:
        out: list[Event] = []
        for _event, actions in self.machine.handle_timer(now):
            out.extend(self._outputs(actions))
        return out

    def transport_error(self, now: float, reason: str) -> list[Event]:
        event = (
            InviteServerInput.TRANSPORT_ERROR
            if self.is_invite
            else NonInviteServerInput.TRANSPORT_ERROR
        )
        return self._outputs(self.machine.fire(event, now), reason=reason)

    def _outputs(
        self, actions: list[Action], response: Response | None = None, *, reason: str = ""
    ) -> list[Event]:
        out: list[Event] = []
        for action in actions:
            if action is Action.SEND_RESPONSE:
                assert response is not None
                self.last_response = response
                self.last_data = response.encode()
                out.append(SendMessage(response, self.last_data, self.response_flow, self))
            elif action is Action.RESEND_RESPONSE:
                if self.last_response is not None and self.last_data is not None:
                    out.append(
                        SendMessage(self.last_response, self.last_data, self.response_flow, self)
                    )
            elif action is Action.SEND_TRYING:
                trying = make_response(self.request, 100)
                self.last_response = trying
                self.last_data = trying.encode()
                out.append(SendMessage(trying, self.last_data, self.response_flow, self))
            elif action is Action.PASS_ACK:
                pass  # the ACK itself is added by ack(), which has the message
            elif action is Action.INFORM_TIMEOUT:
                out.append(TransactionTimedOut(self))
            elif action is Action.INFORM_TRANSPORT_ERROR:
                out.append(TransportFailed(self, reason))
            else:  # pragma: no cover - the server tables use no other output
                raise AssertionError(action)
        return out
