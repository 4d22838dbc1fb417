"""The two-host deployment's files (deploy/two-host/), checked against each other statically.

Both hosts load deploy/two-host/lab.toml; each compose file must run exactly its host's share of
it (operator A and the LEMF on host A's /24, operator B and its media provider on host B's),
every service at its element's address with a command the real ``imslab`` CLI parses, naming an
element of the right role; the two container networks must be the two /24s the routed link of
deploy/two-host-ci.sh joins. The run itself is deploy/two-host-ci.sh (``./dev.sh test`` as root).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import topology
from lab.cli import build_parser

DIR = Path(__file__).resolve().parents[2] / "deploy" / "two-host"
CONFIG_IN_IMAGE = "/etc/imslab/lab.toml"
HOSTS = {"a": "10.231.91", "b": "10.231.92"}


def _services(path: Path) -> tuple[dict[str, dict[str, object]], str]:
    """Services (keys + JSON flow values, as written) and the network's ipam line."""
    services: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    section = ""
    ipam = ""
    for line in path.read_text().splitlines():
        if not line.startswith(" "):
            section = line.rstrip(":")
            continue
        if section == "networks" and "config:" in line:
            ipam = line.strip().removeprefix("config: ")
        if section != "services" or not line.strip():
            continue
        if not line.startswith("    "):
            current = services.setdefault(line.strip().rstrip(":"), {})
            continue
        key, _, value = line.strip().partition(": ")
        assert current is not None
        current[key] = json.loads(value)
    return services, ipam


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_each_host_runs_its_share(host: str) -> None:
    topo = topology.load(DIR / "lab.toml")
    assert topo.li is not None
    net = HOSTS[host]
    services, ipam = _services(DIR / f"compose-{host}.yml")
    assert json.loads(ipam) == [{"subnet": f"{net}.0/24", "gateway": f"{net}.1"}]
    mine = {n for n, e in topo.elements.items() if e.address.startswith(net + ".")}
    ues = {n for n, u in topo.ues.items() if u.address.startswith(net + ".")}
    assert mine and mine | ues
    parser = build_parser()
    run_names = set()
    for name, svc in services.items():
        assert "./lab.toml:/etc/imslab/lab.toml:ro" in svc["volumes"]  # type: ignore[operator]
        address = svc["networks"]["imslab"]["ipv4_address"]  # type: ignore[index]
        assert address.startswith(net + ".")
        command = svc["command"]
        assert isinstance(command, list) and command[0] == "imslab"
        args = parser.parse_args(command[1:])
        config = args.lab_config if args.command == "li" else args.config
        assert str(config) == CONFIG_IN_IMAGE
        if args.command == "call":  # alice calls bob, from alice's address
            assert topo.ue(args.caller).address == address
            continue
        if args.command == "li":
            assert address not in topo.addresses().values()
            continue
        assert args.command == "run" and args.name == name
        run_names.add(args.name)
        if args.role == "lemf":
            assert host == "a" and topo.li.lemf.address == address
        elif args.role == "ue":
            assert topo.ue(args.name).address == address
        else:
            assert topo.element(args.name).role == args.role
            assert topo.element(args.name).address == address
        if topo.li.operator_of(args.name) is not None or args.role == "lemf":
            assert svc["environment"] == {"IMSLAB_STATE": "/var/lib/imslab"}
    # every element and answering UE of this host runs; nothing of the other host does
    assert mine <= run_names
    assert run_names - {"lemf"} <= mine | ues
