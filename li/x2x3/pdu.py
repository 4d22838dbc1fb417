"""ETSI TS 103 221-2 X2/X3 PDU codec (clause 5): 40-byte header, conditional attributes, payload.

Wire layout (big-endian; offsets as in Wireshark's packet-li5g.c and OpenLI x2x3_ingest.h)::

     0  Version (u16, 0x0005 on the wire for the current major 0 / minor 5)
     2  PDU Type (u16: 1 X2, 2 X3, 3 Keepalive, 4 Keepalive Acknowledgement)
     4  Header Length (u32: 40 + bytes of conditional attributes)
     8  Payload Length (u32)
    12  Payload Format (u16, table 5.4-1)
    14  Payload Direction (u16, relative to the target)
    16  XID (16 bytes, the X1 task UUID)
    32  Correlation ID (8 bytes, ties X2 and X3 of one session)
    40  Conditional attributes: TLV (type u16, length u16, value), contiguous
    HL  Payload (PL bytes)

The codec reads and writes with ``struct`` and explicit bounds checks (the same checks
:class:`ims.buffer.Buffer` makes; a value that does not fit its field raises
:class:`~ims.errors.EncodeError`); framing and the spool only need the two length fields and
use :func:`pdu_lengths`. The exporter's hot path builds PDUs from per-stream header templates
(:func:`header_template`; the layout of :func:`assemble_pdu`), byte-identical to
:func:`encode_pdu`.
Every conditional attribute of the TLV table has a typed dataclass;
unknown and opaque types (ETSI/3GPP/proprietary attributes, DID, NFID, IPID, MIME, XID info)
stay :class:`OpaqueAttribute` so a PDU from any implementation decodes and re-encodes
byte-exact. Decoding consumes exactly the bytes given and raises :class:`X2X3DecodeError` on
anything malformed; it never reads past a declared length.
"""

from __future__ import annotations

import ipaddress
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple, TypeVar

from ims.errors import DecodeError, EncodeError

HEADER_LENGTH = 40
VERSION = 5
NIL_XID = uuid.UUID(int=0)


class X2X3DecodeError(DecodeError):
    """Malformed X2/X3 input (bad lengths, truncated TLV, bad fixed-size attribute...)."""


class PduType(IntEnum):
    X2 = 1
    X3 = 2
    KEEPALIVE = 3
    KEEPALIVE_ACK = 4


class PayloadFormat(IntEnum):
    """TS 103 221-2 table of payload formats (values as in OpenLI, Wireshark and sipgate)."""

    KEEPALIVE = 0
    ETSI_102232_1 = 1
    TS_33128 = 2
    TS_33108 = 3
    PROPRIETARY = 4
    IPV4_PACKET = 5
    IPV6_PACKET = 6
    ETHERNET_FRAME = 7
    RTP_PACKET = 8
    SIP_MESSAGE = 9
    DHCP_MESSAGE = 10
    RADIUS_PACKET = 11
    GTP_U_MESSAGE = 12
    MSRP_MESSAGE = 13
    EPS_IRI_CONTENT = 14
    MIME_MESSAGE = 15
    UNSTRUCTURED_PDU = 16


class PayloadDirection(IntEnum):
    """Direction relative to the target (not to the call leg)."""

    RESERVED = 0
    UNKNOWN = 1
    TO_TARGET = 2
    FROM_TARGET = 3
    MULTIPLE = 4
    NOT_APPLICABLE = 5


