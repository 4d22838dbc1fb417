"""The operator's Key Management Service (KMS) for MIKEY-SAKKE: sans-I/O core.

RFC 6509 §2.1.2: "The KMS is responsible for issuing the keys to devices" -- per user and
key period an ECCSI (SSK, PVT) (RFC 6507 §5.1.1) and a SAKKE RSK (RFC 6508 §6.1.1), with the
KMS's community keys (KPAK, Z) and those of every KMS it interoperates with (§2.1). RFC 6509
§3.4: provisioning "MUST provide confidentiality to all secret keys, integrity protection to
all keys, and mutual authentication of the device and the KMS" -- the adapter
(``proxies.kms_https``) runs it over mutual TLS; this core decides, given the authenticated
peer, what may be issued to whom.

Because the KMS can derive any of its users' RSKs, it is the lawful-interception point of
MIKEY-SAKKE (RFC 6508 §7: the KMS "can derive any RSK"; issue 14): :meth:`KmsCore.recover`
runs the Responder's processing on an intercepted I_MESSAGE, under an LI task, and returns the
call's SRTP keys -- no MITM. RFC 6508 §7: "procedures to monitor the creation of RSKs, such as
logging of administrator actions, SHOULD be defined": every issuance, refusal and recovery is
an :class:`AuditRecord` (who, what, when; never key material), drained by the adapter into a
0600 append-only log.

Rules kept here:

* Only provisioned subscribers of this KMS's domain get keys; a user gets only its own keys
  (the requester's authenticated identity must be the user), the provisioning agent (``imslab
  up``, the role ``provisioning``) anyone's.
* Only the periods a device may hold now (RFC 6509 §3.3, at most two): no keys for the future
  months, which would outlive a subscription or a warrant.
* Recovery only for the responder identities of this KMS's domain (only the Responder's KMS
  can decapsulate, RFC 6508 §6.2.1) and only with an LI task naming the target.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from ims.errors import ImsError
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.modes.sakke import RecoveredKeys, kms_recover_keys
from ims.mikey.payloads_kms import IdScheme
from ims.mikey.sakke_keys import (
    KmsCommunityKeys,
    KmsKeyIssuer,
    UserKeyMaterial,
    acceptable_periods,
    check_period,
    normalize_uri,
)

SCHEME = IdScheme.LAB_SIP_URI_MONTHLY
RECENT_RECOVERIES = 64
PROVISIONING = "provisioning"  # the requester identity of the operator's provisioning agent


class KmsRefusedError(ImsError):
    """A request the KMS refuses; ``status`` is the HTTP status the adapter answers."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


class AuditAction(StrEnum):
    ISSUED = "issued"
    REFUSED = "refused"
    RECOVERED = "recovered"
    RECOVERY_FAILED = "recovery-failed"
    RESOLVED = "resolved"  # MIKEY-TICKET: a ticket's keys handed to its Responder (RFC 6043)
    FORWARDED = "forwarded"  # MIKEY-TICKET: resolution asked of the issuing KMS (§10)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    """One audited KMS action (RFC 6508 §7): never any key material."""

    time: float
    action: AuditAction
    requester: str
    user: str
    period: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "time": self.time,
            "action": str(self.action),
            "requester": self.requester,
            "user": self.user,
            "period": self.period,
            "detail": self.detail,
        }


