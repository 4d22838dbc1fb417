"""imslab sip-ping against a real SipEndpoint on loopback."""

from __future__ import annotations

import argparse
import json
import socket

import pytest

from ims.sip.aio import ServerContext, SipEndpoint
from lab.cli import build_parser
from lab.commands.sip_ping import ping


async def test_sip_ping_udp_and_tcp(capsys: pytest.CaptureFixture[str]) -> None:
    uas = SipEndpoint()
    host, port = await uas.listen("udp", "127.0.2.60", 0)
    await uas.listen("tcp", "127.0.2.60", port)
    seen: list[str] = []

    def answer(ctx: ServerContext) -> None:
        seen.append(ctx.flow.transport)
        ctx.respond(200, headers=[("Server", "test-uas")])

    uas.on_request(answer)
    try:
        for transport in ("udp", "tcp"):
            args = build_parser().parse_args(
                [
                    "sip-ping",
                    f"{host}:{port}",
                    "--listen",
                    "127.0.2.61",
                    "--count",
                    "2",
                    "--transport",
                    transport,
                    "--json",
                ]
            )
            assert isinstance(args, argparse.Namespace)
            assert await ping(args) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [r["status"] for r in lines] == [200] * 4
        assert lines[0]["server"] == "test-uas"
        assert seen == ["UDP", "UDP", "TCP", "TCP"]
    finally:
        await uas.close()


async def test_sip_ping_timeout_and_unreachable_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.2.62", 0))
    try:
        port = silent.getsockname()[1]
        args = build_parser().parse_args(
            ["sip-ping", f"127.0.2.62:{port}", "--listen", "127.0.2.61", "--t1", "0.01"]
        )
        assert await ping(args) == 1
        assert "SipTimeoutError" in capsys.readouterr().out  # timer F = 64*T1
    finally:
        silent.close()
    # nobody bound: the ICMP port unreachable fails it at once
    args = build_parser().parse_args(["sip-ping", f"127.0.2.62:{port}", "--listen", "127.0.2.61"])
    assert await ping(args) == 1
    assert "SipTransportError: ICMP" in capsys.readouterr().out
