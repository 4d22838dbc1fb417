"""MIKEY payloads: frozen dataclasses with byte-exact encode/decode (RFC 3830 §6).

Every payload except HDR and SIGN starts with a *next payload* byte naming the payload that
follows (RFC 3830 §6: "Next payload"); the chain is written by :mod:`ims.mikey.message`, so each
class here encodes/decodes only its *body* (what follows that byte). Layout per clause:

* HDR §6.1 (version 1, data type, next payload, V bit + PRF, CSB ID, #CS, CS ID map type,
  SRTP-ID map §6.1.1: #CS entries of Policy_no(8) SSRC(32) ROC(32); the i-th entry is CS ID i).
  Every layout below is the RFC 3830 §6.x diagram (checked against the RFC text, issue 12),
  §6 "For all encoding, network byte order is always used", and is cross-checked by
  tshark/GStreamer interop.
* KEMAC §6.2 (encr alg, encr data len(16), encr data, MAC alg, MAC; MAC length from the alg:
  0 for NULL, 160 bits for HMAC-SHA-1-160, Table 6.2.b). Unknown MAC algs (KEMAC, V) decode
  to ``Invalid MAC`` (Table 6.12 "MAC algorithm not supported"), unknown hash funcs (CHASH)
  to ``Invalid HA`` ("Hash function not supported").
* PKE §6.3 (C(2 bits) + data len(14 bits)); DH §6.4 (group, fixed-width value, reserved(4) + KV(4),
  KV data); SIGN §6.5 (S type(4) + signature len(12), *no next-payload byte*, always last);
  T §6.6 (NTP-UTC and NTP 64 bits, COUNTER 32 bits); ID/CERT §6.7 (type, len(16), data);
  CHASH §6.8 (hash: 160 bits SHA-1, 128 bits MD5); V §6.9 (auth alg + MAC);
  SP §6.10 (policy no, prot type, param length(16), TLVs type(8) len(8) value);
  RAND §6.11 (len(8) + data); ERR §6.12 (error no + 16 reserved bits);
  Key data §6.13 (type(4) + KV(4), len(16), key, [salt len(16) + salt] for the +SALT types,
  KV data §6.14: SPI = len(8)+SPI, interval = VF len(8)+VF, VT len(8)+VT);
  General extension §6.15 (type, len(16), data).

Decoders check every declared length against the bytes present and raise
:class:`~ims.mikey.errors.MikeyDecodeError` with the MIKEY error number to answer with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from ims.buffer import Buffer
from ims.errors import EncodeError
from ims.mikey.constants import (
    CertType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    GenExtType,
    HashFunc,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    MapType,
    PayloadType,
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    TsType,
)
from ims.mikey.errors import MikeyDecodeError
from ims.mikey.payloads_kms import KMS_DECODERS, KmsPayload

MIKEY_VERSION = 1
MAC_LENGTHS = {MacAlg.NULL: 0, MacAlg.HMAC_SHA1_160: 20}
DH_VALUE_LENGTHS = {DhGroup.OAKLEY_5: 192, DhGroup.OAKLEY_1: 96, DhGroup.OAKLEY_2: 128}
HASH_LENGTHS = {HashFunc.SHA1: 20, HashFunc.MD5: 16}
TS_LENGTHS = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4, TsType.NTP_UTC_32: 4}

E = TypeVar("E", bound=IntEnum)


def _enum(cls: type[E], value: int, what: str, err: ErrorNo, buf: Buffer) -> E:
    try:
        return cls(value)
    except ValueError:
        raise MikeyDecodeError(
            f"unknown {what} {value}", offset=buf.position - 1, mikey_error=err
        ) from None


# ---------------------------------------------------------------------------------- HDR
@dataclass(frozen=True, slots=True, kw_only=True)
class SrtpCsEntry:
    """One SRTP-ID crypto-session map entry (RFC 3830 §6.1.1); CS ID = 1-based position."""

    policy_no: int
    ssrc: int
    roc: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericCsEntry:
    """One GENERIC-ID crypto-session block (RFC 6043 §6.1.1): CS ID, Prot type, S flag, the
    policy numbers ``Ps`` (#P of them), Session Data (for SRTP: SSRC, and ROC/SEQ when S is
    set) and the SPI. As an :class:`SrtpCsEntry` stand-in it offers ``policy_no`` (the first
    policy), ``ssrc`` and ``roc`` from the SRTP Session Data."""

    cs_id: int
    prot_type: int = 0  # SRTP (RFC 3830 §6.10)
    s_flag: bool = False
    policies: tuple[int, ...] = ()
    session_data: bytes = b""
    spi: bytes = b""

    @property
    def policy_no(self) -> int:
        return self.policies[0] if self.policies else 0

    @property
    def ssrc(self) -> int:
        return int.from_bytes(self.session_data[:4], "big") if len(self.session_data) >= 4 else 0

    @property
    def roc(self) -> int:
        if self.s_flag and len(self.session_data) >= 8:
            return int.from_bytes(self.session_data[4:8], "big")
        return 0


CsEntry = SrtpCsEntry | GenericCsEntry


def srtp_session_data(ssrc: int, roc: int | None = None, seq: int | None = None) -> bytes:
    """SRTP Session Data of a GENERIC-ID block (RFC 6043 §6.1.1): SSRC [ROC SEQ] (S flag)."""
    out = ssrc.to_bytes(4, "big")
    if roc is not None and seq is not None:
        out += roc.to_bytes(4, "big") + seq.to_bytes(2, "big")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class HdrPayload:
    """Common header (RFC 3830 §6.1). ``next_payload`` is filled in by the message encoder.
    ``cs_map`` holds :class:`SrtpCsEntry` for the SRTP-ID map, :class:`GenericCsEntry` for
    GENERIC-ID (RFC 6043 §6.1.1) and nothing for the Empty map (RFC 4563)."""

    data_type: DataType
    csb_id: int
    cs_map: tuple[CsEntry, ...] = ()
    v_flag: bool = False
    prf: PrfFunc = PrfFunc.MIKEY_1
    map_type: MapType = MapType.SRTP_ID
    version: int = MIKEY_VERSION

    def encode(self, buf: Buffer, next_payload: int) -> None:
        buf.push_uint8(self.version)
        buf.push_uint8(self.data_type)
        buf.push_uint8(next_payload)
        buf.push_uint8((0x80 if self.v_flag else 0) | self.prf)
        buf.push_uint32(self.csb_id)
        buf.push_uint8(len(self.cs_map))
        buf.push_uint8(self.map_type)
        for cs in self.cs_map:
            if isinstance(cs, GenericCsEntry):
                if self.map_type is not MapType.GENERIC_ID:
                    raise EncodeError("a GENERIC-ID block needs the GENERIC-ID map type")
                _push_generic(buf, cs)
            else:
                if self.map_type is not MapType.SRTP_ID:
                    raise EncodeError("an SRTP-ID entry needs the SRTP-ID map type")
                buf.push_uint8(cs.policy_no)
                buf.push_uint32(cs.ssrc)
                buf.push_uint32(cs.roc)


def _push_generic(buf: Buffer, cs: GenericCsEntry) -> None:
    if len(cs.policies) > 0x7F or len(cs.session_data) > 0xFFFF or len(cs.spi) > 0xFF:
        raise EncodeError("GENERIC-ID block field longer than its length field can say")
    buf.push_uint8(cs.cs_id)
    buf.push_uint8(cs.prot_type)
    buf.push_uint8((0x80 if cs.s_flag else 0) | len(cs.policies))
    buf.push_bytes(bytes(cs.policies))
    buf.push_uint16(len(cs.session_data))
    buf.push_bytes(cs.session_data)
    buf.push_uint8(len(cs.spi))
    buf.push_bytes(cs.spi)


def _pull_generic(buf: Buffer) -> GenericCsEntry:
    cs_id = buf.pull_uint8()
    prot_type = buf.pull_uint8()
    sp = buf.pull_uint8()
    policies = tuple(buf.pull_bytes(sp & 0x7F))
    session_data = buf.pull_bytes(buf.pull_uint16())
    spi = buf.pull_bytes(buf.pull_uint8())
    return GenericCsEntry(
        cs_id=cs_id,
        prot_type=prot_type,
        s_flag=bool(sp & 0x80),
        policies=policies,
        session_data=session_data,
        spi=spi,
    )


def decode_hdr(buf: Buffer) -> tuple[HdrPayload, int]:
    """Decode the common header; returns it and the type of the first payload."""
    version = buf.pull_uint8()
    if version != MIKEY_VERSION:
        raise MikeyDecodeError(f"MIKEY version {version} not supported", offset=0)
    data_type = _enum(DataType, buf.pull_uint8(), "data type", ErrorNo.INVALID_DT, buf)
    next_payload = buf.pull_uint8()
    vprf = buf.pull_uint8()
    prf = _enum(PrfFunc, vprf & 0x7F, "PRF function", ErrorNo.INVALID_PRF, buf)
    csb_id = buf.pull_uint32()
    n_cs = buf.pull_uint8()
    map_type = _enum(MapType, buf.pull_uint8(), "CS ID map type", ErrorNo.UNSPECIFIED, buf)
    entries: tuple[CsEntry, ...]
    if map_type is MapType.GENERIC_ID:
        entries = tuple(_pull_generic(buf) for _ in range(n_cs))
    elif map_type is MapType.EMPTY:
        if n_cs:  # the Empty map (RFC 4563) carries no CS ID map info: #CS is 0
            raise MikeyDecodeError(
                f"#CS {n_cs} with the Empty map",
                offset=buf.position - 2,
                mikey_error=ErrorNo.UNSPECIFIED,
            )
        entries = ()
    else:
        srtp = []
        for _ in range(n_cs):
            policy_no = buf.pull_uint8()
            ssrc = buf.pull_uint32()
            roc = buf.pull_uint32()
            srtp.append(SrtpCsEntry(policy_no=policy_no, ssrc=ssrc, roc=roc))
        entries = tuple(srtp)
    hdr = HdrPayload(
        data_type=data_type,
        csb_id=csb_id,
        cs_map=entries,
        v_flag=bool(vprf & 0x80),
        prf=prf,
        map_type=map_type,
        version=version,
    )
    return hdr, next_payload


# ------------------------------------------------------------------------------ payloads
@dataclass(frozen=True, slots=True, kw_only=True)
class KemacPayload:
    """Key data transport (RFC 3830 §6.2). ``encr_data`` is the (encrypted) sub-payload chain."""

    TYPE = PayloadType.KEMAC
    encr_alg: EncrAlg
    encr_data: bytes
    mac_alg: MacAlg
    mac: bytes = b""

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.encr_alg)
        buf.push_uint16(len(self.encr_data))
        buf.push_bytes(self.encr_data)
        buf.push_uint8(self.mac_alg)
        if len(self.mac) != MAC_LENGTHS[self.mac_alg]:
            raise EncodeError(f"MAC of {len(self.mac)} bytes for {self.mac_alg.name}")
        buf.push_bytes(self.mac)


def _decode_kemac(buf: Buffer) -> KemacPayload:
    encr_alg = _enum(EncrAlg, buf.pull_uint8(), "KEMAC encr alg", ErrorNo.INVALID_EA, buf)
    encr_data = buf.pull_bytes(buf.pull_uint16())
    # Table 6.12: "Invalid MAC | 3 | MAC algorithm not supported"
    mac_alg = _enum(MacAlg, buf.pull_uint8(), "KEMAC MAC alg", ErrorNo.INVALID_MAC, buf)
    mac = buf.pull_bytes(MAC_LENGTHS[mac_alg])
    return KemacPayload(encr_alg=encr_alg, encr_data=encr_data, mac_alg=mac_alg, mac=mac)


@dataclass(frozen=True, slots=True, kw_only=True)
class PkePayload:
    """Envelope data (RFC 3830 §6.3): the env_key encrypted with the peer's public key."""

    TYPE = PayloadType.PKE
    data: bytes
    cache: PkeCache = PkeCache.NO_CACHE

    def encode_body(self, buf: Buffer) -> None:
        if len(self.data) >= 1 << 14:
            raise EncodeError("PKE data longer than 14 bits can say")
        buf.push_uint16((self.cache << 14) | len(self.data))
        buf.push_bytes(self.data)


