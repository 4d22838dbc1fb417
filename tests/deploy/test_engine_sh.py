"""The private-engine shell library (deploy/engine.sh) without a Docker engine.

What the compose stage relies on before it starts anything: the apt mirror it builds the base
image from (deb822 ``.sources`` first, security archives skipped, then ``sources.list``, then
Debian's default), a host-state snapshot that is stable when nothing changes and names what an
engine would change, and scripts that parse.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "deploy" / "engine.sh"


def sh(script: str, **env: str) -> str:
    res = subprocess.run(
        ["bash", "-c", f"set -euo pipefail; . {ENGINE}; {script}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", **env},
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("script", ["engine.sh", "compose-ci.sh", "compose.sh", "two-host-ci.sh"])
def test_scripts_parse(script: str) -> None:
    res = subprocess.run(["bash", "-n", str(ROOT / "deploy" / script)], capture_output=True)
    assert res.returncode == 0, res.stderr


def test_mirror_from_deb822_skips_security(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n"
    )
    (tmp_path / "sources.list").write_text("deb http://other.example/debian bookworm main\n")
    assert sh("apt_mirror", IMSLAB_APT_ETC=str(tmp_path)).strip() == "http://mirror.example/debian"


def test_mirror_from_sources_list_then_default(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] http://mirror.example/debian bookworm main\n"
    )
    assert sh("apt_mirror", IMSLAB_APT_ETC=str(tmp_path)).strip() == "http://mirror.example/debian"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert sh("apt_mirror", IMSLAB_APT_ETC=str(empty)).strip() == "http://deb.debian.org/debian"


def test_host_state_is_stable_and_names_what_an_engine_changes() -> None:
    first = sh("host_state")
    assert first == sh("host_state")  # nothing changed: identical snapshots
    lines = first.splitlines()
    assert "link lo" in lines
    assert any(line.startswith("ipv4 forward ") for line in lines)
    assert lines == [line for line in lines if line.strip()]


def test_engine_paths_are_private(tmp_path: Path) -> None:
    """The socket, the client's config (its compose plugin) and the exec root all under DIR."""
    out = sh(f'engine_paths "{tmp_path}"; echo "$DOCKER_HOST $DOCKER_CONFIG $ENGINE_EXEC"')
    assert out.split() == [f"unix://{tmp_path}/docker.sock", f"{tmp_path}/cli", f"{tmp_path}/run"]
