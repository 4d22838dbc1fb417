"""docker-compose.yml, checked statically (no Docker engine in CI), LEMF and ADMF included.

The committed file must be exactly what :mod:`lab.compose` renders from the built-in topology;
every service's command must parse with the real ``imslab`` CLI, name an element of the right
role in the topology it loads (the config path it names exists in the image: the Dockerfile
copies ``lab/``), and sit on the compose network at that element's remapped address.
"""

from __future__ import annotations

import json
from pathlib import Path

from lab import compose, topology
from lab.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _services_from_file() -> dict[str, dict[str, object]]:
    """Parse the generated subset of YAML (keys + JSON flow values) back into data."""
    services: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    in_services = False
    for line in (ROOT / "docker-compose.yml").read_text().splitlines():
        if line.startswith("services:"):
            in_services = True
            continue
        if not line.startswith(" "):
            in_services = False
        if not in_services or not line.strip():
            continue
        if line.startswith("  ") and not line.startswith("    "):
            current = services.setdefault(line.strip().rstrip(":"), {})
            continue
        key, _, value = line.strip().partition(": ")
        assert current is not None
        current[key] = value if key == "build" else json.loads(value)
    return services


def test_committed_file_is_the_rendering() -> None:
    assert (ROOT / "docker-compose.yml").read_text() == compose.render()


def test_every_service_command_resolves() -> None:
    services = _services_from_file()
    topo = topology.load()
    assert topo.li is not None
    assert set(services) == set(topo.elements) | {"bob", "call", topo.li.lemf.name, "admf"}
    parser = build_parser()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY lab ./lab" in dockerfile and "WORKDIR /opt/imslab" in dockerfile
    for name, svc in services.items():
        command = svc["command"]
        assert isinstance(command, list) and command[0] == "imslab"
        args = parser.parse_args(command[1:])
        config = Path(args.lab_config if args.command == "li" else args.config)
        assert config.is_absolute() and config.name == "lab.toml"
        local_config = ROOT / config.relative_to("/opt/imslab")
        assert local_config.is_file()
        if args.command == "li":
            args.subnet, args.net_offset = args.lab_subnet, args.lab_net_offset
        loaded = topology.load(local_config, subnet=args.subnet, net_offset=args.net_offset)
        address = svc["networks"]["imslab"]["ipv4_address"]  # type: ignore[index]
        assert address.startswith(compose.SUBNET + ".")
        if name == "call":
            assert args.command == "call" and args.caller in loaded.ues
            assert loaded.ue_for_identity(args.callee) is not None
            assert loaded.ue(args.caller).address == address
            continue
        if name == "admf":  # the X1 client (ADMF) on the LI state volume
            assert args.command == "li" and args.li_cmd == "task"
            assert args.lab_subnet == compose.SUBNET and Path(args.lab_config) == config
            assert svc["volumes"] == [f"{compose.STATE_VOLUME}:{compose.STATE_IN_IMAGE}"]
            assert address not in loaded.addresses().values()
            continue
        assert loaded.li is not None
        if name == loaded.li.lemf.name:
            assert args.command == "run" and args.role == "lemf" and args.name == name
            assert loaded.li.lemf.address == address
            assert svc["expose"] == [f"{loaded.li.lemf.port}/tcp"]
            assert svc["environment"] == {"IMSLAB_STATE": compose.STATE_IN_IMAGE}
            continue
        if name in loaded.ues:
            assert args.command == "run" and args.role == "ue" and args.name == name
            assert loaded.ue(name).address == address
            continue
        assert args.command == "run" and args.name == name
        element = loaded.element(name)
        assert args.role == element.role
        assert element.address == address
        for dep in svc.get("depends_on", []):  # type: ignore[attr-defined]
            assert dep in services
        if element.role == "kms":  # the KMS: its HTTPS port, its secrets in the lab state
            assert svc["expose"] == [f"{topology.KMS_PORT}/tcp"]
            assert svc["volumes"] == [f"{compose.STATE_VOLUME}:{compose.STATE_IN_IMAGE}"]
            continue
        op = loaded.li.operator_of(name)
        if op is None:
            assert "expose" not in svc and "volumes" not in svc
            continue
        # an LI element: its X1 port (and an anchor's LI_T3 port), the shared LI state
        t3 = [f"{loaded.li.t3_port}/udp"] if element.role == "anchor" else []
        assert svc["expose"] == [f"{op.x1_port}/tcp", *t3]
        assert svc["environment"] == {"IMSLAB_STATE": compose.STATE_IN_IMAGE}
        assert svc["volumes"] == [f"{compose.STATE_VOLUME}:{compose.STATE_IN_IMAGE}"]
        assert loaded.li.lemf.name in svc["depends_on"]  # type: ignore[operator]


def test_a_real_yaml_parser_agrees() -> None:
    """When a YAML library is around (Debian's python3-yaml), it reads the same services."""
    import shutil
    import subprocess

    import pytest

    py = shutil.which("python3", path="/usr/bin")
    if py is None:
        pytest.skip("no system python3")
    code = (
        "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))['services']))"
    )
    res = subprocess.run(
        [py, "-c", code, str(ROOT / "docker-compose.yml")], capture_output=True, text=True
    )
    if res.returncode != 0 and "No module named 'yaml'" in res.stderr:
        pytest.skip("python3-yaml is not installed")
    assert res.returncode == 0, res.stderr
    parsed = json.loads(res.stdout)
    mine = _services_from_file()
    assert {k: {kk: vv for kk, vv in v.items()} for k, v in parsed.items()} == mine
