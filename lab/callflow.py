"""One complete call between two UEs of the topology, with a report (used by call and demo).

Registers both UEs (digest through their P-CSCFs), places the call from ``caller`` to
``callee`` with the chosen keying, lets the media run, hangs up and checks with the tone
detector that each side heard the other's tone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims.log import bound
from ims.media.tone import energy
from lab.topology import Topology
from lab.ues import user_agent
from ue.agent import Call, UserAgent

CALLER_TONE = 440.0
CALLEE_TONE = 1000.0


@dataclass
class CallReport:
    caller: str
    callee: str
    target: str
    keying: str
    answered: bool = False
    status: int | None = None
    keys: str | None = None
    call_id: str | None = None
    bye_status: int | None = None
    caller_heard: float | None = None  # tone ratio of the callee's tone at the caller
    callee_heard: float | None = None
    caller_ok: bool = False
    callee_ok: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    via_path: list[str] = field(default_factory=list)  # hosts the INVITE crossed, in order

    @property
    def ok(self) -> bool:
        return self.answered and self.caller_ok and self.callee_ok


def _tone(audio: str | None, default: float) -> float | None:
    if audio is None:
        return default
    if audio.startswith("tone:"):
        return float(audio.split(":", 1)[1])
    return None  # a WAV file: nothing to detect


def _registered(name: str, ua: UserAgent) -> str:
    c = ua.config
    return f"registered {name} as {c.aor} via {c.proxy[0]}:{c.proxy[1]} ({c.transport})"


async def run_call(
    topo: Topology,
    caller: str,
    callee: str,
    *,
    keying: str = "sdes",
    duration: float = 3.0,
    audio: str | None = None,
    callee_audio: str | None = None,
    bind: str | None = None,
    record: Path | None = None,
    progress: Callable[[str], None] = print,
    on_call: Callable[[Call], None] | None = None,
) -> CallReport:
    """Register, call, talk ``duration`` seconds, hang up; returns what happened."""
    target = topo.subscriber_of_ue(callee).sip_impu if callee in topo.ues else callee
    report = CallReport(caller=caller, callee=callee, target=target, keying=keying)
    caller_audio = audio or f"tone:{CALLER_TONE:g}"
    answer_audio = callee_audio or f"tone:{CALLEE_TONE:g}"
    a = user_agent(topo, caller, keying=keying, bind=bind)
    b: UserAgent | None = None
    if callee in topo.ues:
        b = user_agent(topo, callee, keying=keying, bind=bind)
        b.audio = answer_audio
    async with contextlib.AsyncExitStack() as stack:
        with bound(element=caller):  # the UA's sockets and tasks log as this UE
            await stack.enter_async_context(a)
            await a.register()
        progress(_registered(caller, a))
        if b is not None:
            with bound(element=callee):
                await stack.enter_async_context(b)
                await b.register()
            progress(_registered(callee, b))
        progress(f"calling {target} from {caller} with keying {keying}")
        call = a.dial(target, audio=caller_audio, keying=keying)
        report.call_id = call.call_id
        try:
            await call.answered(timeout=10)
        except Exception as exc:
            report.status = call.status
            report.error = str(exc)
            return report
        report.answered = True
        report.status = call.status
        report.keys = call.keys.description if call.keys else None
        progress(f"answered ({call.status}); media keys: {report.keys}")
        if on_call is not None:
            on_call(call)
        incoming = await b.next_call(timeout=5) if b is not None else None
        if incoming is not None and incoming.invite is not None:
            # every proxy pushed its Via: read bottom-up, they are the path the INVITE took
            report.via_path = [v.host for v in reversed(incoming.invite.vias)][1:]
        await asyncio.sleep(duration)
        report.bye_status = await call.hangup()
        progress(f"hung up (BYE -> {report.bye_status})")
        if incoming is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(incoming.ended.wait(), 5)
        if record is not None:
            call.save_received(record)
        heard_tone = _tone(callee_audio, CALLEE_TONE) if b is not None else None
        if heard_tone is not None:
            report.caller_heard = call.tone_ratio(heard_tone)
            report.caller_ok = call.detect_tone(heard_tone)
        else:
            report.caller_ok = energy(call.received_pcm) > 0
        sent_tone = _tone(audio, CALLER_TONE)
        if incoming is not None and sent_tone is not None:
            report.callee_heard = incoming.tone_ratio(sent_tone)
            report.callee_ok = incoming.detect_tone(sent_tone)
        elif incoming is not None:
            # a WAV file: no tone to look for, but the callee must have received audio
            report.callee_ok = energy(incoming.received_pcm) > 0
        else:
            report.callee_ok = True  # an external callee: nothing of ours to listen with
        report.stats = call.summary()
    return report
