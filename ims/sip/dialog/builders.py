"""UAC request construction (RFC 3261 §8.1.1, §9.1, §10.2, §13.2.1).

Sans-I/O builders returning :class:`~ims.sip.message.Request` objects; the transaction layer
sends them. A :class:`Local` describes this UA's transport address (Via sent-by, Contact).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ims.sip.errors import SipBuildError
from ims.sip.grammar import Params
from ims.sip.headers import CSeq, Headers, NameAddr, Via, parse_name_addr
from ims.sip.message import Request, new_branch, new_call_id, new_tag
from ims.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "Local",
    "build_cancel",
    "build_invite",
    "build_options",
    "build_register",
    "build_request",
]


@dataclass(frozen=True, slots=True)
class Local:
    """This UA's address: where responses come back (Via) and its Contact."""

    host: str
    port: int
    transport: str = "UDP"
    user: str | None = None
    user_agent: str | None = "imslab"
    rport: bool = True  # ask for symmetric response routing (RFC 3581)

    def via(self, branch: str | None = None) -> Via:
        params = Params.of(branch=branch or new_branch())
        if self.rport:
            params = params.set("rport")
        return Via(self.transport.upper(), self._host_ref, self.port, params)

    @property
    def _host_ref(self) -> str:
        """The host as it appears in Via/URIs: an IPv6 address gets its brackets."""
        return f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host

    @property
    def contact_uri(self) -> SipUri:
        params = Params()
        if self.transport.upper() != "UDP":
            params = params.set("transport", self.transport.lower())
        return SipUri(host=self._host_ref, user=self.user, port=self.port, params=params)

    def contact(self, **params: str | None) -> NameAddr:
        return NameAddr(self.contact_uri, params=Params(tuple(params.items())))


def _addr(value: NameAddr | Uri | str) -> NameAddr:
    """A NameAddr from a NameAddr, a Uri, a bare URI string or a ``"Name" <uri>;p`` string."""
    if isinstance(value, NameAddr):
        return value
    if isinstance(value, str):
        if value.lstrip().startswith(("<", '"')):
            return parse_name_addr(value, header="Route")
        return NameAddr(parse_uri(value))
    return NameAddr(value)


def build_request(
    method: str,
    request_uri: Uri | str,
    *,
    local: Local,
    from_: NameAddr | Uri | str,
    to: NameAddr | Uri | str,
    call_id: str | None = None,
    cseq: int = 1,
    from_tag: str | None = None,
    contact: NameAddr | None = None,
    routes: Sequence[NameAddr | Uri | str] = (),
    max_forwards: int = 70,
    body: bytes = b"",
    content_type: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    branch: str | None = None,
) -> Request:
    """A new out-of-dialog request per §8.1.1 (From tag added, To without tag)."""
    fa = _addr(from_)
    if fa.tag is None:
        fa = fa.with_tag(from_tag or new_tag())
    h = Headers()
    h.add("Via", local.via(branch).encode())
    h.add("Max-Forwards", str(max_forwards))
    for r in routes:
        h.add("Route", _addr(r).encode())
    h.add("From", fa.encode())
    h.add("To", _addr(to).encode())
    h.add("Call-ID", call_id or new_call_id(local.host))
    h.add("CSeq", CSeq(cseq, method).encode())
    if contact is not None:
        h.add("Contact", contact.encode())
    if local.user_agent:
        h.add("User-Agent", local.user_agent)
    for name, value in headers:
        h.add(name, value)
    if body and content_type is None:
        raise SipBuildError("a body needs a Content-Type")
    if content_type is not None:
        h.add("Content-Type", content_type)
    return Request(
        method, parse_uri(request_uri) if isinstance(request_uri, str) else request_uri, h, body
    )


def build_register(
    registrar: Uri | str,
    aor: NameAddr | Uri | str,
    *,
    local: Local,
    expires: int = 3600,
    contact: NameAddr | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    from_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    routes: Sequence[NameAddr | Uri | str] = (),
) -> Request:
    """REGISTER (§10.2): To = From = the AOR; keep ``call_id`` across refreshes and raise
    ``cseq`` (§10.2.4). ``expires=0`` removes the binding."""
    return build_request(
        "REGISTER",
        registrar,
        local=local,
        from_=aor,
        to=aor,
        call_id=call_id,
        cseq=cseq,
        from_tag=from_tag,
        contact=contact or local.contact(),
        routes=routes,
        headers=[("Expires", str(expires)), *headers],
    )


def build_register_all_off(
    registrar: Uri | str, aor: NameAddr | Uri | str, *, local: Local, call_id: str, cseq: int
) -> Request:
    """REGISTER with ``Contact: *`` and ``Expires: 0`` (§10.2.2): remove every binding."""
    req = build_request(
        "REGISTER", registrar, local=local, from_=aor, to=aor, call_id=call_id, cseq=cseq
    )
    req.headers.add("Contact", "*")
    req.headers.add("Expires", "0")
    return req


def build_invite(
    target: Uri | str,
    *,
    local: Local,
    from_: NameAddr | Uri | str,
    to: NameAddr | Uri | str | None = None,
    body: bytes = b"",
    content_type: str | None = "application/sdp",
    routes: Sequence[NameAddr | Uri | str] = (),
    headers: Iterable[tuple[str, str]] = (),
    call_id: str | None = None,
    cseq: int = 1,
    allow: str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO",
) -> Request:
    """INVITE (§13.2.1) with a Contact (mandatory) and an optional SDP offer."""
    return build_request(
        "INVITE",
        target,
        local=local,
        from_=from_,
        to=to if to is not None else target,
        call_id=call_id,
        cseq=cseq,
        contact=local.contact(),
        routes=routes,
        body=body,
        content_type=content_type if body else None,
        headers=[("Allow", allow), *headers],
    )


def build_options(
    target: Uri | str,
    *,
    local: Local,
    from_: NameAddr | Uri | str,
    routes: Sequence[NameAddr | Uri | str] = (),
    headers: Iterable[tuple[str, str]] = (),
) -> Request:
    """OPTIONS (§11.1) asking for application/sdp."""
    return build_request(
        "OPTIONS",
        target,
        local=local,
        from_=from_,
        to=target,
        routes=routes,
        headers=[("Accept", "application/sdp"), *headers],
    )


def build_cancel(request: Request) -> Request:
    """CANCEL for a pending request (§9.1): same Request-URI, Call-ID, To, From, CSeq number
    (method CANCEL), a single Via equal to the request's top Via (same branch), and the same
    Route header fields."""
    if request.method == "ACK":
        raise SipBuildError("an ACK cannot be cancelled")
    top = request.via
    cseq = request.cseq
    if top is None or cseq is None:
        raise SipBuildError("request without Via or CSeq")
    h = Headers()
    h.add("Via", top.encode())
    h.add("Max-Forwards", "70")
    for r in request.headers.get_all("Route"):
        h.add("Route", r)
    for name in ("From", "To", "Call-ID"):
        value = request.headers.get(name)
        if value is None:
            raise SipBuildError(f"request without {name}")
        h.add(name, value)
    h.add("CSeq", CSeq(cseq.seq, "CANCEL").encode())
    return Request("CANCEL", request.uri, h)
