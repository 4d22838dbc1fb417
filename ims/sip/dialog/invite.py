"""INVITE usage of the UA core (RFC 3261 §13.2.2, §13.3.1.4, §14, §15), sans-I/O.

* :class:`UacInvite`: feeds the responses of one INVITE client transaction (and the stray 2xx
  retransmissions the transaction layer reports after it terminated) into the dialogs they
  create: early dialogs per To tag (forking), the ACK for every 2xx (retransmissions get the
  same ACK again), 1xx after a 2xx ignored, failures ending the early dialogs.
* :class:`UasInvite`: builds the responses of the UAS, creating the dialog with a To tag, and
  retransmits its 2xx itself with T1 doubling up to T2 until the ACK arrives, giving up after
  64*T1 (§13.3.1.4) -- the transaction layer does not do that for 2xx.
Time is the ``now`` argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ims.sip.dialog.builders import Local, build_cancel
from ims.sip.dialog.dialog import Dialog, DialogAction, DialogState, dialog_id_uac
from ims.sip.errors import SipBuildError
from ims.sip.message import Request, Response, make_response, new_tag

__all__ = [
    "AckNeeded",
    "DialogConfirmed",
    "DialogEarly",
    "DialogTerminated",
    "InviteFailed",
    "ResponseIgnored",
    "UacInvite",
    "UasInvite",
]


@dataclass(frozen=True, slots=True)
class DialogEarly:
    dialog: Dialog
    response: Response


@dataclass(frozen=True, slots=True)
class DialogConfirmed:
    dialog: Dialog
    response: Response


@dataclass(frozen=True, slots=True)
class AckNeeded:
    """Send ``ack`` (statelessly, to the dialog's next hop) for a 2xx or its retransmission."""

    ack: Request
    dialog: Dialog
    retransmission: bool


@dataclass(frozen=True, slots=True)
class InviteFailed:
    response: Response


@dataclass(frozen=True, slots=True)
class DialogTerminated:
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class ResponseIgnored:
    response: Response
    reason: str


UacEvent = (
    DialogEarly | DialogConfirmed | AckNeeded | InviteFailed | DialogTerminated | ResponseIgnored
)


class UacInvite:
    """One outgoing INVITE and the dialogs its responses create."""

    def __init__(self, invite: Request, local: Local) -> None:
        if invite.method != "INVITE":
            raise SipBuildError("UacInvite needs an INVITE")
        self.invite = invite
        self.local = local
        self.dialogs: dict[str, Dialog] = {}  # remote (To) tag -> dialog
        self.final: Response | None = None

    @property
    def confirmed(self) -> Dialog | None:
        for d in self.dialogs.values():
            if d.state is DialogState.CONFIRMED:
                return d
        return None

    def cancel(self) -> Request:
        """CANCEL for the INVITE (§9.1); only meaningful before a final response."""
        return build_cancel(self.invite)

    def receive_response(self, response: Response) -> list[UacEvent]:
        cseq = response.cseq
        if cseq is None or cseq.method != "INVITE" or response.call_id != self.invite.call_id:
            return [ResponseIgnored(response, "not for this INVITE")]
        did = dialog_id_uac(response)
        if response.status < 200:
            if did is None or response.status == 100:
                return []
            dlg = self.dialogs.get(did.remote_tag)
            if dlg is None:
                if self.confirmed is not None or self.final is not None:
                    return [ResponseIgnored(response, "provisional after final response")]
                dlg = Dialog.uac(self.invite, response)
                self.dialogs[did.remote_tag] = dlg
                return [DialogEarly(dlg, response)]
            action = dlg.receive_response(response)
            if action is DialogAction.IGNORE:
                return [ResponseIgnored(response, "provisional after 2xx")]
            return [DialogEarly(dlg, response)]
        if response.status < 300:
            if did is None:
                return [ResponseIgnored(response, "2xx without To tag")]
            if self.final is None or self.final.status >= 300:
                self.final = response
            dlg = self.dialogs.get(did.remote_tag)
            if dlg is None:
                dlg = Dialog.uac(self.invite, response)
                self.dialogs[did.remote_tag] = dlg
                ack = dlg.create_ack(local=self.local)
                return [DialogConfirmed(dlg, response), AckNeeded(ack, dlg, False)]
            action = dlg.receive_response(response)
            if action is DialogAction.CONFIRM:
                ack = dlg.create_ack(local=self.local)
                return [DialogConfirmed(dlg, response), AckNeeded(ack, dlg, False)]
            if action is DialogAction.ACK:
                return [AckNeeded(dlg.create_ack(local=self.local), dlg, True)]
            return [ResponseIgnored(response, f"2xx in {dlg.state.value} dialog")]
        # 3xx-6xx: the transaction layer ACKs it (§17.1.1.3); early dialogs end
        events: list[UacEvent] = []
        if self.final is None:
            self.final = response
        for dlg in self.dialogs.values():
            if dlg.state is DialogState.EARLY:
                dlg.receive_response(response)
                events.append(DialogTerminated(dlg))
        if self.confirmed is None:
            events.append(InviteFailed(response))
        else:
            events.append(ResponseIgnored(response, "failure after 2xx"))
        return events


class UasInvite:
    """One incoming INVITE at the UAS core, its dialog and its 2xx retransmissions."""

    def __init__(self, invite: Request, local: Local, *, t1: float = 0.5, t2: float = 4.0) -> None:
        if invite.method != "INVITE":
            raise SipBuildError("UasInvite needs an INVITE")
        self.invite = invite
        self.local = local
        self.t1, self.t2 = t1, t2
        to = invite.to
        self.to_tag = to.tag if to is not None and to.tag else new_tag()
        self.dialog: Dialog | None = None
        self.final: Response | None = None
        self.acked = False
        self.timed_out = False
        self._next: float | None = None
        self._interval = t1
        self._give_up: float | None = None

    def respond(
        self,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build a response; 101-299 carry the Contact and Record-Route (§12.1.1) and create
        or confirm the dialog. A 2xx is then retransmitted by :meth:`handle_timer`."""
        if self.final is not None:
            raise SipBuildError("a final response was already sent")
        extra = list(headers)
        if 100 < status < 300:
            # §12.1.1: Record-Route copied in order, and our Contact
            rrs = [("Record-Route", rr) for rr in self.invite.headers.get_all("Record-Route")]
            extra = [*rrs, ("Contact", self.local.contact().encode()), *extra]
        if body:
            if content_type is None:
                raise SipBuildError("a body needs a Content-Type")
            extra.append(("Content-Type", content_type))
        resp = make_response(
            self.invite,
            status,
            reason,
            to_tag=self.to_tag if status > 100 else None,
            headers=extra,
            body=body,
        )
        if 100 < status < 300:
            if self.dialog is None:
                self.dialog = Dialog.uas(self.invite, resp)
            elif status >= 200:
                self.dialog.state = DialogState.CONFIRMED
        if status >= 200:
            self.final = resp
            if status >= 300 and self.dialog is not None:
                self.dialog.state = DialogState.TERMINATED
            if status < 300:
                self._interval = self.t1
                self._next = now + self.t1
                self._give_up = now + 64 * self.t1
        return resp

    def receive_ack(self, ack: Request, now: float) -> bool:
        """The ACK for our 2xx: stop retransmitting. Returns False if it is not ours."""
        cseq, inv = ack.cseq, self.invite.cseq
        if cseq is None or inv is None or cseq.seq != inv.seq or ack.call_id != self.invite.call_id:
            return False
        self.acked = True
        self._next = self._give_up = None
        if self.dialog is not None:
            self.dialog.receive_request(ack)
        return True

    def get_timer(self) -> float | None:
        if self._next is None or self._give_up is None:
            return None
        return min(self._next, self._give_up)

    def handle_timer(self, now: float) -> list[Response]:
        """2xx retransmissions due at ``now``; after 64*T1 without ACK the dialog should be
        ended with a BYE (``timed_out`` becomes True, §13.3.1.4)."""
        if self._next is None or self._give_up is None or self.final is None:
            return []
        if now >= self._give_up:
            self._next = self._give_up = None
            self.timed_out = True
            return []
        out: list[Response] = []
        while self._next is not None and now >= self._next:
            out.append(self.final)
            self._interval = min(self._interval * 2, self.t2)
            self._next += self._interval
        return out
