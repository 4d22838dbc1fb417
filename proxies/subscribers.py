"""The subscriber database (the HSS stand-in): IMPI, IMPUs and digest passwords.

Filled from the topology's ``[[subscribers]]`` by the lab (``proxies`` never imports ``lab``).
Look-ups accept any public identity in its usual spellings: ``sip:alice@ims-a.test``
(parameters and port ignored), ``tel:+49-30-11`` (visual separators ignored) and
``sip:+493011@ims-a.test;user=phone`` all find the subscriber owning that IMPU. An IMPU set is
registered as a whole (TS 24.229 §5.4.1.2.1, implicit registration set), which is why
identities map to their subscriber, not to themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ims.sip.errors import SipParseError
from ims.sip.uri import SipUri, TelUri, Uri, parse_uri


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriberRecord:
    impi: str
    impus: tuple[str, ...]
    password: str

    @property
    def default_impu(self) -> str:
        for impu in self.impus:
            if impu.startswith("sip:"):
                return impu
        return self.impus[0]


def normalize_identity(identity: str | Uri) -> str:
    """A canonical key for a public identity: ``sip:user@host`` or ``tel:+digits``."""
    try:
        uri = parse_uri(identity) if isinstance(identity, str) else identity
    except SipParseError:
        return str(identity).strip().lower()
    if isinstance(uri, TelUri):
        return "tel:+" + uri.digits.lstrip("+")
    if isinstance(uri, SipUri):
        if uri.user_param == "phone" and uri.user:
            return "tel:+" + "".join(ch for ch in uri.user if ch.isdigit())
        host = uri.host.lower()
        return f"sip:{uri.user.lower()}@{host}" if uri.user else f"sip:{host}"
    return uri.encode().lower()


class SubscriberDb:
    """IMPI / IMPU -> subscriber."""

    def __init__(self, records: Iterable[SubscriberRecord]) -> None:
        self.by_impi: dict[str, SubscriberRecord] = {}
        self.by_impu: dict[str, SubscriberRecord] = {}
        for rec in records:
            self.by_impi[rec.impi.lower()] = rec
            for impu in rec.impus:
                self.by_impu[normalize_identity(impu)] = rec

    def __len__(self) -> int:
        return len(self.by_impi)

    def by_identity(self, identity: str | Uri) -> SubscriberRecord | None:
        return self.by_impu.get(normalize_identity(identity))

    def by_username(self, username: str, realm: str) -> SubscriberRecord | None:
        """The subscriber a digest ``username`` names: the IMPI, or its user part in ``realm``."""
        name = username.lower()
        return self.by_impi.get(name) or self.by_impi.get(f"{name}@{realm.lower()}")
