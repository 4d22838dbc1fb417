"""UEs of the topology: :class:`ue.agent.UeConfig` from a ``[ues.NAME]`` entry."""

from __future__ import annotations

from pathlib import Path

from lab import tls
from lab.topology import Topology
from ue.agent import UeConfig, UserAgent


def ue_config(
    topo: Topology,
    name: str,
    *,
    keying: str = "sdes",
    bind: str | None = None,
    pki: Path | None = None,
) -> UeConfig:
    """The UE ``name``: its subscriber's identities, its first hop and transport.

    ``bind`` overrides the UE's own address (one container or namespace for several UEs); the
    SIP port is then ephemeral so UEs sharing an address do not collide.
    """
    spec = topo.ue(name)
    sub = topo.subscribers[spec.subscriber]
    first = topo.element(spec.pcscf)
    port = first.tls_port if spec.transport == "tls" else first.sip_port
    return UeConfig(
        name=name,
        aor=sub.sip_impu,
        impi=sub.impi,
        password=sub.password,
        domain=sub.domain,
        local_address=bind or spec.address,
        local_port=0 if bind else spec.sip_port,
        proxy=(first.address, port),
        transport=spec.transport,
        keying=keying,
        ssl_context=tls.client_context(pki or tls.default_dir())
        if spec.transport == "tls"
        else None,
    )


def user_agent(topo: Topology, name: str, **kwargs: object) -> UserAgent:
    return UserAgent(ue_config(topo, name, **kwargs))  # type: ignore[arg-type]
