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

import secrets
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
    "PrackNeeded",
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
class PrackNeeded:
    """Send ``prack`` (in its own client transaction) for a reliable provisional response
    (RFC 3262 §4)."""

    prack: Request
    dialog: Dialog
    response: Response


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
    DialogEarly
    | DialogConfirmed
    | AckNeeded
    | PrackNeeded
    | InviteFailed
    | DialogTerminated
    | ResponseIgnored
)

_RSEQ_MAX = 2**31 - 1


def _rseq_of(response: Response) -> int | None:
    """RSeq of a reliable provisional response (Require: 100rel + RSeq), else None."""
    if not 100 < response.status < 200 or "100rel" not in response.require:
        return None
    raw = (response.headers.get("RSeq") or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= _RSEQ_MAX:
        return None
    return int(raw)


class UacInvite:
    """One outgoing INVITE and the dialogs its responses create."""

    def __init__(self, invite: Request, local: Local) -> None:
        if invite.method != "INVITE":
            raise SipBuildError("UacInvite needs an INVITE")
        self.invite = invite
        self.local = local
        self.dialogs: dict[str, Dialog] = {}  # remote (To) tag -> dialog
        self.final: Response | None = None
        self._rseq: dict[str, int] = {}  # remote tag -> last RSeq acknowledged

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
            rseq = _rseq_of(response)
            if rseq is not None:
                last = self._rseq.get(did.remote_tag)
                if last is not None and rseq != last + 1:
                    # RFC 3262 §4: a retransmission (or out of order): no PRACK, no processing
                    return [ResponseIgnored(response, "reliable provisional not in sequence")]
            dlg = self.dialogs.get(did.remote_tag)
            if dlg is None:
                if self.confirmed is not None or self.final is not None:
                    return [ResponseIgnored(response, "provisional after final response")]
                dlg = Dialog.uac(self.invite, response)
                self.dialogs[did.remote_tag] = dlg
                events: list[UacEvent] = [DialogEarly(dlg, response)]
            else:
                action = dlg.receive_response(response)
                if action is DialogAction.IGNORE:
                    return [ResponseIgnored(response, "provisional after 2xx")]
                events = [DialogEarly(dlg, response)]
            if rseq is not None:
                self._rseq[did.remote_tag] = rseq
                icseq = self.invite.cseq
                assert icseq is not None  # matched above
                prack = dlg.create_request(
                    "PRACK", local=self.local, headers=[("RAck", f"{rseq} {icseq.seq} INVITE")]
                )
                events.append(PrackNeeded(prack, dlg, response))
            return events
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
        events = []
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


@dataclass
class _Retransmit:
    """One message resent with an interval doubling from T1 (capped at ``cap``) until
    stopped or until ``give_up``."""

    message: Response
    next: float
    interval: float
    cap: float | None
    give_up: float

    def due(self, now: float) -> list[Response]:
        out: list[Response] = []
        while now >= self.next and self.next < self.give_up:
            out.append(self.message)
            self.interval = (
                self.interval * 2 if self.cap is None else min(self.interval * 2, self.cap)
            )
            self.next += self.interval
        return out


class UasInvite:
    """One incoming INVITE at the UAS core: its dialog, its 2xx retransmissions (§13.3.1.4)
    and its reliable provisional responses (RFC 3262 §3: ``Require: 100rel`` + ``RSeq``,
    retransmitted until the PRACK)."""

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
        self.timed_out = False  # no ACK for the 2xx within 64*T1: send BYE
        self.prack_timed_out = False  # no PRACK within 64*T1: reject the INVITE (5xx)
        self._ok: _Retransmit | None = None
        self._reliable: _Retransmit | None = None
        self._rseq = secrets.randbelow(2**16)  # next RSeq - 1 (RFC 3262 §3: random start)
        self._pending_rseq: int | None = None

    @property
    def peer_supports_100rel(self) -> bool:
        return "100rel" in self.invite.supported or "100rel" in self.invite.require

    def respond(
        self,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        reliable: bool = False,
    ) -> Response:
        """Build a response; 101-299 carry the Contact and Record-Route (§12.1.1) and create
        or confirm the dialog. A 2xx is then retransmitted by :meth:`handle_timer`, and so is
        a ``reliable`` provisional response (RFC 3262) until :meth:`receive_prack`."""
        if self.final is not None:
            raise SipBuildError("a final response was already sent")
        extra = list(headers)
        if 100 < status < 300:
            # §12.1.1: Record-Route copied in order, and our Contact
            rrs = [("Record-Route", rr) for rr in self.invite.headers.get_all("Record-Route")]
            extra = [*rrs, ("Contact", self.local.contact().encode()), *extra]
        if reliable:
            if not 100 < status < 200:
                raise SipBuildError("only 101-199 can be sent reliably")
            if self._pending_rseq is not None:
                raise SipBuildError("the previous reliable provisional is not PRACKed yet")
            self._rseq += 1
            extra += [("Require", "100rel"), ("RSeq", str(self._rseq))]
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
        if reliable:
            self._pending_rseq = self._rseq
            self._reliable = _Retransmit(resp, now + self.t1, self.t1, None, now + 64 * self.t1)
        if status >= 200:
            self.final = resp
            self._reliable = None  # a final response ends 1xx retransmissions
            if status >= 300 and self.dialog is not None:
                self.dialog.state = DialogState.TERMINATED
            if status < 300:
                self._ok = _Retransmit(resp, now + self.t1, self.t1, self.t2, now + 64 * self.t1)
        return resp

    def receive_prack(self, prack: Request, now: float) -> Response:
        """Answer a PRACK (RFC 3262 §3): 200 when its RAck matches the unacknowledged
        reliable provisional (its retransmissions stop), 481 otherwise."""
        rack = (prack.headers.get("RAck") or "").split()
        inv = self.invite.cseq
        ok = (
            len(rack) == 3
            and inv is not None
            and self._pending_rseq is not None
            and rack[0] == str(self._pending_rseq)
            and rack[1] == str(inv.seq)
            and rack[2] == inv.method
            and prack.call_id == self.invite.call_id
        )
        if not ok:
            return make_response(prack, 481)
        self._pending_rseq = None
        self._reliable = None
        if self.dialog is not None:
            self.dialog.receive_request(prack)
        return make_response(prack, 200)

    def receive_ack(self, ack: Request, now: float) -> bool:
        """The ACK for our 2xx: stop retransmitting. Returns False if it is not ours."""
        cseq, inv = ack.cseq, self.invite.cseq
        if cseq is None or inv is None or cseq.seq != inv.seq or ack.call_id != self.invite.call_id:
            return False
        self.acked = True
        self._ok = None
        if self.dialog is not None:
            self.dialog.receive_request(ack)
        return True

    def get_timer(self) -> float | None:
        times = [min(r.next, r.give_up) for r in (self._ok, self._reliable) if r is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Response]:
        """Responses to resend at ``now``: the 2xx (T1 doubling up to T2) until the ACK, a
        reliable 1xx (T1 doubling) until its PRACK. After 64*T1, ``timed_out`` (send BYE,
        §13.3.1.4) or ``prack_timed_out`` (answer the INVITE 5xx, RFC 3262 §3) is set."""
        out: list[Response] = []
        if self._reliable is not None:
            out += self._reliable.due(now)
            if now >= self._reliable.give_up:
                self._reliable = None
                self.prack_timed_out = True
        if self._ok is not None:
            out += self._ok.due(now)
            if now >= self._ok.give_up:
                self._ok = None
                self.timed_out = True
        return out