@dataclass(slots=True)
class KmsCore:
    """One operator's KMS: its issuer, subscribers, peer KMSs' community keys, audit trail."""

    domain: str
    issuer: KmsKeyIssuer
    subscribers: frozenset[str]
    peers: dict[str, KmsCommunityKeys] = field(default_factory=dict)
    _audit: list[AuditRecord] = field(default_factory=list)
    # the last decapsulations (each one pairing): an operator's P-CSCF and S-CSCF POIs hand
    # the KMS the same I_MESSAGE; the task and audit checks still run for every request
    _recent: OrderedDict[bytes, RecoveredKeys] = field(default_factory=OrderedDict)

    @classmethod
    def create(cls, domain: str, issuer: KmsKeyIssuer, subscribers: Iterable[str]) -> KmsCore:
        subs = frozenset(normalize_uri(s, SCHEME) for s in subscribers)
        foreign = [s for s in subs if s.rpartition("@")[2] != domain.lower()]
        if foreign:
            raise KmsRefusedError(f"subscribers outside {domain}: {sorted(foreign)}", 500)
        return cls(domain=domain.lower(), issuer=issuer, subscribers=subs)

    @property
    def kms_uri(self) -> str:
        return self.issuer.kms_uri

    def peer(self, keys: KmsCommunityKeys) -> None:
        """Trust another operator's KMS (their community keys go to our users)."""
        if keys.kms_uri != self.kms_uri:
            self.peers[keys.kms_uri] = keys

    def community(self) -> list[KmsCommunityKeys]:
        """Our community keys and every peer's (RFC 6509 §2.1)."""
        return [self.issuer.community, *(self.peers[k] for k in sorted(self.peers))]

    def drain_audit(self) -> list[AuditRecord]:
        out, self._audit = self._audit, []
        return out

    def _record(
        self, now: float, action: AuditAction, requester: str, user: str, **kw: str
    ) -> None:
        self._audit.append(
            AuditRecord(time=now, action=action, requester=requester, user=user, **kw)
        )

    def refused(self, *, requester: str, detail: str, now: float) -> None:
        """Audit a request the adapter refused before it reached the core (wrong role)."""
        self._record(now, AuditAction.REFUSED, requester, "", detail=detail)

    def issue(self, user: str, period: str, *, requester: str, now: float) -> UserKeyMaterial:
        """Key material of ``user`` for ``period``, for an authenticated ``requester``."""
        try:
            uri = normalize_uri(user, SCHEME)
            check_period(period)
        except MikeyError as exc:
            self._record(now, AuditAction.REFUSED, requester, user, period=period, detail=str(exc))
            raise KmsRefusedError(str(exc), 400) from None
        why = None
        if uri not in self.subscribers:
            why = "not a subscriber of this KMS"
        elif requester not in (uri, PROVISIONING):
            why = "a user gets only its own keys"
        elif period not in acceptable_periods(now):
            why = "key period not current (RFC 6509 §3.3)"
        if why is not None:
            self._record(now, AuditAction.REFUSED, requester, uri, period=period, detail=why)
            raise KmsRefusedError(f"{uri} {period}: {why}")
        material = self.issuer.issue(uri, period, SCHEME)
        self._record(now, AuditAction.ISSUED, requester, uri, period=period)
        return material

    def recover(
        self,
        i_message: bytes,
        *,
        requester: str,
        targets: Iterable[str],
        responder_uri: str | None = None,
        now: float,
    ) -> RecoveredKeys:
        """LI: the call keys of an intercepted I_MESSAGE whose Responder is a subscriber of ours
        and named by an active task (``targets``: the tasks' identities; for a target that
        *initiated* the call, the task names the caller -- the I_MESSAGE's IDRi)."""
        digest = hashlib.sha256(i_message + (responder_uri or "").encode()).digest()
        try:
            got = self._recent.get(digest) or kms_recover_keys(
                i_message, self.issuer, responder_uri=responder_uri, scheme=SCHEME
            )
        except (MikeyError, MikeyDecodeError) as exc:
            self._record(
                now, AuditAction.RECOVERY_FAILED, requester, responder_uri or "", detail=str(exc)
            )
            raise KmsRefusedError(f"cannot recover: {exc}", 422) from None
        caller = got.result.peer_id.decode("ascii", "replace") if got.result.peer_id else ""
        named = {normalize_uri(t, SCHEME) for t in targets if _valid(t)}
        why = None
        if got.responder_uri not in self.subscribers:
            why = "responder is not a subscriber of this KMS"
        elif not named & {got.responder_uri, caller}:
            why = "no active task names either party"
        if why is not None:
            self._record(
                now,
                AuditAction.RECOVERY_FAILED,
                requester,
                got.responder_uri,
                period=got.period,
                detail=why,
            )
            raise KmsRefusedError(why)
        self._recent[digest] = got
        while len(self._recent) > RECENT_RECOVERIES:
            self._recent.popitem(last=False)
        self._record(
            now,
            AuditAction.RECOVERED,
            requester,
            got.responder_uri,
            period=got.period,
            detail=f"csb {got.result.csb_id:08x} caller {caller}",
        )
        return got


def _valid(uri: str) -> bool:
    try:
        normalize_uri(uri, SCHEME)
    except MikeyError:
        return False
    return True


__all__ = ["PROVISIONING", "AuditAction", "AuditRecord", "KmsCore", "KmsRefusedError"]
