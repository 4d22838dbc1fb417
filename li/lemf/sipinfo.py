"""What the LEMF reads from an intercepted SIP message: a lenient, bounded summary.

Intercepted signalling must never stop the mediation, so this reader never raises: the SIP
message is read through :mod:`ims.sip` (the parser every element uses, issue 15), without
validation, so each header is parsed only when the summary asks for it, and a header that does
not parse is left out of the summary rather than failing it. A capture whose framing is off
(bare LF line ends, no empty line after a truncated header block) is read once more with the
framing repaired; what still does not parse gives a summary holding only :attr:`SipSummary.error`.

From the SDP body it takes the media lines, ``a=crypto`` (RFC 4568) and ``a=key-mgmt``
(RFC 4567), line by line and leniently (a key the LEMF can use must not be lost to a syntax
nit elsewhere in the SDP). Key material is returned separately (:attr:`MediaLine.crypto`,
:attr:`MediaLine.key_mgmt`) so the IRI record can list fingerprints without the keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from ims.sip import parse_message
from ims.sip.errors import SipParseError
from ims.sip.headers import NameAddr
from ims.sip.message import Request, Response

_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaLine:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    address: str | None
    crypto: tuple[str, ...] = ()  # raw a=crypto values
    key_mgmt: tuple[str, ...] = ()  # raw a=key-mgmt values


@dataclass(frozen=True, slots=True, kw_only=True)
class SipSummary:
    method: str | None = None
    request_uri: str | None = None
    status: int | None = None
    reason: str | None = None
    from_uri: str | None = None
    from_tag: str | None = None
    to_uri: str | None = None
    to_tag: str | None = None
    call_id: str | None = None
    cseq: str | None = None
    content_type: str | None = None
    session_address: str | None = None
    media: tuple[MediaLine, ...] = ()
    session_key_mgmt: tuple[str, ...] = ()
    #: the message as ims.sip parsed it (None when it could not be read: see ``error``)
    message: Request | Response | None = field(default=None, repr=False, compare=False)
    error: str | None = None  # why the message could not be read

    @property
    def cseq_method(self) -> str | None:
        return self.cseq.split()[-1].upper() if self.cseq and self.cseq.split() else None

    @property
    def has_sdp(self) -> bool:
        return bool(self.media)

    def public(self) -> dict[str, object]:
        """The IRI view: no key material (crypto lines are reduced to tag and suite)."""
        out: dict[str, object] = {}
        if self.method:
            out["method"] = self.method
            out["request_uri"] = self.request_uri
        if self.status is not None:
            out["status"] = self.status
            out["reason"] = self.reason
        for name in ("from_uri", "to_uri", "call_id", "cseq"):
            value = getattr(self, name)
            if value is not None:
                out[name.removesuffix("_uri")] = value
        if self.media:
            out["sdp"] = {
                "address": self.session_address,
                "media": [
                    {
                        "media": m.media,
                        "port": m.port,
                        "proto": m.proto,
                        "formats": list(m.formats),
                        "address": m.address,
                        "crypto": [" ".join(c.split()[:2]) for c in m.crypto],
                        "key_mgmt": [k.split()[0] if k.split() else "" for k in m.key_mgmt],
                    }
                    for m in self.media
                ],
                "session_key_mgmt": [k.split()[0] for k in self.session_key_mgmt if k.split()],
            }
        return out


@dataclass(slots=True)
class _MediaBuilder:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    address: str | None = None
    crypto: list[str] = field(default_factory=list)
    key_mgmt: list[str] = field(default_factory=list)


def _read(data: bytes) -> Request | Response:
    """ims.sip's parse; once more with the framing repaired when that is what failed."""
    try:
        return parse_message(data, validate=False)
    except SipParseError:
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            head, sep, body = data.partition(b"\n\n")
        repaired = _BARE_LF.sub(b"\r\n", head.rstrip(b"\r\n")) + b"\r\n\r\n" + body
        if repaired == data:
            raise
        return parse_message(repaired, validate=False)


def _name_addr(message: Request | Response, name: str) -> NameAddr | None:
    try:
        return message.to if name == "To" else message.from_
    except SipParseError:
        return None  # an unreadable From/To is left out, the rest of the summary stays


def summarise(data: bytes, *, max_bytes: int = 256 << 10) -> SipSummary:
    """Summarise one SIP message (bytes as intercepted). Never raises on odd input."""
    try:
        msg = _read(data[:max_bytes])
    except SipParseError as exc:
        return SipSummary(error=str(exc))
    ctype = msg.headers.get("Content-Type") or ""
    session_addr, session_km, media_lines = _sdp(msg.body, ctype)
    from_, to = _name_addr(msg, "From"), _name_addr(msg, "To")
    return SipSummary(
        method=msg.method.upper() if isinstance(msg, Request) else None,
        request_uri=msg.uri.encode() if isinstance(msg, Request) else None,
        status=msg.status if isinstance(msg, Response) else None,
        reason=msg.reason if isinstance(msg, Response) else None,
        from_uri=from_.uri.encode() if from_ is not None else None,
        from_tag=from_.tag if from_ is not None else None,
        to_uri=to.uri.encode() if to is not None else None,
        to_tag=to.tag if to is not None else None,
        call_id=msg.call_id,
        cseq=msg.headers.get("CSeq"),
        content_type=ctype or None,
        session_address=session_addr,
        media=media_lines,
        session_key_mgmt=session_km,
        message=msg,
    )


def _sdp(body: bytes, ctype: str) -> tuple[str | None, tuple[str, ...], tuple[MediaLine, ...]]:
    """Session address, session-level key-mgmt and media lines of an SDP body (lenient)."""
    if "application/sdp" not in ctype.lower() or not body:
        return None, (), ()
    media: list[_MediaBuilder] = []
    session_addr: str | None = None
    session_km: list[str] = []
    cur: _MediaBuilder | None = None
    for raw in body.decode("utf-8", "replace").replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            parts = value.split()
            if len(parts) >= 3:
                try:
                    port = int(parts[1].split("/")[0])
                except ValueError:
                    port = 0
                cur = _MediaBuilder(parts[0], port, parts[2], tuple(parts[3:]))
                media.append(cur)
        elif kind == "c":
            parts = value.split()
            addr = parts[2].split("/")[0] if len(parts) >= 3 else None
            if cur is None:
                session_addr = addr
            else:
                cur.address = addr
        elif kind == "a":
            name, _, val = value.partition(":")
            if name == "crypto" and cur is not None:
                cur.crypto.append(val)
            elif name == "key-mgmt":
                (session_km if cur is None else cur.key_mgmt).append(val)
    lines = tuple(
        MediaLine(
            media=m.media,
            port=m.port,
            proto=m.proto,
            formats=m.formats,
            address=m.address or session_addr,
            crypto=tuple(m.crypto),
            key_mgmt=tuple(m.key_mgmt),
        )
        for m in media
    )
    return session_addr, tuple(session_km), lines


def mikey_bytes(key_mgmt_value: str) -> bytes | None:
    """The MIKEY message of an ``a=key-mgmt:mikey <base64>`` value, or ``None``."""
    parts = key_mgmt_value.split()
    if len(parts) < 2 or parts[0].lower() != "mikey":
        return None
    try:
        return base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