def _decode_pke(buf: Buffer) -> PkePayload:
    word = buf.pull_uint16()
    cache = _enum(PkeCache, word >> 14, "PKE cache", ErrorNo.UNSPECIFIED, buf)
    return PkePayload(cache=cache, data=buf.pull_bytes(word & 0x3FFF))


@dataclass(frozen=True, slots=True, kw_only=True)
class DhPayload:
    """DH data (RFC 3830 §6.4); the value has the fixed width of its group."""

    TYPE = PayloadType.DH
    group: DhGroup
    value: bytes
    kv_type: KvType = KvType.NULL
    kv_data: bytes = b""  # raw KV data (§6.14) as carried

    def encode_body(self, buf: Buffer) -> None:
        if len(self.value) != DH_VALUE_LENGTHS[self.group]:
            raise EncodeError(f"DH value of {len(self.value)} bytes for {self.group.name}")
        buf.push_uint8(self.group)
        buf.push_bytes(self.value)
        buf.push_uint8(self.kv_type & 0x0F)
        buf.push_bytes(self.kv_data)


def _pull_kv(buf: Buffer, kv: KvType) -> bytes:
    """Read KV data (RFC 3830 §6.14) and return it exactly as carried."""
    out = b""
    fields = {KvType.NULL: 0, KvType.SPI: 1, KvType.INTERVAL: 2}[kv]
    for _ in range(fields):
        n = buf.pull_uint8()
        out += bytes([n]) + buf.pull_bytes(n)
    return out


