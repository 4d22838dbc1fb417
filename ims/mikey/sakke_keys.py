"""MIKEY-SAKKE key material: Identifiers, key periods, the KMS's issuance and a user's keyring.

* Identifiers (RFC 6509 §3.2): "a timestamp formatted as a US-ASCII string [ASCII] and
  terminated by a null byte, followed by identifying data ... also represented by a US-ASCII
  string and terminated by a null byte"; the timestamp is "YYYY-MM" (ISO 8601), e.g.
  ``2011-02\\0tel:+447700900123\\0``. ID scheme 1 constrains the URI to a "tel" URI "formed in
  global notation", without visual separators or parameters. The lab's users are SIP URIs,
  for which no RFC defines constraints yet, so they use the Private Use scheme 240
  (:class:`~ims.mikey.payloads_kms.IdScheme`): ``sip:``/``sips:`` user@host with no port,
  parameters or headers, scheme and host lower-cased (RFC 3986 §6.2.2.1 case normalization).
* Key periods (§3.3): monthly. "Implementations MUST allow devices to hold two periods' keys
  simultaneously"; a device should accept the new month's keys from "the second-to-last day of
  the old month" and the old month's "on the first and second days of the new month" and
  "cease ... on the third day" - :func:`acceptable_periods` encodes exactly that.
* The KMS (§2.1.2) gives each user, per period, an ECCSI (SSK, PVT) for signing, a SAKKE RSK
  for receiving, and its community keys (KPAK, Z); for other KMSs' users, their KPAK and Z.
  :class:`KmsKeyIssuer` is that issuance as a plain object (the network element that serves it
  is future work, see docs/mikey-kms.md); :class:`SakkeKeyring` is the user side, which
  validates everything before installing it (RFC 6507 §5.1.2, RFC 6508 §6.1.2).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ims.mikey import eccsi, sakke
from ims.mikey.constants import ErrorNo
from ims.mikey.errors import MikeyError
from ims.mikey.payloads_kms import IdScheme

_TEL = re.compile(r"tel:\+[0-9]+")  # global notation, no separators, no parameters
_SIP = re.compile(r"(?i)(sips?):([A-Za-z0-9\-_.!~*'()&=+$,%]+)@([A-Za-z0-9.\-]+)")
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
MAX_HELD_PERIODS = 2  # §3.3 "hold two periods' keys simultaneously"


def normalize_uri(uri: str, scheme: IdScheme) -> str:
    """The URI as it goes into an Identifier under ``scheme``; MikeyError(INVALID_ID) if the
    URI does not satisfy the scheme's constraints (RFC 6509 §3.2)."""
    if scheme is IdScheme.TEL_URI_MONTHLY:
        if not _TEL.fullmatch(uri):
            raise MikeyError(
                f"{uri!r} is not a global-number tel URI without separators or parameters",
                mikey_error=ErrorNo.INVALID_ID,
            )
        return uri
    m = _SIP.fullmatch(uri)
    if m is None:
        raise MikeyError(
            f"{uri!r} is not a sip:user@host URI without port, parameters or headers",
            mikey_error=ErrorNo.INVALID_ID,
        )
    return f"{m.group(1).lower()}:{m.group(2)}@{m.group(3).lower()}"


def key_period(now: float) -> str:
    """The "YYYY-MM" key period (UTC) containing Unix time ``now`` (RFC 6509 §3.2)."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def check_period(period: str) -> str:
    if not _PERIOD.fullmatch(period):
        raise MikeyError(f"bad key period {period!r}", mikey_error=ErrorNo.INVALID_ID)
    return period


def identifier(period: str, uri: str, scheme: IdScheme) -> bytes:
    """``period \\0 uri \\0`` (RFC 6509 §3.2), both US-ASCII."""
    text = f"{check_period(period)}\0{normalize_uri(uri, scheme)}\0"
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise MikeyError("Identifier is not US-ASCII", mikey_error=ErrorNo.INVALID_ID) from None


def acceptable_periods(now: float) -> frozenset[str]:
    """Key periods a device accepts calls with at ``now`` (RFC 6509 §3.3 RECOMMENDED rule)."""
    t = datetime.fromtimestamp(now, UTC)
    out = {t.strftime("%Y-%m")}
    last_day = calendar.monthrange(t.year, t.month)[1]
    if t.day >= last_day - 1:  # from the second-to-last day: next month's keys too
        out.add((t + timedelta(days=3)).strftime("%Y-%m"))
    if t.day <= 2:  # first and second day: last month's keys still
        out.add((t - timedelta(days=3)).strftime("%Y-%m"))
    return frozenset(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class KmsCommunityKeys:
    """A KMS's public keys (RFC 6509 §2.1.2): ECCSI KPAK and SAKKE KMS Public Key Z."""

    kms_uri: str
    kpak: bytes
    z: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class UserKeyMaterial:
    """One user's keys for one key period, as the KMS provisions them (RFC 6509 §2.1.2)."""

    uri: str
    period: str
    id_scheme: IdScheme
    kms: KmsCommunityKeys
    signing_key: eccsi.SigningKey = field(repr=False)
    rsk: bytes = field(repr=False)

    @property
    def identifier(self) -> bytes:
        return identifier(self.period, self.uri, self.id_scheme)


