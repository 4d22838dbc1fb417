"""``[store]`` in lab.toml (lab.store, docs/scale-out.md): the backend the elements share, the
lab's own redis-server, and what a lab brought up clears (session state, never LI state)."""

from __future__ import annotations

import dataclasses
import time
import tomllib
from pathlib import Path

import pytest

from ims.store import open_store
from ims.store.redis import RedisStore
from ims.store.sqlite import SqliteStore
from lab import store as lab_store
from lab import topology
from lab.cli import main
from lab.redisd import RedisServer
from lab.roles import _build
from lab.roles import lemf as lemf_role
from lab.topology import StoreConfig
from tests.conftest import require_tool


def _with_store(text: str) -> topology.Topology:
    data = tomllib.loads(topology.default_path().read_text())
    data.update(tomllib.loads(text))
    return topology.parse(data, source=str(topology.default_path()))


def test_store_table_parsed_and_checked() -> None:
    assert topology.load().store == StoreConfig()  # sqlite, no url: the embedded default
    topo = _with_store('[store]\nbackend = "redis"\nurl = "redis://127.0.0.1:6390/2"\n')
    assert topo.store.resolved_url("imslab") == "redis://127.0.0.1:6390/2"
    with pytest.raises(topology.TopologyError) as e:
        _with_store('[store]\nbackend = "mysql"\n')
    assert "store.backend" in str(e.value)


def test_default_sqlite_file_under_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path))
    topo = topology.load()
    assert topo.store.resolved_url(topo.name) == f"sqlite://{tmp_path}/store/imslab.db"
    moved = topology.load(net_offset=90)  # a moved lab keeps its state apart
    assert moved.store.resolved_url(moved.name) == (
        f"sqlite://{tmp_path}/net-offset-90/store/imslab.db"
    )
    server = _build.build_home_server(topo, "scscf-a")
    assert isinstance(server.store.store, SqliteStore)
    server.store.store.close()


async def test_redis_lab_store_shared_and_session_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("redis-server")
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path))
    moved = topology.load(subnet="127.0.93")
    topo = dataclasses.replace(moved, store=dataclasses.replace(moved.store, backend="redis"))
    server = lab_store.prepare(topo)  # the lab's own redis-server
    assert server is not None
    try:
        url = topo.store.resolved_url(topo.name)
        assert url == f"unix://{tmp_path}/subnet-127.0.93/store/redis/redis.sock"
        s = open_store(url)
        now = time.time()
        s.put("location.ims-a.test", "sip:alice@ims-a.test", b"binding", expires_at=now + 600)
        s.put("access-flow.pcscf-a", "127.0.93.150:5060", b"flow", expires_at=now + 600)
        s.put("x1-tasks.scscf-a", "29f28e1c-f230-486a-a860-f5a784ab9172", b"task")
        s.put("lemf-dedup", "stream", b"ring")
        # a second lab start on the same store: the old run's sessions go, LI state stays
        assert lab_store.prepare(topo) is None  # the running server is used, not a second one
        assert s.get("location.ims-a.test", "sip:alice@ims-a.test", now) is None
        assert s.get("access-flow.pcscf-a", "127.0.93.150:5060", now) is None
        assert s.get("x1-tasks.scscf-a", "29f28e1c-f230-486a-a860-f5a784ab9172", now) == b"task"
        assert s.get("lemf-dedup", "stream", now) == b"ring"
        s.close()
        # the elements and the LEMF take the shared store
        scscf = _build.build_home_server(topo, "scscf-a")
        pcscf = _build.build_pcscf(topo, "pcscf-b")
        assert isinstance(scscf.store.store, RedisStore)
        assert isinstance(pcscf.by_flow.store, RedisStore)
        assert topo.li is not None
        lemf = await lemf_role.start(topo, topo.li.lemf.name)
        try:
            mediation = lemf.lemf.mediation
            assert mediation is not None and isinstance(mediation.dedup.store, RedisStore)
        finally:
            await lemf.close()
        scscf.store.store.close()
        pcscf.by_flow.store.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_demo_on_the_redis_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[store] backend = "redis"``: ``imslab demo`` starts the lab's own redis-server, the
    call passes with every element on it, and the server's append-only file holds the
    registrations afterwards (read back by a restarted server)."""
    require_tool("redis-server")
    monkeypatch.setenv("IMSLAB_PKI", str(tmp_path / "pki"))
    monkeypatch.setenv("IMSLAB_STATE", str(tmp_path / "st"))
    config = tmp_path / "lab.toml"
    config.write_text(topology.default_path().read_text() + '\n[store]\nbackend = "redis"\n')
    rc = main(["demo", "ims", "--config", str(config), "--subnet", "127.0.94", "--duration", "1"])
    assert "imslab demo ims: PASSED" in capsys.readouterr().out
    assert rc == 0
    directory = tmp_path / "st" / "subnet-127.0.94" / "store" / "redis"
    server = RedisServer(directory)
    server.start()  # the lab stopped its server: a new one reads the append-only file
    try:
        s = open_store(server.url)
        now = time.time()
        assert [k for k, _ in s.scan("location.ims-a.test", now)] == ["alice@ims-a.test"]
        assert [k for k, _ in s.scan("location.ims-b.test", now)] == ["bob@ims-b.test"]
        assert len(list(s.scan("access-flow.pcscf-a", now))) == 1
        s.close()
    finally:
        server.stop()
