"""What the LEMF reads from an intercepted SIP message: a lenient, bounded summary.

Intercepted signalling must never stop the mediation, so this reader does not validate: it
takes the start line, the few headers an IRI record needs (compact forms included, RFC 3261
§7.3.3), and the SDP body's media lines, ``a=crypto`` (RFC 4568) and ``a=key-mgmt``
(RFC 4567). Anything it cannot read is left out of the summary. Key material is returned
separately (:attr:`SipSummary.crypto_lines`, :attr:`SipSummary.key_mgmt`) so the IRI record
can list fingerprints without the keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

_COMPACT = {
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "c": "content-type",
    "l": "content-length",
    "v": "via",
}
_STATUS_RE = re.compile(r"^SIP/2\.0\s+(\d{3})\s*(.*)$")
_REQUEST_RE = re.compile(r"^([A-Za-z!%*_+`'~.-]+)\s+(\S+)\s+SIP/2\.0$")
_URI_RE = re.compile(r"<([^>]*)>|^\s*([^;\s]+)")
_TAG_RE = re.compile(r";\s*tag=([^;\s]+)", re.IGNORECASE)


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
    headers: dict[str, str] = field(default_factory=dict)

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


def _uri(value: str) -> str:
    m = _URI_RE.search(value)
    if m is None:
        return value.strip()
    return (m.group(1) or m.group(2) or "").strip()


def summarise(data: bytes, *, max_bytes: int = 256 << 10) -> SipSummary:
    """Summarise one SIP message (bytes as intercepted). Never raises on odd input."""
    text = data[:max_bytes].decode("utf-8", "replace")
    head, _, body = text.partition("\r\n\r\n")
    if not _ and "\n\n" in text:
        head, _, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0].strip() if lines else ""
    method = request_uri = reason = None
    status = None
    if (sm := _STATUS_RE.match(start)) is not None:
        status, reason = int(sm.group(1)), sm.group(2)
    elif (rm := _REQUEST_RE.match(start)) is not None:
        method, request_uri = rm.group(1).upper(), rm.group(2)
    headers: dict[str, str] = {}
    last: str | None = None
    for line in lines[1:200]:
        if line[:1] in (" ", "\t") and last is not None:
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        if key not in headers:  # the first occurrence is what a summary needs
            headers[key] = value.strip()
        last = key
    media: list[_MediaBuilder] = []
    session_addr: str | None = None
    session_km: list[str] = []
    ctype = headers.get("content-type", "")
    if "application/sdp" in ctype.lower() and body:
        cur: _MediaBuilder | None = None
        for raw in body.replace("\r\n", "\n").split("\n"):
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
    media_lines = tuple(
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
    from_h, to_h = headers.get("from", ""), headers.get("to", "")
    ft, tt = _TAG_RE.search(from_h), _TAG_RE.search(to_h)
    return SipSummary(
        method=method,
        request_uri=request_uri,
        status=status,
        reason=reason,
        from_uri=_uri(from_h) if from_h else None,
        from_tag=ft.group(1) if ft else None,
        to_uri=_uri(to_h) if to_h else None,
        to_tag=tt.group(1) if tt else None,
        call_id=headers.get("call-id"),
        cseq=headers.get("cseq"),
        content_type=ctype or None,
        session_address=session_addr,
        media=media_lines,
        session_key_mgmt=tuple(session_km),
        headers=headers,
    )


def mikey_bytes(key_mgmt_value: str) -> bytes | None:
    """The MIKEY message of an ``a=key-mgmt:mikey <base64>`` value, or ``None``."""
    parts = key_mgmt_value.split()
    if len(parts) < 2 or parts[0].lower() != "mikey":
        return None
    try:
        return base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