def _decode_dh(buf: Buffer) -> DhPayload:
    group = _enum(DhGroup, buf.pull_uint8(), "DH group", ErrorNo.INVALID_DH, buf)
    value = buf.pull_bytes(DH_VALUE_LENGTHS[group])
    kv_type = _enum(KvType, buf.pull_uint8() & 0x0F, "KV type", ErrorNo.UNSPECIFIED, buf)
    return DhPayload(group=group, value=value, kv_type=kv_type, kv_data=_pull_kv(buf, kv_type))


@dataclass(frozen=True, slots=True, kw_only=True)
class SignPayload:
    """Signature (RFC 3830 §6.5): no next-payload byte, always the last payload."""

    TYPE = PayloadType.SIGN
    sign_type: SignType
    signature: bytes

    def encode_body(self, buf: Buffer) -> None:
        if len(self.signature) >= 1 << 12:
            raise EncodeError("signature longer than 12 bits can say")
        buf.push_uint16((self.sign_type << 12) | len(self.signature))
        buf.push_bytes(self.signature)


def _decode_sign(buf: Buffer) -> SignPayload:
    word = buf.pull_uint16()
    stype = _enum(SignType, word >> 12, "signature type", ErrorNo.UNSPECIFIED, buf)
    return SignPayload(sign_type=stype, signature=buf.pull_bytes(word & 0x0FFF))


