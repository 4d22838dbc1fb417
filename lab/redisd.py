"""A private ``redis-server`` (Debian's) for a lab or a test: the Redis store backend's server.

Listens on a unix socket only (``port 0``: no TCP port, nothing to collide with, reachable
only by this user: socket 0700 in a 0700 directory), persists with the append-only file
(``appendfsync always``) so that a restarted server gives back every record — the restart
semantics the SQLite backend has (:mod:`ims.store`). Stopping it is a clean ``SHUTDOWN``
(SIGTERM); :meth:`RedisServer.kill` is the crash (SIGKILL) for failure tests.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from ims.store import StoreError

START_TIMEOUT = 10.0


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _config(self) -> str:
        return "\n".join(
            [
                "port 0",
                f"unixsocket {self.socket}",
                "unixsocketperm 700",
                f"dir {self.dir}",
                "appendonly yes",
                "appendfsync always",
                'save ""',
                "daemonize no",
                f"logfile {self.dir / 'redis.log'}",
                "",
            ]
        )

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StoreError("redis-server is not installed (./dev.sh setup installs it)")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        conf = self.dir / "redis.conf"
        conf.write_text(self._config(), encoding="utf-8")
        conf.chmod(0o600)
        self.proc = subprocess.Popen(
            [exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise StoreError(f"redis-server exited with {self.proc.returncode}: see {self.dir}")
            try:
                client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1.0)
                client.ping()
                client.close()
                return
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise StoreError("redis-server did not answer in time") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
