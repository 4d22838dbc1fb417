"""The operator's KMS for MIKEY-TICKET (RFC 6043): Ticket Request, Ticket Resolve, KMS-to-KMS
resolution and the LI function -- sans-I/O, beside the MIKEY-SAKKE core (``proxies.kms``).

* Ticket Request / Resolve (§4.2.1, §4.2.3, PSK variants): :class:`ims.mikey.modes.ticket.
  TicketKms` with each subscriber's PSK shared with its home KMS (provisioned by ``imslab up``).
  The requester's MIKEY identity (IDRi / IDRr) must be the TLS client identity the adapter
  authenticated, so a UE cannot speak for another even with a stolen PSK alone.
* Another operator's ticket (§10 "Signaling between Different KMSs"): "If KMS R did not issue
  the ticket, KMS R would normally be unable to directly resolve the ticket and must hence ask
  another KMS to resolve it (typically the issuing KMS)" -- :meth:`TicketService.handle` then
  answers a :class:`Forward`: a RESOLVE_INIT_PSK to the issuing KMS (its IDRkms in the Ticket
  Policy) with "The IDRr and TICKET payloads from the previous RESOLVE_INIT message", keyed by
  the PSK the two KMSs share (IDRpsk names KMS R: "IDRr cannot be used to look up the
  pre-shared key"). The adapter sends it over mutual TLS and feeds the answer to
  :meth:`TicketService.forwarded`, which re-protects the keys for the Responder.
* A peer KMS resolving one of our tickets is authenticated by that shared PSK *and* its TLS
  identity; it may resolve for a Responder the ticket names (the peer vouches for it).
* LI (issue 14): :meth:`TicketService.recover` takes an intercepted TRANSFER_INIT and derives the
  call's SRTP keys -- from the ticket when this KMS issued it (the TPK is ours), or from the
  keys this KMS obtained when it resolved the ticket for one of its subscribers. A KMS that did
  neither cannot, and says so. Every action is audited (who, what, when; never keys).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ims.mikey.constants import DataType, ErrorNo
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.base import KeyExchangeResult, error_message
from ims.mikey.modes.ticket import TicketKeys, TicketKms, TicketResolver
from ims.mikey.modes.ticket_transfer import transfer_result
from ims.mikey.payloads_kms import IdRole, IdrPayload, TicketPayload, TpPayload
from ims.mikey.ticket import tp_data_view
from ims.mikey.ticket_base import BaseTicketContents
from ims.mikey.ticket_kdf import mpk_pair
from proxies.kms import AuditAction, AuditRecord, KmsRefusedError

RECENT_TICKETS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """Resolve at another KMS: send ``message`` to ``kms_id`` and hand its answer back."""

    kms_id: str
    message: bytes
    resolver: TicketResolver = field(repr=False)
    original: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketOutcome:
    """The MIKEY answer to send, or a :class:`Forward` to carry out first."""

    message: bytes | None = None
    forward: Forward | None = None


def _idr(msg: MikeyMessage, role: IdRole) -> str:
    for p in msg.find_all(IdrPayload):
        if p.role is role:
            return p.data.decode("utf-8", "replace")
    return ""


def _ticket_digest(ticket: TicketPayload) -> bytes:
    return hashlib.sha256(ticket.tp_data + ticket.ticket_data).digest()


class TicketService:
    """One operator's MIKEY-TICKET KMS: subscribers' PSKs, peer KMSs' PSKs, TPK, audit."""

    def __init__(
        self,
        *,
        kms_id: str,
        user_psks: Mapping[str, bytes],
        peer_psks: Mapping[str, bytes] | None = None,
        tpk: bytes | None = None,
    ) -> None:
        self.kms_id = kms_id
        self.user_psks = dict(user_psks)
        self.peer_psks = dict(peer_psks or {})
        self.core = TicketKms(kms_id=kms_id, psk=self._psk, tpk=tpk)
        self._audit: list[AuditRecord] = []
        # the keys of tickets we resolved (ours or, through a peer, another KMS's): what the LI
        # function can give for them; bounded, the oldest forgotten first
        self._resolved: OrderedDict[bytes, TicketKeys] = OrderedDict()

    # --- key lookup for the core: a subscriber's PSK, or a peer KMS's by IDRpsk -----------
    def _psk(self, identity: bytes, psk_id: bytes | None) -> bytes | None:
        if psk_id is not None:
            return self.peer_psks.get(psk_id.decode("utf-8", "replace"))
        return self.user_psks.get(identity.decode("utf-8", "replace"))

    def drain_audit(self) -> list[AuditRecord]:
        out, self._audit = self._audit, []
        return out

    def _record(
        self, now: float, action: AuditAction, requester: str, user: str, detail: str
    ) -> None:
        self._audit.append(
            AuditRecord(time=now, action=action, requester=requester, user=user, detail=detail)
        )

    def _remember(self, ticket: TicketPayload, keys: TicketKeys) -> None:
        self._resolved[_ticket_digest(ticket)] = keys
        while len(self._resolved) > RECENT_TICKETS:
            self._resolved.popitem(last=False)

    # --- the exchanges ------------------------------------------------------------------
    def handle(self, data: bytes, *, requester: str, now: float) -> TicketOutcome:
        """One MIKEY message from the authenticated ``requester`` (TLS identity); never
        raises for peer input (a refusal is a MIKEY Error message, audited)."""
        try:
            msg = decode_message(data)
            dt = msg.data_type
            if dt is DataType.REQUEST_INIT_PSK:
                who = _idr(msg, IdRole.INITIATOR)
                self._bind(who, requester)
            elif dt is DataType.RESOLVE_INIT_PSK:
                who = _idr(msg, IdRole.RESPONDER)
                psk_ids = [p for p in msg.find_all(IdrPayload) if p.role is IdRole.PSK]
                if psk_ids:  # a peer KMS (§10): IDRpsk names it, TLS must agree
                    peer = psk_ids[0].data.decode("utf-8", "replace")
                    if peer != requester or peer not in self.peer_psks:
                        raise MikeyError(
                            "IDRpsk is not this peer KMS", mikey_error=ErrorNo.INVALID_ID
                        )
                else:
                    self._bind(who, requester)
                    ticket = msg.find(TicketPayload)
                    issuer = tp_data_view(ticket.tp_data).kms if ticket is not None else None
                    if ticket is not None and issuer and issuer.decode() != self.kms_id:
                        return self._forward(data, msg, ticket, issuer.decode(), requester, now)
            else:
                raise MikeyError(f"a KMS does not take {dt.name}", mikey_error=ErrorNo.INVALID_DT)
        except (MikeyError, MikeyDecodeError) as exc:
            self._record(now, AuditAction.REFUSED, requester, "", f"MIKEY-TICKET: {exc}")
            code = exc.mikey_error
            return TicketOutcome(message=error_message(_csb(data), code, now))
        reply = self.core.receive(data, now)
        if not reply.ok:
            self._record(now, AuditAction.REFUSED, requester, who, f"MIKEY-TICKET: {reply.error}")
            return TicketOutcome(message=reply.message)
        if dt is DataType.REQUEST_INIT_PSK:
            tp = msg.find(TpPayload)
            responders = tp_data_view(tp.tp_data).responders if tp is not None else ()
            self._record(now, AuditAction.ISSUED, requester, who, "ticket" + _names(responders))
        else:
            ticket = msg.find(TicketPayload)
            assert ticket is not None  # the core resolved it
            self._remember(ticket, self._keys_of(ticket))
            via = "" if requester == who else f" for peer {requester}"
            self._record(now, AuditAction.RESOLVED, requester, who, "ticket resolved" + via)
        return TicketOutcome(message=reply.message)

    def _bind(self, who: str, requester: str) -> None:
        if not who or who != requester:
            raise MikeyError(
                f"MIKEY identity {who!r} is not the TLS identity {requester!r}",
                mikey_error=ErrorNo.INVALID_ID,
            )

    def _keys_of(self, ticket: TicketPayload) -> TicketKeys:
        contents: BaseTicketContents = self.core.open_ticket(ticket)
        mpki = mpk_pair(contents.mpk.key, contents.rand)[0]
        return TicketKeys(mpki=mpki, keys=contents.keys, mpk_spi=contents.mpk.kv_data[1:])

    def _forward(
        self,
        data: bytes,
        msg: MikeyMessage,
        ticket: TicketPayload,
        issuer: str,
        requester: str,
        now: float,
    ) -> TicketOutcome:
        # the Responder's own MAC first: only an authenticated subscriber gets us to ask a peer
        self.core.verify_resolve(data, msg, now)
        peer_psk = self.peer_psks.get(issuer)
        if peer_psk is None:
            raise MikeyError(f"no trust relation with {issuer}", mikey_error=ErrorNo.AUTH_FAILURE)
        resolver = TicketResolver(
            identity=requester,
            kms_id=issuer,
            psk=peer_psk,
            ticket=ticket,
            psk_id=self.kms_id.encode(),
        )
        out = resolver.initiate(now)
        self._record(now, AuditAction.FORWARDED, requester, requester, f"ticket of {issuer}")
        return TicketOutcome(
            forward=Forward(kms_id=issuer, message=out, resolver=resolver, original=data)
        )

    def forwarded(self, fwd: Forward, answer: bytes | None, *, requester: str, now: float) -> bytes:
        """The issuing KMS's RESOLVE_RESP (None: unreachable) -> our RESOLVE_RESP to the
        Responder, or an Error message. The keys are remembered for the LI function."""
        try:
            if answer is None:
                raise MikeyError(f"{fwd.kms_id} unreachable", mikey_error=ErrorNo.UNSPECIFIED)
            keys = fwd.resolver.receive(answer, now)
            msg = decode_message(fwd.original)
            reply = self.core.answer_resolve(fwd.original, msg, keys, now)
        except (MikeyError, MikeyDecodeError) as exc:
            self._record(
                now, AuditAction.REFUSED, requester, requester, f"forwarded resolve: {exc}"
            )
            return error_message(_csb(fwd.original), exc.mikey_error, now)
        self._remember(fwd.resolver.ticket, keys)
        self._record(now, AuditAction.RESOLVED, requester, requester, f"ticket of {fwd.kms_id}")
        return reply

    # --- LI ------------------------------------------------------------------------------
    def recover(
        self, transfer_init: bytes, *, requester: str, targets: Iterable[str], now: float
    ) -> KeyExchangeResult:
        """The call keys of an intercepted TRANSFER_INIT, under a task naming a party of it."""
        try:
            msg = decode_message(transfer_init)
            if msg.data_type is not DataType.TRANSFER_INIT:
                raise MikeyError("not a TRANSFER_INIT", mikey_error=ErrorNo.INVALID_DT)
            ticket = msg.find(TicketPayload)
            if ticket is None:
                raise MikeyError("TICKET missing", mikey_error=ErrorNo.UNSPECIFIED)
            keys = self._resolved.get(_ticket_digest(ticket))
            view = tp_data_view(ticket.tp_data)
            if keys is None and view.kms == self.kms_id.encode():
                keys = self._keys_of(ticket)
            if keys is None:
                raise MikeyError(
                    "another KMS's ticket that none of our subscribers resolved here",
                    mikey_error=ErrorNo.AUTH_FAILURE,
                )
            parties = {_idr(msg, IdRole.INITIATOR), _idr(msg, IdRole.RESPONDER)}
            parties |= {r.decode() for r in view.responders}
            if view.initiator:
                parties.add(view.initiator.decode())
            if not parties & set(targets):
                raise KmsRefusedError("no active task names either party")
            result = transfer_result(transfer_init, msg, ticket, keys)
        except (MikeyError, MikeyDecodeError) as exc:
            self._record(now, AuditAction.RECOVERY_FAILED, requester, "", f"MIKEY-TICKET: {exc}")
            raise KmsRefusedError(f"cannot recover: {exc}", 422) from None
        except KmsRefusedError as exc:
            self._record(now, AuditAction.RECOVERY_FAILED, requester, "", str(exc))
            raise
        self._record(
            now,
            AuditAction.RECOVERED,
            requester,
            _idr(msg, IdRole.RESPONDER),
            f"csb {msg.hdr.csb_id:08x} caller {_idr(msg, IdRole.INITIATOR)}",
        )
        return result


def _csb(data: bytes) -> int:
    return int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0


def _names(responders: Iterable[bytes]) -> str:
    names = [r.decode("utf-8", "replace") for r in responders]
    return f" for {', '.join(names)}" if names else ""


__all__ = ["Forward", "TicketOutcome", "TicketService"]
