"""MIKEY keying strategies for the UE (RFC 3830 / 4650 / 4738 carried in SDP per RFC 4567).

Modes (``imslab call --keying NAME``; names follow issue 7):

========== ===================================================== =========================
name       MIKEY mode                                            secret the UE uses
========== ===================================================== =========================
psk        PSK (RFC 3830 §3.1), PSK agreed by the two users      ``e2e_psk[{me, peer}]``
psk-public PSK with the publicly known key (study 2.2.1)         :data:`PUBLIC_PSK`
psk-hop    PSK with the UE's own P-CSCF (study 2.2.2)            ``hop_psk[me]``
pke        public-key envelope (RFC 3830 §3.2), cases A-D        own credentials, the peer's
                                                                 certificate from the directory
rsa-r      reverse-mode RSA (RFC 4738)                           own credentials
dh         DH with signatures (RFC 3830 §3.3)                    own credentials
dhhmac     DH with HMAC (RFC 4650)                               ``dhhmac_psk[{me, peer}]``
========== ===================================================== =========================

Which CA issued what and whom a UE trusts decide the study's PKE cases, so they are data in
:class:`MikeyCredentials` (built by :func:`lab.matrix.credentials.provision`): ``trust`` maps
the *peer's domain* to the anchors accepted for identities of that domain (the name binding a
real deployment gets from name constraints: a certificate for ``bob@ims-b.test`` is only good if
operator B's CA issued it -- without it one operator could forge certificates for everyone and
the study's "both operators must assist" would not hold); ``self_signed`` accepts any
self-signed certificate whose identity is the peer's (case D). The initiator of ``pke`` obtains
the responder's certificate from ``directory`` (the extra round trip of study 2.3.2), which the
peer's operator runs -- so only that operator can hand out a substitute.

The names a user can pick are listed in :mod:`ue.registry` (one strategy per entry, with the
credential ``profile`` it uses: the PKE cases differ only in that). Credentials are
process-wide: :func:`configure` (in-process labs, named profiles) or the directory named by
``IMSLAB_MIKEY_CREDENTIALS`` (:func:`MikeyCredentials.load`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from ims.media.keys import SrtpKeys
from ims.mikey.certs import (
    Credentials,
    TrustStore,
    certificate_pem,
    load_certificate,
    load_private_key,
    private_key_pem,
)
from ims.mikey.constants import ErrorNo
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.modes.base import KeyExchangeResult
from ims.mikey.policy import Sender
from ims.sdp.keymgmt import KeyMgmtAttribute
from ims.sdp.model import SessionDescription
from ue.keying import KeyingContext, KeyingError, KeyingSession, MediaKeys, SdpKeying

#: The publicly known PSK of study 2.2.1 ("publicly known pre-shared key"): anyone, the
#: operators' POIs included, can open MIKEY messages protected with it.
PUBLIC_PSK = b"imslab: publicly known MIKEY PSK"

ENV_DIR = "IMSLAB_MIKEY_CREDENTIALS"


def aor(uri: str) -> str:
    """``sip:user@host`` of a URI or name-addr (parameters and port dropped, host lowercased)."""
    u = uri.strip()
    if "<" in u:
        u = u[u.index("<") + 1 : u.index(">")] if ">" in u else u[u.index("<") + 1 :]
    u = u.split(";", 1)[0].split("?", 1)[0]
    scheme, _, rest = u.partition(":")
    user, at, host = rest.rpartition("@")
    host = host.split(":", 1)[0].lower()
    scheme = "sip" if scheme.lower() in ("sip", "sips") else scheme.lower()
    return f"{scheme}:{user}@{host}" if at else f"{scheme}:{host}"


def domain_of(uri: str) -> str:
    return aor(uri).rpartition("@")[2]


def pair(a: str, b: str) -> frozenset[str]:
    return frozenset({aor(a), aor(b)})


class SelfSignedTrust(TrustStore):
    """Case D: any valid self-signed certificate (identity checked by the caller)."""

    def verify(self, chain: Any, now: float) -> x509.Certificate:
        if not chain:
            raise MikeyError("no certificate", mikey_error=ErrorNo.INVALID_CERT)
        leaf = chain[0]
        if leaf.issuer != leaf.subject:
            raise MikeyError("certificate is not self-signed", mikey_error=ErrorNo.INVALID_CERT)
        return TrustStore(anchors=(leaf,)).verify([leaf], now)


def certificate_names(cert: x509.Certificate) -> set[str]:
    """The identities a certificate vouches for: SAN URIs and the subject CN."""
    names: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names |= {aor(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)}
    except x509.ExtensionNotFound:
        pass
    for attr in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        names.add(aor(value if ":" in value else f"sip:{value}"))
    return names


@dataclass(slots=True)
class MikeyCredentials:
    """Everything the MIKEY modes of the lab's UEs need (see the module docstring)."""

    e2e_psk: dict[frozenset[str], bytes] = field(default_factory=dict)
    hop_psk: dict[str, bytes] = field(default_factory=dict)
    dhhmac_psk: dict[frozenset[str], bytes] = field(default_factory=dict)
    credentials: dict[str, Credentials] = field(default_factory=dict)
    trust: dict[str, tuple[x509.Certificate, ...]] = field(default_factory=dict)
    self_signed: bool = False
    directory: dict[str, x509.Certificate] = field(default_factory=dict)

    def trust_for(self, peer_uri: str) -> TrustStore:
        if self.self_signed:
            return SelfSignedTrust()
        return TrustStore(anchors=self.trust.get(domain_of(peer_uri), ()))

    def check_peer(self, cert: x509.Certificate | None, peer_uri: str, now: float) -> None:
        """The peer's certificate must be trusted *for the peer's identity*."""
        if cert is None:
            raise KeyingError("peer presented no certificate")
        try:
            self.trust_for(peer_uri).verify([cert], now)
        except MikeyError as exc:
            raise KeyingError(f"peer certificate rejected: {exc}") from None
        if aor(peer_uri) not in certificate_names(cert):
            raise KeyingError(f"certificate does not name {aor(peer_uri)}")

    # --- on disk (0600 files) so subprocess UEs can load what the lab provisioned ----------

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)

        def w(name: str, data: bytes) -> str:
            p = path / name
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return name

        doc: dict[str, Any] = {
            "e2e_psk": [[sorted(k), v.hex()] for k, v in self.e2e_psk.items()],
            "dhhmac_psk": [[sorted(k), v.hex()] for k, v in self.dhhmac_psk.items()],
            "hop_psk": {k: v.hex() for k, v in self.hop_psk.items()},
            "self_signed": self.self_signed,
            "credentials": {},
            "trust": {},
            "directory": {},
        }
        for i, (uri, cred) in enumerate(sorted(self.credentials.items())):
            doc["credentials"][uri] = {
                "key": w(f"key-{i}.pem", private_key_pem(cred.private_key)),
                "chain": [
                    w(f"cert-{i}-{j}.pem", certificate_pem(c)) for j, c in enumerate(cred.chain)
                ],
            }
        for i, (dom, anchors) in enumerate(sorted(self.trust.items())):
            doc["trust"][dom] = [
                w(f"trust-{i}-{j}.pem", certificate_pem(c)) for j, c in enumerate(anchors)
            ]
        for i, (uri, cert) in enumerate(sorted(self.directory.items())):
            doc["directory"][uri] = w(f"dir-{i}.pem", certificate_pem(cert))
        w("mikey.json", json.dumps(doc, indent=1).encode())

    @classmethod
    def load(cls, path: Path) -> MikeyCredentials:
        doc = json.loads((path / "mikey.json").read_text())

        def cert(name: str) -> x509.Certificate:
            return load_certificate((path / name).read_bytes())

        return cls(
            e2e_psk={frozenset(k): bytes.fromhex(v) for k, v in doc["e2e_psk"]},
            dhhmac_psk={frozenset(k): bytes.fromhex(v) for k, v in doc["dhhmac_psk"]},
            hop_psk={k: bytes.fromhex(v) for k, v in doc["hop_psk"].items()},
            self_signed=bool(doc["self_signed"]),
            credentials={
                uri: Credentials(
                    private_key=load_private_key((path / c["key"]).read_bytes()),
                    chain=tuple(cert(n) for n in c["chain"]),
                )
                for uri, c in doc["credentials"].items()
            },
            trust={d: tuple(cert(n) for n in names) for d, names in doc["trust"].items()},
            directory={uri: cert(n) for uri, n in doc["directory"].items()},
        )


