"""SDP offer/answer for audio (RFC 3264) with SDES (RFC 4568 §7) and key-mgmt (RFC 4567).

- Codecs: PCMU (PT 0), PCMA (PT 8) and telephone-event (RFC 4733, dynamic PT). The answer keeps
  the offer's order of the codecs we support (RFC 3264 §6.1) and the offer's telephone-event PT.
- Directions (§6.1): sendonly ↔ recvonly, inactive stays inactive, sendrecv answered with our own
  wish intersected with the offer.
- Rejection (§6): a stream we cannot accept is answered with port 0 and the same m-line format
  list; if no stream is acceptable :class:`SdpNegotiationError` (488) is raised.
- Profiles: RTP/AVP is plain; RTP/SAVP (and /SAVPF) needs ``a=crypto`` we accept (SDES) or an
  ``a=key-mgmt`` (MIKEY, handled by the caller, which passes the answer's key-mgmt in ``local``).
  An RTP/AVP offer with crypto lines is answered plain (RFC 4568 §7.1: crypto needs SAVP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ims.sdes.attribute import CryptoAttribute
from ims.sdes.errors import SdesNegotiationError
from ims.sdes.negotiation import SdesAnswerer, SdesKeys, select_answer
from ims.sdp.errors import SdpNegotiationError
from ims.sdp.keymgmt import KeyMgmtAttribute
from ims.sdp.model import (
    Attribute,
    Connection,
    Direction,
    Line,
    MediaDescription,
    Origin,
    SessionDescription,
)

STATIC_PT = {"PCMU": 0, "PCMA": 8}
PT_CODEC = {0: "PCMU", 8: "PCMA"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalAudio:
    """What we can do for one audio stream."""

    address: str
    port: int
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    telephone_event: int | None = 101
    direction: Direction = Direction.SENDRECV
    secure: bool = False  # offer RTP/SAVP
    crypto: tuple[CryptoAttribute, ...] = ()  # offer: our a=crypto lines
    key_mgmt: tuple[KeyMgmtAttribute, ...] = ()
    key_mgmt_at_session_level: bool = False
    # answer: the offer's key-mgmt was accepted by a one-way protocol, which answers with no
    # message (MIKEY-SAKKE, RFC 6509 §2.1 "a response is not expected")
    key_mgmt_accepted: bool = False
    ptime: int | None = 20
    rtcp_port: int | None = None  # explicit a=rtcp, when not port+1
    require_secure: bool = False  # answerer: reject plain RTP/AVP(F) streams (SRTP mandatory)


@dataclass(frozen=True, slots=True, kw_only=True)
class NegotiatedAudio:
    index: int
    remote_address: str
    remote_rtp_port: int
    remote_rtcp_port: int
    payload_type: int
    codec: str
    telephone_event: int | None
    direction: Direction  # our view: do we send / receive
    proto: str
    ptime: int
    sdes: SdesKeys | None = None
    key_mgmt: tuple[KeyMgmtAttribute, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: SessionDescription
    streams: tuple[NegotiatedAudio, ...]
    declined: tuple[str, ...] = field(default=())


def _session(
    address: str, session_id: int, version: int, username: str, session_name: str, eol: str
) -> list[Line]:
    conn = Connection.ip(address)
    origin = Origin(
        username=username,
        sess_id=str(session_id),
        sess_version=str(version),
        nettype="IN",
        addrtype=conn.addrtype,
        address=address,
    )
    return [
        Line("v", "0", eol),
        Line("o", origin.encode(), eol),
        Line("s", session_name, eol),
        Line("c", conn.encode(), eol),
        Line("t", "0 0", eol),
    ]


def _audio_section(
    local: LocalAudio,
    *,
    port: int,
    proto: str,
    pts: Sequence[int],
    te: int | None,
    direction: Direction,
    crypto: Sequence[CryptoAttribute],
    eol: str,
) -> MediaDescription:
    fmts = [str(p) for p in pts] + ([str(te)] if te is not None else [])
    lines = [Line("m", f"audio {port} {proto} {' '.join(fmts)}", eol)]
    for pt in pts:
        lines.append(Line("a", f"rtpmap:{pt} {PT_CODEC[pt]}/8000", eol))
    if te is not None:
        lines.append(Line("a", f"rtpmap:{te} telephone-event/8000", eol))
        lines.append(Line("a", f"fmtp:{te} 0-15", eol))
    if local.ptime:
        lines.append(Line("a", f"ptime:{local.ptime}", eol))
    if local.rtcp_port is not None:
        lines.append(Line("a", f"rtcp:{local.rtcp_port}", eol))
    lines.append(Line("a", direction.value, eol))
    for c in crypto:
        lines.append(Line("a", f"crypto:{c.encode()}", eol))
    if not local.key_mgmt_at_session_level:
        for k in local.key_mgmt:
            lines.append(Line("a", f"key-mgmt:{k.encode()}", eol))
    return MediaDescription(tuple(lines))


def create_offer(
    local: LocalAudio,
    *,
    session_id: int,
    version: int = 1,
    username: str = "-",
    session_name: str = "-",
    eol: str = "\r\n",
) -> SessionDescription:
    pts = [STATIC_PT[c] for c in local.codecs]
    proto = "RTP/SAVP" if (local.secure or local.crypto or local.key_mgmt) else "RTP/AVP"
    session = _session(local.address, session_id, version, username, session_name, eol)
    if local.key_mgmt_at_session_level:
        session += [Line("a", f"key-mgmt:{k.encode()}", eol) for k in local.key_mgmt]
    media = _audio_section(
        local,
        port=local.port,
        proto=proto,
        pts=pts,
        te=local.telephone_event,
        direction=local.direction,
        crypto=local.crypto,
        eol=eol,
    )
    return SessionDescription(tuple(session), (media,))


def _rejected(m: MediaDescription) -> MediaDescription:
    """RFC 3264 §6: port 0, same proto and formats, attributes dropped."""
    return MediaDescription((m.with_port(0).lines[0],))


def _telephone_event(m: MediaDescription) -> int | None:
    for pt, rm in m.rtpmaps.items():
        if rm.encoding.lower() == "telephone-event" and rm.clock_rate == 8000:
            return pt
    return None


def _codecs(m: MediaDescription, wanted: Sequence[str]) -> list[int]:
    """Offered PTs we support, in the offer's order (static PTs need no rtpmap)."""
    maps = m.rtpmaps
    out = []
    for f in m.formats:
        if not f.isdigit() or len(f) > 3:
            continue
        pt = int(f)
        name = maps[pt].encoding.upper() if pt in maps else PT_CODEC.get(pt)
        rate = maps[pt].clock_rate if pt in maps else 8000
        if name in wanted and rate == 8000:
            out.append(pt)
    return out


