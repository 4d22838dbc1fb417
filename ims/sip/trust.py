"""Who a SIP element trusts, and by what (RFC 3325 §2, §5, §11 "Spec(T)"), sans-I/O.

A :class:`TrustPolicy` is configuration, never inferred from traffic: the peers an element
trusts are named by their transport address **and port** (the socket they send SIP from), or by
the TLS identity their certificate proves. A bare source IP is not an identity: on a shared host
or a flat network anyone can send from that address on another port (issue 11, finding 5).

Two levels, because an IMS element has two kinds of neighbours:

* ``trusted`` — nodes of the IMS Trust Domain (P-/S-CSCFs of the operators in it). A
  ``P-Asserted-Identity`` they send is used "as if [we] had authenticated the user [ourselves]"
  (RFC 3325 §5).
* ``known`` — configured peers outside the Trust Domain (an Internet SIP proxy the operator
  peers with). They may send us requests and route in-dialog requests along a route set we are
  on, but whatever ``P-Asserted-Identity`` they send is removed (§5: "the proxy MUST replace ...
  or remove this header field").

Anything else is *untrusted*: its identity headers are removed on ingress and it cannot use the
element as a relay (the element decides what it is entitled to route; see ``docs/security.md``).

The policy is used by the proxy core (``ims.sip.proxy``, ``ProxyConfig.trust``) and the elements
on it (``proxies.element``): it only looks at a :class:`~ims.sip.transaction.flow.Flow` and,
optionally, the peer's TLS identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from ims.sip.message import Request, Response
from ims.sip.transaction.flow import Address, Flow

__all__ = [
    "ASSERTED_IDENTITY_HEADERS",
    "Trust",
    "TrustPolicy",
    "strip_asserted_identity",
]

#: Headers only the Trust Domain may set (RFC 3325 §9.1; RFC 7315 for the P-headers an IMS
#: core asserts). Removed on ingress from, and egress to, nodes outside the Trust Domain.
ASSERTED_IDENTITY_HEADERS = ("P-Asserted-Identity",)


class Trust(IntEnum):
    """How far a message's sender is trusted (ordered: higher trusts more)."""

    UNTRUSTED = 0
    KNOWN = 1  # a configured peer outside the Trust Domain
    TRUSTED = 2  # a node of the Trust Domain


def _norm(host: str) -> str:
    return host.strip("[]").lower()


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """Configured peers: ``trusted`` and ``known`` are (host, port) pairs; ``trusted_names`` and
    ``known_names`` are TLS identities (certificate subjectAltName DNS names or the CN)."""

    trusted: frozenset[Address] = frozenset()
    known: frozenset[Address] = frozenset()
    trusted_names: frozenset[str] = frozenset()
    known_names: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        trusted: Iterable[Address] = (),
        known: Iterable[Address] = (),
        trusted_names: Iterable[str] = (),
        known_names: Iterable[str] = (),
    ) -> TrustPolicy:
        return cls(
            frozenset((_norm(h), int(p)) for h, p in trusted),
            frozenset((_norm(h), int(p)) for h, p in known),
            frozenset(n.lower() for n in trusted_names),
            frozenset(n.lower() for n in known_names),
        )

    def classify(self, flow: Flow, tls_names: Iterable[str] = ()) -> Trust:
        """The trust level of the sender of a message received on ``flow``. ``tls_names``: the
        identities the peer's certificate proved (only a TLS flow has them)."""
        remote = (_norm(flow.remote[0]), int(flow.remote[1]))
        names = {n.lower() for n in tls_names} if flow.transport == "TLS" else set()
        if remote in self.trusted or names & self.trusted_names:
            return Trust.TRUSTED
        if remote in self.known or names & self.known_names:
            return Trust.KNOWN
        return Trust.UNTRUSTED

    def trusts(self, flow: Flow, tls_names: Iterable[str] = ()) -> bool:
        return self.classify(flow, tls_names) is Trust.TRUSTED

    def trusts_hop(self, host: str, port: int) -> bool:
        """Is the next hop (host, port) inside the Trust Domain (egress decision, §5)?"""
        return (_norm(host), int(port)) in self.trusted


def strip_asserted_identity(message: Request | Response) -> bool:
    """Remove every header only the Trust Domain may assert; True when one was present."""
    found = False
    for name in ASSERTED_IDENTITY_HEADERS:
        if name in message.headers:
            message.headers.remove(name)
            found = True
    return found