_state: dict[str, MikeyCredentials | None] = {"creds": None}
#: named credential sets (a running lab provisions one per PKI: ``lab.credentials``)
_profiles: dict[str, MikeyCredentials] = {}


def configure(
    creds: MikeyCredentials | None, *, profiles: dict[str, MikeyCredentials] | None = None
) -> None:
    """Set the process-wide credentials (in-process labs and tests); ``profiles`` are the
    named sets a strategy with a ``profile`` uses (without them every profile is ``creds``)."""
    _state["creds"] = creds
    _profiles.clear()
    _profiles.update(profiles or {})


def credentials(profile: str | None = None) -> MikeyCredentials:
    if profile is not None and profile in _profiles:
        return _profiles[profile]
    creds = _state["creds"]
    if creds is None:
        env = os.environ.get(ENV_DIR)
        creds = MikeyCredentials.load(Path(env)) if env else MikeyCredentials()
        _state["creds"] = creds
    return creds


# --- the strategies -------------------------------------------------------------------------


def _srtp(result: KeyExchangeResult, initiator: bool) -> MediaKeys:
    mine = Sender.INITIATOR if initiator else Sender.RESPONDER
    tx = next((k for k in result.keys if k.sender is mine), None)
    rx = next((k for k in result.keys if k.sender is not mine), None)
    if tx is None or rx is None:
        raise KeyingError("MIKEY exchange did not key both directions")

    def conv(k: Any) -> SrtpKeys:
        return SrtpKeys(
            suite=str(k.suite), master_key=k.master_key, master_salt=k.master_salt, roc=k.roc
        )

    return MediaKeys(
        tx=conv(tx),
        rx=conv(rx),
        description=f"MIKEY {result.mode}",
        details={"mode": result.mode, "csb_id": f"{result.csb_id:08x}"},
    )


