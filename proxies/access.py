"""The P-CSCF's access bindings (which UE flow holds which contact) in the element store.

TS 24.229 §5.2.2: the P-CSCF keeps, per registered UE, the flow it registered over, its
contact, the Service-Route the S-CSCF returned and the implicitly registered identities; it
uses them to assert the UE's identity (P-Asserted-Identity) and to send terminating requests
down the right flow. Kept in :mod:`ims.store` (namespaces ``access-flow.<pcscf>`` and
``access-contact.<pcscf>``), they outlive a P-CSCF restart — the UEs need not re-register —
and instances of one P-CSCF share them (UDP flows: any instance can reach the UE's address;
a TCP/TLS flow stays the connection of the instance that holds it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ims.store import Store
from ims.store.mapping import StoredMap


def _flow_key(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


def access_maps(
    store: Store,
    pcscf: str,
    *,
    registration: Callable[..., Any],
    hop: Callable[[str, int, str], Any],
    clock: Callable[[], float],
) -> tuple[StoredMap[tuple[str, int], Any], StoredMap[str, Any]]:
    """The (by flow, by contact) maps of P-CSCF ``pcscf``; ``registration`` and ``hop`` build
    the P-CSCF's own record types back from the stored fields."""

    def encode(reg: Any) -> bytes:
        return msgspec.json.encode(
            {
                "flow": [reg.flow.host, reg.flow.port, reg.flow.transport],
                "contact": reg.contact,
                "aor": reg.aor,
                "service_route": list(reg.service_route),
                "associated": list(reg.associated),
                "registered": reg.registered,
                "expires_at": reg.expires_at if reg.expires_at != float("inf") else None,
            }
        )

    def decode(raw: bytes) -> Any:
        d = msgspec.json.decode(raw)
        host, port, transport = d["flow"]
        return registration(
            flow=hop(host, int(port), transport),
            contact=d["contact"],
            aor=d["aor"],
            service_route=list(d["service_route"]),
            associated=list(d["associated"]),
            registered=bool(d["registered"]),
            expires_at=float("inf") if d["expires_at"] is None else float(d["expires_at"]),
        )

    def expiry(reg: Any) -> float | None:
        return None if reg.expires_at == float("inf") else float(reg.expires_at)

    safe = pcscf.replace(":", "_")
    common: dict[str, Any] = {
        "encode": encode,
        "decode": decode,
        "expires_at": expiry,
        "clock": clock,
    }
    by_flow: StoredMap[tuple[str, int], Any] = StoredMap(
        store, f"access-flow.{safe}", key=_flow_key, **common
    )
    by_contact: StoredMap[str, Any] = StoredMap(store, f"access-contact.{safe}", key=str, **common)
    return by_flow, by_contact
