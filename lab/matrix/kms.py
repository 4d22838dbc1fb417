"""The matrix's MIKEY-SAKKE rows: the operators' KMSs and their LI function (issue 14).

For a ``sakke`` row the runner provisions, once per row, one KMS per home IMS operator
(:class:`proxies.kms.KmsCore`, peered) and the users' keyrings for the current key period
(RFC 6509 §2.1.2, §3.3). The ``operator-keys`` rung is what lets an operator's IRI-POIs hand
the offer's I_MESSAGE to its KMS LI function: only while that element's X1 task carries a
``keyDelivery`` (the task asks for the key material the operator holds). Below that rung the
POIs report the keys unavailable without asking the KMS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from ims.mikey.aio_kms import KmsClient
from ims.mikey.sakke_keys import SakkeKeyring, key_period
from ims.mikey.sakke_store import kms_uri_of
from li.keys import KeyRecord, MikeyOpener, unavailable
from li.kms_li import KMS_TYPES, KmsLiOpener
from proxies.kms import PROVISIONING, KmsCore
from ue import keying_sakke
from ue.keying_mikey import aor

HOME_DOMAINS = ("ims-a.test", "ims-b.test")  # the operators that run an S-CSCF, hence a KMS


def provision(users: Iterable[str], *, now: float | None = None) -> dict[str, KmsCore]:
    """A KMS per home domain, the users' keys issued and installed in this process's UEs."""
    from ims.mikey.sakke_keys import KmsKeyIssuer

    now = time.time() if now is None else now
    mine = sorted({aor(u) for u in users})
    cores = {
        d: KmsCore.create(d, KmsKeyIssuer(kms_uri_of(d)), [u for u in mine if u.endswith("@" + d)])
        for d in HOME_DOMAINS
    }
    for c in cores.values():
        for other in cores.values():
            c.peer(other.issuer.community)
    rings = {}
    period = key_period(now)
    for core in cores.values():
        for user in sorted(core.subscribers):
            ring = SakkeKeyring(user, trusted=[c.issuer.community for c in cores.values()])
            ring.install(core.issue(user, period, requester=PROVISIONING, now=now))
            rings[user] = ring
        core.drain_audit()
    keying_sakke.configure(None, keyrings=rings)
    return cores


class TaskKmsOpener:
    """An IRI element's MIKEY opener in a ``sakke`` row: the operator's KMS LI function when
    the element's task lends the operator's key material, else ``fallback``."""

    def __init__(
        self,
        kms: KmsCore | None,
        lent: Callable[[], Iterable[str]],
        fallback: MikeyOpener,
        *,
        client: KmsClient | None = None,
        kms_name: str = "the operator's KMS",
    ) -> None:
        self.lent = lent  # the targets of the element's tasks that carry a keyDelivery
        self.kms = KmsLiOpener(
            kms=kms,
            client=client,
            kms_name=kms_name,
            targets=lambda: list(self.lent()),
            fallback=fallback,
        )
        self.fallback = fallback

    def __call__(self, call_id: str, offer: bytes, answer: bytes | None) -> Sequence[KeyRecord]:
        if not list(self.lent()):
            from ims.mikey.message import decode_message

            try:
                kind = KMS_TYPES.get(decode_message(offer).data_type)
            except ValueError:
                kind = None
            if kind is not None:
                return [unavailable(call_id, f"{kind[0]}: no task asks the operator's KMS")]
            return self.fallback(call_id, offer, answer)
        return self.kms(call_id, offer, answer)
