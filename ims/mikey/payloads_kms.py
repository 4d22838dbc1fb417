"""MIKEY payloads of the KMS-based modes: RFC 6509 (SAKKE, IDR roles) and RFC 6043 (IDR, TR, ...).

Same conventions as :mod:`ims.mikey.payloads` (each class encodes/decodes its *body*, the
next-payload byte is written by :mod:`ims.mikey.message`); kept in their own module so the
RFC 3830 codec stays as it is, and registered in ``payloads.DECODERS`` by one import there.
This module imports nothing from :mod:`ims.mikey.payloads` (that one imports this).

* IDR, RFC 6043 §6.6: ``! Next Payload ! ID Role ! ID Type ! ID len (16) ! ID Data ~`` -
  "The IDR payload uses all the fields from the standard identity payload (ID) but expands it
  with a new field describing the role". ID Roles: Table 6.11 (1-5) and RFC 6509 §4.4
  Table 7 (6 = Initiator's KMS, 7 = Responder's KMS). ID Type byte string = 2 (RFC 6043 §6.5
  Table 6.10) joins NAI (0) and URI (1).
* SAKKE, RFC 6509 §4.2: ``! Next payload ! SAKKE params ! ID scheme ! SAKKE data length (16)
  ! SAKKE data ~``; params 1 = Parameter Set 1 (Table 4), ID scheme 1 = "tel URI with monthly
  keys" (Table 5); §7: values 240-254 are Private Use, which is where the lab's SIP-URI scheme
  lives (see :mod:`ims.mikey.sakke_keys`).
* TR, RFC 6043 §6.4: ``! Next Payload ! TS Role ! TS Type ! TS Value ~`` ("uses all the fields
  from the standard timestamp payload (T)"), TS Roles Table 6.9; the value is 64 bits for
  NTP-UTC/NTP, 32 for COUNTER and NTP-UTC-32 (§6.3 "The NTP-UTC-32 string contains four bytes").
* RANDR, RFC 6043 §6.8: ``! Next Payload ! RAND Role ! RAND length ! RAND ~``, Table 6.13.
* TP / TICKET, RFC 6043 §6.10: ``! Next Payload ! Ticket Type (16) ! Subtype ! Version !
  PRF Func (7) !D!E!F!G!H!I!J!K!L!M!N!O! Res (5) ! TP Data length (16) ! TP Data ~`` and, in
  TICKET only, ``Ticket Data length (16), Ticket Data, Initiator Data length (16), Initiator
  Data``. TP Data and Initiator Data are payload chains whose "first 8 bits identify the first
  payload" (:mod:`ims.mikey.ticket` encodes/decodes them); Ticket Data is kept opaque (it is
  "only intended for the party that resolves the ticket").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import TypeVar

from ims.buffer import Buffer
from ims.errors import EncodeError
from ims.mikey.constants import ErrorNo, IdType, PayloadType, TsType
from ims.mikey.errors import MikeyDecodeError

E = TypeVar("E", bound=IntEnum)


def _enum(cls: type[E], value: int, what: str, err: ErrorNo, buf: Buffer) -> E:
    try:
        return cls(value)
    except ValueError:
        raise MikeyDecodeError(
            f"unknown {what} {value}", offset=buf.position - 1, mikey_error=err
        ) from None


class IdRole(IntEnum):
    """RFC 6043 §6.6 Table 6.11 and RFC 6509 §4.4 Table 7."""

    INITIATOR = 1  # IDRi
    RESPONDER = 2  # IDRr
    KMS = 3  # IDRkms
    PSK = 4  # IDRpsk
    APPLICATION = 5  # IDRapp
    INITIATOR_KMS = 6  # IDRkmsi (RFC 6509)
    RESPONDER_KMS = 7  # IDRkmsr (RFC 6509)


class SakkeParams(IntEnum):
    """RFC 6509 §4.2 Table 4."""

    PARAMETER_SET_1 = 1


class IdScheme(IntEnum):
    """RFC 6509 §4.2 Table 5, plus one Private Use value (§7: 240-254)."""

    TEL_URI_MONTHLY = 1
    #: imslab's own scheme: a normalized sip: URI with monthly keys. Private Use because
    #: RFC 6509 §3.2 says "If an alternative URI scheme is to be used to form SAKKE
    #: Identifiers, a subsequent RFC MUST define constraints" and none has.
    LAB_SIP_URI_MONTHLY = 240


@dataclass(frozen=True, slots=True, kw_only=True)
class IdrPayload:
    """ID payload with Role Indicator (RFC 6043 §6.6)."""

    TYPE = PayloadType.IDR
    role: IdRole
    id_type: IdType
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        if len(self.data) > 0xFFFF:
            raise EncodeError("IDR data longer than 16 bits can say")
        buf.push_uint8(self.role)
        buf.push_uint8(self.id_type)
        buf.push_uint16(len(self.data))
        buf.push_bytes(self.data)


def _decode_idr(buf: Buffer) -> IdrPayload:
    role = _enum(IdRole, buf.pull_uint8(), "ID Role", ErrorNo.INVALID_ID, buf)
    id_type = _enum(IdType, buf.pull_uint8(), "ID Type", ErrorNo.INVALID_ID, buf)
    return IdrPayload(role=role, id_type=id_type, data=buf.pull_bytes(buf.pull_uint16()))


@dataclass(frozen=True, slots=True, kw_only=True)
class SakkePayload:
    """SAKKE Encapsulated Data (RFC 6509 §4.2, data as RFC 6508 §4)."""

    TYPE = PayloadType.SAKKE
    params: SakkeParams
    id_scheme: IdScheme
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        if len(self.data) > 0xFFFF:
            raise EncodeError("SAKKE data longer than 16 bits can say")
        buf.push_uint8(self.params)
        buf.push_uint8(self.id_scheme)
        buf.push_uint16(len(self.data))
        buf.push_bytes(self.data)


def _decode_sakke(buf: Buffer) -> SakkePayload:
    params = _enum(SakkeParams, buf.pull_uint8(), "SAKKE params", ErrorNo.UNSPECIFIED, buf)
    scheme = _enum(IdScheme, buf.pull_uint8(), "SAKKE ID scheme", ErrorNo.INVALID_ID, buf)
    return SakkePayload(params=params, id_scheme=scheme, data=buf.pull_bytes(buf.pull_uint16()))


# ------------------------------------------------------------------- MIKEY-TICKET (RFC 6043)
class TsRole(IntEnum):
    """RFC 6043 §6.4 Table 6.9."""

    TIME_OF_ISSUE = 1  # TRi
    VALIDITY_START = 2  # TRs
    VALIDITY_END = 3  # TRe
    REKEYING_INTERVAL = 4  # TRr


class RandRole(IntEnum):
    """RFC 6043 §6.8 Table 6.13."""

    INITIATOR = 1  # RANDRi
    RESPONDER = 2  # RANDRr
    KMS = 3  # RANDRkms


class TicketType(IntEnum):
    """RFC 6043 §6.10 Table 6.15 (the field is 16 bits; other values are kept as ints)."""

    MIKEY_BASE = 1
    GPP_BASE = 2


class TicketFlags(IntFlag):
    """The twelve flags D..O of the Ticket Policy (RFC 6043 §6.10), D the most significant."""

    NONE = 0
    D = 1 << 11  # ticket generated by the KMS (1) or the Initiator (0)
    E = 1 << 10  # Ticket Resolve exchange MANDATORY
    F = 1 << 9  # TRANSFER_RESP SHALL be sent
    G = 1 << 8  # Responder SHALL generate RANDRr
    H = 1 << 7  # RANDRi SHALL be used in key derivation from a TGK/GTGK
    I = 1 << 6  # noqa: E741 - the RFC's name: key forking
    J = 1 << 5  # ticket MAY be reused
    K = 1 << 4  # KMS changed the desired policy or KEMAC
    L = 1 << 3  # Initiator MAY supply session keys
    M = 1 << 2  # Responder MAY supply session keys
    N = 1 << 1  # an Initiator following RFC 6043 can send TRANSFER_INIT with it
    O = 1 << 0  # noqa: E741 - the RFC's name: a Responder following RFC 6043 can process it


#: RFC 6043 §6.10 "Note that the flags are not independent: NOT D implies L, G implies F,
#: NOT G implies H, NOT H implies G, I implies E, K implies D, and M implies F."
#: As (premise flag, premise value, consequence flag): "X implies Y" / "NOT X implies Y".
FLAG_RULES: tuple[tuple[TicketFlags, bool, TicketFlags], ...] = (
    (TicketFlags.D, False, TicketFlags.L),
    (TicketFlags.G, True, TicketFlags.F),
    (TicketFlags.G, False, TicketFlags.H),
    (TicketFlags.H, False, TicketFlags.G),
    (TicketFlags.I, True, TicketFlags.E),
    (TicketFlags.K, True, TicketFlags.D),
    (TicketFlags.M, True, TicketFlags.F),
)

#: TS value length per TS type (RFC 3830 §6.6 and RFC 6043 §6.3), by wire value.
TS_VALUE_LENGTHS = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4, TsType.NTP_UTC_32: 4}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrPayload:
    """Timestamp with Role Indicator (RFC 6043 §6.4)."""

    TYPE = PayloadType.TR
    role: TsRole
    ts_type: TsType
    value: int

    def encode_body(self, buf: Buffer) -> None:
        n = TS_VALUE_LENGTHS[self.ts_type]
        if not 0 <= self.value < 1 << (8 * n):
            raise EncodeError(f"TS value does not fit {self.ts_type.name}")
        buf.push_uint8(self.role)
        buf.push_uint8(self.ts_type)
        buf.push_bytes(self.value.to_bytes(n, "big"))


def _decode_tr(buf: Buffer) -> TrPayload:
    role = _enum(TsRole, buf.pull_uint8(), "TS Role", ErrorNo.INVALID_TS, buf)
    ts_type = _enum(TsType, buf.pull_uint8(), "TS Type", ErrorNo.INVALID_TS, buf)
    value = int.from_bytes(buf.pull_bytes(TS_VALUE_LENGTHS[ts_type]), "big")
    return TrPayload(role=role, ts_type=ts_type, value=value)


@dataclass(frozen=True, slots=True, kw_only=True)
class RandrPayload:
    """RAND with Role Indicator (RFC 6043 §6.8)."""

    TYPE = PayloadType.RANDR
    role: RandRole
    data: bytes

    def encode_body(self, buf: Buffer) -> None:
        if len(self.data) > 0xFF:
            raise EncodeError("RAND longer than 8 bits can say")
        buf.push_uint8(self.role)
        buf.push_uint8(len(self.data))
        buf.push_bytes(self.data)


def _decode_randr(buf: Buffer) -> RandrPayload:
    role = _enum(RandRole, buf.pull_uint8(), "RAND Role", ErrorNo.UNSPECIFIED, buf)
    return RandrPayload(role=role, data=buf.pull_bytes(buf.pull_uint8()))


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketPolicy:
    """The fields TP and TICKET share (RFC 6043 §6.10); ``tp_data`` is the raw TP Data
    (first-payload byte + payload chain, see :func:`ims.mikey.ticket.decode_chain`)."""

    ticket_type: int
    subtype: int
    version: int
    prf: int  # 7 bits: the PRF for key forking (RFC 3830 Table 6.1.c + RFC 6043 Table 6.3)
    flags: TicketFlags
    tp_data: bytes
    reserved: int = 0  # Res (5 bits)

    def flag_violations(self) -> list[str]:
        """The §6.10 flag dependencies this policy breaks (empty when consistent)."""
        out = []
        for premise, value, consequence in FLAG_RULES:
            if bool(self.flags & premise) is value and not self.flags & consequence:
                neg = "" if value else "NOT "
                out.append(f"{neg}{premise.name} implies {consequence.name}")
        return out

    def _encode_policy(self, buf: Buffer) -> None:
        if not (0 <= self.prf < 0x80 and 0 <= self.reserved < 0x20 and 0 <= self.flags < 0x1000):
            raise EncodeError("PRF func, flags or Res out of range")
        if len(self.tp_data) > 0xFFFF:
            raise EncodeError("TP Data longer than 16 bits can say")
        buf.push_uint16(self.ticket_type)
        buf.push_uint8(self.subtype)
        buf.push_uint8(self.version)
        word = (self.prf << 17) | (int(self.flags) << 5) | self.reserved
        buf.push_bytes(word.to_bytes(3, "big"))
        buf.push_uint16(len(self.tp_data))
        buf.push_bytes(self.tp_data)


def _pull_policy(buf: Buffer) -> dict[str, object]:
    ticket_type = buf.pull_uint16()
    subtype = buf.pull_uint8()
    version = buf.pull_uint8()
    word = int.from_bytes(buf.pull_bytes(3), "big")
    tp_data = buf.pull_bytes(buf.pull_uint16())
    return {
        "ticket_type": ticket_type,
        "subtype": subtype,
        "version": version,
        "prf": word >> 17,
        "flags": TicketFlags((word >> 5) & 0xFFF),
        "reserved": word & 0x1F,
        "tp_data": tp_data,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class TpPayload(TicketPolicy):
    """Ticket Policy payload: the *desired* policy (RFC 6043 §6.10)."""

    TYPE = PayloadType.TP

    def encode_body(self, buf: Buffer) -> None:
        self._encode_policy(buf)


def _decode_tp(buf: Buffer) -> TpPayload:
    return TpPayload(**_pull_policy(buf))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketPayload(TicketPolicy):
    """Ticket payload: the *granted* policy plus Ticket Data and Initiator Data (§6.10)."""

    TYPE = PayloadType.TICKET
    ticket_data: bytes = b""
    initiator_data: bytes = b""

    def encode_body(self, buf: Buffer) -> None:
        self._encode_policy(buf)
        for blob in (self.ticket_data, self.initiator_data):
            if len(blob) > 0xFFFF:
                raise EncodeError("Ticket/Initiator Data longer than 16 bits can say")
            buf.push_uint16(len(blob))
            buf.push_bytes(blob)


def _decode_ticket(buf: Buffer) -> TicketPayload:
    policy = _pull_policy(buf)
    ticket_data = buf.pull_bytes(buf.pull_uint16())
    initiator_data = buf.pull_bytes(buf.pull_uint16())
    return TicketPayload(
        **policy,  # type: ignore[arg-type]
        ticket_data=ticket_data,
        initiator_data=initiator_data,
    )


KmsPayload = IdrPayload | SakkePayload | TrPayload | RandrPayload | TpPayload | TicketPayload

#: next-payload code -> body decoder, merged into ``ims.mikey.payloads.DECODERS``.
KMS_DECODERS: dict[int, Callable[[Buffer], KmsPayload]] = {
    PayloadType.IDR: _decode_idr,
    PayloadType.SAKKE: _decode_sakke,
    PayloadType.TR: _decode_tr,
    PayloadType.RANDR: _decode_randr,
    PayloadType.TP: _decode_tp,
    PayloadType.TICKET: _decode_ticket,
}

__all__ = [
    "FLAG_RULES",
    "KMS_DECODERS",
    "IdRole",
    "IdScheme",
    "IdrPayload",
    "KmsPayload",
    "RandRole",
    "RandrPayload",
    "SakkeParams",
    "SakkePayload",
    "TicketFlags",
    "TicketPayload",
    "TicketPolicy",
    "TicketType",
    "TpPayload",
    "TrPayload",
    "TsRole",
]