class AttributeType(IntEnum):
    ETSI_102232_1 = 1
    TS_33128 = 2
    TS_33108 = 3
    PROPRIETARY = 4
    DOMAIN_ID = 5
    NETWORK_FUNCTION_ID = 6
    INTERCEPTION_POINT_ID = 7
    SEQUENCE_NUMBER = 8
    TIMESTAMP = 9
    SOURCE_IPV4_ADDRESS = 10
    DESTINATION_IPV4_ADDRESS = 11
    SOURCE_IPV6_ADDRESS = 12
    DESTINATION_IPV6_ADDRESS = 13
    SOURCE_PORT = 14
    DESTINATION_PORT = 15
    IP_PROTOCOL = 16
    MATCHED_TARGET_IDENTIFIER = 17
    OTHER_TARGET_IDENTIFIER = 18
    MIME_CONTENT_TYPE = 19
    MIME_CONTENT_TRANSFER_ENCODING = 20
    ADDITIONAL_XID_RELATED_INFORMATION = 21
    SDP_SESSION_DESCRIPTION = 22


def _fmt(value: int) -> PayloadFormat | int:
    try:
        return PayloadFormat(value)
    except ValueError:
        return value


def _dir(value: int) -> PayloadDirection | int:
    try:
        return PayloadDirection(value)
    except ValueError:
        return value


def _text(value: bytes) -> str:
    # surrogateescape: any bytes survive decode -> encode unchanged (byte-exact round trip).
    return value.decode("utf-8", "surrogateescape")