def _mikey_of(sdp: SessionDescription, index: int) -> bytes | None:
    m = sdp.media[index]
    for km in (*m.key_mgmt, *sdp.key_mgmt):
        if km.protocol.lower() == "mikey":
            return km.data
    return None


def _km(data: bytes | None) -> tuple[KeyMgmtAttribute, ...]:
    return () if data is None else (KeyMgmtAttribute(protocol="mikey", data=data),)


#: The key-mgmt protocol list of the SDP our offers carry (``_km``: MIKEY alone), which every
#: initiator authenticates in its SDP IDs General Extension (RFC 4567 §4.1.4, §7).
SDP_IDS = "mikey"


def _sdp_ids(sdp: SessionDescription, index: int) -> str:
    """RFC 4567 §4.1.4: "All the offered protocol identifiers MUST be included, in the same
    order as they appear in the corresponding SDP description" (media level wins, §3.1)."""
    m = sdp.media[index]
    return ";".join(km.protocol for km in (m.key_mgmt or sdp.key_mgmt))


class _MikeySession:
    """One call's MIKEY exchange; the mode-specific parts come from a :class:`MikeyKeying`."""

    def __init__(self, keying: MikeyKeying, ctx: KeyingContext) -> None:
        self.k = keying
        self.ctx = ctx
        self.initiator: Any = None

    def offer(self) -> SdpKeying:
        now = time.time()
        try:
            self.initiator = self._make_initiator(now)
            data = self.initiator.initiate(now)
        except (MikeyError, KeyError) as exc:
            raise KeyingError(f"cannot start MIKEY {self.k.name}: {exc}") from None
        return SdpKeying(secure=True, key_mgmt=_km(data))

    def _make_initiator(self, now: float) -> Any:
        """The mode's initiator (a session that prepared state first overrides these two)."""
        return self.k.make_initiator(self.ctx, now)

    def _make_responder(self, now: float) -> Any:
        return self.k.make_responder(self.ctx, now)

    def answer(self, offer: SessionDescription, index: int) -> tuple[SdpKeying, MediaKeys]:
        data = _mikey_of(offer, index)
        if data is None:
            raise KeyingError("offer carries no a=key-mgmt:mikey")
        now = time.time()
        try:
            responder = self._make_responder(now)
        except KeyError as exc:
            raise KeyingError(f"no MIKEY credentials for {exc}") from None
        responder.sdp_ids = _sdp_ids(offer, index)  # the list to match (RFC 4567 §7)
        reply = responder.receive(data, now)
        if reply.result is None:
            raise KeyingError(f"MIKEY {self.k.name} rejected: {reply.error}")
        self.k.check_result(reply.result, self.ctx, now)
        sdp = SdpKeying(
            secure=True, key_mgmt=_km(reply.message), key_mgmt_accepted=reply.message is None
        )
        return sdp, _srtp(reply.result, False)

    def answer_received(self, answer: SessionDescription, index: int) -> MediaKeys:
        if self.initiator is None:
            raise KeyingError("answer before offer")
        now = time.time()
        data = _mikey_of(answer, index)
        result: KeyExchangeResult | None = self.initiator.result
        if self.k.needs_response or data is not None:
            if data is None:
                raise KeyingError(f"MIKEY {self.k.name}: answer carries no response")
            try:
                result = self.initiator.receive(data, now)
            except (MikeyError, MikeyDecodeError) as exc:
                raise KeyingError(f"MIKEY {self.k.name} response rejected: {exc}") from None
        if result is None:
            raise KeyingError(f"MIKEY {self.k.name}: no keys")
        self.k.check_result(result, self.ctx, now)
        return _srtp(result, True)