@dataclass(frozen=True, slots=True, kw_only=True)
class TPayload:
    """Timestamp (RFC 3830 §6.6): NTP-UTC / NTP are 64-bit NTP, COUNTER is 32 bits."""

    TYPE = PayloadType.T
    ts_type: TsType
    value: int

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.ts_type)
        if TS_LENGTHS[self.ts_type] == 8:
            buf.push_uint64(self.value)
        else:
            buf.push_uint32(self.value)

    def value_bytes(self) -> bytes:
        return self.value.to_bytes(TS_LENGTHS[self.ts_type], "big")


def _decode_t(buf: Buffer) -> TPayload:
    ts_type = _enum(TsType, buf.pull_uint8(), "TS type", ErrorNo.INVALID_TS, buf)
    value = buf.pull_uint64() if TS_LENGTHS[ts_type] == 8 else buf.pull_uint32()
    return TPayload(ts_type=ts_type, value=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class IdPayload:
    """Identity (RFC 3830 §6.7): NAI or URI."""

    TYPE = PayloadType.ID
    id_type: IdType
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.id_type)
        buf.push_uint16(len(self.data))
        buf.push_bytes(self.data)


def _decode_id(buf: Buffer) -> IdPayload:
    id_type = _enum(IdType, buf.pull_uint8(), "ID type", ErrorNo.INVALID_ID, buf)
    return IdPayload(id_type=id_type, data=buf.pull_bytes(buf.pull_uint16()))


@dataclass(frozen=True, slots=True, kw_only=True)
class CertPayload:
    """Certificate (RFC 3830 §6.7): X.509v3 DER (or a URL)."""

    TYPE = PayloadType.CERT
    cert_type: CertType
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.cert_type)
        buf.push_uint16(len(self.data))
        buf.push_bytes(self.data)