def create_answer(
    offer: SessionDescription,
    local: LocalAudio,
    *,
    session_id: int,
    version: int = 1,
    sdes: SdesAnswerer | None = None,
    username: str = "-",
    session_name: str = "-",
) -> Answer:
    """Answer the first acceptable audio stream; reject every other stream with port 0."""
    eol = offer.eol
    session = _session(local.address, session_id, version, username, session_name, eol)
    if local.key_mgmt_at_session_level:
        session += [Line("a", f"key-mgmt:{k.encode()}", eol) for k in local.key_mgmt]
    out_media: list[MediaDescription] = []
    streams: list[NegotiatedAudio] = []
    declined: list[str] = []
    sdes = sdes or SdesAnswerer()
    for i, m in enumerate(offer.media):
        reason = None
        if streams:
            reason = "only one audio stream is answered"
        elif m.media != "audio" or m.rejected:
            reason = f"{m.media} stream not supported" if not m.rejected else "rejected in offer"
        elif m.proto not in ("RTP/AVP", "RTP/SAVP", "RTP/AVPF", "RTP/SAVPF"):
            reason = f"transport {m.proto} not supported"
        elif local.require_secure and not m.is_secure:
            reason = f"{m.proto} offered but SRTP is mandatory here"
        pts = [] if reason else _codecs(m, local.codecs)
        if reason is None and not pts:
            reason = "no common codec"
        choice = None
        key_mgmt: tuple[KeyMgmtAttribute, ...] = ()
        if reason is None and m.is_secure:
            offered_km = offer.media_key_mgmt(i)
            if (local.key_mgmt or local.key_mgmt_accepted) and offered_km:
                key_mgmt = offered_km
            elif m.crypto:
                try:
                    choice = sdes.answer(m.crypto)
                except SdesNegotiationError as exc:
                    reason = f"{exc}: {'; '.join(exc.reasons)}"
            else:
                reason = "secure profile without a=crypto or usable a=key-mgmt"
        if reason is not None:
            declined.append(f"m[{i}]: {reason}")
            out_media.append(_rejected(m))
            continue
        te = _telephone_event(m) if local.telephone_event is not None else None
        offered_dir = offer.media_direction(i)
        ours = offered_dir.reverse()
        direction = Direction.of(
            ours.sends and local.direction.sends, ours.receives and local.direction.receives
        )
        answer_m = _audio_section(
            local,
            port=local.port,
            proto=m.proto,
            pts=pts,
            te=te,
            direction=direction,
            crypto=(choice.answer,) if choice else (),
            eol=eol,
        )
        out_media.append(answer_m)
        conn = m.effective_connection(offer)
        if conn is None:
            raise SdpNegotiationError(f"m[{i}] has no connection address")
        streams.append(
            NegotiatedAudio(
                index=i,
                remote_address=conn.address,
                remote_rtp_port=m.port,
                remote_rtcp_port=m.rtcp_port,
                payload_type=pts[0],
                codec=PT_CODEC.get(pts[0]) or m.rtpmaps[pts[0]].encoding.upper(),
                telephone_event=te,
                direction=direction,
                proto=m.proto,
                ptime=m.ptime or 20,
                sdes=choice.keys if choice else None,
                key_mgmt=key_mgmt,
            )
        )
    if not streams:
        raise SdpNegotiationError("no acceptable media stream: " + "; ".join(declined))
    return Answer(
        SessionDescription(tuple(session), tuple(out_media)), tuple(streams), tuple(declined)
    )


