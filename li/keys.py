"""Key extraction where the operator legitimately holds the secret (study 2.2-2.3.1 case C).

The IRI-POI calls these on the SDP of a call's offer and answer. Each returns
:class:`KeyRecord` values: SRTP master keys for one *sender* of the call (offerer or answerer),
or -- when the operator does not hold what is needed -- an *unavailable* record carrying the
reason, so the LEMF can state the TS 33.106 outcome ("encrypted content and a notice").

Sources of keys (3GPP TS 33.107 clause 7A: the CSCF intercepts the keys in SDP and delivers them
to the LEMF as IRI; the study's clause numbers):

* SDES (RFC 4568, study 2.2): the offer's ``a=crypto`` is the offerer's send key, the answer's
  (same tag) the answerer's send key -- both directions from the signalling copy.
* MIKEY-PSK with a publicly known PSK (RFC 3830 §3.1, study 2.2.1): the KEMAC is decrypted with
  the transport keys derived from the known PSK; the TGK gives TEK/salt per crypto session.
* MIKEY-PSK hop-by-hop (study 2.2.2): the intermediary (P-CSCF/S-CSCF) shares a PSK with the UE
  and re-protects the MIKEY message toward the next hop (:mod:`li.keys_hop` does it; this module
  reads the keys with the intermediary's PSK).
* MIKEY-PKE case C (RFC 3830 §3.2, study 2.3.1 case C): the operator holds the responder's
  private key; it decrypts the PKE payload (envelope key) and then the KEMAC.

Key material is never logged (ims.log redacts, and :class:`KeyRecord` has a redacted repr);
records only travel in X2 to the LEMF.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from ims.errors import ImsError
from ims.media.keys import SrtpKeys

if TYPE_CHECKING:
    from ims.mikey.message import MikeyMessage


class Sender(StrEnum):
    """Which party of the call sends the media these keys protect."""

    OFFERER = "offerer"
    ANSWERER = "answerer"
    BOTH = "both"  # MIKEY: one TGK, TEK per crypto session (each SSRC)


class KeySource(StrEnum):
    SDES = "sdes"
    MIKEY_PSK_PUBLIC = "mikey-psk-public"
    MIKEY_PSK_HOP = "mikey-psk-hop"
    MIKEY_PKE_ESCROW = "mikey-pke-escrow"  # case C: operator holds the responder's private key
    MIKEY_SAKKE_KMS = "mikey-sakke-kms"  # the responder's KMS derived the call keys (li.kms_li)
    MIKEY_TICKET_KMS = "mikey-ticket-kms"  # a KMS that issued or resolved the ticket (li.kms_li)
    MIKEY_PSK_OPERATOR = "mikey-psk-operator"  # Q6: the operator helped set up the users' PSK
    MITM = "mitm"  # task-authorised man-in-the-middle (li.mitm)
    NONE = "none"


class Unavailable(StrEnum):
    """Why the operator has no key (the content-unavailable reason sent to the LEMF)."""

    NO_SRTP = "media not encrypted"  # nothing to decrypt: CC is clear
    E2E_PSK = "end-to-end PSK set up by the users (study 2.2.1)"
    EXTERNAL_CA = "certificates from a CA outside the operator (study 2.3.1 case A)"
    NO_PRIVATE_KEY = (
        "operator holds no private key that opens the envelope (study 2.3.1 cases A, B, D)"
    )
    ONE_OPERATOR = "only one operator assists; the peer operator issued no substitute certificate"
    PFS = "Diffie-Hellman: keys never cross the signalling (needs MITM on media)"
    USER_HMAC_PSK = "DH-HMAC: the keys never cross the signalling (study 2.3.4)"
    PROTECTED_HOP = "signalling protected to a P-CSCF in another network (study 2.2 Q4)"
    NO_ANSWER = "no answer SDP seen"
    UNSUPPORTED = "key management not understood"
    MITM_FAILED = "MITM attempted but the UE rejected the substitute certificate"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """Keys for one sender of one call (or the reason there are none)."""

    call_id: str
    source: KeySource
    sender: Sender
    keys: SrtpKeys | None = None
    ssrc: int | None = None  # MIKEY binds a TEK to an SSRC (CS ID map); SDES does not
    reason: str = ""
    leg: str = ""  # MITM on media: which leg ("access"/"core") these keys protect

    @property
    def available(self) -> bool:
        return self.keys is not None

    def __repr__(self) -> str:  # never print key material
        state = "keys" if self.keys is not None else f"unavailable: {self.reason}"
        return f"KeyRecord({self.call_id!r}, {self.source.value}, {self.sender.value}, {state})"

    def to_dict(self) -> dict[str, object]:
        """The record as sent to the LEMF inside X2 (never to logs)."""
        d: dict[str, object] = {
            "call_id": self.call_id,
            "source": self.source.value,
            "sender": self.sender.value,
            "reason": self.reason,
        }
        if self.leg:
            d["leg"] = self.leg
        if self.ssrc is not None:
            d["ssrc"] = self.ssrc
        if self.keys is not None:
            d["suite"] = self.keys.suite
            d["master_key"] = base64.b64encode(self.keys.master_key).decode()
            d["master_salt"] = base64.b64encode(self.keys.master_salt).decode()
            d["roc"] = self.keys.roc
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> KeyRecord:
        keys = None
        if "master_key" in d:
            keys = SrtpKeys(
                suite=str(d["suite"]),
                master_key=base64.b64decode(str(d["master_key"])),
                master_salt=base64.b64decode(str(d["master_salt"])),
                roc=int(str(d.get("roc", 0))),
            )
        ssrc = d.get("ssrc")
        return cls(
            call_id=str(d["call_id"]),
            source=KeySource(str(d["source"])),
            sender=Sender(str(d["sender"])),
            keys=keys,
            ssrc=None if ssrc is None else int(str(ssrc)),
            reason=str(d.get("reason", "")),
            leg=str(d.get("leg", "")),
        )


def unavailable(call_id: str, reason: Unavailable | str, sender: Sender = Sender.BOTH) -> KeyRecord:
    return KeyRecord(call_id=call_id, source=KeySource.NONE, sender=sender, reason=str(reason))


class KeyExtractionError(ImsError):
    """The key-management data could not be opened with the secret the operator holds."""


# --- SDES -------------------------------------------------------------------------------------


def _sdes_keys(attr: object) -> SrtpKeys:
    from ims.sdes import CryptoAttribute

    assert isinstance(attr, CryptoAttribute)
    return SrtpKeys(suite=attr.suite, master_key=attr.master_key, master_salt=attr.master_salt)


def sdes_keys(call_id: str, offer: object, answer: object | None) -> list[KeyRecord]:
    """Both directions' SDES keys of the first secure audio stream (RFC 4568 §7.1).

    ``offer``/``answer`` are :class:`ims.sdp.SessionDescription` (or SDP bytes/str). With no
    answer yet, the offerer's key is still reported under the first offered line (it is the one
    used if accepted; the answer refines it).
    """
    from ims.sdp.model import SessionDescription

    o = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)  # type: ignore[arg-type]
    a: SessionDescription | None
    if answer is None or isinstance(answer, SessionDescription):
        a = answer
    else:
        a = SessionDescription.parse(answer)  # type: ignore[arg-type]
    out: list[KeyRecord] = []
    for i, m in enumerate(o.media):
        if m.rejected or not m.crypto:
            continue
        am = a.media[i] if a is not None and i < len(a.media) else None
        if am is not None and (am.rejected or not am.crypto):
            continue
        chosen = m.crypto[0]
        if am is not None:
            tag = am.crypto[0].tag
            chosen = next((c for c in m.crypto if c.tag == tag), chosen)
            out.append(
                KeyRecord(
                    call_id=call_id,
                    source=KeySource.SDES,
                    sender=Sender.ANSWERER,
                    keys=_sdes_keys(am.crypto[0]),
                )
            )
        out.insert(
            0,
            KeyRecord(
                call_id=call_id,
                source=KeySource.SDES,
                sender=Sender.OFFERER,
                keys=_sdes_keys(chosen),
            ),
        )
        break
    return out


def key_mgmt_mikey(sdp: object) -> bytes | None:
    """The MIKEY message of the first audio stream (media level wins, RFC 4567 §3.1)."""
    from ims.sdp.model import SessionDescription

    s = sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp)  # type: ignore[arg-type]
    for m in s.media:
        for km in m.key_mgmt:
            if km.protocol.lower() == "mikey":
                return km.data
    for km in s.key_mgmt:
        if km.protocol.lower() == "mikey":
            return km.data
    return None


def _first_audio(sdp: object) -> object | None:
    from ims.sdp.model import SessionDescription

    s = sdp if isinstance(sdp, SessionDescription) else SessionDescription.parse(sdp)  # type: ignore[arg-type]
    return next((m for m in s.media if not m.rejected), None)


@dataclass(slots=True, kw_only=True)
class OperatorKeyPolicy:
    """What one operator's POI can open: the secrets it legitimately holds.

    ``mikey`` opens MIKEY exchanges (publicly known PSK, hop-by-hop PSK shared with the UE,
    escrowed private keys); without it every MIKEY call is reported unavailable with
    ``mikey_reason``.
    """

    mikey: MikeyOpener | None = None
    mikey_reason: str = str(Unavailable.UNSUPPORTED)

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> list[KeyRecord]:
        from ims.errors import DecodeError

        try:
            m = _first_audio(offer)
            if m is None:
                return []
            if getattr(m, "crypto", ()):
                return sdes_keys(call_id, offer, answer)
            offer_mikey = key_mgmt_mikey(offer)
            if offer_mikey is not None:
                answer_mikey = key_mgmt_mikey(answer) if answer is not None else None
                if self.mikey is None:
                    return [unavailable(call_id, self.mikey_reason)]
                try:
                    return list(self.mikey(call_id, offer_mikey, answer_mikey))
                except (KeyExtractionError, DecodeError) as exc:
                    return [unavailable(call_id, str(exc))]
            if not getattr(m, "is_secure", False):
                return [unavailable(call_id, Unavailable.NO_SRTP)]
            return [unavailable(call_id, Unavailable.UNSUPPORTED)]
        except DecodeError as exc:
            return [unavailable(call_id, f"unreadable SDP: {exc}")]


# A MIKEY opener: given the initiator's MIKEY message (and the responder's, when the mode
# needs it) return the per-sender keys (:class:`MikeySecrets` is the lab's).
MikeyOpener = Callable[[str, bytes, bytes | None], Sequence[KeyRecord]]


def identity_aor(identity: bytes | str | None) -> str:
    if identity is None:
        return ""
    text = identity.decode("utf-8", "replace") if isinstance(identity, bytes) else identity
    text = text.strip().strip("<>").split(";", 1)[0]
    scheme, _, rest = text.partition(":")
    if not rest:
        return f"sip:{text.lower()}"
    user, at, host = rest.rpartition("@")
    return f"sip:{user}@{host.lower()}" if at else f"sip:{host.lower()}"


def _ids(msg: object) -> list[str]:
    from ims.mikey.payloads import IdPayload

    return [identity_aor(p.data) for p in msg.find_all(IdPayload)]  # type: ignore[attr-defined]


def _records(call_id: str, keys: Sequence[object], source: KeySource) -> list[KeyRecord]:
    out: list[KeyRecord] = []
    for k in keys:
        sender = Sender.OFFERER if k.sender.value == "initiator" else Sender.ANSWERER  # type: ignore[attr-defined]
        out.append(
            KeyRecord(
                call_id=call_id,
                source=source,
                sender=sender,
                keys=SrtpKeys(
                    suite=str(k.suite),  # type: ignore[attr-defined]
                    master_key=k.master_key,  # type: ignore[attr-defined]
                    master_salt=k.master_salt,  # type: ignore[attr-defined]
                    roc=k.roc,  # type: ignore[attr-defined]
                ),
                ssrc=k.ssrc or None,  # type: ignore[attr-defined]
            )
        )
    return out


@dataclass(slots=True, kw_only=True)
class MikeySecrets:
    """The MIKEY secrets one operator legitimately holds (a :data:`MikeyOpener`).

    * ``public_psks``: publicly known PSKs (study 2.2.1);
    * ``hop_psks``: PSKs its P-CSCF shares with its UEs, keyed by the UE's AoR, plus the
      inter-operator ``network_psk`` of the hop-by-hop chain (study 2.2.2);
    * ``private_keys``: escrowed private keys of its subscribers, keyed by AoR (case C);
    * ``operator_psks``: end-to-end PSKs the operator helped its users set up (study Q6);
    * ``link_psks``: the keys of the hop-by-hop links its intermediaries are on when the chain
      runs through the S-CSCFs too (its UEs' links to its P-CSCFs, P-CSCF to S-CSCF, S-CSCF to
      S-CSCF), study 2.2.2 "all or some of the involved P-CSCFs and S-CSCFs".
    """

    public_psks: tuple[bytes, ...] = ()
    hop_psks: dict[str, bytes] | None = None
    network_psk: bytes | None = None
    private_keys: dict[str, object] | None = None
    operator_psks: tuple[bytes, ...] = ()
    link_psks: tuple[bytes, ...] = ()

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> list[KeyRecord]:
        from ims.mikey.constants import DataType
        from ims.mikey.errors import MikeyError
        from ims.mikey.inspect import open_message
        from ims.mikey.message import decode_message
        from ims.mikey.payloads import RandPayload

        msg = decode_message(offer)
        dt = msg.data_type
        if dt is DataType.PSK_INIT:
            candidates: list[tuple[bytes, KeySource]] = [
                (k, KeySource.MIKEY_PSK_PUBLIC) for k in self.public_psks
            ]
            hop = self.hop_psks or {}
            candidates += [(hop[i], KeySource.MIKEY_PSK_HOP) for i in _ids(msg) if i in hop]
            if self.network_psk is not None:
                candidates.append((self.network_psk, KeySource.MIKEY_PSK_HOP))
            candidates += [(k, KeySource.MIKEY_PSK_HOP) for k in self.link_psks]
            candidates += [(k, KeySource.MIKEY_PSK_OPERATOR) for k in self.operator_psks]
            for psk, source in candidates:
                try:
                    opened = open_message(offer, psk=psk)
                except MikeyError:
                    continue  # MAC check: not this key
                if opened.keys:
                    return _records(call_id, opened.keys, source)
            return [unavailable(call_id, Unavailable.E2E_PSK)]
        if dt is DataType.PK_INIT:
            ids = _ids(msg)
            for ident, key in (self.private_keys or {}).items():
                if len(ids) > 1 and ident != ids[-1]:
                    continue  # the envelope is for the responder (IDr)
                try:
                    opened = open_message(offer, private_key=key)  # type: ignore[arg-type]
                except (MikeyError, ValueError):
                    continue
                if opened.keys:
                    return _records(call_id, opened.keys, KeySource.MIKEY_PKE_ESCROW)
            return [unavailable(call_id, Unavailable.NO_PRIVATE_KEY)]
        if dt is DataType.RSA_R_INIT:
            if answer is not None and self.private_keys:
                rand = msg.find(RandPayload)
                for key in self.private_keys.values():
                    try:
                        opened = open_message(
                            answer,
                            private_key=key,  # type: ignore[arg-type]
                            rand=rand.data if rand else None,
                        )
                    except (MikeyError, ValueError):
                        continue
                    if opened.keys:
                        return _records(call_id, opened.keys, KeySource.MIKEY_PKE_ESCROW)
            return [unavailable(call_id, Unavailable.NO_PRIVATE_KEY)]
        if dt is DataType.DHHMAC_INIT:
            from ims.mikey.modes.dhhmac import mac_verifies

            rand = msg.find(RandPayload)
            hop = self.hop_psks or {}
            held = [*self.link_psks, *(hop[i] for i in _ids(msg) if i in hop)]
            if rand is not None and any(mac_verifies(offer, rand.data, k) for k in held):
                # the operator authenticates this hop (its intermediary's key) yet holds no
                # key: the DH values are all that cross (study 2.3.4 through intermediaries)
                return [unavailable(call_id, Unavailable.PFS)]
            return [unavailable(call_id, Unavailable.USER_HMAC_PSK)]
        if dt is DataType.DH_INIT:
            return [unavailable(call_id, Unavailable.PFS)]
        return [unavailable(call_id, Unavailable.UNSUPPORTED)]


class HopByHopIntermediary:
    """The operator's MIKEY intermediary at a P-CSCF or S-CSCF (study 2.2.2, "PSK between
    intermediaries").

    Each UE shares a PSK with its own P-CSCF; the P-CSCFs share ``network_psk``, or, when the
    S-CSCFs are intermediaries too, each link has its own key (``link_psks``, by the next hop's
    address). A MIKEY-PSK
    I_MESSAGE is opened with the key of the hop it came from (the MAC says which) and re-protected
    with the key of the hop it goes to, keeping TGK, RAND and CSB ID -- so both UEs derive the
    same SRTP keys while each only knows its own PSK. This is a network function, not LI; its
    keys are what lets the operator's POI read the MIKEY exchange like SDES.
    """

    def __init__(
        self,
        *,
        ue_psks: dict[str, bytes],
        network_psk: bytes | None,
        link_psks: dict[str, bytes] | None = None,
    ) -> None:
        self.ue_psks = ue_psks
        self.network_psk = network_psk
        #: next-hop address -> the PSK of that link (a chain through the S-CSCFs: each
        #: P-CSCF/S-CSCF and S-CSCF/S-CSCF link its own key); ``network_psk`` for the others
        self.link_psks = dict(link_psks or {})
        self.stats = {"reprotected": 0, "unopened": 0}
        # CSB ID -> the verification message for the previous hop (RFC 3830 §3.1 V flag)
        self._answers: dict[int, bytes | None] = {}
        # DHHMAC: CSB ID -> (RAND, previous hop's key, next hop's key), for the R_MESSAGE
        self._dh: dict[int, tuple[bytes, bytes, bytes]] = {}

    def _keys(
        self, ids: list[bytes], toward_ue: str | None, toward: str | None
    ) -> tuple[list[bytes], bytes | None]:
        """(the keys a message from the previous hop may be under, the next hop's key)."""
        keys = [
            *(k for k in (self.network_psk,) if k is not None),
            *dict.fromkeys(self.link_psks.values()),
            *(self.ue_psks[a] for a in map(identity_aor, ids) if a in self.ue_psks),
        ]
        if toward_ue is not None:
            return keys, self.ue_psks.get(identity_aor(toward_ue))
        return keys, self.link_psks.get(toward or "", self.network_psk)

    def _dhhmac_offer(
        self, data: bytes, msg: MikeyMessage, *, toward_ue: str | None, toward: str | None
    ) -> bytes | None:
        """DHHMAC (study 2.3.4, "HMAC authentication between the end users and
        intermediaries"): the I_MESSAGE's MAC checked with the previous hop's key and redone
        with the next hop's; the DH values cross untouched, so no intermediary (and no POI
        holding its keys) learns the TGK. The R_MESSAGE is re-MACed back in :meth:`answer`."""
        from ims.mikey.modes.dhhmac import mac_verifies, reseal
        from ims.mikey.payloads import IdPayload, RandPayload

        rand = msg.find(RandPayload)
        if rand is None:
            return None
        keys, target = self._keys([p.data for p in msg.find_all(IdPayload)], toward_ue, toward)
        if target is None:
            return None
        for psk in keys:
            if not mac_verifies(data, rand.data, psk):
                continue
            if psk == target:
                return None  # already authenticated for the next hop
            self._dh[msg.hdr.csb_id] = (rand.data, psk, target)
            while len(self._dh) > 4096:
                self._dh.pop(next(iter(self._dh)))
            self.stats["reprotected"] += 1
            return reseal(data, rand.data, old_psk=psk, new_psk=target)
        self.stats["unopened"] += 1
        return None

    def answer(self, r_message: bytes) -> bytes | None:
        """The R_MESSAGE for the previous hop, replacing the next hop's (None: not ours)."""
        from ims.mikey.constants import DataType
        from ims.mikey.errors import MikeyDecodeError
        from ims.mikey.message import decode_message
        from ims.mikey.modes.dhhmac import mac_verifies, reseal

        try:
            msg = decode_message(r_message)
        except MikeyDecodeError:
            return None
        csb = msg.hdr.csb_id
        if msg.data_type is DataType.DHHMAC_RESP:
            entry = self._dh.get(csb)
            if entry is None:
                return None
            rand, previous, following = entry
            if not mac_verifies(r_message, rand, following):
                return None  # not from the next hop (already for the previous one, or forged)
            return reseal(r_message, rand, old_psk=following, new_psk=previous)
        return self._answers.get(csb)

    def reprotect(
        self, mikey: bytes, *, toward_ue: str | None, now: float, toward: str | None = None
    ) -> bytes | None:
        """The I_MESSAGE for the next hop (``toward_ue``: that UE's AoR, or None for the
        network side, ``toward``: the next hop's address); None when the message is not ours
        to touch."""
        from ims.mikey.constants import DataType
        from ims.mikey.errors import MikeyDecodeError, MikeyError
        from ims.mikey.inspect import open_message
        from ims.mikey.message import decode_message
        from ims.mikey.modes.base import DEFAULT_SESSIONS, CryptoSession, sdp_ids_of
        from ims.mikey.modes.psk import PskInitiator
        from ims.mikey.payloads import IdPayload, RandPayload

        try:
            msg = decode_message(mikey)
        except MikeyDecodeError:
            return None
        if msg.data_type is DataType.DHHMAC_INIT:
            return self._dhhmac_offer(mikey, msg, toward_ue=toward_ue, toward=toward)
        if msg.data_type is not DataType.PSK_INIT:
            return None
        ids = [p.data for p in msg.find_all(IdPayload)]
        keys, target = self._keys(ids, toward_ue, toward)
        if target is None:
            return None
        for psk in keys:
            try:
                opened = open_message(mikey, psk=psk)
            except MikeyError:
                continue
            if opened.tgk is None:
                continue
            if psk == target:
                return None  # already protected for the next hop
            if msg.hdr.v_flag:  # answer the previous hop ourselves, with its key
                from ims.mikey.modes.psk import PskResponder

                self._answers[msg.hdr.csb_id] = PskResponder(psk=psk).receive(mikey, now).message
            rand = msg.find(RandPayload)
            sessions = [
                CryptoSession(suite=k.suite, ssrc=e.ssrc, roc=e.roc)
                for k, e in zip(
                    sorted(opened.keys, key=lambda k: k.cs_id), msg.hdr.cs_map, strict=False
                )
            ]
            ini = PskInitiator(
                psk=target,
                sessions=sessions or DEFAULT_SESSIONS,
                verification=msg.hdr.v_flag,
                idi=ids[0] if ids else None,
                idr=ids[1] if len(ids) > 1 else None,
                csb_id=msg.hdr.csb_id,
                rand=rand.data if rand else None,
                tgk=opened.tgk,
                sdp_ids=sdp_ids_of(msg),  # keep the offer's SDP IDs (RFC 4567 §7)
            )
            self.stats["reprotected"] += 1
            return ini.initiate(now)
        self.stats["unopened"] += 1
        return None
