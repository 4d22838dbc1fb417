"""A harness for baresip (a real softphone) as an independent UE in the lab.

Generates a config directory per run (``config``, ``accounts``, an 8 kHz tone WAV for the
``aufile`` source), starts ``baresip -f DIR`` headless, and drives it through its ``ctrl_tcp``
module (netstring-framed JSON: commands ``dial``/``hangup``, events ``REGISTER_OK``,
``CALL_ESTABLISHED``, ``CALL_MENC``, ``CALL_CLOSED``...). ``sndfile`` records the decoded audio of
each call to WAV files, which the tests run through our tone detector.

Facts this relies on (../shared/reference/peers.md): ``ausine`` only works at 48 kHz, so the
source is an 8 kHz WAV through ``aufile``; ``aubridge`` plays out without a sound card;
baresip also binds TCP/TLS on its SIP port and the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims.media.audio import ToneSource, WavWriter, read_wav

MODULES = "/usr/lib/baresip/modules"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """baresip gets SIGTERM if the test process dies: no orphan answering the next test."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class BaresipAccount:
    aor: str  # sip:alice@ims-a.test
    username: str  # digest user (the IMPI)
    password: str
    outbound: str  # sip:127.0.7.10:5060 (the P-CSCF / proxy)
    srtp: bool = True
    register: bool = True

    def line(self) -> str:
        parts = [
            f"<{self.aor}>",
            f"auth_user={self.username}",
            f"auth_pass={self.password}",
            f'outbound="{self.outbound}"',
            "answermode=auto",
            "audio_codecs=pcmu",
            f"regint={600 if self.register else 0}",
        ]
        if self.srtp:
            parts.append("mediaenc=srtp-mand")
        return ";".join(parts)


@dataclass
class Baresip:
    workdir: Path
    address: str
    sip_port: int
    ctrl_port: int
    account: BaresipAccount
    tone_hz: float = 700.0
    proc: asyncio.subprocess.Process | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _event_task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    log: bytes = b""
    trace: bool = False  # baresip -s: SIP trace into the log

    @property
    def record_dir(self) -> Path:
        return self.workdir / "rec"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.record_dir.mkdir(exist_ok=True)
        tone = self.workdir / "tone.wav"
        src = ToneSource(self.tone_hz)
        with WavWriter(tone) as w:
            for _ in range(50 * 30):  # 30 s of tone; aufile stops at the end of the file
                w.write(src.read(160))
        config = f"""
poll_method		epoll
sip_listen		{self.address}:{self.sip_port}
net_interface		{self.address}
audio_player		aubridge,nil
audio_source		aufile,{tone}
audio_alert		aubridge,nil
audio_srate		8000
audio_channels		1
module_path		{MODULES}
module			g711.so
module			aufile.so
module			aubridge.so
module			sndfile.so
module			srtp.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{self.address}:{self.ctrl_port}
snd_path		{self.record_dir}
"""
        (self.workdir / "config").write_text(config)
        (self.workdir / "accounts").write_text(self.account.line() + "\n")
        (self.workdir / "contacts").write_text("")

    async def start(self, timeout: float = 10.0) -> None:
        exe = shutil.which("baresip")
        if exe is None:
            raise FileNotFoundError("baresip is not installed")
        self.write_config()
        # a plain background process, its own process group: stop() ends exactly it
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "-f",
            str(self.workdir),
            *(["-s"] if self.trace else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        asyncio.ensure_future(self._drain())
        async with asyncio.timeout(timeout):
            while True:
                try:
                    self._reader, self._writer = await asyncio.open_connection(
                        self.address, self.ctrl_port
                    )
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        self._event_task = asyncio.ensure_future(self._read_events())

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            chunk = await self.proc.stdout.read(4096)
            if not chunk:
                return
            self.log = (self.log + chunk)[-20000:]

    async def _read_events(self) -> None:
        assert self._reader is not None
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await self._reader.readuntil(b":"))[:-1])
                payload = await self._reader.readexactly(length)
                await self._reader.readexactly(1)  # ","
                with contextlib.suppress(ValueError):
                    self.events.append(json.loads(payload))
                    self._changed.set()

    async def command(self, command: str, params: str = "") -> None:
        assert self._writer is not None
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._writer.write(str(len(data)).encode() + b":" + data + b",")
        await self._writer.drain()

    async def wait_event(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first event of type ``kind`` (already seen or still to come)."""
        async with asyncio.timeout(timeout):
            while True:
                for ev in self.events:
                    if ev.get("type") == kind:
                        return ev
                self._changed.clear()
                await self._changed.wait()

    def has_event(self, kind: str) -> bool:
        return any(ev.get("type") == kind for ev in self.events)

    async def dial(self, uri: str) -> None:
        await self.command("dial", uri)

    async def hangup(self) -> None:
        await self.command("hangup")

    def recordings(self) -> list[Path]:
        return sorted(self.record_dir.glob("*.wav"))

    def recorded_pcm(self) -> bytes:
        """Decoded audio baresip received (sndfile writes one *-dec.wav per call)."""
        pcm = b""
        for path in self.recordings():
            if "dec" in path.name:
                rate, data = read_wav(path)
                if rate == 8000:
                    pcm += data
        return pcm

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._event_task is not None:
            self._event_task.cancel()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()
