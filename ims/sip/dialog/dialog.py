"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §14, §15; RFC 3311 UPDATE; RFC 6086 INFO).

A :class:`Dialog` holds the §12 state (ID, local/remote CSeq, remote target, route set,
local/remote URIs) and builds in-dialog requests (§12.2.1.1, including strict-route
compatibility §12.2.1.1 / §16.12.1.2) and the ACK for a 2xx (§13.2.2.4: CSeq number of the
INVITE). Incoming requests are checked against the remote CSeq (§12.2.2: lower -> 500).

Dialog state as data (STYLE.md §3). RFC 3261 §12 / §13.2.2.4 rules kept by the table:

* an early dialog is created by a 1xx with a To tag; a 2xx confirms it;
* a failure (3xx-6xx) ends an early dialog, but never a confirmed one;
* a 1xx arriving after the 2xx is ignored (RFC 4475-era interop: "180 after 200");
* every 2xx (the first and its retransmissions) is answered with the same ACK;
* BYE (sent or received) and a 481/408 to an in-dialog request end the dialog.
A (state, input) pair missing from the table is a :class:`DialogProtocolError`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from ims.sip.dialog.builders import Local
from ims.sip.errors import SipBuildError, SipError
from ims.sip.headers import CSeq, Headers, NameAddr
from ims.sip.message import Request, Response, make_response, new_tag
from ims.sip.uri import SipUri, Uri

__all__ = [
    "Dialog",
    "DialogAction",
    "DialogError",
    "DialogId",
    "DialogInput",
    "DialogProtocolError",
    "DialogState",
    "TRANSITIONS",
    "dialog_id_uac",
    "dialog_id_uas",
]


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(Enum):
    PROVISIONAL = "1xx"  # 101-199 with a To tag on the dialog-creating INVITE
    SUCCESS = "2xx"  # 2xx to the dialog-creating INVITE (first or retransmitted)
    FAILURE = "3xx-6xx"  # final non-2xx to the dialog-creating INVITE
    BYE = "bye"  # BYE sent or received
    ENDED = "481/408"  # an in-dialog request got 481 or timed out (§12.2.1.2)


class DialogAction(Enum):
    UPDATE = "update"  # refresh remote target from the response
    CONFIRM = "confirm"  # early -> confirmed; send the ACK
    ACK = "ack"  # (re)send the ACK for this 2xx
    IGNORE = "ignore"
    TERMINATE = "terminate"


S, In, A = DialogState, DialogInput, DialogAction
#: (state, input) -> (action, next state)
TRANSITIONS: dict[tuple[DialogState, DialogInput], tuple[DialogAction, DialogState]] = {
    (S.EARLY, In.PROVISIONAL): (A.UPDATE, S.EARLY),
    (S.EARLY, In.SUCCESS): (A.CONFIRM, S.CONFIRMED),
    (S.EARLY, In.FAILURE): (A.TERMINATE, S.TERMINATED),
    (S.EARLY, In.BYE): (A.TERMINATE, S.TERMINATED),
    (S.EARLY, In.ENDED): (A.TERMINATE, S.TERMINATED),
    (S.CONFIRMED, In.PROVISIONAL): (A.IGNORE, S.CONFIRMED),
    (S.CONFIRMED, In.SUCCESS): (A.ACK, S.CONFIRMED),
    (S.CONFIRMED, In.FAILURE): (A.IGNORE, S.CONFIRMED),
    (S.CONFIRMED, In.BYE): (A.TERMINATE, S.TERMINATED),
    (S.CONFIRMED, In.ENDED): (A.TERMINATE, S.TERMINATED),
    (S.TERMINATED, In.PROVISIONAL): (A.IGNORE, S.TERMINATED),
    (S.TERMINATED, In.SUCCESS): (A.IGNORE, S.TERMINATED),
    (S.TERMINATED, In.FAILURE): (A.IGNORE, S.TERMINATED),
    (S.TERMINATED, In.BYE): (A.IGNORE, S.TERMINATED),
}
del S, In, A


