"""Media keying strategies of the UE: how a call's SRTP keys are agreed in SDP.

The UE never hard-codes a key-management method. Per call it asks a :class:`Keying` strategy
for a :class:`KeyingSession` and uses three calls:

* offerer: :meth:`KeyingSession.offer` -> the ``a=crypto`` / ``a=key-mgmt`` material and the
  profile (RTP/SAVP or RTP/AVP) to put in the offer; later
  :meth:`KeyingSession.answer_received` with the answer SDP -> :class:`MediaKeys`;
* answerer: :meth:`KeyingSession.answer` with the offer SDP -> the material for the answer and
  the :class:`MediaKeys`.

Here: ``sdes`` (RFC 4568, default suite AES_CM_128_HMAC_SHA1_80) and ``none`` (plain RTP); the
MIKEY modes are in :mod:`ue.keying_mikey`. Which names exist is decided in one place, the
table of :mod:`ue.registry`; :func:`get` builds a strategy by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ims.errors import ImsError
from ims.media.keys import SrtpKeys
from ims.sdes import CryptoAttribute, SdesAnswerer, SdesNegotiationError, make_offer, select_answer
from ims.sdp.keymgmt import KeyMgmtAttribute
from ims.sdp.model import SessionDescription

DEFAULT_SUITE = "AES_CM_128_HMAC_SHA1_80"


class KeyingError(ImsError):
    """Keys could not be agreed; ``status`` is the SIP status to answer with (488)."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyingContext:
    """What a keying session may need to know about the call."""

    call_id: str
    local_uri: str
    remote_uri: str
    initiator: bool
    asserted_uri: str | None = None  # the peer's P-Asserted-Identity (RFC 3325), if any


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpKeying:
    """What a strategy puts into the audio m-line (or session level for key-mgmt)."""

    secure: bool
    crypto: tuple[CryptoAttribute, ...] = ()
    key_mgmt: tuple[KeyMgmtAttribute, ...] = ()
    key_mgmt_at_session_level: bool = False
    key_mgmt_accepted: bool = False  # answer: one-way key-mgmt accepted, no message to send
    # further attribute lines (name[:value]) for the offer's audio m-line
    media_attributes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaKeys:
    """The outcome: SRTP keys per direction (None = plain RTP) and a human description."""

    tx: SrtpKeys | None
    rx: SrtpKeys | None
    description: str
    details: dict[str, str] = field(default_factory=dict)
    # the users' own end-to-end layer inside the SRTP above (ue.user_layer; None: none)
    inner_tx: SrtpKeys | None = field(default=None, repr=False)
    inner_rx: SrtpKeys | None = field(default=None, repr=False)

    @property
    def secure(self) -> bool:
        return self.tx is not None and self.rx is not None


class KeyingSession(Protocol):
    def offer(self) -> SdpKeying: ...

    def answer(self, offer: SessionDescription, index: int) -> tuple[SdpKeying, MediaKeys]: ...

    def answer_received(self, answer: SessionDescription, index: int) -> MediaKeys: ...


async def prepare_offer(ks: KeyingSession) -> None:
    """Run what a session must do on the network before :meth:`KeyingSession.offer` (MIKEY-
    TICKET: the Ticket Request to the KMS); nothing for the others."""
    hook = getattr(ks, "prepare_offer", None)
    if hook is not None:
        await hook()


async def prepare_answer(ks: KeyingSession, offer: SessionDescription, index: int) -> None:
    """Likewise before :meth:`KeyingSession.answer` (MIKEY-TICKET: the Ticket Resolve)."""
    hook = getattr(ks, "prepare_answer", None)
    if hook is not None:
        await hook(offer, index)


class Keying(Protocol):
    name: str

    def session(self, ctx: KeyingContext) -> KeyingSession: ...


# --- SDES ------------------------------------------------------------------------------------


class SdesKeying:
    """SDES (RFC 4568): keys in clear inside SDP, protected only hop by hop."""

    name = "sdes"

    def __init__(self, suites: Sequence[str] = (DEFAULT_SUITE,)) -> None:
        self.suites = tuple(suites)

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _SdesSession(self.suites)


