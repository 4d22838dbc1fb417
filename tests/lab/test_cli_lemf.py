"""The LEMF role as ``imslab up`` starts it (in-process) and as ``imslab run lemf`` does, with
the HI2 LIID option (issue 16, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import topology
from lab.cli import main
from lab.roles import lemf


async def test_in_process_lemf_starts_from_the_topology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path))
    topo = topology.load(subnet="127.0.9")
    assert topo.li is not None
    running = await lemf.start(topo, topo.li.lemf.name)
    try:
        assert running.lemf.port == topo.li.lemf.port
        assert running.lemf.mediation is not None
        assert running.lemf.mediation.liids == {}
    finally:
        await running.close()


@pytest.mark.parametrize("value", ["no-equals-sign", "xid=" + "L" * 26, "xid="])
def test_a_bad_liid_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    rc = main(
        [
            "run",
            "lemf",
            "--out",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
            "--plain-tcp",
            "--liid",
            value,
        ]
    )
    assert rc == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("imslab run lemf: --liid") and "1 to 25 characters" in line
