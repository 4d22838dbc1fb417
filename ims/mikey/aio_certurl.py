"""Fetch a certificate named by an "X.509v3 URL" CERT payload (RFC 4738 §3.8) -- an I/O adapter.

RFC 4738 §3.8: "If a Certificate payload is present, the X.509v3 URL Cert type from Table
6.7.b [RFC3830] is the default method in RSA-R mode and MUST be implemented. The HTTP URL to
fetch a certificate as specified in RFC 2585 [RFC2585] MUST be supported. Devices are not
required to support the FTP URLs. When retrieving data from the URL, application/pkix-cert MIME
type with X.509 certificates DER-encoded MUST be supported."

The MIKEY modes stay sans-I/O: they take a ``resolve_url(url) -> DER | None`` callable
(:data:`ims.mikey.modes.pk.UrlResolver`). This module is the one that does network I/O (the
``aio`` prefix marks adapter modules in this tree, STYLE.md §1): :func:`http_resolver` returns
a resolver that GETs ``http://`` URLs only, bounded in time and size, and accepts the body only
as ``application/pkix-cert`` (RFC 2585 §4.1). The URL is peer input: the resolver refuses other
schemes, and ``allowed_hosts`` (when given) limits where a peer can make us connect.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection

from ims.mikey.modes.pk import UrlResolver

PKIX_CERT = "application/pkix-cert"
MAX_CERT_BYTES = 64 * 1024


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect would let the peer send us to a host ``allowed_hosts`` does not list."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def http_resolver(
    *,
    timeout: float = 3.0,
    max_bytes: int = MAX_CERT_BYTES,
    allowed_hosts: Collection[str] | None = None,
) -> UrlResolver:
    """A resolver fetching DER certificates over HTTP (RFC 2585); None on any failure."""
    opener = urllib.request.build_opener(_NoRedirect())

    def resolve(url: str) -> bytes | None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None
        if allowed_hosts is not None and parts.hostname not in allowed_hosts:
            return None
        try:
            with opener.open(url, timeout=timeout) as resp:
                ctype = resp.headers.get_content_type()
                body: bytes = resp.read(max_bytes + 1)
        except (urllib.error.URLError, OSError, ValueError):
            return None
        if ctype != PKIX_CERT or len(body) > max_bytes or not body:
            return None
        return body

    return resolve