def process_answer(
    offer: SessionDescription, answer: SessionDescription
) -> tuple[NegotiatedAudio, ...]:
    """Offerer side: what was agreed per accepted audio stream (RFC 3264 §7)."""
    if len(answer.media) != len(offer.media):
        raise SdpNegotiationError(
            f"answer has {len(answer.media)} m-lines, offer had {len(offer.media)}"
        )
    out = []
    for i, (om, am) in enumerate(zip(offer.media, answer.media, strict=True)):
        if am.rejected or om.rejected or am.media != "audio":
            continue
        pts = [int(f) for f in am.formats if f.isdigit() and len(f) <= 3 and int(f) in PT_CODEC]
        if not pts:
            pts = _codecs(am, ("PCMU", "PCMA"))
        if not pts:
            raise SdpNegotiationError(f"m[{i}] answer has no PCMU/PCMA")
        sdes = None
        if am.is_secure and am.crypto:
            try:
                sdes = select_answer(om.crypto, am.crypto)
            except SdesNegotiationError as exc:
                raise SdpNegotiationError(str(exc)) from exc
        elif am.is_secure and not answer.media_key_mgmt(i) and om.crypto:
            raise SdpNegotiationError(f"m[{i}] secure answer without a=crypto")
        conn = am.effective_connection(answer)
        if conn is None:
            raise SdpNegotiationError(f"m[{i}] has no connection address")
        out.append(
            NegotiatedAudio(
                index=i,
                remote_address=conn.address,
                remote_rtp_port=am.port,
                remote_rtcp_port=am.rtcp_port,
                payload_type=pts[0],
                codec=PT_CODEC.get(pts[0], am.rtpmaps[pts[0]].encoding.upper()),
                telephone_event=_telephone_event(am),
                direction=answer.media_direction(i).reverse(),
                proto=am.proto,
                ptime=am.ptime or 20,
                sdes=sdes,
                key_mgmt=answer.media_key_mgmt(i),
            )
        )
    if not out:
        raise SdpNegotiationError("every stream was rejected in the answer")
    return tuple(out)


__all__ = [
    "Answer",
    "Attribute",
    "LocalAudio",
    "NegotiatedAudio",
    "create_answer",
    "create_offer",
    "process_answer",
]
