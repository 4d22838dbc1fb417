"""SDP session descriptions (RFC 8866): an immutable, lossless model.

Every line is kept as written (type, value and its own line ending), so a parsed description
re-serialises byte for byte, unknown lines and attributes included, in their original order
(sofia-sip keeps SDP the same way). Typed views (origin, connection, m-line fields, rtpmap,
direction, ``a=crypto`` as :class:`~ims.sdes.CryptoAttribute`, ``a=key-mgmt`` as
:class:`~ims.sdp.keymgmt.KeyMgmtAttribute`) are computed from the lines on demand, so there is
one source of truth. Edits return new objects and touch only the lines they name.

Grammar (RFC 8866 §9): ``<type>=<value>`` lines; ``v=`` first; the session section runs up to
the first ``m=``; each media section starts at its ``m=`` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from ims.sdes.attribute import CryptoAttribute
from ims.sdp.errors import SdpError
from ims.sdp.keymgmt import KeyMgmtAttribute

_LINE = re.compile(r"([a-z])=(.*)", re.S)
# Digit counts are bounded so a hostile value can never reach int() with thousands of digits.
_MLINE = re.compile(r"(\S+) ([0-9]{1,5})(?:/([0-9]{1,5}))? (\S+)((?: \S+)*)")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([^/\s]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?")
MAX_SDP = 65536


class Direction(StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    def reverse(self) -> Direction:
        """The direction seen from the other side (RFC 3264 §6.1)."""
        return {
            Direction.SENDONLY: Direction.RECVONLY,
            Direction.RECVONLY: Direction.SENDONLY,
        }.get(self, self)

    @staticmethod
    def of(sends: bool, receives: bool) -> Direction:
        if sends and receives:
            return Direction.SENDRECV
        if sends:
            return Direction.SENDONLY
        if receives:
            return Direction.RECVONLY
        return Direction.INACTIVE


_DIRECTIONS = frozenset(d.value for d in Direction)


@dataclass(frozen=True, slots=True)
class Line:
    type: str  # one letter
    value: str
    eol: str = "\r\n"

    def encode(self) -> str:
        return f"{self.type}={self.value}{self.eol}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Origin:
    username: str
    sess_id: str
    sess_version: str
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        f = value.split(" ")
        if len(f) != 6:
            raise SdpError(f"o= needs 6 fields, got {len(f)}")
        return cls(
            username=f[0],
            sess_id=f[1],
            sess_version=f[2],
            nettype=f[3],
            addrtype=f[4],
            address=f[5],
        )

    def encode(self) -> str:
        return " ".join(
            (
                self.username,
                self.sess_id,
                self.sess_version,
                self.nettype,
                self.addrtype,
                self.address,
            )
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, value: str) -> Connection:
        f = value.split(" ")
        if len(f) != 3:
            raise SdpError(f"c= needs 3 fields, got {len(f)}")
        addr, *rest = f[2].split("/")
        ttl = count = None
        try:
            if f[1] == "IP4" and rest:
                ttl = int(rest[0])
                count = int(rest[1]) if len(rest) > 1 else None
            elif rest:
                count = int(rest[0])
        except ValueError:
            raise SdpError(f"bad c= address suffix in {value!r}") from None
        return cls(nettype=f[0], addrtype=f[1], address=addr, ttl=ttl, count=count)

    def encode(self) -> str:
        addr = self.address
        if self.ttl is not None:
            addr += f"/{self.ttl}"
        if self.count is not None:
            addr += f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {addr}"

    @classmethod
    def ip(cls, address: str) -> Connection:
        return cls(nettype="IN", addrtype="IP6" if ":" in address else "IP4", address=address)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attribute:
    name: str
    value: str | None = None

    @classmethod
    def parse(cls, value: str) -> Attribute:
        name, sep, val = value.partition(":")
        return cls(name=name, value=val if sep else None)

    def encode(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"

    def line(self, eol: str = "\r\n") -> Line:
        return Line("a", self.encode(), eol)


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpMap:
    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def encode(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


def _attributes(lines: Iterable[Line]) -> tuple[Attribute, ...]:
    return tuple(Attribute.parse(ln.value) for ln in lines if ln.type == "a")


def _crypto(lines: Iterable[Line]) -> tuple[CryptoAttribute, ...]:
    return tuple(
        CryptoAttribute.parse(a.value)
        for a in _attributes(lines)
        if a.name == "crypto" and a.value is not None
    )


def _key_mgmt(lines: Iterable[Line]) -> tuple[KeyMgmtAttribute, ...]:
    return tuple(
        KeyMgmtAttribute.parse(a.value)
        for a in _attributes(lines)
        if a.name == "key-mgmt" and a.value is not None
    )


def _direction(lines: Iterable[Line]) -> Direction | None:
    for a in _attributes(lines):
        if a.value is None and a.name in _DIRECTIONS:
            return Direction(a.name)
    return None


# Where a new line of a given type goes inside a media section (RFC 8866 §5 order).
_MEDIA_ORDER = "micbka"


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """One media section: ``lines[0]`` is its ``m=`` line."""

    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        if not self.lines or self.lines[0].type != "m":
            raise SdpError("a media section must start with m=")
        if not _MLINE.fullmatch(self.lines[0].value):
            raise SdpError(f"bad m= line {self.lines[0].value!r}")

    # -- m= fields ------------------------------------------------------------------------
    def _m(self) -> re.Match[str]:
        m = _MLINE.fullmatch(self.lines[0].value)
        assert m is not None  # checked in __post_init__
        return m

    @property
    def media(self) -> str:
        return self._m().group(1)

    @property
    def port(self) -> int:
        return int(self._m().group(2))

    @property
    def port_count(self) -> int | None:
        g = self._m().group(3)
        return int(g) if g else None

    @property
    def proto(self) -> str:
        return self._m().group(4)

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self._m().group(5).split())

    @property
    def rejected(self) -> bool:
        return self.port == 0

    @property
    def is_secure(self) -> bool:
        return "SAVP" in self.proto

    # -- attributes -----------------------------------------------------------------------
    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.lines)

    def attribute(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    @property
    def connection(self) -> Connection | None:
        for ln in self.lines:
            if ln.type == "c":
                return Connection.parse(ln.value)
        return None

    def effective_connection(self, sdp: SessionDescription) -> Connection | None:
        return self.connection or sdp.connection

    @property
    def rtpmaps(self) -> dict[int, RtpMap]:
        out: dict[int, RtpMap] = {}
        for a in self.attributes:
            if a.name == "rtpmap" and a.value is not None:
                m = _RTPMAP.fullmatch(a.value.strip())
                if m is None:
                    raise SdpError(f"bad a=rtpmap {a.value!r}")
                out[int(m.group(1))] = RtpMap(
                    payload_type=int(m.group(1)),
                    encoding=m.group(2),
                    clock_rate=int(m.group(3)),
                    channels=int(m.group(4)) if m.group(4) else None,
                )
        return out

    @property
    def fmtp(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for a in self.attributes:
            if a.name == "fmtp" and a.value is not None:
                pt, _, params = a.value.partition(" ")
                if pt.isdigit() and len(pt) <= 3:
                    out[int(pt)] = params
        return out

    def direction_or_none(self) -> Direction | None:
        return _direction(self.lines)

    @property
    def direction(self) -> Direction:
        return self.direction_or_none() or Direction.SENDRECV

    @property
    def crypto(self) -> tuple[CryptoAttribute, ...]:
        return _crypto(self.lines)

    @property
    def key_mgmt(self) -> tuple[KeyMgmtAttribute, ...]:
        return _key_mgmt(self.lines)

    @property
    def ptime(self) -> int | None:
        a = self.attribute("ptime")
        try:
            return int(a.value) if a is not None and a.value else None
        except ValueError:
            return None

    @property
    def rtcp_port(self) -> int:
        """RTCP port: ``a=rtcp`` (RFC 3605) when present, else RTP port + 1."""
        a = self.attribute("rtcp")
        if a is not None and a.value:
            first = a.value.split(" ")[0]
            if first.isdigit() and len(first) <= 5:
                return int(first)
        if self.attribute("rtcp-mux") is not None:
            return self.port
        return self.port + 1

    # -- edits ----------------------------------------------------------------------------
    @property
    def eol(self) -> str:
        return self.lines[0].eol

    def with_mline(
        self,
        *,
        port: int | None = None,
        proto: str | None = None,
        formats: Sequence[str] | None = None,
    ) -> MediaDescription:
        m = self._m()
        new_port = str(port) if port is not None else m.group(2)
        if m.group(3):
            new_port += "/" + m.group(3)
        fmts = " ".join(formats) if formats is not None else m.group(5).strip()
        value = f"{m.group(1)} {new_port} {proto or m.group(4)}" + (f" {fmts}" if fmts else "")
        return MediaDescription((replace(self.lines[0], value=value), *self.lines[1:]))

    def with_port(self, port: int) -> MediaDescription:
        return self.with_mline(port=port)

    def with_connection(self, conn: Connection) -> MediaDescription:
        lines = list(self.lines)
        for i, ln in enumerate(lines):
            if ln.type == "c":
                lines[i] = replace(ln, value=conn.encode())
                return MediaDescription(tuple(lines))
        return self._insert(Line("c", conn.encode(), self.eol))

    def _insert(self, line: Line) -> MediaDescription:
        rank = _MEDIA_ORDER.index(line.type) if line.type in _MEDIA_ORDER else len(_MEDIA_ORDER)
        pos = len(self.lines)
        for i, ln in enumerate(self.lines[1:], start=1):
            r = _MEDIA_ORDER.index(ln.type) if ln.type in _MEDIA_ORDER else len(_MEDIA_ORDER)
            if r > rank:
                pos = i
                break
        return MediaDescription((*self.lines[:pos], line, *self.lines[pos:]))

    def without_attributes(self, *names: str) -> MediaDescription:
        keep = tuple(
            ln for ln in self.lines if ln.type != "a" or Attribute.parse(ln.value).name not in names
        )
        return MediaDescription(keep)

    def with_attributes_appended(self, attrs: Iterable[Attribute]) -> MediaDescription:
        return MediaDescription((*self.lines, *(a.line(self.eol) for a in attrs)))

    def map_attributes(self, name: str, fn: object) -> MediaDescription:
        """Rewrite the value of every ``a=<name>`` line with ``fn(value) -> value``."""
        assert callable(fn)
        lines = []
        for ln in self.lines:
            if ln.type == "a":
                a = Attribute.parse(ln.value)
                if a.name == name and a.value is not None:
                    ln = replace(ln, value=f"{name}:{fn(a.value)}")
            lines.append(ln)
        return MediaDescription(tuple(lines))

    def encode(self) -> str:
        return "".join(ln.encode() for ln in self.lines)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    session_lines: tuple[Line, ...]
    media: tuple[MediaDescription, ...] = ()
    trailer: str = ""  # bytes after the last line (blank lines some stacks append), kept verbatim

    def __post_init__(self) -> None:
        if not self.session_lines or self.session_lines[0].type != "v":
            raise SdpError("SDP must start with v=")

    # -- parse / encode -------------------------------------------------------------------
    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        if isinstance(data, bytes):
            if len(data) > MAX_SDP:
                raise SdpError(f"SDP larger than {MAX_SDP} bytes")
            text = data.decode("utf-8", errors="surrogateescape")
        else:
            text = data
        # Split on LF only (str.splitlines would also split on U+0085, U+2028, form feed...).
        raw = [part + "\n" for part in text.split("\n")]
        raw[-1] = raw[-1][:-1]
        if raw[-1] == "":
            raw.pop()
        # Trailing empty lines (some stacks add one) are kept verbatim.
        end = len(raw)
        while end and raw[end - 1].strip("\r\n") == "":
            end -= 1
        trailer = "".join(raw[end:])
        session: list[Line] = []
        media: list[list[Line]] = []
        for n, chunk in enumerate(raw[:end], start=1):
            body = chunk.rstrip("\r\n")
            eol = chunk[len(body) :]
            if eol not in ("\r\n", "\n", ""):
                raise SdpError(f"line {n}: bad line ending {eol!r}")
            m = _LINE.fullmatch(body)
            if m is None:
                raise SdpError(f"line {n} is not <type>=<value>: {body[:40]!r}")
            line = Line(m.group(1), m.group(2), eol)
            if line.type == "m":
                media.append([line])
            elif media:
                media[-1].append(line)
            else:
                session.append(line)
        if not session:
            raise SdpError("empty SDP")
        if session[0].type != "v" or session[0].value != "0":
            raise SdpError("first line must be v=0")
        sdp = cls(tuple(session), tuple(MediaDescription(tuple(m)) for m in media), trailer)
        if sdp.line("o") is None or sdp.line("s") is None:
            raise SdpError("SDP needs o= and s= lines")
        sdp.origin  # noqa: B018 - validates o=
        return sdp

    def encode_str(self) -> str:
        return (
            "".join(ln.encode() for ln in self.session_lines)
            + "".join(m.encode() for m in self.media)
            + self.trailer
        )

    def encode(self) -> bytes:
        return self.encode_str().encode("utf-8", errors="surrogateescape")

    # -- typed views ----------------------------------------------------------------------
    def line(self, type_: str) -> Line | None:
        for ln in self.session_lines:
            if ln.type == type_:
                return ln
        return None

    @property
    def eol(self) -> str:
        return self.session_lines[0].eol or "\r\n"

    @property
    def origin(self) -> Origin:
        ln = self.line("o")
        if ln is None:
            raise SdpError("no o= line")
        return Origin.parse(ln.value)

    @property
    def session_name(self) -> str:
        ln = self.line("s")
        return ln.value if ln else ""

    @property
    def connection(self) -> Connection | None:
        ln = self.line("c")
        return Connection.parse(ln.value) if ln else None

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return _attributes(self.session_lines)

    def attribute(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    @property
    def direction(self) -> Direction | None:
        return _direction(self.session_lines)

    @property
    def key_mgmt(self) -> tuple[KeyMgmtAttribute, ...]:
        return _key_mgmt(self.session_lines)

    @property
    def crypto(self) -> tuple[CryptoAttribute, ...]:
        return _crypto(self.session_lines)

    def media_direction(self, index: int) -> Direction:
        """RFC 3264 §5.1: media-level attribute, else session level, else sendrecv."""
        return self.media[index].direction_or_none() or self.direction or Direction.SENDRECV

    def media_key_mgmt(self, index: int) -> tuple[KeyMgmtAttribute, ...]:
        """RFC 4567 §3.1: media-level key-mgmt overrides the session-level one."""
        return self.media[index].key_mgmt or self.key_mgmt

    # -- edits ----------------------------------------------------------------------------
    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        ms = list(self.media)
        ms[index] = media
        return replace(self, media=tuple(ms))

    def with_session_line(self, line: Line) -> SessionDescription:
        """Replace the first session line of ``line.type`` (or insert in RFC 8866 order)."""
        lines = list(self.session_lines)
        for i, ln in enumerate(lines):
            if ln.type == line.type:
                lines[i] = replace(line, eol=ln.eol)
                return replace(self, session_lines=tuple(lines))
        order = "vosiuepcbtrzka"
        rank = order.index(line.type) if line.type in order else len(order)
        pos = len(lines)
        for i, ln in enumerate(lines):
            if (order.index(ln.type) if ln.type in order else len(order)) > rank:
                pos = i
                break
        lines.insert(pos, line)
        return replace(self, session_lines=tuple(lines))

    def with_session_lines(self, lines: Sequence[Line]) -> SessionDescription:
        return replace(self, session_lines=tuple(lines))

    def with_origin(self, origin: Origin) -> SessionDescription:
        return self.with_session_line(Line("o", origin.encode(), self.eol))
