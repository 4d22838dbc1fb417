"""SDP rewriting for a media anchor (a B2BUA-style relay in the P-CSCF path, or an IMS-AGW).

The anchor replaces where media goes (``c=``, the m-line port, ``a=rtcp``) and leaves every other
line byte-identical — in particular ``a=crypto`` and ``a=key-mgmt``, whose keys are end to end
for a relaying anchor (RFC 4568 keys travel hop by hop in SIP but the SRTP is not terminated).
An SDES-terminating anchor (3GPP TS 33.328 e2ae) uses :func:`replace_crypto` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ims.sdes.attribute import CryptoAttribute
from ims.sdp.model import Connection, Line, SessionDescription


def rewrite_for_anchor(
    sdp: SessionDescription,
    address: str,
    ports: Mapping[int, int],
    *,
    origin_address: str | None = None,
) -> SessionDescription:
    """Point stream ``i`` at ``address:ports[i]`` (RTCP at port+1). Rejected streams stay 0."""
    conn = Connection.ip(address)
    out = sdp
    if sdp.connection is not None:
        old = sdp.connection
        out = out.with_session_line(
            Line("c", replace(old, address=address, addrtype=conn.addrtype).encode())
        )
    if origin_address is not None:
        out = out.with_origin(replace(sdp.origin, address=origin_address, addrtype=conn.addrtype))
    for i, m in enumerate(sdp.media):
        if m.rejected:
            continue
        new = m
        if m.connection is not None or sdp.connection is None:
            new = new.with_connection(conn)
        if i in ports:
            port = ports[i]
            new = new.with_port(port).map_attributes(
                "rtcp", lambda v, p=port: _rtcp_value(v, p + 1, address, conn.addrtype)
            )
        out = out.with_media(i, new)
    return out


def _rtcp_value(value: str, port: int, address: str, addrtype: str) -> str:
    fields = value.split(" ")
    if len(fields) >= 4:
        return f"{port} IN {addrtype} {address}"
    return str(port)


def strip_crypto(sdp: SessionDescription) -> SessionDescription:
    """Drop every ``a=crypto`` line (e.g. before an SDP copy goes out on HI2, TS 33.107)."""
    out = sdp
    for i, m in enumerate(sdp.media):
        out = out.with_media(i, m.without_attributes("crypto"))
    return out


def replace_crypto(
    sdp: SessionDescription, index: int, crypto: Sequence[CryptoAttribute]
) -> SessionDescription:
    """Replace stream ``index``'s ``a=crypto`` lines with ``crypto`` (SDES-terminating anchor)."""
    m = sdp.media[index]
    lines = []
    inserted = False
    for ln in m.lines:
        if ln.type == "a" and ln.value.startswith("crypto:"):
            if not inserted:
                lines += [Line("a", f"crypto:{c.encode()}", ln.eol) for c in crypto]
                inserted = True
            continue
        lines.append(ln)
    if not inserted:
        lines += [Line("a", f"crypto:{c.encode()}", m.eol) for c in crypto]
    return sdp.with_media(index, type(m)(tuple(lines)))