class KmsKeyIssuer:
    """The key-issuing core of a MIKEY-SAKKE KMS: KSAK/KPAK (RFC 6507 §4.2), z/Z (RFC 6508
    §6.1), and per-user, per-period (SSK, PVT) + RSK. It can also derive any RSK it issued,
    which is what makes the KMS the lawful-interception point (RFC 6508 §7)."""

    def __init__(
        self,
        kms_uri: str,
        *,
        eccsi_kms: eccsi.EccsiKms | None = None,
        sakke_kms: sakke.SakkeKms | None = None,
    ) -> None:
        self.kms_uri = kms_uri
        self.eccsi = eccsi_kms if eccsi_kms is not None else eccsi.EccsiKms()
        self.sakke = sakke_kms if sakke_kms is not None else sakke.SakkeKms()
        self.community = KmsCommunityKeys(
            kms_uri=kms_uri, kpak=self.eccsi.kpak, z=self.sakke.public_key
        )

    def issue(
        self, uri: str, period: str, scheme: IdScheme = IdScheme.LAB_SIP_URI_MONTHLY
    ) -> UserKeyMaterial:
        ident = identifier(period, uri, scheme)
        return UserKeyMaterial(
            uri=normalize_uri(uri, scheme),
            period=period,
            id_scheme=scheme,
            kms=self.community,
            signing_key=self.eccsi.issue(ident),
            rsk=self.sakke.receiver_secret_key(ident),
        )

    def receiver_key(self, ident: bytes) -> sakke.ReceiverKey:
        """The RSK of any Identifier in this KMS's domain, unvalidated (it is ours)."""
        rsk = sakke.CURVE.decode_point(self.sakke.receiver_secret_key(ident))
        return sakke.ReceiverKey(identifier=ident, rsk=rsk, kms_public=self.sakke.public_key)


@dataclass(frozen=True, slots=True)
class _Installed:
    material: UserKeyMaterial
    signer: eccsi.EccsiSigner
    receiver: sakke.ReceiverKey


class SakkeKeyring:
    """A user's MIKEY-SAKKE keys: its own per-period keys (at most two periods, §3.3) and the
    community keys of every KMS it may talk to (§2.1: "each interoperating KMS MUST provide its
    users with the KMS public keys for every KMS subscriber domain")."""

    def __init__(
        self,
        uri: str,
        *,
        id_scheme: IdScheme = IdScheme.LAB_SIP_URI_MONTHLY,
        trusted: Iterable[KmsCommunityKeys] = (),
    ) -> None:
        self.id_scheme = id_scheme
        self.uri = normalize_uri(uri, id_scheme)
        self._kms: dict[str, KmsCommunityKeys] = {k.kms_uri: k for k in trusted}
        self._periods: dict[str, _Installed] = {}
        self.home_kms: str | None = None

    def trust(self, keys: KmsCommunityKeys) -> None:
        eccsi.check_kpak(keys.kpak)
        sakke.decode_kms_public(keys.z)
        self._kms[keys.kms_uri] = keys

    def install(self, material: UserKeyMaterial) -> None:
        """Validate (RFC 6507 §5.1.2, RFC 6508 §6.1.2) and install one period's keys; the
        oldest period is dropped beyond two. Raises EccsiError / SakkeError / MikeyError."""
        if normalize_uri(material.uri, self.id_scheme) != self.uri:
            raise MikeyError("key material is for another user", mikey_error=ErrorNo.INVALID_ID)
        if material.id_scheme is not self.id_scheme:
            raise MikeyError("key material for another ID scheme", mikey_error=ErrorNo.INVALID_ID)
        ident = material.identifier
        if material.signing_key.identifier != ident:
            raise MikeyError("SSK issued for another Identifier", mikey_error=ErrorNo.INVALID_ID)
        signer = eccsi.EccsiSigner(material.signing_key, material.kms.kpak)
        receiver = sakke.validate_rsk(ident, material.rsk, material.kms.z)
        self.trust(material.kms)
        self.home_kms = material.kms.kms_uri
        self._periods[material.period] = _Installed(material, signer, receiver)
        for old in sorted(self._periods)[:-MAX_HELD_PERIODS]:
            del self._periods[old]

    @property
    def periods(self) -> tuple[str, ...]:
        return tuple(sorted(self._periods))

    def kms(self, kms_uri: str | None = None) -> KmsCommunityKeys:
        """Community keys of ``kms_uri`` (our home KMS when None)."""
        name = kms_uri if kms_uri is not None else self.home_kms
        keys = self._kms.get(name) if name is not None else None
        if keys is None:
            raise MikeyError(f"no keys of KMS {name!r}", mikey_error=ErrorNo.AUTH_FAILURE)
        return keys

    def _installed(self, period: str) -> _Installed:
        got = self._periods.get(period)
        if got is None:
            raise MikeyError(
                f"no MIKEY-SAKKE keys for key period {period}", mikey_error=ErrorNo.AUTH_FAILURE
            )
        return got

    def signer(self, period: str) -> eccsi.EccsiSigner:
        return self._installed(period).signer

    def receiver(self, period: str) -> sakke.ReceiverKey:
        return self._installed(period).receiver

    def kms_of_period(self, period: str) -> KmsCommunityKeys:
        return self._installed(period).material.kms


__all__ = [
    "KmsCommunityKeys",
    "KmsKeyIssuer",
    "SakkeKeyring",
    "UserKeyMaterial",
    "acceptable_periods",
    "identifier",
    "key_period",
    "normalize_uri",
]
