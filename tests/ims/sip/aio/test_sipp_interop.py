"""SipEndpoint against SIPp (an independent SIP implementation) over real UDP.

* SIPp's built-in ``uac`` (INVITE, ACK, BYE) -> SipEndpoint acting as UAS: 200 calls.
* the same with 10 % of SIPp's datagrams lost (``-lost 10``): SipEndpoint's transactions
  retransmit final responses (timer G, Completed), absorb INVITE retransmissions (RFC 6026
  Accepted), and the test's tiny UAS core retransmits its 2xx until the ACK (§13.3.1.4).
* SipEndpoint as UAC -> SIPp's built-in ``uas``.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ims.sip.aio import ServerContext, SipEndpoint
from ims.sip.message import Request, Response, new_call_id, new_tag
from ims.sip.transaction import Flow, TimerConfig
from tests.conftest import require_tool

pytestmark = pytest.mark.peer

SIPP_IP = "127.0.2.90"
EP_IP = "127.0.2.91"


class TinyUas:
    """Answers INVITE 180 + 200 (retransmitting the 2xx until ACK, §13.3.1.4) and BYE 200."""

    def __init__(self, ep: SipEndpoint) -> None:
        self.ep = ep
        self.acked: set[str] = set()
        self.invites = 0
        self.byes = 0
        ep.on_request(self.on_request)
        ep.on_ack(self.on_ack)

    def on_ack(self, request: Request, flow: Flow) -> None:
        self.acked.add(request.call_id or "")

    async def on_request(self, ctx: ServerContext) -> None:
        method = ctx.request.method
        if method == "INVITE":
            self.invites += 1
            ctx.respond(180)
            ok = ctx.response(200, headers=[("Contact", f"<sip:uas@{EP_IP}>")])
            ctx.respond(ok)
            interval = 0.5
            for _ in range(10):  # T1, 2T1, ... capped at T2 (§13.3.1.4), bounded
                await asyncio.sleep(interval)
                if ctx.request.call_id in self.acked or ctx.transaction.terminated:
                    return
                ctx.respond(ok)
                interval = min(2 * interval, 4.0)
        elif method == "BYE":
            self.byes += 1
            ctx.respond(200)
        else:
            ctx.respond(405)


async def _wait_bound(host: str, port: int) -> None:
    """Until a UDP socket is bound to host:port (SIPp starting), from /proc/net/udp (no probe
    bind, which could race SIPp's own bind); bounded to 10 s."""
    want = socket.inet_aton(host)[::-1].hex().upper() + f":{port:04X}"
    for _ in range(200):
        with open("/proc/net/udp") as f:
            if any(line.split()[1] == want for line in f.readlines()[1:]):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing bound to {host}:{port}")


async def run_sipp(args: list[str], limit: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "timeout", str(int(limit) + 5), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), limit + 15)
    return proc.returncode or 0, out.decode(errors="replace")[-6000:]


@pytest.mark.parametrize(("calls", "rate", "lost"), [(200, 100, 0), (40, 20, 10)])
async def test_sipp_uac_to_endpoint_uas(calls: int, rate: int, lost: int, tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    ep = SipEndpoint()
    host, port = await ep.listen("udp", EP_IP, 0)
    uas = TinyUas(ep)
    try:
        args = [
            sipp, "-sn", "uac", f"{host}:{port}", "-i", SIPP_IP, "-p", "0",
            "-m", str(calls), "-r", str(rate), "-d", "200", "-l", str(calls),
            "-timeout", "60", "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", str(tmp_path / "err.log"),
        ]  # fmt: skip
        if lost:
            args += ["-lost", str(lost)]
        rc, out = await run_sipp(args, 60)
        errors = (tmp_path / "err.log").read_text() if (tmp_path / "err.log").exists() else ""
        assert rc == 0, f"SIPp exit {rc}\n{out}\n{errors[-2000:]}"
        assert uas.invites == calls  # every INVITE became exactly one server transaction
        if not lost:
            assert uas.byes == calls
        # with -lost SIPp sometimes counts a call successful although its ACK and BYE never
        # left it (seen: INVITE, 180, 200 x3 on our side, then nothing): do not count BYEs
        assert ep.layer.stats["parse_errors"] == 0
        if lost:
            # loss happened and was repaired by retransmissions on both sides
            assert ep.layer.stats["retransmissions_absorbed"] > 0
    finally:
        await ep.close()


async def test_endpoint_uac_to_sipp_uas(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    sipp_port = 5090
    proc = await asyncio.create_subprocess_exec(
        "timeout", "30", sipp, "-sn", "uas", "-i", SIPP_IP, "-p", str(sipp_port), "-m", "5",
        "-nostdin", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    ep = SipEndpoint(timers=TimerConfig())
    await ep.listen("udp", EP_IP, 0)
    try:
        target = (SIPP_IP, sipp_port)
        await _wait_bound(SIPP_IP, sipp_port)  # an early INVITE would get ICMP unreachable
        for i in range(5):
            call_id = new_call_id(EP_IP)
            local = ep.local_address()
            from_ = f"<sip:alice@{EP_IP}>;tag={new_tag()}"
            invite = Request(
                "INVITE",
                f"sip:service@{SIPP_IP}:{sipp_port}",
                [
                    ("From", from_),
                    ("To", f"<sip:service@{SIPP_IP}:{sipp_port}>"),
                    ("Call-ID", call_id),
                    ("CSeq", "1 INVITE"),
                    ("Contact", f"<sip:alice@{local[0]}:{local[1]}>"),
                ],
            )
            provisional: list[int] = []
            resp = await asyncio.wait_for(
                ep.request(
                    invite, target, on_provisional=lambda r, p=provisional: p.append(r.status)
                ),
                10,
            )
            assert resp.status == 200 and 180 in provisional, (i, resp.status, provisional)
            to = resp.headers.get("To") or ""
            common = [("From", from_), ("To", to), ("Call-ID", call_id)]
            ack = Request("ACK", invite.uri, [*common, ("CSeq", "1 ACK")])
            ep.send_stateless(ep.prepare(ack), target)
            bye = Request("BYE", invite.uri, [*common, ("CSeq", "2 BYE")])
            bye_resp: Response = await asyncio.wait_for(ep.request(bye, target), 10)
            assert bye_resp.status == 200
        rc = await asyncio.wait_for(proc.wait(), 20)
        assert rc == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await ep.close()