class _SdesSession:
    def __init__(self, suites: tuple[str, ...]) -> None:
        self.suites = suites
        self._offered: tuple[CryptoAttribute, ...] = ()

    def offer(self) -> SdpKeying:
        self._offered = make_offer(self.suites)
        return SdpKeying(secure=True, crypto=self._offered)

    def answer(self, offer: SessionDescription, index: int) -> tuple[SdpKeying, MediaKeys]:
        m = offer.media[index]
        if not m.crypto:
            raise KeyingError("offer carries no a=crypto line but SDES is required")
        try:
            choice = SdesAnswerer(self.suites).answer(m.crypto)
        except SdesNegotiationError as exc:
            raise KeyingError(str(exc)) from None
        keys = choice.keys
        return SdpKeying(secure=True, crypto=(choice.answer,)), MediaKeys(
            tx=keys.tx, rx=keys.rx, description=f"SDES {keys.suite}", details={"tag": str(keys.tag)}
        )

    def answer_received(self, answer: SessionDescription, index: int) -> MediaKeys:
        try:
            keys = select_answer(self._offered, answer.media[index].crypto)
        except SdesNegotiationError as exc:
            raise KeyingError(str(exc)) from None
        return MediaKeys(
            tx=keys.tx, rx=keys.rx, description=f"SDES {keys.suite}", details={"tag": str(keys.tag)}
        )


class SdesE2aeKeying(SdesKeying):
    """SDES that ends at the access edge (3GPP TS 33.328 e2ae): the offer asks the P-CSCF for
    it with ``a=3ge2ae:requested`` (TS 24.229); the keys in the answer are the IMS-AGW's."""

    name = "sdes-e2ae"

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _SdesE2aeSession(self.suites)


class _SdesE2aeSession(_SdesSession):
    def offer(self) -> SdpKeying:
        base = super().offer()
        return SdpKeying(secure=True, crypto=base.crypto, media_attributes=("3ge2ae:requested",))


# --- no keying -------------------------------------------------------------------------------


class NoKeying:
    """Plain RTP/AVP: the baseline where anyone on the media path hears the call."""

    name = "none"

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _NoSession()


class _NoSession:
    def offer(self) -> SdpKeying:
        return SdpKeying(secure=False)

    def answer(self, offer: SessionDescription, index: int) -> tuple[SdpKeying, MediaKeys]:
        if offer.media[index].is_secure:
            raise KeyingError("offer requires SRTP but this UE is set to plain RTP")
        return SdpKeying(secure=False), MediaKeys(tx=None, rx=None, description="plain RTP")

    def answer_received(self, answer: SessionDescription, index: int) -> MediaKeys:
        if answer.media[index].is_secure:
            raise KeyingError("answer switched to SRTP without keys")
        return MediaKeys(tx=None, rx=None, description="plain RTP")


# --- registry --------------------------------------------------------------------------------

# The names come from the explicit table in :mod:`ue.registry` (loaded on first use: it imports
# this module); :func:`register` adds experiments and test doubles on top.
_REGISTRY: dict[str, Callable[[], Keying]] = {}
_loaded = False


def register(name: str, factory: Callable[[], Keying]) -> None:
    """Add (or replace) a keying mode by name (tests, experiments)."""
    _load()
    _REGISTRY[name] = factory


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from ue import registry

    for mode in registry.MODES:
        _REGISTRY.setdefault(mode.name, mode.factory)


def available() -> list[str]:
    """Every keying name: the registry's, in its order, then any registered later."""
    _load()
    return list(_REGISTRY)


def get(name: str) -> Keying:
    """A keying strategy by name (see :mod:`ue.registry`)."""
    _load()
    try:
        return _REGISTRY[name]()
    except KeyError:
        have = ", ".join(_REGISTRY)
        raise KeyingError(f"unknown keying mode {name!r} (have: {have})", 0) from None
