"""MIKEY-SAKKE (RFC 6509): one signed I_MESSAGE carrying SAKKE Encapsulated Data.

RFC 6509 §2.1 Figure 1::

    I_MESSAGE = HDR, T, RAND, [IDRi], [IDRr], [IDRkmsi], [IDRkmsr], [CERT], {SP}, SAKKE, SIGN

* HDR (§2.2.1, §4.1): data type 26, "The V bit in the HDR payload MUST be set to '0' and
  ignored by the Responder, as a response is not expected in this mode"; CSB ID random.
* T: "MUST use TS type NTP-UTC (TS type 0) or NTP (TS type 1) ... so that the Responder can
  determine the Identifiers used by the Initiator"; the key period (month) of both
  Identifiers is the month of T (§3.2 "The value of the month used to form the Identifiers
  MUST be equal to the month as specified by the data in the timestamp payload").
* RAND: "The Initiator MUST include a RAND payload ... as this is used to derive session keys".
* IDRi / IDRr / IDRkmsi / IDRkmsr (roles 1, 2, 6, 7): optional; when present IDRi/IDRr "MUST
  contain the URI" used in the Identifier. We send all four by default; a responder without
  IDRi takes the initiator's URI from the signalling (``initiator_uri``).
* SAKKE (§4.2): Encapsulated Data to the Responder's Identifier under the Responder's KMS
  (RFC 6508 §6.2.1). SSV = TGK (§3.1 "This SSV is used as the TGK"); TEK/salt per crypto
  session from the TGK by RFC 3830 §4.1.3, as in every other mode here.
* SIGN (§4.3): S type 2 = ECCSI (RFC 6507), "the Initiator MUST NOT include a CERT payload";
  RFC 3830 §5.2: "Calculate the MAC/signature over the entire MIKEY message, except the
  MAC/Signature field" (the SIGN payload's S type/length included), signed with the
  Initiator's SSK for the period of T.

Responder processing (§2.2.2): parse (unsupported -> Error no. 12, the RFC 3830 value the
RFC allows instead of 13); verify the ECCSI signature against IDRkmsi's KPAK ("Auth
failure", no. 0); check T against the window and replay cache (RFC 3830 §5.4); only then
decapsulate, which fails (Auth failure) unless RFC 6508 §6.2.2's TEST holds. No R_MESSAGE.

:func:`kms_recover_keys` is the same computation done by the Responder's KMS, which can
derive the Responder's RSK: the keys of a MIKEY-SAKKE call without any MITM (issue 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ims.mikey import eccsi, sakke
from ims.mikey.constants import DataType, ErrorNo, IdType, SignType, TsType
from ims.mikey.crypto import random_bytes
from ims.mikey.errors import MikeyError
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.base import (
    DEFAULT_SESSIONS,
    CryptoSession,
    Input,
    KeyExchangeResult,
    Machine,
    ResponderBase,
    ResponderReply,
    build_cs_map,
    build_sps,
    decode_checked,
    replay_key,
    require_rand,
    require_t,
    timestamp,
)
from ims.mikey.payloads import CertPayload, HdrPayload, Payload, RandPayload, SignPayload, SpPayload
from ims.mikey.payloads_kms import IdRole, IdrPayload, IdScheme, SakkeParams, SakkePayload
from ims.mikey.replay import ReplayCache, unix_from_ntp
from ims.mikey.sakke_keys import (
    KmsKeyIssuer,
    SakkeKeyring,
    acceptable_periods,
    identifier,
    key_period,
    normalize_uri,
)

MODE = "sakke"


def _idr(role: IdRole, text: str) -> IdrPayload:
    return IdrPayload(role=role, id_type=IdType.URI, data=text.encode("ascii"))


def find_idr(msg: MikeyMessage, role: IdRole) -> str | None:
    """The URI of the (first) IDR payload with ``role``, or None."""
    for p in msg.find_all(IdrPayload):
        if p.role is role:
            try:
                return p.data.decode("ascii")
            except UnicodeDecodeError:
                raise MikeyError("IDR is not US-ASCII", mikey_error=ErrorNo.INVALID_ID) from None
    return None


def message_period(msg: MikeyMessage) -> str:
    """The key period named by T (RFC 6509 §2.2.1, §3.2); NTP-UTC or NTP only."""
    t = require_t(msg)
    if t.ts_type not in (TsType.NTP_UTC, TsType.NTP):
        raise MikeyError(
            "MIKEY-SAKKE needs an NTP-UTC or NTP timestamp", mikey_error=ErrorNo.INVALID_TS
        )
    return key_period(unix_from_ntp(t.value))


def _signature(msg: MikeyMessage) -> SignPayload:
    sig = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sig, SignPayload):
        raise MikeyError("SIGN payload missing", mikey_error=ErrorNo.AUTH_FAILURE)
    if sig.sign_type is not SignType.ECCSI:
        raise MikeyError(
            f"signature type {sig.sign_type.name} not supported here (ECCSI only)",
            mikey_error=ErrorNo.AUTH_FAILURE,
        )
    return sig


def _sakke(msg: MikeyMessage) -> SakkePayload:
    p = msg.find(SakkePayload)
    if p is None:
        raise MikeyError("SAKKE payload missing", mikey_error=ErrorNo.UNSPECIFIED)
    if p.params is not SakkeParams.PARAMETER_SET_1:
        raise MikeyError("unsupported SAKKE parameter set", mikey_error=ErrorNo.UNSPECIFIED)
    return p


class SakkeInitiator:
    """Initiator of MIKEY-SAKKE: ``initiate(now)`` -> the signed I_MESSAGE; the exchange is
    then complete on this side (no response is expected, §2.1)."""

    mode = MODE

    def __init__(
        self,
        *,
        keyring: SakkeKeyring,
        responder_uri: str,
        responder_kms: str | None = None,
        sessions: Sequence[CryptoSession] = DEFAULT_SESSIONS,
        send_ids: bool = True,
        csb_id: int | None = None,
        rand: bytes | None = None,
        ssv: bytes | None = None,
    ) -> None:
        self.keyring = keyring
        self.responder_uri = normalize_uri(responder_uri, keyring.id_scheme)
        self.responder_kms = responder_kms
        self.sessions = tuple(sessions)
        self.send_ids = send_ids
        self.csb_id = csb_id if csb_id is not None else int.from_bytes(random_bytes(4), "big")
        self.rand = rand if rand is not None else random_bytes(16)
        self._ssv = ssv
        self.machine = Machine()
        self.result: KeyExchangeResult | None = None

    def initiate(self, now: float) -> bytes:
        period = key_period(now)
        signer = self.keyring.signer(period)
        home = self.keyring.kms_of_period(period)
        their_kms = self.keyring.kms(self.responder_kms or home.kms_uri)
        scheme = self.keyring.id_scheme
        try:
            enc = sakke.encapsulate(
                identifier(period, self.responder_uri, scheme), their_kms.z, ssv=self._ssv
            )
        except sakke.SakkeError as exc:  # e.g. an Identifier not below q (RFC 6508 §2.2)
            raise MikeyError(f"SAKKE: {exc}", mikey_error=ErrorNo.INVALID_ID) from None
        hdr = HdrPayload(
            data_type=DataType.SAKKE,
            csb_id=self.csb_id,
            cs_map=build_cs_map(self.sessions),
            v_flag=False,
        )
        payloads: list[Payload] = [timestamp(now), RandPayload(data=self.rand)]
        if self.send_ids:
            payloads += [
                _idr(IdRole.INITIATOR, self.keyring.uri),
                _idr(IdRole.RESPONDER, self.responder_uri),
                _idr(IdRole.INITIATOR_KMS, home.kms_uri),
                _idr(IdRole.RESPONDER_KMS, their_kms.kms_uri),
            ]
        sps = build_sps(self.sessions)
        payloads += [
            *sps,
            SakkePayload(params=SakkeParams.PARAMETER_SET_1, id_scheme=scheme, data=enc.data),
            SignPayload(sign_type=SignType.ECCSI, signature=bytes(eccsi.SIGNATURE_LEN)),
        ]
        body = MikeyMessage(hdr=hdr, payloads=tuple(payloads)).encode()[: -eccsi.SIGNATURE_LEN]
        data = body + signer.sign(body)
        self.result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=self.csb_id,
            rand=self.rand,
            tgk=enc.ssv,
            cs_map=hdr.cs_map,
            policies=sps,
            peer_id=self.responder_uri.encode("ascii"),
        )
        self.machine.fire(Input.INITIATE_ONE_WAY)
        return data


class SakkeResponder(ResponderBase):
    """Responder of MIKEY-SAKKE. ``receive(data, now)`` never raises for peer input; on
    success the reply carries the keys and no message (no R_MESSAGE in this mode), on failure
    a MIKEY Error message (RFC 6509 §2.2.2: "an 'Auth failure' error (Error no. 0) MAY be
    sent").

    ``initiator_uri`` is the initiator's identity from the signalling (e.g. the asserted
    identity of the INVITE): used when the I_MESSAGE has no IDRi, and required to match it
    when it has one, so a signature by some other subscriber is not taken for the caller's.
    """

    mode = MODE

    def __init__(
        self,
        *,
        keyring: SakkeKeyring,
        initiator_uri: str | None = None,
        replay: ReplayCache | None = None,
    ) -> None:
        self.keyring = keyring
        self.initiator_uri = initiator_uri
        self.replay = replay if replay is not None else ReplayCache()
        self.machine = Machine()

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        msg = decode_checked(data, DataType.SAKKE)
        scheme = self.keyring.id_scheme
        t = require_t(msg)
        period = message_period(msg)
        if period not in acceptable_periods(now):
            raise MikeyError(
                f"key period {period} not accepted now (RFC 6509 §3.3)",
                mikey_error=ErrorNo.INVALID_TS,
            )
        rand = require_rand(msg)
        if msg.find(CertPayload) is not None:  # §2.2.1 "MUST NOT include a CERT payload"
            raise MikeyError("CERT with an ECCSI signature", mikey_error=ErrorNo.UNSPECIFIED)
        sig = _signature(msg)
        # who signed: IDRi, checked against the signalling identity when we have both
        idri = find_idr(msg, IdRole.INITIATOR)
        caller = idri if idri is not None else self.initiator_uri
        if caller is None:
            raise MikeyError("initiator identity unknown", mikey_error=ErrorNo.INVALID_ID)
        caller = normalize_uri(caller, scheme)
        if self.initiator_uri is not None and caller != normalize_uri(self.initiator_uri, scheme):
            raise MikeyError("IDRi is not the signalled caller", mikey_error=ErrorNo.AUTH_FAILURE)
        idrr = find_idr(msg, IdRole.RESPONDER)
        if idrr is not None and normalize_uri(idrr, scheme) != self.keyring.uri:
            raise MikeyError("I_MESSAGE is for another responder", mikey_error=ErrorNo.INVALID_ID)
        kpak = self.keyring.kms(find_idr(msg, IdRole.INITIATOR_KMS)).kpak
        signed = data[: len(data) - len(sig.signature)]
        if not eccsi.verify(sig.signature, signed, identifier(period, caller, scheme), kpak):
            raise MikeyError("ECCSI signature does not verify", mikey_error=ErrorNo.AUTH_FAILURE)
        self.replay.check_and_store(replay_key(msg, data), t, now, msg.hdr.csb_id)
        sak = _sakke(msg)
        if sak.id_scheme is not scheme:
            raise MikeyError("SAKKE ID scheme not ours", mikey_error=ErrorNo.INVALID_ID)
        kmsr = find_idr(msg, IdRole.RESPONDER_KMS)
        own = self.keyring.kms_of_period(period)
        if kmsr is not None and kmsr != own.kms_uri:
            raise MikeyError("encapsulated under another KMS", mikey_error=ErrorNo.AUTH_FAILURE)
        try:
            ssv = sakke.decapsulate(sak.data, self.keyring.receiver(period))
        except sakke.SakkeError as exc:
            raise MikeyError(f"SAKKE: {exc}", mikey_error=ErrorNo.AUTH_FAILURE) from None
        result = KeyExchangeResult.derived(
            mode=self.mode,
            csb_id=msg.hdr.csb_id,
            rand=rand,
            tgk=ssv,
            cs_map=msg.hdr.cs_map,
            policies=msg.find_all(SpPayload),
            peer_id=caller.encode("ascii"),
        )
        return ResponderReply(message=None, result=result)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveredKeys:
    """What the Responder's KMS derives from an intercepted I_MESSAGE."""

    responder_uri: str
    period: str
    result: KeyExchangeResult


