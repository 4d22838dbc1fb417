"""Shared machinery of the MIKEY modes: state table, common checks, Error messages, output.

State machine (one per side, RFC 3830 §3: a one- or two-message exchange)::

    initiator: IDLE --initiate--> WAIT_RESPONSE --response ok--> ESTABLISHED
                                   WAIT_RESPONSE --error/bad--> FAILED
               IDLE --initiate (no response expected)--> ESTABLISHED
    responder: IDLE --offer ok--> ESTABLISHED       IDLE --offer bad--> FAILED

A transition missing from the table is a protocol error (STYLE.md §3). ``now`` is always passed
in (Unix seconds); nothing here reads the clock or touches the network.

Error messages (RFC 3830 §6.12 / §3: data type 6, ``HDR, T, {ERR}, [V|SIGN]``): our
responders answer a refused I_MESSAGE with ``HDR, T, ERR`` and no V. The V would need the
auth_key, which a failed exchange (wrong PSK, unopenable envelope) does not share, so the error
is advisory only, as RFC 3830 §5.1.2 allows for unauthenticated errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto

from cryptography import x509

from ims.mikey.constants import DataType, ErrorNo, IdType, TsType
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.kdf import derive_salt, derive_tek
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.payloads import (
    ErrPayload,
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


def decode_checked(data: bytes, expected: DataType) -> MikeyMessage:
    """Decode and check the data type; an Error message becomes a remote MikeyError."""
    msg = decode_message(data)
    if msg.data_type is DataType.ERROR:
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
    cs_map: Sequence[SrtpCsEntry],
    policies: Sequence[SpPayload],
    tek_override: Sequence[tuple[bytes, bytes]] | None = None,
    salt_override: bytes | None = None,
) -> tuple[SrtpKeyMaterial, ...]:
    """TEK and salt per crypto session (RFC 3830 §4.1.3; cs_id is the 1-based map index).

    ``tek_override`` is used when the KEMAC transported TEKs directly (Key data type TEK),
    ``salt_override`` when a salt came with the TGK (type TGK+SALT, long enough for the suite).
    Using that salt as the SRTP master salt is our reading of §6.13 and is **unverified
    against the RFC text** (§4.1.4/§6.13 could not be read here).
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
            if salt_override is not None and len(salt_override) >= salt_len:
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


def error_message(csb_id: int, error: ErrorNo, now: float) -> bytes:
    """An Error message ``HDR, T, ERR`` (RFC 3830 §6.12, data type 6)."""
    msg = MikeyMessage(
        hdr=HdrPayload(data_type=DataType.ERROR, csb_id=csb_id),
        payloads=(timestamp(now), ErrPayload(error_no=error)),
    )
    return msg.encode()


def csb_of(data: bytes) -> int:
    """Best-effort CSB ID of a (possibly broken) message, for the Error message."""
    return int.from_bytes(data[4:8], "big") if len(data) >= 8 else 0


def fail_reply(exc: MikeyError | MikeyDecodeError, data: bytes, now: float) -> ResponderReply:
    return ResponderReply(
        message=error_message(csb_of(data), exc.mikey_error, now), result=None, error=exc
    )
