"""Start and stop the lab's network elements: in-process, as subprocesses, or in network namespaces.

* ``mode="inprocess"`` — every element runs on the caller's event loop (tests, the demo): the
  running objects are in :attr:`Lab.elements`, so hooks can be attached directly.
* ``mode="subprocess"`` — each element is ``imslab run ROLE --name NAME`` (what a container runs),
  started in dependency order; each prints one ``ready`` line on stdout when it listens.
* ``netns=True`` (with subprocess mode, as root) — each element runs inside its own network
  namespace (see :mod:`lab.netns`), the closest thing to one container per element without Docker.

Every role module in :mod:`lab.roles` exposes ``async start(topology, name)`` returning an object
with ``name`` and ``async close()``; that is what in-process mode calls.

``li=True`` (what ``imslab up`` passes) also runs the topology's ``[li]``: the LEMF first, and in
every listed element its X1 NE and POIs (:mod:`lab.roles._li`). Without it (the default, for
tests and the matrix runner, which wires its own LI) the elements run with ``--no-li``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ims.log import bound, get_logger
from ims.log import current as log_settings
from lab import store as lab_store
from lab.redisd import RedisServer
from lab.topology import LI_ROLES, Topology

T = TypeVar("T")

_log = get_logger("lab.orchestrator")

# Start order: the KMSs and media first, then the cores, then the first hops (which ping their
# anchors).
ROLE_ORDER = ("kms", "anchor", "scscf", "internet_proxy", "pcscf")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the element gets SIGTERM when the orchestrator dies, even by SIGKILL, so a
    crashed or killed ``imslab up`` never leaves elements holding the lab's addresses."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def role_module(role: str) -> Any:
    return importlib.import_module(f"lab.roles.{role}")


def start_order(topo: Topology, names: Iterable[str] | None = None) -> list[str]:
    wanted = set(topo.elements) if names is None else set(names)
    out = []
    for role in ROLE_ORDER:
        out += sorted(n for n in wanted if topo.elements[n].role == role)
    return out


async def _pump_stderr(stream: asyncio.StreamReader, keep: int = 4000) -> bytes:
    """Pass a child's log lines on to our stderr as they come (the user asked for them with
    --log-level); return the last ``keep`` bytes for an "exited before ready" report."""
    tail = bytearray()
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # one over-long line: dropped, the stream goes on
            continue
        if not line:
            break
        sys.stderr.write(line.decode("utf-8", "replace"))
        sys.stderr.flush()
        tail += line
        del tail[:-keep]
    return bytes(tail)


@dataclass
class _Proc:
    name: str
    proc: asyncio.subprocess.Process
    stderr_task: asyncio.Task[bytes] | None = None


class Lab:
    """A running lab; use ``async with Lab(topology) as lab:``."""

    def __init__(
        self,
        topo: Topology,
        *,
        mode: str = "inprocess",
        names: Iterable[str] | None = None,
        netns: Any = None,
        ready_timeout: float = 15.0,
        log_level: str | None = None,
        li: bool = False,
    ) -> None:
        if mode not in ("inprocess", "subprocess"):
            raise ValueError("mode must be inprocess or subprocess")
        self.topology = topo
        self.mode = mode
        self.names = start_order(topo, names)
        self.netns = netns  # a lab.netns.NetnsLab, or None
        self.ready_timeout = ready_timeout
        # children log like this process does (``imslab --log-json --log-level X up``)
        self.log_level = log_level or log_settings()["level"]
        self.log_json = bool(log_settings()["json"])
        self.elements: dict[str, Any] = {}
        self.procs: dict[str, _Proc] = {}
        self.li = li and topo.li is not None
        self.lemf_name = topo.li.lemf.name if topo.li is not None and self.li else None
        self.redis: RedisServer | None = None  # the lab's own, when [store] wants one

    async def __aenter__(self) -> Lab:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        # the shared store first: every element opens it as it starts (lab.store)
        self.redis = await asyncio.to_thread(lab_store.prepare, self.topology)
        if self.lemf_name is not None:  # the LEMF first: the NEs connect to it when tasked
            if self.mode == "subprocess":
                await self._spawn(self.lemf_name, "lemf")
            else:
                lemf = role_module("lemf")
                with bound(element=self.lemf_name):
                    self.elements[self.lemf_name] = await lemf.start(self.topology, self.lemf_name)
        if self.mode == "subprocess":
            # one stage per role (anchors, cores, first hops); the processes of a stage start
            # in parallel, since interpreter start-up dominates
            for role in ROLE_ORDER:
                stage = [n for n in self.names if self.topology.elements[n].role == role]
                await asyncio.gather(*(self._spawn(n, role) for n in stage))
            return
        for name in self.names:
            role = self.topology.elements[name].role
            # the element's tasks and sockets copy this context: all its lines name it
            with bound(element=name):
                mod = role_module(role)
                if role in LI_ROLES:
                    self.elements[name] = await mod.start(self.topology, name, li=self.li)
                else:
                    self.elements[name] = await mod.start(self.topology, name)
            _log.info("element started", element=name, role=role, mode=self.mode)

    def command(self, name: str) -> list[str]:
        """The command line that runs element ``name`` (also what docker-compose uses)."""
        if name == self.lemf_name:
            role = "lemf"
        else:
            role = self.topology.elements[name].role
        extra = [] if self.li or role == "lemf" else ["--no-li"]
        return [
            sys.executable,
            "-m",
            "lab.cli",
            "--log-level",
            self.log_level,
            *(["--log-json"] if self.log_json else []),
            "run",
            role,
            *self.topology.cli_args(),
            "--name",
            name,
            *extra,
        ]

    async def _spawn(self, name: str, role: str) -> None:
        cmd = self.command(name)
        if self.netns is not None:
            cmd = self.netns.wrap(name, cmd)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            preexec_fn=_die_with_parent,
        )
        entry = _Proc(name=name, proc=proc)
        self.procs[name] = entry
        assert proc.stdout is not None and proc.stderr is not None
        entry.stderr_task = asyncio.ensure_future(_pump_stderr(proc.stderr))
        try:
            async with asyncio.timeout(self.ready_timeout):
                while True:
                    line = await proc.stdout.readline()
                    if not line:
                        err = await entry.stderr_task
                        tail = err.decode(errors="replace")[-2000:]
                        raise RuntimeError(f"{name} exited before it was ready: {tail}")
                    if b"ready" in line:
                        break
        except TimeoutError:
            raise RuntimeError(f"{name} was not ready within {self.ready_timeout}s") from None

    async def stop(self) -> None:
        for name in reversed(list(self.elements)):
            with contextlib.suppress(Exception):
                await self.elements[name].close()
        self.elements.clear()
        for entry in reversed(list(self.procs.values())):
            proc = entry.proc
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(5):
                        await proc.wait()
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if entry.stderr_task is not None:
                entry.stderr_task.cancel()
        self.procs.clear()
        if self.redis is not None:
            await asyncio.to_thread(self.redis.stop)
            self.redis = None

    def element(self, name: str) -> Any:
        return self.elements[name]