def kms_recover_keys(
    data: bytes,
    issuer: KmsKeyIssuer,
    *,
    responder_uri: str | None = None,
    scheme: IdScheme | None = None,
) -> RecoveredKeys:
    """The Responder's KMS recovers the TGK and SRTP keys of a MIKEY-SAKKE I_MESSAGE.

    The KMS derives the Responder's RSK for the period of T (RFC 6508 §6.1.1) and runs the
    Receiver's processing (§6.2.2, TEST included). The Responder is IDRr, or ``responder_uri``
    when the message carries none (from the intercepted signalling). Raises MikeyError /
    MikeyDecodeError. The signature is not checked: the keys are what the Responder would get,
    and a forged message yields keys no honest party uses.
    """
    msg = decode_message(data)
    if msg.data_type is not DataType.SAKKE:
        raise MikeyError("not a MIKEY-SAKKE I_MESSAGE", mikey_error=ErrorNo.INVALID_DT)
    period = message_period(msg)
    rand = require_rand(msg)
    sak = _sakke(msg)
    id_scheme = scheme if scheme is not None else sak.id_scheme
    target = find_idr(msg, IdRole.RESPONDER) or responder_uri
    if target is None:
        raise MikeyError("responder identity unknown", mikey_error=ErrorNo.INVALID_ID)
    ident = identifier(period, target, id_scheme)
    try:  # an Identifier too long for SAKKE (>= q) is a SakkeError here too
        ssv = sakke.decapsulate(sak.data, issuer.receiver_key(ident))
    except sakke.SakkeError as exc:
        raise MikeyError(f"SAKKE: {exc}", mikey_error=ErrorNo.AUTH_FAILURE) from None
    result = KeyExchangeResult.derived(
        mode=MODE,
        csb_id=msg.hdr.csb_id,
        rand=rand,
        tgk=ssv,
        cs_map=msg.hdr.cs_map,
        policies=msg.find_all(SpPayload),
        peer_id=(find_idr(msg, IdRole.INITIATOR) or "").encode("ascii") or None,
    )
    return RecoveredKeys(
        responder_uri=normalize_uri(target, id_scheme), period=period, result=result
    )


__all__ = [
    "MODE",
    "RecoveredKeys",
    "SakkeInitiator",
    "SakkeResponder",
    "find_idr",
    "kms_recover_keys",
    "message_period",
]
