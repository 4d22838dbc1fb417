"""docker-compose.yml, checked statically (no Docker engine in CI).

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
    assert set(services) == set(topo.elements) | {"bob", "call"}
    parser = build_parser()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY lab ./lab" in dockerfile and "WORKDIR /opt/imslab" in dockerfile
    for name, svc in services.items():
        command = svc["command"]
        assert isinstance(command, list) and command[0] == "imslab"
        args = parser.parse_args(command[1:])
        config = Path(args.config)
        assert config.is_absolute() and config.name == "lab.toml"
        local_config = ROOT / config.relative_to("/opt/imslab")
        assert local_config.is_file()
        loaded = topology.load(local_config, subnet=args.subnet, net_offset=args.net_offset)
        address = svc["networks"]["imslab"]["ipv4_address"]  # type: ignore[index]
        assert address.startswith(compose.SUBNET + ".")
        if name == "call":
            assert args.command == "call" and args.caller in loaded.ues
            assert loaded.ue_for_identity(args.callee) is not None
            assert loaded.ue(args.caller).address == address
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
