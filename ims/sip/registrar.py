"""SIP registrar core and location service (RFC 3261 §10.3), sans-I/O.

Two layers, like every engine here:

* :class:`BindingStore` holds the location service: per address-of-record (AOR) a set of
  contact bindings, each with its expiry time, q-value, the Call-ID and CSeq of the REGISTER
  that last touched it and the Contact header parameters it was registered with. Its
  :meth:`BindingStore.apply` transcribes §10.3 steps 6-7 exactly:

  - ``Contact: *`` is only valid with ``Expires: 0`` and no other Contact (else 400); it removes
    every binding of the AOR, except that a binding with the *same* Call-ID and a CSeq not lower
    than the request's aborts the whole request.
  - each contact's expiry comes from its ``expires`` parameter, else the ``Expires`` header,
    else the configured default; a non-zero value below ``min_expires`` answers
    ``423 Interval Too Brief`` with ``Min-Expires``; values above ``max_expires`` are shortened.
  - an existing binding (URI comparison, §19.1.4, through the caller-supplied key) with a
    different Call-ID is updated or removed; with the same Call-ID only when the request's CSeq
    is higher, otherwise the whole update is aborted.
  - updates are atomic: the request is checked completely before anything changes.

* :class:`Registrar` (in :mod:`ims.sip.registrar_msg`) turns a REGISTER request into that call
  and the 200 listing every current binding (§10.3 step 8).

Time is always the ``now`` argument (seconds, any monotonic origin); nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from ims.errors import ImsError

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 86400


class RegistrarError(ImsError):
    """A REGISTER the registrar refuses; carries the SIP status and extra response headers."""

    def __init__(
        self, status: int, reason: str, *, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRequest:
    """One Contact of a REGISTER, as the message layer extracted it.

    ``key`` is what two contacts compare by (RFC 3261 §19.1.4 URI equality; the message layer
    provides it), ``uri`` the URI text to give back in 200 OK and in lookups, ``expires`` the
    contact's own ``expires`` parameter (``None`` when absent), ``q`` its q-value (``None``
    when absent) and ``params`` every other Contact header parameter, kept in order.
    """

    key: Hashable
    uri: str
    display_name: str | None = None
    expires: int | None = None
    q: float | None = None
    params: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A current binding of an AOR to a contact address (RFC 3261 §10)."""

    aor: str
    key: Hashable
    uri: str
    display_name: str | None
    q: float | None
    expires_at: float
    call_id: str
    cseq: int
    params: tuple[tuple[str, str | None], ...] = ()

    def expires_in(self, now: float) -> int:
        """Seconds left, rounded up, never negative (the ``expires`` to report)."""
        left = self.expires_at - now
        return max(0, int(left) + (1 if left > int(left) else 0))

    def contact_value(self, now: float) -> str:
        """The Contact header value a 200 OK lists for this binding (§10.3 step 8)."""
        parts = []
        if self.display_name:
            parts.append(f'"{self.display_name}" ')
        parts.append(f"<{self.uri}>")
        for name, value in self.params:
            parts.append(f";{name}" if value is None else f";{name}={value}")
        if self.q is not None:
            parts.append(f";q={_format_q(self.q)}")
        parts.append(f";expires={self.expires_in(now)}")
        return "".join(parts)


def _format_q(q: float) -> str:
    text = f"{q:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


@dataclass(slots=True)
class BindingStore:
    """The location service: AOR -> bindings, with §10.3 update rules."""

    default_expires: int = DEFAULT_EXPIRES
    min_expires: int = MIN_EXPIRES
    max_expires: int = MAX_EXPIRES
    _bindings: dict[str, dict[Hashable, Binding]] = field(default_factory=dict)

    def apply(
        self,
        aor: str,
        contacts: Sequence[ContactRequest],
        *,
        call_id: str,
        cseq: int,
        now: float,
        wildcard: bool = False,
        expires_header: int | None = None,
    ) -> list[Binding]:
        """Apply one REGISTER's contacts to ``aor`` atomically; return the AOR's bindings.

        Raises :class:`RegistrarError` (400, 423) without changing anything.
        """
        self._purge(aor, now)
        current = self._bindings.get(aor, {})
        if wildcard:
            if contacts or expires_header != 0:
                raise RegistrarError(400, "Wildcard Contact Needs Expires 0 And No Other Contact")
            for binding in current.values():
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise RegistrarError(400, "CSeq Not Higher Than Existing Binding")
            self._bindings.pop(aor, None)
            return []

        # First pass: compute every change, so that a failure leaves the store untouched.
        changes: list[tuple[ContactRequest, int]] = []
        for contact in contacts:
            if contact.expires is not None:
                expires = contact.expires
            elif expires_header is not None:
                expires = expires_header
            else:
                expires = self.default_expires
            if expires < 0:
                raise RegistrarError(400, "Negative Expires")
            if 0 < expires < self.min_expires:
                raise RegistrarError(
                    423, "Interval Too Brief", headers=[("Min-Expires", str(self.min_expires))]
                )
            expires = min(expires, self.max_expires)
            existing = current.get(contact.key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                raise RegistrarError(400, "CSeq Not Higher Than Existing Binding")
            changes.append((contact, expires))

        updated = dict(current)
        for contact, expires in changes:
            if expires == 0:
                updated.pop(contact.key, None)
                continue
            updated[contact.key] = Binding(
                aor=aor,
                key=contact.key,
                uri=contact.uri,
                display_name=contact.display_name,
                q=contact.q,
                expires_at=now + expires,
                call_id=call_id,
                cseq=cseq,
                params=contact.params,
            )
        if updated:
            self._bindings[aor] = updated
        else:
            self._bindings.pop(aor, None)
        return self.lookup(aor, now)

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Current bindings of ``aor``, highest q first (absent q counts as 1.0, §16.6)."""
        self._purge(aor, now)
        found = list(self._bindings.get(aor, {}).values())
        found.sort(key=lambda b: -(1.0 if b.q is None else b.q))
        return found

    def aors(self) -> Iterable[str]:
        return tuple(self._bindings)

    def expire(self, now: float) -> int:
        """Drop every expired binding; return how many were dropped."""
        dropped = 0
        for aor in list(self._bindings):
            dropped += self._purge(aor, now)
        return dropped

    def next_expiry(self) -> float | None:
        """When the earliest binding expires (for an adapter's timer), or None."""
        times = [b.expires_at for bs in self._bindings.values() for b in bs.values()]
        return min(times) if times else None

    def _purge(self, aor: str, now: float) -> int:
        bindings = self._bindings.get(aor)
        if not bindings:
            return 0
        stale = [k for k, b in bindings.items() if b.expires_at <= now]
        for k in stale:
            del bindings[k]
        if not bindings:
            del self._bindings[aor]
        return len(stale)
