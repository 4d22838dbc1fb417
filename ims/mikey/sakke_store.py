"""MIKEY-SAKKE key material as JSON documents: what a KMS provisions and a UE installs.

RFC 6509 §2.1.2: the KMS provides each user, per key period, "a Secret Signing Key (SSK) and
a Public Validation Token (PVT) for ECCSI", "a Receiver Secret Key (RSK) for SAKKE" and the
KMS's community keys (KPAK, KMS Public Key Z) -- also those of every KMS it interoperates with
(§2.1 "each interoperating KMS MUST provide its users with the KMS public keys for every KMS
subscriber domain"). §3.4 leaves the provisioning format open ("Out of scope"); 3GPP TS
33.180 defines an XML one for MCPTT. The lab's documents are JSON with hex octet strings:

* community keys: ``{"kms": uri, "kpak": hex, "z": hex}`` (public);
* user key material: ``{"uri", "period", "id_scheme", "kms": {community}, "ssk": hex,
  "pvt": hex, "rsk": hex}`` -- secret (SSK, RSK): written 0600 by whoever stores it;
* KMS master secrets: ``{"kms": uri, "ksak": hex, "z_secret": hex}`` -- the KMS's own state.

Every decoder checks types and raises :class:`KeyStoreError`; validation of the keys
themselves (RFC 6507 §5.1.2, RFC 6508 §6.1.2) is the keyring's job on installation.
"""

from __future__ import annotations

import secrets
from typing import Any

from ims.errors import ImsError
from ims.mikey import eccsi, sakke
from ims.mikey.payloads_kms import IdScheme
from ims.mikey.sakke_keys import KmsCommunityKeys, KmsKeyIssuer, UserKeyMaterial, identifier


class KeyStoreError(ImsError, ValueError):
    """A key-material document is malformed."""


def _hex(doc: dict[str, Any], name: str) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyStoreError(f"{name!r} missing or not a string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise KeyStoreError(f"{name!r} is not hex") from None


def _str(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyStoreError(f"{name!r} missing or not a string")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KeyStoreError(f"{what} is not an object")
    return value


def kms_uri_of(domain: str) -> str:
    """The lab's name of the KMS serving ``domain`` (its IDRkms URI, RFC 6509 §4.1 roles 6/7)."""
    return f"kms.{domain.lower()}"


def community_doc(keys: KmsCommunityKeys) -> dict[str, str]:
    return {"kms": keys.kms_uri, "kpak": keys.kpak.hex(), "z": keys.z.hex()}


def community_from_doc(doc: Any) -> KmsCommunityKeys:
    d = _obj(doc, "community keys")
    return KmsCommunityKeys(kms_uri=_str(d, "kms"), kpak=_hex(d, "kpak"), z=_hex(d, "z"))


def material_doc(m: UserKeyMaterial) -> dict[str, Any]:
    return {
        "uri": m.uri,
        "period": m.period,
        "id_scheme": int(m.id_scheme),
        "kms": community_doc(m.kms),
        "ssk": m.signing_key.ssk.to_bytes(32, "big").hex(),
        "pvt": m.signing_key.pvt.hex(),
        "rsk": m.rsk.hex(),
    }


def material_from_doc(doc: Any) -> UserKeyMaterial:
    d = _obj(doc, "key material")
    scheme_no = d.get("id_scheme")
    if not isinstance(scheme_no, int) or scheme_no not in IdScheme._value2member_map_:
        raise KeyStoreError("'id_scheme' is not a known ID scheme")
    scheme = IdScheme(scheme_no)
    uri, period = _str(d, "uri"), _str(d, "period")
    try:
        ident = identifier(period, uri, scheme)
    except ImsError as exc:
        raise KeyStoreError(f"bad identity: {exc}") from None
    return UserKeyMaterial(
        uri=uri,
        period=period,
        id_scheme=scheme,
        kms=community_from_doc(d.get("kms")),
        signing_key=eccsi.SigningKey(
            identifier=ident, ssk=int.from_bytes(_hex(d, "ssk"), "big"), pvt=_hex(d, "pvt")
        ),
        rsk=_hex(d, "rsk"),
    )


def new_kms_secrets(kms_uri: str) -> dict[str, str]:
    """Fresh KMS master secrets: KSAK in [1, q-1] (RFC 6507 §4.2 "a random secret non-zero
    integer modulo q"), z in [2, q-1] (RFC 6508 §6.1 "in the range 2 to q-1")."""
    ksak = 1 + secrets.randbelow(eccsi.CURVE.q - 1)
    z = 2 + secrets.randbelow(sakke.CURVE.q - 2)
    return {"kms": kms_uri, "ksak": f"{ksak:064x}", "z_secret": f"{z:0256x}"}


def issuer_from_doc(doc: Any) -> KmsKeyIssuer:
    """The KMS's issuing core from its stored master secrets."""
    d = _obj(doc, "KMS secrets")
    try:
        return KmsKeyIssuer(
            _str(d, "kms"),
            eccsi_kms=eccsi.EccsiKms(ksak=int.from_bytes(_hex(d, "ksak"), "big")),
            sakke_kms=sakke.SakkeKms(master_secret=int.from_bytes(_hex(d, "z_secret"), "big")),
        )
    except (eccsi.EccsiError, sakke.SakkeError) as exc:
        raise KeyStoreError(f"KMS secrets rejected: {exc}") from None


__all__ = [
    "KeyStoreError",
    "community_doc",
    "community_from_doc",
    "issuer_from_doc",
    "kms_uri_of",
    "material_doc",
    "material_from_doc",
    "new_kms_secrets",
]