class MikeyKeying:
    """Base of the MIKEY strategies: subclasses build the mode's initiator and responder."""

    name = "mikey"
    needs_response = False
    profile: str | None = None  # which credential set (None: the process's default)

    def __init__(self, *, name: str | None = None, profile: str | None = None) -> None:
        if name is not None:
            self.name = name
        if profile is not None:
            self.profile = profile

    def creds(self) -> MikeyCredentials:
        return credentials(self.profile)

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _MikeySession(self, ctx)

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        raise NotImplementedError

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        raise NotImplementedError

    def check_result(self, result: KeyExchangeResult, ctx: KeyingContext, now: float) -> None:
        """Signature modes: the peer's certificate must be trusted for the peer's identity."""


class PskKeying(MikeyKeying):
    """PSK mode with the V flag: the answer carries the R_MESSAGE (RFC 4567 wants a
    ``a=key-mgmt`` in the answer too, and the initiator gets key confirmation)."""

    name = "psk"
    needs_response = True

    def psk(self, ctx: KeyingContext) -> bytes:
        return self.creds().e2e_psk[pair(ctx.local_uri, ctx.remote_uri)]

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.psk import PskInitiator

        return PskInitiator(
            psk=self.psk(ctx), idi=aor(ctx.local_uri), idr=aor(ctx.remote_uri), sdp_ids=SDP_IDS
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.psk import PskResponder

        return PskResponder(psk=self.psk(ctx), idr=aor(ctx.local_uri))


class PskPublicKeying(PskKeying):
    name = "psk-public"

    def psk(self, ctx: KeyingContext) -> bytes:
        return PUBLIC_PSK


class PskHopKeying(PskKeying):
    """PSK with the UE's own P-CSCF; the intermediaries re-protect hop by hop."""

    name = "psk-hop"

    def psk(self, ctx: KeyingContext) -> bytes:
        return self.creds().hop_psk[aor(ctx.local_uri)]


CHAIN_INFO = b"imslab psk-hop-cscf link"


def chain_psk(hop_psk: bytes) -> bytes:
    """The UE's link key of the hop-by-hop chain through the S-CSCFs, from its P-CSCF PSK.

    HKDF-SHA256 (RFC 5869) over the PSK the UE already shares with its P-CSCF, so the two
    chains (P-CSCFs only, ``psk-hop``; P-CSCFs and S-CSCFs, ``psk-hop-cscf``) run side by side
    in one lab and each intermediary touches only the messages of its own chain (the MAC tells
    them apart). A lab construction: the study leaves the provisioning of hop keys open."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=CHAIN_INFO).derive(hop_psk)


class PskHopCscfKeying(PskKeying):
    """PSK with the UE's own P-CSCF, re-protected at every P-CSCF and S-CSCF on the path."""

    name = "psk-hop-cscf"

    def psk(self, ctx: KeyingContext) -> bytes:
        return chain_psk(self.creds().hop_psk[aor(ctx.local_uri)])


class _SignedKeying(MikeyKeying):
    def own(self, ctx: KeyingContext) -> Credentials:
        return self.creds().credentials[aor(ctx.local_uri)]

    def trust(self, ctx: KeyingContext) -> TrustStore:
        return self.creds().trust_for(ctx.remote_uri)

    def check_result(self, result: KeyExchangeResult, ctx: KeyingContext, now: float) -> None:
        self.creds().check_peer(result.peer_certificate, ctx.remote_uri, now)


class PkeKeying(_SignedKeying):
    name = "pke"
    needs_response = True

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.pke import PkeInitiator

        creds = self.creds()
        peer = creds.directory[aor(ctx.remote_uri)]  # the certificate fetch of study 2.3.2
        creds.check_peer(peer, ctx.remote_uri, now)
        return _PeerKnown(
            PkeInitiator(
                credentials=self.own(ctx),
                responder_certificate=peer,
                idi=aor(ctx.local_uri),
                idr=aor(ctx.remote_uri),
                sdp_ids=SDP_IDS,
            ),
            peer,
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.pke import PkeResponder

        return PkeResponder(
            credentials=self.own(ctx),
            trust=self.trust(ctx),
            idr=aor(ctx.local_uri),
            idi=aor(ctx.remote_uri),  # the expected IDi the encrypted one must equal (§3.2)
        )


class _PeerKnown:
    """An initiator whose peer certificate was checked before the exchange (PKE)."""

    def __init__(self, inner: Any, peer: x509.Certificate) -> None:
        self.inner = inner
        self.peer = peer

    def initiate(self, now: float) -> bytes:
        data: bytes = self.inner.initiate(now)
        return data

    @property
    def result(self) -> KeyExchangeResult | None:
        r: KeyExchangeResult | None = self.inner.result
        if r is not None and r.peer_certificate is None:
            import dataclasses

            r = dataclasses.replace(r, peer_certificate=self.peer)
        return r

    def receive(self, data: bytes, now: float) -> KeyExchangeResult:
        self.inner.receive(data, now)
        r = self.result
        assert r is not None
        return r


class RsaRKeying(_SignedKeying):
    name = "rsa-r"
    needs_response = True

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.rsa_r import RsaRInitiator

        return RsaRInitiator(
            credentials=self.own(ctx),
            trust=self.trust(ctx),
            idi=aor(ctx.local_uri),
            idr=aor(ctx.remote_uri),
            sdp_ids=SDP_IDS,
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.rsa_r import RsaRResponder

        return RsaRResponder(
            credentials=self.own(ctx), trust=self.trust(ctx), idr=aor(ctx.local_uri)
        )


class DhKeying(_SignedKeying):
    name = "dh"
    needs_response = True

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.dh import DhInitiator

        return DhInitiator(
            credentials=self.own(ctx),
            trust=self.trust(ctx),
            idi=aor(ctx.local_uri),
            idr=aor(ctx.remote_uri),
            sdp_ids=SDP_IDS,
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.dh import DhResponder

        return DhResponder(credentials=self.own(ctx), trust=self.trust(ctx), idr=aor(ctx.local_uri))


class DhHmacKeying(MikeyKeying):
    name = "dhhmac"
    needs_response = True

    def psk(self, ctx: KeyingContext) -> bytes:
        return self.creds().dhhmac_psk[pair(ctx.local_uri, ctx.remote_uri)]

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.dhhmac import DhHmacInitiator

        return DhHmacInitiator(
            psk=self.psk(ctx), idi=aor(ctx.local_uri), idr=aor(ctx.remote_uri), sdp_ids=SDP_IDS
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        from ims.mikey.modes.dhhmac import DhHmacResponder

        return DhHmacResponder(psk=self.psk(ctx), idr=aor(ctx.local_uri), idi=aor(ctx.remote_uri))


class DhHmacHopKeying(DhHmacKeying):
    """DH-HMAC authenticated hop by hop (study 2.3.4, "running the HMAC authentication between
    the end users and intermediaries"): the UE's key is its link key of the chain through the
    P-CSCFs and S-CSCFs (:func:`chain_psk`), each intermediary re-MACs for the next link."""

    name = "dhhmac-hop"

    def psk(self, ctx: KeyingContext) -> bytes:
        return chain_psk(self.creds().hop_psk[aor(ctx.local_uri)])


class DhHmacPublicKeying(DhHmacKeying):
    """DH-HMAC keyed with the publicly known PSK (study 2.3.4): anyone can authenticate."""

    name = "dhhmac-public"

    def psk(self, ctx: KeyingContext) -> bytes:
        return PUBLIC_PSK
