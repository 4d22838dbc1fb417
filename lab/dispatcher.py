"""Kamailio's dispatcher in front of several instances of one element (issue 18).

:func:`render` fills ``deploy/kamailio/dispatcher.cfg`` for a balancer address and a list of
instances (their SIP address and port): the Kamailio configuration and its dispatcher list.
:class:`Dispatcher` runs Debian's ``kamailio`` with it (``kamailio -c`` checks the file first)
and reads which instances it holds active (``kamcmd dispatcher.list``). docs/scale-out.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ims.errors import ImsError

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "kamailio" / "dispatcher.cfg"
SET = 1


class DispatcherError(ImsError):
    """Kamailio is missing, refused the configuration, or did not start."""


def kamailio_modules() -> Path:
    for p in (
        Path("/usr/lib/x86_64-linux-gnu/kamailio/modules"),
        *Path("/usr/lib").glob("*/kamailio/modules"),
    ):
        if (p / "dispatcher.so").exists():
            return p
    raise DispatcherError("kamailio's dispatcher module is missing (apt-get install kamailio)")


@dataclass(frozen=True, slots=True)
class Instance:
    address: str
    port: int

    @property
    def uri(self) -> str:
        return f"sip:{self.address}:{self.port}"


def render(
    address: str,
    port: int,
    instances: list[Instance],
    rundir: Path,
    *,
    ping_interval: int = 1,
    fr_timer_ms: int = 1500,
) -> tuple[str, str]:
    """(kamailio.cfg, dispatcher.list) for a balancer on ``address:port``."""
    if not instances:
        raise DispatcherError("a dispatcher needs at least one instance")
    fields = {
        "ADDRESS": address,
        "PORT": str(port),
        "MPATH": str(kamailio_modules()) + "/",
        "RUNDIR": str(rundir),
        "SET": str(SET),
        "PING_INTERVAL": str(ping_interval),
        "FR_TIMER_MS": str(fr_timer_ms),
    }
    text = TEMPLATE.read_text(encoding="utf-8")
    for key, value in fields.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in re.sub(r"sip:dispatcher@\S+", "", text):
        raise DispatcherError("unfilled field in the dispatcher template")
    # setid destination flags priority
    listing = "".join(f"{SET} {i.uri} 0 0\n" for i in instances)
    return text, listing


class Dispatcher:
    """A running Kamailio dispatcher (start/stop; :meth:`active` from its RPC)."""

    def __init__(self, address: str, port: int, instances: list[Instance], rundir: Path) -> None:
        self.address, self.port, self.instances = address, port, instances
        self.rundir = Path(rundir)
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("kamailio") or "/usr/sbin/kamailio"
        if not Path(exe).exists():
            raise DispatcherError("kamailio is not installed (apt-get install kamailio)")
        self.exe = exe

    def start(self) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True, mode=0o700)
        cfg, listing = render(self.address, self.port, self.instances, self.rundir)
        (self.rundir / "kamailio.cfg").write_text(cfg, encoding="utf-8")
        (self.rundir / "dispatcher.list").write_text(listing, encoding="utf-8")
        check = subprocess.run(
            [self.exe, "-c", "-f", str(self.rundir / "kamailio.cfg")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise DispatcherError(f"kamailio refused the configuration: {check.stderr[-2000:]}")
        log = (self.rundir / "kamailio.log").open("wb")
        self.proc = subprocess.Popen(
            [self.exe, "-f", str(self.rundir / "kamailio.cfg"), "-DD", "-E", "-m", "32", "-M", "8"]
            + ["-Y", str(self.rundir), "-w", str(self.rundir)]
            + ["-P", str(self.rundir / "kamailio.pid")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def active(self) -> dict[str, bool]:
        """Instance URI -> whether the dispatcher holds it active (flags of ``dispatcher.list``)."""
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        out = subprocess.run(
            [kamcmd, "-s", f"unix:{self.rundir / 'kamailio_ctl'}", "dispatcher.list"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode != 0:
            raise DispatcherError(f"kamcmd dispatcher.list failed: {out.stderr}")
        found: dict[str, bool] = {}
        for uri, flags in re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\S+)", out.stdout):
            found[uri] = flags.startswith("A")
        return found

    def log(self) -> str:
        path = self.rundir / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None
