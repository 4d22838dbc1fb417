"""Man-in-the-middle on one MIKEY exchange (study 2.3.1 case B/D, 2.3.2, 2.3.3, 2.3.4).

Sans-I/O and per call: :meth:`MikeyMitm.on_offer` gets the initiator's I_MESSAGE and returns
what to forward to the responder; :meth:`MikeyMitm.on_answer` gets the responder's R_MESSAGE (or
None) and returns what to forward to the initiator. It only ever runs for a task that explicitly
authorises it (:mod:`li.mitm.signalling` checks), and it impersonates each end toward the other
with *substitute credentials* -- certificates for the real identities, with the MITM's keys:

* PKE (RFC 3830 §3.2, study 2.3.1 case B, steps 1-2): the initiator encrypted the envelope key
  to the substitute responder certificate it got from the responder's operator; the MITM opens
  it, and forwards the *same* TGK, RAND and CSB ID to the real responder, encrypted to the real
  certificate and signed with a substitute initiator certificate. Both ends derive the same SRTP
  keys: no MITM on media. If the responder's operator did not assist, the envelope is sealed to
  the real responder: the MITM cannot open it and passes the message through (keys unavailable).
* RSA-R (RFC 4738): the MITM sends the responder an I_MESSAGE with a substitute initiator
  certificate; the TGK comes back sealed to the MITM; it answers the initiator with the same
  TGK sealed to the real initiator and signed with a substitute responder certificate.
* DH-SIGN (RFC 3830 §3.3, study 2.3.3) and DHHMAC with a known PSK (RFC 4650): the MITM runs a
  separate DH exchange with each end; the two legs have different TGKs, so the media must be
  decrypted and re-encrypted (:mod:`li.mitm.media`).

Whether a substitute exists for an identity is the assisting operators' decision:
:class:`SubstituteProvider` answers ``None`` for identities whose operator does not assist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509

from ims.mikey.certs import Credentials, TrustStore
from ims.mikey.constants import DataType
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.message import decode_message
from ims.mikey.modes.base import DEFAULT_SESSIONS, CryptoSession, KeyExchangeResult, sdp_ids_of
from ims.mikey.payloads import IdPayload, RandPayload
from li.keys import identity_aor as aor


class MitmFunction(StrEnum):
    """MITM functions an X1 task can authorise (imslab task extension)."""

    PKE = "pke"  # cases B and D
    RSA_R = "rsa-r"
    DH = "dh"  # DH-SIGN: signalling + media
    DHHMAC = "dhhmac"  # DH-HMAC with a PSK the operator knows: signalling + media


FUNCTION_FOR_TYPE = {
    DataType.PK_INIT: MitmFunction.PKE,
    DataType.RSA_R_INIT: MitmFunction.RSA_R,
    DataType.DH_INIT: MitmFunction.DH,
    DataType.DHHMAC_INIT: MitmFunction.DHHMAC,
}


class AnyCertificate(TrustStore):
    """The MITM authenticates nobody: it is the one being trusted."""

    def verify(self, chain: Any, now: float) -> x509.Certificate:
        if not chain:
            raise MikeyError("no certificate")
        leaf: x509.Certificate = chain[0]
        return leaf


SubstituteProvider = Callable[[str], Credentials | None]


class MitmState(StrEnum):
    IDLE = "idle"
    OFFER_FORWARDED = "offer-forwarded"
    KEYED = "keyed"  # both legs keyed (or the one shared key known)
    PASSED_THROUGH = "passed-through"  # could not open: message forwarded untouched
    FAILED = "failed"


@dataclass(slots=True)
class MikeyMitm:
    """One call's MIKEY MITM (see the module docstring)."""

    substitutes: SubstituteProvider
    real_certificates: Callable[[str], x509.Certificate | None]
    known_psk: bytes | None = None  # DHHMAC: the PSK the operator knows (publicly known)
    #: DHHMAC through intermediaries (study 2.3.4): the key of the hop toward the responder,
    #: when it is not ``known_psk`` (the operator's intermediary holds both hops' keys)
    responder_psk: bytes | None = None
    authorised: frozenset[MitmFunction] = frozenset()
    state: MitmState = MitmState.IDLE
    reason: str = ""
    function: MitmFunction | None = None
    #: the exchange with the initiator (MITM = responder) and with the responder (MITM =
    #: initiator); for PKE/RSA-R both are the same keys
    initiator_leg: KeyExchangeResult | None = None
    responder_leg: KeyExchangeResult | None = None
    _offer: bytes = b""
    _to_initiator: bytes | None = None
    _mitm_initiator: Any = None
    _ids: tuple[str, str] = ("", "")
    stats: dict[str, int] = field(default_factory=lambda: {"offers": 0, "answers": 0})

    @property
    def media_mitm_needed(self) -> bool:
        return self.function in (MitmFunction.DH, MitmFunction.DHHMAC) and (
            self.state is MitmState.KEYED
        )

    def _fail(self, state: MitmState, reason: str) -> None:
        self.state, self.reason = state, reason

    def on_offer(self, i_message: bytes, now: float) -> bytes:
        """The I_MESSAGE to forward to the responder."""
        self.stats["offers"] += 1
        self._offer = i_message
        try:
            msg = decode_message(i_message)
        except MikeyDecodeError as exc:
            self._fail(MitmState.PASSED_THROUGH, f"unreadable MIKEY: {exc}")
            return i_message
        func = FUNCTION_FOR_TYPE.get(msg.data_type)
        self.function = func
        if func is None or func not in self.authorised:
            self._fail(
                MitmState.PASSED_THROUGH,
                self.reason or f"MIKEY {msg.data_type.name}: MITM not authorised",
            )
            return i_message
        ids = [p.data.decode("utf-8", "replace") for p in msg.find_all(IdPayload)]
        idi = _cert_identity(msg) or (ids[0] if ids else "")
        others = [i for i in ids if aor(i) != aor(idi)]
        idi, idr = aor(idi), aor(others[-1]) if others else ""
        self._ids = (idi, idr)
        try:
            if func is MitmFunction.PKE:
                return self._pke_offer(i_message, msg, idi, idr, now)
            if func is MitmFunction.RSA_R:
                return self._rsa_r_offer(msg, idi, idr, now)
            return self._dh_offer(i_message, func, idi, idr, now)
        except (MikeyError, MikeyDecodeError, ValueError) as exc:
            self._fail(MitmState.PASSED_THROUGH, f"MITM could not open the offer: {exc}")
            return i_message

    def on_answer(self, r_message: bytes | None, now: float) -> bytes | None:
        """The R_MESSAGE (or None) to forward to the initiator."""
        self.stats["answers"] += 1
        if self.state is not MitmState.OFFER_FORWARDED:
            return r_message
        try:
            if self.function is MitmFunction.RSA_R:
                return self._rsa_r_answer(r_message, now)
            if self.function is MitmFunction.PKE:
                if r_message is not None:
                    self._mitm_initiator.receive(r_message, now)  # the responder's V checks out
                self.state = MitmState.KEYED
                return self._to_initiator
            if self.function in (MitmFunction.DH, MitmFunction.DHHMAC):
                if r_message is None:
                    raise MikeyError("no DH response")
                self.responder_leg = self._mitm_initiator.receive(r_message, now)
                self.state = MitmState.KEYED
                return self._to_initiator
        except (MikeyError, MikeyDecodeError, ValueError) as exc:
            self._fail(MitmState.FAILED, f"responder's answer rejected by the MITM: {exc}")
        return r_message

    # --- modes ---------------------------------------------------------------------------

    def _substitute(self, identity: str) -> Credentials:
        creds = self.substitutes(identity)
        if creds is None:
            raise MikeyError(
                f"no substitute certificate for {identity} (its operator does not assist)"
            )
        return creds

    def _pke_offer(self, data: bytes, msg: Any, idi: str, idr: str, now: float) -> bytes:
        from ims.mikey.modes.pke import PkeInitiator, PkeResponder

        fake_r = self.substitutes(idr)
        if fake_r is None:
            self._fail(
                MitmState.PASSED_THROUGH,
                f"no substitute certificate for the responder {idr}: the envelope is sealed to "
                "the real responder (only one operator assists)",
            )
            return data
        reply = PkeResponder(credentials=fake_r, trust=AnyCertificate()).receive(data, now)
        if reply.result is None:
            self._fail(
                MitmState.PASSED_THROUGH,
                f"envelope not sealed to the substitute certificate of {idr} "
                f"(the initiator did not use it): {reply.error}",
            )
            return data
        real_r = self.real_certificates(idr)
        if real_r is None:
            raise MikeyError(f"no certificate of {idr} to re-seal the envelope")
        fake_i = self._substitute(idi)
        res = reply.result
        self._mitm_initiator = PkeInitiator(
            credentials=fake_i,
            responder_certificate=real_r,
            sessions=_sessions(msg, res),
            verification=msg.hdr.v_flag,
            idi=idi,
            idr=idr,
            csb_id=res.csb_id,
            rand=res.rand,
            tgk=res.tgk,
            sdp_ids=sdp_ids_of(msg),
        )
        forward: bytes = self._mitm_initiator.initiate(now)
        self.initiator_leg = self.responder_leg = res
        # the initiator gets the verification message of *its* exchange (with the MITM)
        self._to_initiator = reply.message
        self.state = MitmState.KEYED if not msg.hdr.v_flag else MitmState.OFFER_FORWARDED
        return forward

    def _rsa_r_offer(self, msg: Any, idi: str, idr: str, now: float) -> bytes:
        from ims.mikey.modes.rsa_r import RsaRInitiator

        fake_i = self._substitute(idi)
        self._substitute(idr)  # needed for the answer: fail early, before touching the call
        rand = msg.find(RandPayload)
        self._mitm_initiator = RsaRInitiator(
            credentials=fake_i,
            trust=AnyCertificate(),
            sessions=_sessions(msg, None),
            idi=idi or None,
            idr=idr or None,
            csb_id=msg.hdr.csb_id,
            rand=rand.data if rand is not None else None,
            send_rand=rand is not None,  # RFC 4738 §3.6: RAND from one side only
            sdp_ids=sdp_ids_of(msg),
        )
        self.state = MitmState.OFFER_FORWARDED
        forwarded: bytes = self._mitm_initiator.initiate(now)
        return forwarded

    def _rsa_r_answer(self, r_message: bytes | None, now: float) -> bytes | None:
        from ims.mikey.modes.rsa_r import RsaRResponder

        if r_message is None:
            raise MikeyError("no RSA-R response")
        res = self._mitm_initiator.receive(r_message, now)
        fake_r = self._substitute(self._ids[1])
        reply = RsaRResponder(
            credentials=fake_r,
            trust=AnyCertificate(),
            tgk=res.tgk,
            rand=res.rand,  # used when the offer had no RAND (RFC 4738 §3.6)
            idr=self._ids[1] or None,
        ).receive(self._offer, now)
        if reply.result is None:
            raise MikeyError(f"cannot answer the initiator: {reply.error}")
        self.initiator_leg = self.responder_leg = reply.result
        self.state = MitmState.KEYED
        return reply.message

    def _dh_offer(self, data: bytes, func: MitmFunction, idi: str, idr: str, now: float) -> bytes:
        msg = decode_message(data)
        if func is MitmFunction.DHHMAC:
            from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder

            if self.known_psk is None:
                raise MikeyError("DH-HMAC with a PSK the operator does not know")
            reply = DhHmacResponder(psk=self.known_psk, idr=idr or None).receive(data, now)
            if reply.result is None:
                raise MikeyError(f"DH-HMAC offer not opened: {reply.error}")
            ini: Any = DhHmacInitiator(
                psk=self.responder_psk or self.known_psk,
                sessions=_sessions(msg, reply.result),
                idi=idi or None,
                idr=idr,
                sdp_ids=sdp_ids_of(msg),
            )
        else:
            from ims.mikey.modes.dh import DhInitiator, DhResponder

            fake_r = self._substitute(idr)
            fake_i = self._substitute(idi)
            reply = DhResponder(
                credentials=fake_r, trust=AnyCertificate(), idr=idr or None
            ).receive(data, now)
            if reply.result is None:
                raise MikeyError(f"DH offer not answered: {reply.error}")
            ini = DhInitiator(
                credentials=fake_i,
                trust=AnyCertificate(),
                sessions=_sessions(msg, reply.result),
                idi=idi or None,
                idr=idr or None,
                sdp_ids=sdp_ids_of(msg),
            )
        self.initiator_leg = reply.result
        self._to_initiator = reply.message
        self._mitm_initiator = ini
        self.state = MitmState.OFFER_FORWARDED
        forwarded: bytes = ini.initiate(now)
        return forwarded


def _sessions(msg: Any, result: KeyExchangeResult | None) -> tuple[CryptoSession, ...]:
    """The crypto sessions of an I_MESSAGE (same CS map and suites on the second leg)."""
    if result is None:
        return (
            tuple(
                CryptoSession(suite=DEFAULT_SESSIONS[0].suite, ssrc=e.ssrc, roc=e.roc)
                for e in msg.hdr.cs_map
            )
            or DEFAULT_SESSIONS
        )
    by_cs = sorted(result.keys, key=lambda k: k.cs_id)
    return (
        tuple(
            CryptoSession(suite=k.suite, ssrc=e.ssrc, roc=e.roc)
            for k, e in zip(by_cs, msg.hdr.cs_map, strict=False)
        )
        or DEFAULT_SESSIONS
    )


def _cert_identity(msg: Any) -> str:
    from ims.mikey.modes.pk import certificate_identity, peer_chain

    try:
        chain = peer_chain(msg)
    except MikeyError:
        return ""
    return certificate_identity(chain[0]).decode("utf-8", "replace") if chain else ""
