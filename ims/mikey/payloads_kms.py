"""MIKEY payloads of the KMS-based modes: IDR (RFC 6043 §6.6, RFC 6509 §4.4), SAKKE (RFC 6509 §4.2).

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
  lives (see :mod:`ims.mikey.modes.sakke`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from ims.buffer import Buffer
from ims.errors import EncodeError
from ims.mikey.constants import ErrorNo, IdType, PayloadType
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


KmsPayload = IdrPayload | SakkePayload

#: next-payload code -> body decoder, merged into ``ims.mikey.payloads.DECODERS``.
KMS_DECODERS: dict[int, Callable[[Buffer], KmsPayload]] = {
    PayloadType.IDR: _decode_idr,
    PayloadType.SAKKE: _decode_sakke,
}

__all__ = [
    "KMS_DECODERS",
    "IdRole",
    "IdScheme",
    "IdrPayload",
    "KmsPayload",
    "SakkeParams",
    "SakkePayload",
]