def _decode_cert(buf: Buffer) -> CertPayload:
    ctype = _enum(CertType, buf.pull_uint8(), "cert type", ErrorNo.INVALID_CERT, buf)
    return CertPayload(cert_type=ctype, data=buf.pull_bytes(buf.pull_uint16()))


@dataclass(frozen=True, slots=True, kw_only=True)
class ChashPayload:
    """Certificate hash (RFC 3830 §6.8)."""

    TYPE = PayloadType.CHASH
    hash_func: HashFunc
    digest: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.hash_func)
        buf.push_bytes(self.digest)


def _decode_chash(buf: Buffer) -> ChashPayload:
    # Table 6.12: "Invalid HA | 5 | Hash function not supported"
    hf = _enum(HashFunc, buf.pull_uint8(), "hash function", ErrorNo.INVALID_HA, buf)
    return ChashPayload(hash_func=hf, digest=buf.pull_bytes(HASH_LENGTHS[hf]))


@dataclass(frozen=True, slots=True, kw_only=True)
class VPayload:
    """Verification message (RFC 3830 §6.9)."""

    TYPE = PayloadType.V
    auth_alg: MacAlg
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.auth_alg)
        buf.push_bytes(self.data)


def _decode_v(buf: Buffer) -> VPayload:
    # §6.9 "Auth alg: [...] See Section 6.2 for defined values": a MAC algorithm (Invalid MAC)
    alg = _enum(MacAlg, buf.pull_uint8(), "V auth alg", ErrorNo.INVALID_MAC, buf)
    return VPayload(auth_alg=alg, data=buf.pull_bytes(MAC_LENGTHS[alg]))


@dataclass(frozen=True, slots=True, kw_only=True)
class SpParam:
    type: int
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SpPayload:
    """Security policy (RFC 3830 §6.10): parameters as type/length/value."""

    TYPE = PayloadType.SP
    policy_no: int
    prot_type: ProtType
    params: tuple[SpParam, ...]

    def encode_body(self, buf: Buffer) -> None:
        body = Buffer()
        for p in self.params:
            body.push_uint8(p.type)
            body.push_uint8(len(p.value))
            body.push_bytes(p.value)
        buf.push_uint8(self.policy_no)
        buf.push_uint8(self.prot_type)
        buf.push_uint16(len(body))
        buf.push_bytes(body.data())

    def get(self, ptype: int) -> bytes | None:
        for p in self.params:
            if p.type == ptype:
                return p.value
        return None


def _decode_sp(buf: Buffer) -> SpPayload:
    policy_no = buf.pull_uint8()
    prot = _enum(ProtType, buf.pull_uint8(), "security protocol", ErrorNo.INVALID_SP, buf)
    body = buf.pull_bytes(buf.pull_uint16())
    # TLV walk by index (the hot path of PSK decoding): type(1) len(1) value(len)
    params = []
    i, end = 0, len(body)
    while i < end:
        if i + 2 > end or i + 2 + body[i + 1] > end:
            raise MikeyDecodeError(
                "SP parameter runs past its payload",
                offset=buf.position - end + i,
                mikey_error=ErrorNo.INVALID_SPPAR,
            )
        n = body[i + 1]
        params.append(SpParam(type=body[i], value=body[i + 2 : i + 2 + n]))
        i += 2 + n
    return SpPayload(policy_no=policy_no, prot_type=prot, params=tuple(params))


@dataclass(frozen=True, slots=True, kw_only=True)
class RandPayload:
    """RAND (RFC 3830 §6.11)."""

    TYPE = PayloadType.RAND
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(len(self.data))
        buf.push_bytes(self.data)


def _decode_rand(buf: Buffer) -> RandPayload:
    return RandPayload(data=buf.pull_bytes(buf.pull_uint8()))


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrPayload:
    """Error (RFC 3830 §6.12)."""

    TYPE = PayloadType.ERR
    error_no: ErrorNo
    reserved: int = 0

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.error_no)
        buf.push_uint16(self.reserved)


