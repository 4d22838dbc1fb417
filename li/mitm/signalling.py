"""Signalling MITM at the target's P-CSCF: rewrites ``a=key-mgmt:mikey`` in INVITE and 2xx.

A rewriting hook for the element's :class:`proxies.hooks.SipHooks`. It acts only when the IRI-POI
of the same element intercepts the call *and* one of its tasks authorises the MITM function of
the call's MIKEY mode (X1 task extension, docs/li-extensions.md); everybody else's signalling is
never touched. It works on outgoing messages (what the element sends is what the next hop
sees): the first SDP with a MIKEY I_MESSAGE is the offer, the next SDP from the other side the
answer. Retransmissions get the same rewritten bytes. When both legs are keyed it reports the
keys (as :class:`li.keys.KeyRecord`, source ``mitm``) and, for DH modes, arms the media MITM;
DH modes are declined unless a media MITM sits on the call's media path *and* that element's
own X1 task authorises it (``media_authorised``; with a separate media provider, the provider's
task): a signalling MITM without the media MITM would only break the call. For DH the keys of both
legs are reported (a CC-POI before and one after the media MITM see different keys).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ims.log import get_logger
from ims.mikey.certs import Credentials
from ims.mikey.policy import Sender as MikeySender
from li.keys import KeyRecord, KeySource, Sender
from li.mitm.media import MediaMitm, srtp_keys
from li.mitm.mikey import MikeyMitm, MitmFunction, MitmState
from li.poi.iri import IriPoi, PoiTask

_log = get_logger("li.mitm")

_KEY_MGMT = b"a=key-mgmt:mikey "


def _find_mikey(body: bytes) -> bytes | None:
    i = body.find(_KEY_MGMT)
    if i < 0:
        return None
    end = body.find(b"\n", i)
    b64 = body[i + len(_KEY_MGMT) : end if end >= 0 else len(body)].strip()
    try:
        return base64.b64decode(b64 + b"=" * (-len(b64) % 4))
    except ValueError:
        return None


def _replace_mikey(body: bytes, new: bytes | None) -> bytes:
    i = body.find(_KEY_MGMT)
    end = body.find(b"\n", i)
    line_end = end + 1 if end >= 0 else len(body)
    eol = b"\r\n" if body[i:line_end].endswith(b"\r\n") else b"\n"
    if new is None:
        return body[:i] + body[line_end:]
    return body[:i] + _KEY_MGMT + base64.b64encode(new) + eol + body[line_end:]


@dataclass(slots=True)
class MitmCall:
    mitm: MikeyMitm
    xids: list[Any]
    rewritten: dict[bytes, bytes | None] = field(default_factory=dict)
    reported: bool = False


class SignallingMitm:
    """The MITM function of one element (see the module docstring)."""

    def __init__(
        self,
        *,
        poi: IriPoi,
        substitutes: Callable[[str], Credentials | None],
        real_certificates: Callable[[str], x509.Certificate | None],
        on_keys: Callable[[Any, str, list[KeyRecord], MikeyMitm], None],
        media: MediaMitm | None = None,
        media_authorised: Callable[[], bool] | None = None,
        known_psk: bytes | None = None,
        responder_psk: bytes | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.poi = poi
        self.substitutes = substitutes
        self.real_certificates = real_certificates
        self.on_keys = on_keys
        self.media = media
        # the media path's own task must authorise the re-keying (None: always, with media)
        self.media_authorised = media_authorised or (lambda: True)
        self.known_psk = known_psk
        self.responder_psk = responder_psk  # DHHMAC: the next hop's key, when not known_psk
        self.clock = clock
        self.calls: dict[str, MitmCall] = {}

    def _authorised(self, tasks: list[PoiTask]) -> frozenset[MitmFunction]:
        funcs: set[MitmFunction] = set()
        for t in tasks:
            for f in t.mitm:
                try:
                    funcs.add(MitmFunction(f))
                except ValueError:
                    continue
        if not self._media_available():  # DH MITM without the media MITM breaks the call
            funcs -= {MitmFunction.DH, MitmFunction.DHHMAC}
        return frozenset(funcs)

    def _media_available(self) -> bool:
        return self.media is not None and self.media_authorised()

    def hook(self) -> Callable[[Any], Any]:
        def rewrite(event: Any) -> Any:
            if str(event.direction) != "out":
                return None
            msg = event.message
            body = getattr(msg, "body", b"")
            if not body or _KEY_MGMT not in body:
                return None
            return self.rewrite(msg, body)

        return rewrite

    def rewrite(self, msg: Any, body: bytes) -> Any:
        call_id = msg.call_id
        data = _find_mikey(body)
        if data is None:
            return None
        call = self.calls.get(call_id)
        if call is None:
            tasks = [t for t in self.poi.tasks_for_call(call_id) if t.mitm]
            if not tasks or getattr(msg, "method", None) != "INVITE":
                return None
            authorised = self._authorised(tasks)
            dropped = not self._media_available() and any(
                f in ("dh", "dhhmac") for t in tasks for f in t.mitm
            )
            call = MitmCall(
                mitm=MikeyMitm(
                    substitutes=self.substitutes,
                    real_certificates=self.real_certificates,
                    known_psk=self.known_psk,
                    responder_psk=self.responder_psk,
                    authorised=authorised,
                ),
                xids=[t.xid for t in tasks],
            )
            if dropped:
                call.mitm.reason = (
                    "DH needs the MITM on the media path too, and no media MITM is authorised "
                    "on this call's media path"
                )
            self.calls[call_id] = call
        if data in call.rewritten:
            new = call.rewritten[data]
        elif getattr(msg, "method", None) == "INVITE" and not call.rewritten:
            new = call.mitm.on_offer(data, self.clock())
            call.rewritten[data] = new
        elif getattr(msg, "status", None) is not None and 200 <= msg.status < 300:
            new = call.mitm.on_answer(data, self.clock())
            call.rewritten[data] = new
        else:
            return None
        self._report(call_id, call)
        if new == data:
            return None
        out = msg.copy()
        out.body = _replace_mikey(body, new)
        return out

    def _report(self, call_id: str, call: MitmCall) -> None:
        m = call.mitm
        if call.reported or m.state is MitmState.OFFER_FORWARDED:
            return
        call.reported = True
        if m.state is not MitmState.KEYED or m.initiator_leg is None:
            _log.info("mitm failed", call_id=call_id, reason=m.reason, state=m.state.value)
            records = [
                KeyRecord(
                    call_id=call_id, source=KeySource.MITM, sender=Sender.BOTH, reason=m.reason
                )
            ]
        else:
            responder_leg = m.responder_leg or m.initiator_leg
            records = [
                KeyRecord(
                    call_id=call_id,
                    source=KeySource.MITM,
                    sender=Sender.OFFERER,
                    keys=srtp_keys(m.initiator_leg, MikeySender.INITIATOR),
                    leg="initiator",
                ),
                KeyRecord(
                    call_id=call_id,
                    source=KeySource.MITM,
                    sender=Sender.ANSWERER,
                    keys=srtp_keys(responder_leg, MikeySender.RESPONDER),
                    leg="responder",
                ),
            ]
            if responder_leg is not m.initiator_leg:
                # DH: each leg has its own TGK, and a POI on either side of the media MITM
                # sees the other key of each direction (re-encrypted by the MITM)
                records += [
                    KeyRecord(
                        call_id=call_id,
                        source=KeySource.MITM,
                        sender=Sender.OFFERER,
                        keys=srtp_keys(responder_leg, MikeySender.INITIATOR),
                        leg="responder",
                    ),
                    KeyRecord(
                        call_id=call_id,
                        source=KeySource.MITM,
                        sender=Sender.ANSWERER,
                        keys=srtp_keys(m.initiator_leg, MikeySender.RESPONDER),
                        leg="initiator",
                    ),
                ]
            if m.media_mitm_needed and self.media is not None and m.responder_leg is not None:
                self.media.arm(call_id, m.initiator_leg, m.responder_leg)
            _log.info("mitm keyed", call_id=call_id, function=str(m.function))
        for xid in call.xids:
            self.on_keys(xid, call_id, records, m)