def _untext(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


# -- conditional attributes ----------------------------------------------------------------


class Attribute:
    """Base of the conditional attributes; ``attr_type`` is the TLV type on the wire."""

    __slots__ = ()

    @property
    def attr_type(self) -> int:
        raise NotImplementedError

    def encode_value(self) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class OpaqueAttribute(Attribute):
    """An attribute kept as bytes: types 1-7, 19-21 and any unknown type."""

    type: int
    value: bytes

    @property
    def attr_type(self) -> int:
        return self.type

    def encode_value(self) -> bytes:
        return self.value

    @property
    def text(self) -> str:
        return _text(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceNumber(Attribute):
    """Type 8: u32 sequence number per task (wraps), so a receiver sees gaps."""

    value: int

    @property
    def attr_type(self) -> int:
        return AttributeType.SEQUENCE_NUMBER

    def encode_value(self) -> bytes:
        return self.value.to_bytes(4, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class Timestamp(Attribute):
    """Type 9: u32 seconds since the Unix epoch + u32 nanoseconds."""

    seconds: int
    nanoseconds: int = 0

    @property
    def attr_type(self) -> int:
        return AttributeType.TIMESTAMP

    def encode_value(self) -> bytes:
        return self.seconds.to_bytes(4, "big") + self.nanoseconds.to_bytes(4, "big")

    @classmethod
    def from_float(cls, ts: float) -> Timestamp:
        ns = int(round(ts * 1_000_000_000))
        return cls(seconds=ns // 1_000_000_000, nanoseconds=ns % 1_000_000_000)

    def as_float(self) -> float:
        return self.seconds + self.nanoseconds / 1_000_000_000


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceAddress(Attribute):
    """Type 10 (IPv4) or 12 (IPv6): source address of the intercepted packet."""

    address: IPAddress

    @property
    def attr_type(self) -> int:
        return (
            AttributeType.SOURCE_IPV4_ADDRESS
            if self.address.version == 4
            else AttributeType.SOURCE_IPV6_ADDRESS
        )

    def encode_value(self) -> bytes:
        return self.address.packed


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationAddress(Attribute):
    """Type 11 (IPv4) or 13 (IPv6): destination address of the intercepted packet."""

    address: IPAddress

    @property
    def attr_type(self) -> int:
        return (
            AttributeType.DESTINATION_IPV4_ADDRESS
            if self.address.version == 4
            else AttributeType.DESTINATION_IPV6_ADDRESS
        )

    def encode_value(self) -> bytes:
        return self.address.packed


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcePort(Attribute):
    """Type 14: u16 source port."""

    port: int

    @property
    def attr_type(self) -> int:
        return AttributeType.SOURCE_PORT

    def encode_value(self) -> bytes:
        return self.port.to_bytes(2, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationPort(Attribute):
    """Type 15: u16 destination port."""

    port: int

    @property
    def attr_type(self) -> int:
        return AttributeType.DESTINATION_PORT

    def encode_value(self) -> bytes:
        return self.port.to_bytes(2, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class IPProtocol(Attribute):
    """Type 16: u8 IP protocol number (17 UDP, 6 TCP...)."""

    protocol: int

    @property
    def attr_type(self) -> int:
        return AttributeType.IP_PROTOCOL

    def encode_value(self) -> bytes:
        return self.protocol.to_bytes(1, "big")


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchedTargetIdentifier(Attribute):
    """Type 17: the target identifier that matched (UTF-8, e.g. a SIP URI); may repeat."""

    value: str

    @property
    def attr_type(self) -> int:
        return AttributeType.MATCHED_TARGET_IDENTIFIER

    def encode_value(self) -> bytes:
        return _untext(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherTargetIdentifier(Attribute):
    """Type 18: another identifier of the target (UTF-8); may repeat."""

    value: str

    @property
    def attr_type(self) -> int:
        return AttributeType.OTHER_TARGET_IDENTIFIER

    def encode_value(self) -> bytes:
        return _untext(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class SdpSessionDescription(Attribute):
    """Type 22: the SDP describing the media carried in X3 (UTF-8 text)."""

    value: str

    @property
    def attr_type(self) -> int:
        return AttributeType.SDP_SESSION_DESCRIPTION

    def encode_value(self) -> bytes:
        return _untext(self.value)


def network_function_id(name: str) -> OpaqueAttribute:
    """Type 6 (NFID) from a text name, e.g. ``"pcscf-1"``."""
    return OpaqueAttribute(type=AttributeType.NETWORK_FUNCTION_ID, value=_untext(name))


def interception_point_id(name: str) -> OpaqueAttribute:
    """Type 7 (IPID) from a text name."""
    return OpaqueAttribute(type=AttributeType.INTERCEPTION_POINT_ID, value=_untext(name))


def domain_id(value: str) -> OpaqueAttribute:
    """Type 5 (DID) from text."""
    return OpaqueAttribute(type=AttributeType.DOMAIN_ID, value=_untext(value))


# imslab's proprietary X2 payloads (format 4) are told apart by this MIME type attribute:
# POI events without a SIP message (start of interception, content unavailable; written by
# li.poi.export, read by li.lemf; docs/li-extensions.md section 4).
IRI_EVENT_CONTENT_TYPE = "application/vnd.imslab.iri-event+json"

#: X3 conditional attribute "Proprietary" (type 4) marking content the network decrypted before
#: delivery: SRTP it terminates (TS 33.328 e2ae), delivered en clair (study Q4, TS 33.107
#: 7A.x: "CC delivered decrypted"). TS 103 221-2 has no field for it.
DECRYPTED_CONTENT = OpaqueAttribute(type=AttributeType.PROPRIETARY, value=b"imslab-cc=decrypted")


def mime_content_type(value: str) -> OpaqueAttribute:
    """Type 19 (MIME Content Type) from text."""
    return OpaqueAttribute(type=AttributeType.MIME_CONTENT_TYPE, value=_untext(value))


def _fixed(n: int, type_: int, value: bytes) -> bytes:
    if len(value) != n:
        raise X2X3DecodeError(f"attribute type {type_} must be {n} bytes, got {len(value)}")
    return value


def _u(n: int, cls: type[Attribute], field: str) -> Callable[[int, bytes], Attribute]:
    def dec(type_: int, value: bytes) -> Attribute:
        return cls(**{field: int.from_bytes(_fixed(n, type_, value), "big")})

    return dec


def _ip(n: int, cls: type[Attribute]) -> Callable[[int, bytes], Attribute]:
    ctor = ipaddress.IPv4Address if n == 4 else ipaddress.IPv6Address

    def dec(type_: int, value: bytes) -> Attribute:
        return cls(address=ctor(_fixed(n, type_, value)))  # type: ignore[call-arg]

    return dec


def _ts(type_: int, value: bytes) -> Attribute:
    v = _fixed(8, type_, value)
    return Timestamp(seconds=int.from_bytes(v[:4], "big"), nanoseconds=int.from_bytes(v[4:], "big"))


def _txt(cls: type[Attribute]) -> Callable[[int, bytes], Attribute]:
    def dec(type_: int, value: bytes) -> Attribute:
        return cls(value=_text(value))  # type: ignore[call-arg]

    return dec


# Attribute type -> decoder (STYLE.md §4: code -> decoder tables); absent types stay opaque.
_ATTRIBUTE_DECODERS: dict[int, Callable[[int, bytes], Attribute]] = {
    AttributeType.SEQUENCE_NUMBER: _u(4, SequenceNumber, "value"),
    AttributeType.TIMESTAMP: _ts,
    AttributeType.SOURCE_IPV4_ADDRESS: _ip(4, SourceAddress),
    AttributeType.DESTINATION_IPV4_ADDRESS: _ip(4, DestinationAddress),
    AttributeType.SOURCE_IPV6_ADDRESS: _ip(16, SourceAddress),
    AttributeType.DESTINATION_IPV6_ADDRESS: _ip(16, DestinationAddress),
    AttributeType.SOURCE_PORT: _u(2, SourcePort, "port"),
    AttributeType.DESTINATION_PORT: _u(2, DestinationPort, "port"),
    AttributeType.IP_PROTOCOL: _u(1, IPProtocol, "protocol"),
    AttributeType.MATCHED_TARGET_IDENTIFIER: _txt(MatchedTargetIdentifier),
    AttributeType.OTHER_TARGET_IDENTIFIER: _txt(OtherTargetIdentifier),
    AttributeType.SDP_SESSION_DESCRIPTION: _txt(SdpSessionDescription),
}


def _decode_attribute(type_: int, value: bytes) -> Attribute:
    dec = _ATTRIBUTE_DECODERS.get(type_)
    if dec is None:
        return OpaqueAttribute(type=type_, value=value)
    return dec(type_, value)


def decode_attributes(data: bytes) -> tuple[Attribute, ...]:
    """Decode a run of conditional-attribute TLVs that must fill ``data`` exactly.

    The LEMF's hot path: ``struct.unpack_from`` over the TLVs with the same bounds checks
    ``Buffer`` makes (a 4-byte TL must be present, a length never runs past the data).
    """
    out: list[Attribute] = []
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 4:
            raise X2X3DecodeError(f"{end - pos} stray bytes in conditional attributes", offset=pos)
        type_, length = _TL.unpack_from(data, pos)
        pos += 4
        if length > end - pos:
            raise X2X3DecodeError(
                f"attribute type {type_} length {length} exceeds the {end - pos} bytes left",
                offset=pos,
            )
        out.append(_decode_attribute(type_, data[pos : pos + length]))
        pos += length
    return tuple(out)


def encode_attributes(attrs: tuple[Attribute, ...] | list[Attribute]) -> bytes:
    """The TLVs of ``attrs`` back to back (one ``struct`` pack per TLV, one join)."""
    parts: list[bytes] = []
    for attr in attrs:
        value = attr.encode_value()
        if len(value) > 0xFFFF:
            raise EncodeError(f"attribute type {attr.attr_type} value too long ({len(value)})")
        try:
            parts.append(_TL.pack(attr.attr_type, len(value)))
        except struct.error as exc:
            raise EncodeError(f"attribute type {attr.attr_type}: {exc}") from None
        parts.append(value)
    return b"".join(parts)


# -- the PDU -------------------------------------------------------------------------------

A = TypeVar("A", bound=Attribute)


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """One X2/X3 PDU. ``payload_format``/``payload_direction`` are enums when known."""

    pdu_type: PduType
    payload_format: PayloadFormat | int
    payload_direction: PayloadDirection | int
    xid: uuid.UUID = NIL_XID
    correlation_id: int = 0
    attributes: tuple[Attribute, ...] = ()
    payload: bytes = b""
    version: int = VERSION

    # -- attribute access --------------------------------------------------------------
    def find(self, cls: type[A]) -> A | None:
        """The first attribute of class ``cls``, or ``None``."""
        for attr in self.attributes:
            if isinstance(attr, cls):
                return attr
        return None

    def find_all(self, cls: type[A]) -> list[A]:
        return [a for a in self.attributes if isinstance(a, cls)]

    def opaque(self, type_: int) -> bytes | None:
        for attr in self.attributes:
            if isinstance(attr, OpaqueAttribute) and attr.type == type_:
                return attr.value
        return None

    @property
    def sequence_number(self) -> int | None:
        a = self.find(SequenceNumber)
        return None if a is None else a.value

    @property
    def timestamp(self) -> float | None:
        a = self.find(Timestamp)
        return None if a is None else a.as_float()

    @property
    def header_length(self) -> int:
        return HEADER_LENGTH + len(encode_attributes(self.attributes))

    def with_attributes(self, *extra: Attribute, first: bool = False) -> Pdu:
        """A copy with ``extra`` attributes appended (or prepended with ``first``)."""
        attrs = (*extra, *self.attributes) if first else (*self.attributes, *extra)
        return Pdu(
            pdu_type=self.pdu_type,
            payload_format=self.payload_format,
            payload_direction=self.payload_direction,
            xid=self.xid,
            correlation_id=self.correlation_id,
            attributes=attrs,
            payload=self.payload,
            version=self.version,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PduHeader:
    """The fixed 40-byte header, decoded on its own (the framer needs the two lengths)."""

    version: int
    pdu_type: int
    header_length: int
    payload_length: int
    payload_format: int
    payload_direction: int
    xid: uuid.UUID
    correlation_id: int

    @property
    def total_length(self) -> int:
        return self.header_length + self.payload_length


_HEADER = struct.Struct("!HHIIHH16sQ")
_TL = struct.Struct("!HH")
_PDU_TYPES = frozenset(int(t) for t in PduType)


def decode_header(data: bytes) -> PduHeader:
    """Decode the first 40 bytes of ``data`` and check the length fields are sane."""
    if len(data) < HEADER_LENGTH:
        raise X2X3DecodeError(f"need {HEADER_LENGTH} header bytes, have {len(data)}")
    ver, ptype, hl, pl, fmt, direction, xid, cid = _HEADER.unpack_from(data)
    if hl < HEADER_LENGTH:
        raise X2X3DecodeError(f"header length {hl} < {HEADER_LENGTH}", offset=4)
    if ptype not in _PDU_TYPES:
        raise X2X3DecodeError(f"unknown PDU type {ptype}", offset=2)
    return PduHeader(
        version=ver,
        pdu_type=ptype,
        header_length=hl,
        payload_length=pl,
        payload_format=fmt,
        payload_direction=direction,
        xid=uuid.UUID(bytes=xid),
        correlation_id=cid,
    )


def pdu_lengths(data: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """(PDU type, total length) of the PDU whose header starts at ``offset`` (fast path for
    framing; the same checks as :func:`decode_header`)."""
    if len(data) - offset < HEADER_LENGTH:
        raise X2X3DecodeError(f"need {HEADER_LENGTH} header bytes, have {len(data) - offset}")
    ptype, hl, pl = _LENGTHS.unpack_from(data, offset + 2)
    if hl < HEADER_LENGTH:
        raise X2X3DecodeError(f"header length {hl} < {HEADER_LENGTH}", offset=offset + 4)
    if ptype not in _PDU_TYPES:
        raise X2X3DecodeError(f"unknown PDU type {ptype}", offset=offset + 2)
    return ptype, hl + pl


_LENGTHS = struct.Struct("!HII")


def decode_pdu(data: bytes) -> Pdu:
    """Decode exactly one PDU; ``data`` must hold exactly ``header_length + payload_length``."""
    hdr = decode_header(data)
    if hdr.total_length != len(data):
        raise X2X3DecodeError(
            f"PDU declares {hdr.total_length} bytes (header {hdr.header_length} + payload "
            f"{hdr.payload_length}) but {len(data)} bytes were given"
        )
    attrs = decode_attributes(data[HEADER_LENGTH : hdr.header_length])
    return Pdu(
        version=hdr.version,
        pdu_type=PduType(hdr.pdu_type),
        payload_format=_fmt(hdr.payload_format),
        payload_direction=_dir(hdr.payload_direction),
        xid=hdr.xid,
        correlation_id=hdr.correlation_id,
        attributes=attrs,
        payload=data[hdr.header_length :],
    )


class CcFields(NamedTuple):
    """What the LEMF's content path reads from an X3 PDU (:func:`decode_cc_fields`).

    Addresses stay packed (4 or 16 bytes); the first attribute of each kind counts, as with
    :meth:`Pdu.find`. ``other`` says the PDU also holds attributes this view does not carry
    (a target identifier, SDP, MIME...): the caller then takes :func:`decode_pdu`."""

    payload_format: int
    payload_direction: int
    xid: bytes
    correlation_id: int
    sequence: int | None
    timestamp: float | None
    nfid: bytes | None
    src: bytes | None
    dst: bytes | None
    sport: int | None
    dport: int | None
    other: bool
    payload: bytes


# attribute types with a fixed value size (the typed decoders above check the same sizes)
_FIXED_SIZE = {
    AttributeType.SEQUENCE_NUMBER: 4,
    AttributeType.TIMESTAMP: 8,
    AttributeType.SOURCE_IPV4_ADDRESS: 4,
    AttributeType.DESTINATION_IPV4_ADDRESS: 4,
    AttributeType.SOURCE_IPV6_ADDRESS: 16,
    AttributeType.DESTINATION_IPV6_ADDRESS: 16,
    AttributeType.SOURCE_PORT: 2,
    AttributeType.DESTINATION_PORT: 2,
    AttributeType.IP_PROTOCOL: 1,
}
# types the view ignores without calling the PDU "other" (DID/IPID identify the sender only)
_CC_PLAIN = frozenset(
    {*_FIXED_SIZE, AttributeType.DOMAIN_ID, AttributeType.NETWORK_FUNCTION_ID}
    | {AttributeType.INTERCEPTION_POINT_ID}
)
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TS_VALUE = struct.Struct("!II")


def decode_cc_fields(data: bytes) -> CcFields:
    """The LEMF's per-packet decode of one whole X2/X3 PDU: the same checks as
    :func:`decode_pdu` (exact length, every TLV inside the header, fixed-size attributes of
    their size) without an object per attribute. Raises :class:`X2X3DecodeError`."""
    if len(data) < HEADER_LENGTH:
        raise X2X3DecodeError(f"need {HEADER_LENGTH} header bytes, have {len(data)}")
    _, ptype, hl, pl, fmt, direction, xid, cid = _HEADER.unpack_from(data)
    if hl < HEADER_LENGTH:
        raise X2X3DecodeError(f"header length {hl} < {HEADER_LENGTH}", offset=4)
    if ptype not in _PDU_TYPES:
        raise X2X3DecodeError(f"unknown PDU type {ptype}", offset=2)
    if hl + pl != len(data):
        raise X2X3DecodeError(
            f"PDU declares {hl + pl} bytes (header {hl} + payload {pl}) but {len(data)} "
            "bytes were given"
        )
    seq = ts = nfid = src = dst = sport = dport = None
    other = False
    pos = HEADER_LENGTH
    fixed = _FIXED_SIZE
    while pos < hl:
        if hl - pos < 4:
            raise X2X3DecodeError(f"{hl - pos} stray bytes in conditional attributes", offset=pos)
        type_, length = _TL.unpack_from(data, pos)
        pos += 4
        if length > hl - pos:
            raise X2X3DecodeError(
                f"attribute type {type_} length {length} exceeds the {hl - pos} bytes left",
                offset=pos,
            )
        size = fixed.get(type_)
        if size is not None and size != length:
            raise X2X3DecodeError(f"attribute type {type_} must be {size} bytes, got {length}")
        if type_ == 8:
            if seq is None:
                seq = _U32.unpack_from(data, pos)[0]
        elif type_ == 9:
            if ts is None:
                sec, ns = _TS_VALUE.unpack_from(data, pos)
                ts = sec + ns / 1_000_000_000
        elif type_ == 10 or type_ == 12:
            if src is None:
                src = data[pos : pos + length]
        elif type_ == 11 or type_ == 13:
            if dst is None:
                dst = data[pos : pos + length]
        elif type_ == 14:
            if sport is None:
                sport = _U16.unpack_from(data, pos)[0]
        elif type_ == 15:
            if dport is None:
                dport = _U16.unpack_from(data, pos)[0]
        elif type_ == 6:
            if nfid is None:
                nfid = data[pos : pos + length]
        elif type_ not in _CC_PLAIN:
            other = True
        pos += length
    return CcFields(
        fmt, direction, xid, cid, seq, ts, nfid, src, dst, sport, dport, other, data[hl:]
    )


def encode_pdu(pdu: Pdu) -> bytes:
    """Encode ``pdu``; ``decode_pdu(encode_pdu(p)) == p`` for every valid PDU."""
    attrs = encode_attributes(pdu.attributes)
    try:
        header = _HEADER.pack(
            pdu.version,
            int(pdu.pdu_type),
            HEADER_LENGTH + len(attrs),
            len(pdu.payload),
            int(pdu.payload_format),
            int(pdu.payload_direction),
            pdu.xid.bytes,
            pdu.correlation_id,
        )
    except struct.error as exc:
        raise EncodeError(f"PDU header field out of range: {exc}") from None
    return b"".join((header, attrs, pdu.payload))


# -- the exporter's hot path: header templates and stamp TLVs --------------------------------

_PREFIX = struct.Struct("!HH")  # version, PDU type
_LENGTH_FIELDS = struct.Struct("!II")  # header length, payload length
_TAIL = struct.Struct("!HH16sQ")  # format, direction, XID, correlation ID
_SEQ_TLV = struct.Struct("!HHI")
_TS_TLV = struct.Struct("!HHII")


def header_template(
    version: int,
    pdu_type: int,
    payload_format: int,
    payload_direction: int,
    xid: uuid.UUID,
    correlation_id: int,
) -> tuple[bytes, bytes]:
    """The fixed parts of a header around its two length fields: ``(bytes 0-3, bytes 12-39)``.

    A PDU is then ``prefix + pack(header_length, payload_length) + tail + TLVs + payload``:
    what :func:`encode_pdu` writes, without re-packing the XID and the other constant fields
    of a task's stream for every PDU.
    """
    try:
        return (
            _PREFIX.pack(version, int(pdu_type)),
            _TAIL.pack(int(payload_format), int(payload_direction), xid.bytes, correlation_id),
        )
    except struct.error as exc:
        raise EncodeError(f"PDU header field out of range: {exc}") from None


def sequence_tlv(value: int) -> bytes:
    """The Sequence Number TLV (type 8) of ``value``, as :class:`SequenceNumber` encodes it."""
    return _SEQ_TLV.pack(AttributeType.SEQUENCE_NUMBER, 4, value)


def timestamp_tlv(ts: float) -> bytes:
    """The Timestamp TLV (type 9) of ``ts``, as ``Timestamp.from_float(ts)`` encodes it."""
    seconds, ns = divmod(int(round(ts * 1_000_000_000)), 1_000_000_000)
    return _TS_TLV.pack(AttributeType.TIMESTAMP, 8, seconds, ns)


def assemble_pdu(prefix: bytes, tail: bytes, attributes: bytes, payload: bytes) -> bytes:
    """A whole PDU from a :func:`header_template` and its encoded TLVs and payload."""
    return b"".join(
        (
            prefix,
            _LENGTH_FIELDS.pack(HEADER_LENGTH + len(attributes), len(payload)),
            tail,
            attributes,
            payload,
        )
    )


# -- constructors ----------------------------------------------------------------------------


def keepalive(sequence: int) -> Pdu:
    """Keepalive (type 3): format/direction 0, nil XID, correlation 0, one sequence number."""
    return Pdu(
        pdu_type=PduType.KEEPALIVE,
        payload_format=PayloadFormat.KEEPALIVE,
        payload_direction=PayloadDirection.RESERVED,
        attributes=(SequenceNumber(value=sequence),),
    )


def keepalive_ack(sequence: int) -> Pdu:
    """Keepalive Acknowledgement (type 4) echoing the keepalive's sequence number."""
    return Pdu(
        pdu_type=PduType.KEEPALIVE_ACK,
        payload_format=PayloadFormat.KEEPALIVE,
        payload_direction=PayloadDirection.RESERVED,
        attributes=(SequenceNumber(value=sequence),),
    )


def address_attributes(
    src: tuple[str, int] | None, dst: tuple[str, int] | None, protocol: int | None = 17
) -> tuple[Attribute, ...]:
    """Source/destination address and port TLVs (10-16) for an intercepted packet."""
    out: list[Attribute] = []
    if src is not None:
        out.append(SourceAddress(address=ipaddress.ip_address(src[0])))
    if dst is not None:
        out.append(DestinationAddress(address=ipaddress.ip_address(dst[0])))
    if src is not None:
        out.append(SourcePort(port=src[1]))
    if dst is not None:
        out.append(DestinationPort(port=dst[1]))
    if protocol is not None:
        out.append(IPProtocol(protocol=protocol))
    return tuple(out)


def x2_pdu(
    *,
    xid: uuid.UUID,
    correlation_id: int,
    payload: bytes,
    direction: PayloadDirection | int,
    payload_format: PayloadFormat | int = PayloadFormat.SIP_MESSAGE,
    attributes: tuple[Attribute, ...] = (),
) -> Pdu:
    """An X2 (xIRI) PDU, by default carrying a SIP message (format 9)."""
    return Pdu(
        pdu_type=PduType.X2,
        payload_format=payload_format,
        payload_direction=direction,
        xid=xid,
        correlation_id=correlation_id,
        attributes=attributes,
        payload=payload,
    )


def x3_pdu(
    *,
    xid: uuid.UUID,
    correlation_id: int,
    payload: bytes,
    direction: PayloadDirection | int,
    payload_format: PayloadFormat | int = PayloadFormat.RTP_PACKET,
    attributes: tuple[Attribute, ...] = (),
) -> Pdu:
    """An X3 (xCC) PDU, by default carrying an RTP/SRTP packet (format 8)."""
    return Pdu(
        pdu_type=PduType.X3,
        payload_format=payload_format,
        payload_direction=direction,
        xid=xid,
        correlation_id=correlation_id,
        attributes=attributes,
        payload=payload,
    )


def correlation_id_for(call_id: str) -> int:
    """A stable non-zero 64-bit Correlation ID for a SIP call (first 8 bytes of SHA-256).

    Every POI that sees the same Call-ID derives the same value, so X2 from the P-CSCF and X3
    from the media anchor correlate at the LEMF without coordination.
    """
    import hashlib

    digest = hashlib.sha256(call_id.encode("utf-8", "surrogateescape")).digest()
    value = int.from_bytes(digest[:8], "big")
    return value or 1