def _decode_err(buf: Buffer) -> ErrPayload:
    eno = _enum(ErrorNo, buf.pull_uint8(), "error number", ErrorNo.UNSPECIFIED, buf)
    return ErrPayload(error_no=eno, reserved=buf.pull_uint16())


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyDataPayload:
    """Key data sub-payload of KEMAC (RFC 3830 §6.13) with its KV data (§6.14).

    ``salt`` is present exactly for the ``*_SALT`` types. ``kv_data`` keeps the raw KV bytes:
    for SPI that is len(8)+SPI, for an interval VF len(8)+VF+VT len(8)+VT.
    """

    TYPE = PayloadType.KEY_DATA
    key_type: KeyDataType
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)
    kv_type: KvType = KvType.NULL
    kv_data: bytes = b""

    def encode_body(self, buf: Buffer) -> None:
        if (self.salt is not None) != (
            self.key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT)
        ):
            raise EncodeError(f"salt presence does not match key type {self.key_type.name}")
        buf.push_uint8((self.key_type << 4) | (self.kv_type & 0x0F))
        buf.push_uint16(len(self.key))
        buf.push_bytes(self.key)
        if self.salt is not None:
            buf.push_uint16(len(self.salt))
            buf.push_bytes(self.salt)
        buf.push_bytes(self.kv_data)


def _decode_key_data(buf: Buffer) -> KeyDataPayload:
    b = buf.pull_uint8()
    ktype = _enum(KeyDataType, b >> 4, "key data type", ErrorNo.UNSPECIFIED, buf)
    kv = _enum(KvType, b & 0x0F, "KV type", ErrorNo.UNSPECIFIED, buf)
    key = buf.pull_bytes(buf.pull_uint16())
    salt = None
    if ktype in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT):
        salt = buf.pull_bytes(buf.pull_uint16())
    return KeyDataPayload(key_type=ktype, key=key, salt=salt, kv_type=kv, kv_data=_pull_kv(buf, kv))


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneralExtPayload:
    """General extension (RFC 3830 §6.15)."""

    TYPE = PayloadType.GENERAL_EXT
    ext_type: int
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        buf.push_uint8(self.ext_type)
        buf.push_uint16(len(self.data))
        buf.push_bytes(self.data)


def _decode_general_ext(buf: Buffer) -> GeneralExtPayload:
    ext_type = buf.pull_uint8()  # open name space (IANA): keep unknown values as ints
    return GeneralExtPayload(ext_type=ext_type, data=buf.pull_bytes(buf.pull_uint16()))


Payload = (
    KemacPayload
    | PkePayload
    | DhPayload
    | SignPayload
    | TPayload
    | IdPayload
    | CertPayload
    | ChashPayload
    | VPayload
    | SpPayload
    | RandPayload
    | ErrPayload
    | KeyDataPayload
    | GeneralExtPayload
    | KmsPayload  # RFC 6043 / RFC 6509 payloads (ims.mikey.payloads_kms)
)

#: next-payload code -> body decoder (aioquic/hyperframe style table).
DECODERS: dict[int, Callable[[Buffer], Payload]] = {
    PayloadType.KEMAC: _decode_kemac,
    PayloadType.PKE: _decode_pke,
    PayloadType.DH: _decode_dh,
    PayloadType.SIGN: _decode_sign,
    PayloadType.T: _decode_t,
    PayloadType.ID: _decode_id,
    PayloadType.CERT: _decode_cert,
    PayloadType.CHASH: _decode_chash,
    PayloadType.V: _decode_v,
    PayloadType.SP: _decode_sp,
    PayloadType.RAND: _decode_rand,
    PayloadType.ERR: _decode_err,
    PayloadType.KEY_DATA: _decode_key_data,
    PayloadType.GENERAL_EXT: _decode_general_ext,
    **KMS_DECODERS,
}

__all__ = [
    "DECODERS",
    "CertPayload",
    "ChashPayload",
    "DhPayload",
    "ErrPayload",
    "GenExtType",
    "GeneralExtPayload",
    "HdrPayload",
    "IdPayload",
    "KemacPayload",
    "KeyDataPayload",
    "Payload",
    "PkePayload",
    "RandPayload",
    "SignPayload",
    "SpParam",
    "SpPayload",
    "SrtpCsEntry",
    "TPayload",
    "VPayload",
    "decode_hdr",
]
