"""docker-compose.yml for the lab, rendered from the topology (one service per element).

``python -m lab.compose > docker-compose.yml`` regenerates the committed file; a test checks that
the committed file is exactly this rendering and that every service's command parses with the
``imslab`` CLI and names an element of the right role. Containers get the topology addresses
remapped onto the compose network's /24 (:data:`SUBNET`), like the network-namespace run.

With the topology's ``[li]``: a ``lemf`` service, the X1 (and LI_T3) ports exposed on the LI
elements, and one shared volume (:data:`STATE_VOLUME` at :data:`STATE_IN_IMAGE`, ``IMSLAB_STATE``)
holding the LI PKIs, NE state and the LEMF output, so every container and the ADMF (``docker
compose --profile li run --rm admf imslab li ...``) see the same PKI.
"""

from __future__ import annotations

import json
import sys

from lab import topology
from lab.topology import Topology

SUBNET = "10.231.7"
CONFIG_IN_IMAGE = "/opt/imslab/lab/lab.toml"
CALLER, CALLEE = "alice", "bob"  # `docker compose --profile call run call`: alice calls bob
STATE_VOLUME = "imslab-state"
STATE_IN_IMAGE = "/var/lib/imslab"
ADMF_HOST = 61  # the admf service's host octet (not an element of the topology)


def _li_state() -> dict[str, object]:
    return {
        "environment": {"IMSLAB_STATE": STATE_IN_IMAGE},
        "volumes": [f"{STATE_VOLUME}:{STATE_IN_IMAGE}"],
    }


def services(topo: Topology) -> dict[str, dict[str, object]]:
    """Service definitions (plain data) for every element, the answering UE ``bob`` and a
    one-shot ``call`` client (alice) behind the ``call`` profile."""
    moved = topo.remap(subnet=SUBNET)
    li = moved.li
    out: dict[str, dict[str, object]] = {}
    if li is not None:
        out[li.lemf.name] = {
            "image": "imslab:latest",
            "command": [
                "imslab",
                "run",
                "lemf",
                "--config",
                CONFIG_IN_IMAGE,
                "--subnet",
                SUBNET,
                "--name",
                li.lemf.name,
            ],
            "networks": {"imslab": {"ipv4_address": li.lemf.address}},
            "expose": [f"{li.lemf.port}/tcp"],
            **_li_state(),
        }
    for name in _order(topo):
        e = moved.elements[name]
        deps = [e.anchor] if e.anchor else []
        li_op = li.operator_of(name) if li is not None else None
        li_extra: dict[str, object] = {}
        if li is not None and li_op is not None:
            ports = [f"{li_op.x1_port}/tcp"] + ([f"{li.t3_port}/udp"] if e.role == "anchor" else [])
            li_extra = {"expose": ports, **_li_state()}
            deps = [li.lemf.name, *deps]
        if e.role == "kms":  # its secrets and audit log live in the lab state
            li_extra = {"expose": [f"{topology.KMS_PORT}/tcp"], **_li_state()}
        out[name] = {
            "image": "imslab:latest",
            "command": [
                "imslab",
                "run",
                e.role,
                "--config",
                CONFIG_IN_IMAGE,
                "--subnet",
                SUBNET,
                "--name",
                name,
            ],
            "networks": {"imslab": {"ipv4_address": e.address}},
            **({"depends_on": deps} if deps else {}),
            **li_extra,
        }
    callee = moved.ues[CALLEE]
    out[CALLEE] = {
        "image": "imslab:latest",
        "command": [
            "imslab",
            "run",
            "ue",
            "--config",
            CONFIG_IN_IMAGE,
            "--subnet",
            SUBNET,
            "--name",
            CALLEE,
        ],
        "networks": {"imslab": {"ipv4_address": callee.address}},
        "depends_on": [callee.pcscf],
    }
    caller = moved.ues[CALLER]
    out["call"] = {
        "image": "imslab:latest",
        "profiles": ["call"],
        "command": [
            "imslab",
            "call",
            CALLER,
            moved.subscribers[callee.subscriber].sip_impu,
            "--config",
            CONFIG_IN_IMAGE,
            "--subnet",
            SUBNET,
        ],
        "networks": {"imslab": {"ipv4_address": caller.address}},
        "depends_on": [caller.pcscf, CALLEE],
    }
    if li is not None:
        out["admf"] = {
            "image": "imslab:latest",
            "profiles": ["li"],
            "command": [
                "imslab",
                "li",
                "task",
                "list",
                "--config",
                CONFIG_IN_IMAGE,
                "--subnet",
                SUBNET,
            ],
            "networks": {"imslab": {"ipv4_address": f"{SUBNET}.{ADMF_HOST}"}},
            **_li_state(),
        }
    return out


def _order(topo: Topology) -> list[str]:
    from lab.orchestrator import start_order

    return start_order(topo)


def render(topo: Topology | None = None) -> str:
    """The docker-compose.yml text (YAML; values written as JSON scalars/flows, valid YAML)."""
    topo = topo or topology.load()
    lines = [
        "# Generated by `python -m lab.compose > docker-compose.yml` from lab/lab.toml.",
        "# One service per network element + UE bob (+ the LEMF); `docker compose --profile call"
        " run call`",
        "# places a call; `docker compose --profile li run --rm admf imslab li ...` tasks it.",
        "name: imslab",
        "services:",
    ]
    for name, svc in services(topo).items():
        lines.append(f"  {name}:")
        lines.append("    build: .")
        for key, value in svc.items():
            lines.append(f"    {key}: {json.dumps(value)}")
    if topo.li is not None:
        lines += ["volumes:", f"  {STATE_VOLUME}: {{}}"]
    lines += [
        "networks:",
        "  imslab:",
        "    ipam:",
        f'      config: [{{"subnet": "{SUBNET}.0/24"}}]',
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render())
