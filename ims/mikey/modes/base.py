"""Shared machinery of the MIKEY modes: state table, common checks, Error messages, output.

State machine (one per side, RFC 3830 §3: a one- or two-message exchange)::

    initiator: IDLE --initiate--> WAIT_RESPONSE --response ok--> ESTABLISHED
                                   WAIT_RESPONSE --error/bad--> FAILED
               IDLE --initiate (no response expected)--> ESTABLISHED
    responder: IDLE --offer ok--> ESTABLISHED       IDLE --offer bad--> FAILED

A transition missing from the table is a protocol error (STYLE.md §3). ``now`` is always passed
in (Unix seconds); nothing here reads the clock or touches the network.

Error messages (RFC 3830 §5.1.2: "HDR, T, {ERR}, {SP}, [V|SIGNr]", data type 6): our
responders answer a refused I_MESSAGE with ``HDR, T, ERR`` and no V. The V would need the
auth_key, which a failed exchange (wrong PSK, unopenable envelope) does not share, so the error
is advisory only, as §5.1.2 allows ("if failure is due to the inability to authenticate the
peer, the error message is OPTIONAL, and does not need to be authenticated"). Its T is the
initiator's, echoed (§5.2: "The Responder does not create a new timestamp, but uses the
timestamp used by the Initiator"); a fresh one only when the I_MESSAGE has no readable T.
An initiator ignores neither a good nor a bad Error message silently: one that does not echo
its T is refused as ``Invalid TS`` (not taken as the peer's verdict).

Also here, shared by every mode:

* SDP IDs (RFC 4567 §4.1.4, §7; RFC 4650 §4.4): the list of key-management protocol
  identifiers of the SDP, ``;``-separated in SDP order, in a General Extension payload of
  type "SDP IDs" (RFC 3830 Table 6.15) inside the MAC/signature coverage; the receiver
  "SHALL then match the list in the General Extension Payload with the list included in SDP".
* CSB ID choice (RFC 3830 §6.1: "An Initiator MUST check for collisions when choosing the ID
  (if the Initiator already has one or more established CSBs with the Responder)").
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto

from cryptography import x509

from ims.mikey.constants import DataType, ErrorNo, GenExtType, IdType, TsType
from ims.mikey.crypto import random_bytes
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import derive_salt, derive_tek
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.payloads import (
    CsEntry,
    ErrPayload,
    GeneralExtPayload,
    HdrPayload,
    IdPayload,
    Payload,
    RandPayload,
    SpPayload,
    SrtpCsEntry,
    TPayload,
)
from ims.mikey.policy import (
    SUITE_PARAMS,
    Sender,
    SrtpKeyMaterial,
    SrtpSuite,
    sender_of,
    sp_for_suite,
    suite_from_sp,
)
from ims.mikey.replay import ntp_from_unix


class State(Enum):
    IDLE = auto()
    WAIT_RESPONSE = auto()
    ESTABLISHED = auto()
    FAILED = auto()


class Input(Enum):
    INITIATE = auto()
    INITIATE_ONE_WAY = auto()
    RESPONSE_OK = auto()
    OFFER_OK = auto()
    BAD = auto()


#: (state, input) -> next state
TRANSITIONS: dict[tuple[State, Input], State] = {
    (State.IDLE, Input.INITIATE): State.WAIT_RESPONSE,
    (State.IDLE, Input.INITIATE_ONE_WAY): State.ESTABLISHED,
    (State.WAIT_RESPONSE, Input.RESPONSE_OK): State.ESTABLISHED,
    (State.WAIT_RESPONSE, Input.BAD): State.FAILED,
    (State.IDLE, Input.OFFER_OK): State.ESTABLISHED,
    (State.IDLE, Input.BAD): State.FAILED,
}


class Machine:
    """A tiny table-driven state holder shared by every initiator and responder."""

    def __init__(self) -> None:
        self.state = State.IDLE

    def expect(self, state: State) -> None:
        """Refuse an API call made in the wrong state (e.g. a response before ``initiate``)."""
        if self.state is not state:
            raise MikeyError(
                f"not allowed in state {self.state.name} (expected {state.name})",
                mikey_error=ErrorNo.UNSPECIFIED,
            )

    def fire(self, inp: Input) -> None:
        nxt = TRANSITIONS.get((self.state, inp))
        if nxt is None:
            raise MikeyError(
                f"{inp.name} not allowed in state {self.state.name}",
                mikey_error=ErrorNo.UNSPECIFIED,
            )
        self.state = nxt


@dataclass(frozen=True, slots=True, kw_only=True)
class CryptoSession:
    """A crypto session to key: SRTP policy, SSRC (0 = unknown yet), ROC."""

    suite: SrtpSuite = SrtpSuite.AES_CM_128_HMAC_SHA1_80
    ssrc: int = 0
    roc: int = 0


DEFAULT_SESSIONS = (CryptoSession(), CryptoSession())


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyExchangeResult:
    """What a finished exchange yields on either side.

    ``tgk`` is the TEK generation key (transported or DH-agreed), ``keys`` the SRTP master
    key/salt per crypto session. ``peer_id`` is the peer's ID payload data, ``peer_certificate``
    the validated peer certificate (PKE, DH-SIGN, RSA-R).
    """

    mode: str
    csb_id: int
    rand: bytes
    tgk: bytes = field(repr=False)
    keys: tuple[SrtpKeyMaterial, ...]
    peer_id: bytes | None = None
    peer_certificate: x509.Certificate | None = None

    @classmethod
    def derived(
        cls,
        *,
        mode: str,
        csb_id: int,
        rand: bytes,
        tgk: bytes,
        cs_map: Sequence[CsEntry],
        policies: Sequence[SpPayload],
        tek_override: Sequence[tuple[bytes, bytes]] | None = None,
        salt_override: bytes | None = None,
        peer_id: bytes | None = None,
        peer_certificate: x509.Certificate | None = None,
    ) -> KeyExchangeResult:
        """The result of an exchange whose SRTP keys come from ``tgk`` by the RFC 3830 §4.1.3
        derivation (:func:`derive_session_keys`) over the same CSB ID and RAND: every mode's
        last step, on either side."""
        return cls(
            mode=mode,
            csb_id=csb_id,
            rand=rand,
            tgk=tgk,
            keys=derive_session_keys(
                tgk=tgk,
                csb_id=csb_id,
                rand=rand,
                cs_map=cs_map,
                policies=policies,
                tek_override=tek_override,
                salt_override=salt_override,
            ),
            peer_id=peer_id,
            peer_certificate=peer_certificate,
        )

    def directional(self, me: Sender) -> tuple[SrtpKeyMaterial | None, SrtpKeyMaterial | None]:
        """(key I send with, key I receive with) for party ``me``: the first crypto session
        whose sender is ``me`` and the first whose sender is the peer."""
        tx = next((k for k in self.keys if k.sender is me), None)
        rx = next((k for k in self.keys if k.sender is not me), None)
        return tx, rx

    def for_ssrc(self, ssrc: int) -> SrtpKeyMaterial:
        for k in self.keys:
            if k.ssrc == ssrc:
                return k
        raise KeyError(ssrc)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponderReply:
    """Outcome of :meth:`receive` on a responder: the message to send back (R_MESSAGE,
    Error message or None) plus either the keys or the error."""

    message: bytes | None
    result: KeyExchangeResult | None = None
    error: MikeyError | MikeyDecodeError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class ResponderBase:
    """Shared ``receive`` of every responder: never raises for peer input.

    Each I_MESSAGE is a complete exchange for a responder, so one responder object may serve
    several (a re-key with a new CSB/RAND, RFC 3830 §4.5); ``machine`` holds the outcome of the
    last one. Subclasses implement ``_receive`` and raise MikeyError/MikeyDecodeError.
    """

    machine: Machine

    def receive(self, data: bytes, now: float) -> ResponderReply:
        self.machine = Machine()
        try:
            reply = self._receive(data, now)
        except (MikeyError, MikeyDecodeError) as exc:
            self.machine.fire(Input.BAD)
            return fail_reply(exc, data, now)
        self.machine.fire(Input.OFFER_OK)
        return reply

    def _receive(self, data: bytes, now: float) -> ResponderReply:
        raise NotImplementedError


# ----------------------------------------------------------------------------- helpers
def build_cs_map(sessions: Sequence[CryptoSession]) -> tuple[SrtpCsEntry, ...]:
    """SRTP-ID map: CS i uses policy i-1 (one SP payload per session)."""
    return tuple(SrtpCsEntry(policy_no=i, ssrc=s.ssrc, roc=s.roc) for i, s in enumerate(sessions))


def build_sps(sessions: Sequence[CryptoSession]) -> tuple[SpPayload, ...]:
    return tuple(sp_for_suite(s.suite, i) for i, s in enumerate(sessions))


def timestamp(now: float) -> TPayload:
    return TPayload(ts_type=TsType.NTP_UTC, value=ntp_from_unix(now))


def id_payload(identity: str | bytes | None) -> IdPayload | None:
    if identity is None:
        return None
    data = identity.encode() if isinstance(identity, str) else identity
    return IdPayload(id_type=IdType.URI, data=data)


def id_bytes(identity: str | bytes | None) -> bytes:
    if identity is None:
        return b""
    return identity.encode() if isinstance(identity, str) else identity


def decode_checked(data: bytes, expected: DataType, t_i: TPayload | None = None) -> MikeyMessage:
    """Decode and check the data type; an Error message becomes a remote MikeyError.

    With ``t_i`` (an initiator reading a response) an Error message must echo the initiator's
    timestamp (RFC 3830 §5.2); one that does not is refused as ``Invalid TS``.
    """
    msg = decode_message(data)
    if msg.data_type is DataType.ERROR:
        if t_i is not None:
            check_t_echo(msg, t_i)
        errs = msg.find_all(ErrPayload)
        code = errs[0].error_no if errs else ErrorNo.UNSPECIFIED
        raise MikeyError(
            f"peer answered with MIKEY error {code.name}", mikey_error=code, remote=True
        )
    if msg.data_type is not expected:
        raise MikeyError(
            f"expected {expected.name}, got {msg.data_type.name}", mikey_error=ErrorNo.INVALID_DT
        )
    return msg


def check_t_echo(msg: MikeyMessage, t_i: TPayload) -> None:
    """A response's T must be the initiator's own (RFC 3830 §5.2: "The Responder does not
    create a new timestamp, but uses the timestamp used by the Initiator")."""
    t = msg.find(TPayload)
    if t is None or t != t_i:
        raise MikeyError(
            "response does not echo the initiator's timestamp", mikey_error=ErrorNo.INVALID_TS
        )


def sdp_ids_payload(sdp_ids: str | None) -> GeneralExtPayload | None:
    """The "SDP IDs" General Extension (RFC 4567 §7) for ``sdp_ids`` like ``"mikey"``."""
    if sdp_ids is None:
        return None
    return GeneralExtPayload(ext_type=GenExtType.SDP_IDS, data=sdp_ids.encode("ascii"))


def sdp_ids_of(msg: MikeyMessage) -> str | None:
    """The SDP IDs list a message carries (None without one): what a re-protecting hop or a
    MITM forwards so the next responder's bidding-down check sees the offer's list."""
    for g in msg.find_all(GeneralExtPayload):
        if g.ext_type == GenExtType.SDP_IDS:
            return g.data.decode("ascii", "replace")
    return None


def check_sdp_ids(msg: MikeyMessage, expected: str | None) -> None:
    """RFC 4567 §7: "The receiver SHALL then match the list in the General Extension Payload
    with the list included in SDP and SHOULD (according to policy) if they differ [...] reject
    the offer." Our policy rejects; a missing list differs too (bidding-down protection would
    otherwise be stripped along with the payload). ``expected=None``: not carried in SDP."""
    if expected is None:
        return
    got = [g.data for g in msg.find_all(GeneralExtPayload) if g.ext_type == GenExtType.SDP_IDS]
    if got != [expected.encode("ascii")]:
        shown = got[0].decode("ascii", "replace") if got else "none"
        raise MikeyError(
            f"SDP IDs {shown!r} differ from the SDP's key-mgmt list {expected!r}",
            mikey_error=ErrorNo.AUTH_FAILURE,
        )


def choose_csb_id(csb_id: int | None, in_use: Collection[int] = ()) -> int:
    """A CSB ID free of collisions with ``in_use`` (the CSBs established with this
    Responder): random when ``csb_id`` is None, else ``csb_id`` if it does not collide."""
    if csb_id is not None:
        if csb_id in in_use:
            raise MikeyError(
                f"CSB ID {csb_id:#010x} is already established with this responder",
                mikey_error=ErrorNo.UNSPECIFIED,
            )
        return csb_id
    while True:
        cand = int.from_bytes(random_bytes(4), "big")
        if cand not in in_use:
            return cand


def require(msg: MikeyMessage, cls: type[Payload], what: str) -> Payload:
    p = msg.find(cls)
    if p is None:
        raise MikeyError(f"{what} payload missing", mikey_error=ErrorNo.UNSPECIFIED)
    return p


def require_t(msg: MikeyMessage) -> TPayload:
    t = msg.find(TPayload)
    if t is None:
        raise MikeyError("T payload missing", mikey_error=ErrorNo.INVALID_TS)
    return t


def require_rand(msg: MikeyMessage) -> bytes:
    r = msg.find(RandPayload)
    if r is None or not r.data:
        raise MikeyError("RAND payload missing", mikey_error=ErrorNo.UNSPECIFIED)
    return r.data


def replay_key(msg: MikeyMessage, data: bytes) -> bytes:
    """Replay-cache key: the whole message digest (T, RAND, CSB ID and MAC/SIGN are inside)."""
    return hashlib.sha256(data).digest()


def derive_session_keys(
    *,
    tgk: bytes,
    csb_id: int,
    rand: bytes,
    cs_map: Sequence[CsEntry],
    policies: Sequence[SpPayload],
    tek_override: Sequence[tuple[bytes, bytes]] | None = None,
    salt_override: bytes | None = None,
) -> tuple[SrtpKeyMaterial, ...]:
    """TEK and salt per crypto session (RFC 3830 §4.1.3; cs_id is the 1-based map index).

    ``tek_override`` is used when the KEMAC transported TEKs directly (Key data type TEK),
    ``salt_override`` when a salt came with the TGK (type TGK+SALT). §4.1.3: "The security
    protocol in need of the salt key SHALL use the salt key carried in the Key data
    sub-payload (in the pre-shared and public-key case), when present." So a carried salt is
    always the SRTP master salt, never replaced by a derived one; one whose length is not the
    suite's master salt length cannot be used and is refused (``Invalid SPpar``: it
    contradicts the session salt key length of the policy, §6.10.1 type 4).
    """
    by_no = {sp.policy_no: sp for sp in policies}
    out = []
    for index, cs in enumerate(cs_map, start=1):
        sp = by_no.get(cs.policy_no)
        suite = suite_from_sp(sp) if sp is not None else SrtpSuite.AES_CM_128_HMAC_SHA1_80
        key_len, salt_len, _ = SUITE_PARAMS[suite]
        if tek_override:
            key, salt = tek_override[min(index, len(tek_override)) - 1]
        else:
            key = derive_tek(tgk, index, csb_id, rand, key_len)
            if salt_override is not None:
                if len(salt_override) != salt_len:
                    raise MikeyError(
                        f"carried salt of {len(salt_override)} bytes, the policy needs {salt_len}",
                        mikey_error=ErrorNo.INVALID_SPPAR,
                    )
                salt = salt_override
            else:
                salt = derive_salt(tgk, index, csb_id, rand, salt_len)
        out.append(
            SrtpKeyMaterial(
                cs_id=index,
                policy_no=cs.policy_no,
                ssrc=cs.ssrc,
                roc=cs.roc,
                sender=sender_of(index),
                suite=suite,
                master_key=key[:key_len],
                master_salt=salt[:salt_len],
            )
        )
    return tuple(out)


def error_message(csb_id: int, error: ErrorNo, now: float, t: TPayload | None = None) -> bytes:
    """An Error message ``HDR, T, ERR`` (RFC 3830 §5.1.2, §6.12, data type 6); ``t`` is the
    initiator's timestamp to echo (§5.2), a fresh one only when it is unknown."""
    msg = MikeyMessage(
        hdr=HdrPayload(data_type=DataType.ERROR, csb_id=csb_id),
        payloads=(t if t is not None else timestamp(now), ErrPayload(error_no=error)),
    )
    return msg.encode()


def t_of(data: bytes) -> TPayload | None:
    """Best-effort T payload of a (possibly refused) message, to echo in the Error message."""
    try:
        return decode_message(data).find(TPayload)
    except MikeyDecodeError:
        return None


def csb_of(data: bytes) -> int:
    """Best-effort CSB ID of a (possibly broken) message, for the Error message."""
    return int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0


def fail_reply(exc: MikeyError | MikeyDecodeError, data: bytes, now: float) -> ResponderReply:
    return ResponderReply(
        message=error_message(csb_of(data), exc.mikey_error, now, t_of(data)),
        result=None,
        error=exc,
    )