class DialogError(SipError):
    """An in-dialog request must be refused; ``status`` is the response to send."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DialogProtocolError(SipError):
    """An input the dialog state table does not allow."""


@dataclass(frozen=True, slots=True)
class DialogId:
    """§12: Call-ID, local tag, remote tag."""

    call_id: str
    local_tag: str
    remote_tag: str


def dialog_id_uac(message: Request | Response) -> DialogId | None:
    """Dialog ID seen by the UAC (local = From tag, remote = To tag); None without tags."""
    f, t, cid = message.from_, message.to, message.call_id
    if f is None or t is None or cid is None or f.tag is None or t.tag is None:
        return None
    return DialogId(cid, f.tag, t.tag)


def dialog_id_uas(message: Request | Response) -> DialogId | None:
    """Dialog ID seen by the UAS (local = To tag, remote = From tag)."""
    f, t, cid = message.from_, message.to, message.call_id
    if f is None or t is None or cid is None or f.tag is None or t.tag is None:
        return None
    return DialogId(cid, t.tag, f.tag)


def _target(message: Request | Response) -> Uri | None:
    contacts = message.contacts
    return contacts[0].uri if contacts else None


_TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


@dataclass
class Dialog:
    """One dialog's state. Create with :meth:`uac` or :meth:`uas`."""

    id: DialogId
    state: DialogState
    local_uri: NameAddr  # From (UAC) / To (UAS), without tag
    remote_uri: NameAddr
    remote_target: Uri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    is_uac: bool = True
    invite_seq: int | None = None  # CSeq number of the INVITE that created it (for the ACK)
    invite_auth: tuple[tuple[str, str], ...] = ()  # credentials the ACK must repeat (§22)
    last_ack: Request | None = None

    # -- creation (§12.1) -----------------------------------------------------------------
    @classmethod
    def uac(cls, request: Request, response: Response) -> Dialog:
        """Dialog at the UAC from a 101-199 (with To tag) or 2xx to ``request`` (§12.1.2)."""
        did = dialog_id_uac(response)
        if did is None or not 100 < response.status < 300:
            raise SipBuildError("response does not create a dialog")
        cseq = request.cseq
        f, t = request.from_, response.to
        assert cseq is not None and f is not None and t is not None  # dialog_id_uac checked
        target = _target(response)
        if target is None:
            if response.status >= 200:
                raise SipBuildError("dialog-creating 2xx without Contact")
            target = request.uri
        dlg = cls(
            id=did,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            local_uri=f.without_param("tag"),
            remote_uri=t.without_param("tag"),
            remote_target=target,
            route_set=list(reversed(response.record_routes)),
            local_seq=cseq.seq,
            remote_seq=None,
            secure=isinstance(request.uri, SipUri) and request.uri.secure,
            is_uac=True,
            invite_seq=cseq.seq if request.method == "INVITE" else None,
            invite_auth=tuple(
                (n, v)
                for n in ("Authorization", "Proxy-Authorization")
                for v in request.headers.get_all(n)
            ),
        )
        return dlg

    @classmethod
    def uas(cls, request: Request, response: Response) -> Dialog:
        """Dialog at the UAS when it sends ``response`` (1xx/2xx with a To tag) (§12.1.1)."""
        did = dialog_id_uas(response)
        if did is None or not 100 < response.status < 300:
            raise SipBuildError("response does not create a dialog (needs a To tag)")
        cseq = request.cseq
        f, t = request.from_, response.to
        assert cseq is not None and f is not None and t is not None
        target = _target(request)
        if target is None:
            raise SipBuildError("dialog-creating request without Contact")
        return cls(
            id=did,
            state=DialogState.EARLY if response.status < 200 else DialogState.CONFIRMED,
            local_uri=t.without_param("tag"),
            remote_uri=f.without_param("tag"),
            remote_target=target,
            route_set=list(request.record_routes),
            local_seq=None,
            remote_seq=cseq.seq,
            secure=isinstance(request.uri, SipUri) and request.uri.secure,
            is_uac=False,
            invite_seq=cseq.seq if request.method == "INVITE" else None,
        )

    # -- the state table ------------------------------------------------------------------
    def apply(self, event: DialogInput) -> DialogAction:
        try:
            action, nxt = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise DialogProtocolError(f"{event.value} not allowed in {self.state.value}") from None
        self.state = nxt
        return action

    def receive_response(self, response: Response) -> DialogAction:
        """A response to the dialog-creating INVITE, at the UAC (same dialog ID).

        Returns what to do: UPDATE/IGNORE (1xx), CONFIRM or ACK (2xx: send :meth:`create_ack`
        -- the same ACK for every retransmission), TERMINATE (early dialog failed)."""
        if response.status < 200:
            ev = DialogInput.PROVISIONAL
        elif response.status < 300:
            ev = DialogInput.SUCCESS
        else:
            ev = DialogInput.FAILURE
        action = self.apply(ev)
        if action in (DialogAction.UPDATE, DialogAction.CONFIRM):
            target = _target(response)
            if target is not None:
                self.remote_target = target
            if action is DialogAction.CONFIRM:
                # §12.1.2: the route set is recomputed from the 2xx
                self.route_set = list(reversed(response.record_routes))
        return action

    # -- in-dialog requests out (§12.2.1.1) -----------------------------------------------
    def _base_request(self, method: str, seq: int, local: Local, branch: str | None) -> Request:
        h = Headers()
        h.add("Via", local.via(branch).encode())
        h.add("Max-Forwards", "70")
        uri: Uri = self.remote_target
        routes = list(self.route_set)
        if routes:
            first = routes[0].uri
            if not (isinstance(first, SipUri) and first.lr):
                # strict router (§12.2.1.1): it becomes the Request-URI, the remote target
                # goes last in Route
                uri = first.replace(params=first.params.remove("method"), headers=())  # type: ignore[union-attr]
                routes = routes[1:] + [NameAddr(self.remote_target)]
        for r in routes:
            h.add("Route", r.encode())
        h.add("From", self.local_uri.with_tag(self.id.local_tag).encode())
        h.add("To", self.remote_uri.with_tag(self.id.remote_tag).encode())
        h.add("Call-ID", self.id.call_id)
        h.add("CSeq", CSeq(seq, method).encode())
        return Request(method, uri, h)

    def create_request(
        self,
        method: str,
        *,
        local: Local,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        branch: str | None = None,
    ) -> Request:
        """BYE, re-INVITE, UPDATE, INFO, MESSAGE... within the dialog: local CSeq + 1."""
        if method in ("ACK", "CANCEL"):
            raise SipBuildError(f"use create_ack / build_cancel for {method}")
        if self.state is DialogState.TERMINATED:
            raise SipBuildError("dialog terminated")
        if self.local_seq is None:
            self.local_seq = secrets.randbelow(2**16) + 1  # §12.2.1.1: empty -> any value
        else:
            self.local_seq += 1
        req = self._base_request(method, self.local_seq, local, branch)
        if method in _TARGET_REFRESH:  # target-refresh requests carry our Contact
            req.headers.add("Contact", local.contact().encode())
        for n, v in headers:
            req.headers.add(n, v)
        if body:
            if content_type is None:
                raise SipBuildError("a body needs a Content-Type")
            req.headers.add("Content-Type", content_type)
            req.body = body
        if method == "INVITE":
            self.invite_seq = self.local_seq
        if method == "BYE":
            self.apply(DialogInput.BYE)
        return req

    def create_ack(
        self, *, local: Local, body: bytes = b"", content_type: str | None = None
    ) -> Request:
        """The ACK for the 2xx to the (re-)INVITE (§13.2.2.4): CSeq number of the INVITE,
        method ACK, a new branch, the dialog's route set, the INVITE's credentials. Built
        once per INVITE and reused for every 2xx retransmission."""
        if self.invite_seq is None:
            raise SipBuildError("no INVITE to acknowledge")
        last = self.last_ack
        if last is not None and last.cseq is not None and last.cseq.seq == self.invite_seq:
            return last
        ack = self._base_request("ACK", self.invite_seq, local, None)
        for n, v in self.invite_auth:
            ack.headers.add(n, v)
        if body:
            if content_type is None:
                raise SipBuildError("a body needs a Content-Type")
            ack.headers.add("Content-Type", content_type)
            ack.body = body
        self.last_ack = ack
        return ack

    # -- in-dialog requests in (§12.2.2) --------------------------------------------------
    def receive_request(self, request: Request) -> None:
        """Check and absorb an in-dialog request; raises :class:`DialogError` (status 500 for
        a lower CSeq, 481 once terminated). Updates the remote CSeq, the remote target on
        target-refresh requests, and ends the dialog on BYE."""
        cseq = request.cseq
        if cseq is None:
            raise DialogError("no CSeq", 400)
        if self.state is DialogState.TERMINATED and request.method != "ACK":
            raise DialogError("dialog terminated", 481)
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and cseq.seq < self.remote_seq:
                raise DialogError(f"CSeq {cseq.seq} lower than {self.remote_seq}", 500)
            self.remote_seq = cseq.seq
        if request.method in _TARGET_REFRESH:
            target = _target(request)
            if target is not None:
                self.remote_target = target
        if request.method == "BYE":
            self.apply(DialogInput.BYE)

    def response_ended(self, response: Response) -> bool:
        """Feed the final response to an in-dialog request (§12.2.1.2): 481 and 408 end the
        dialog. Returns True if the dialog was terminated."""
        if response.status in (481, 408) and self.state is not DialogState.TERMINATED:
            self.apply(DialogInput.ENDED)
            return True
        return False

    def make_response(self, request: Request, status: int, **kw: object) -> Response:
        """A response to an in-dialog request (To tag already present)."""
        return make_response(request, status, **kw)  # type: ignore[arg-type]


def to_tag_for(request: Request) -> str:
    """The To tag a UAS uses for its dialog-creating responses (new unless present)."""
    to = request.to
    return to.tag if to is not None and to.tag else new_tag()
