"""REGISTER with digest authentication from SIPp against `imslab run sip-proxy --users`.

REGISTER -> 401 (WWW-Authenticate) -> REGISTER with [authentication] -> 200 OK listing the
binding; a wrong password never gets the 200. SIPp 3.6.1 computes only MD5 digests (it takes
the first challenge and refuses SHA-256), so the registrar offers MD5 here; the digest ``uri``
SIPp uses is forced to the Request-URI with ``-auth_uri``.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.peers.test_sipp_proxy import (
    SCENARIOS,
    UAC_IP,
    UAS_IP,
    free_port,
    read_stats,
    start_proxy,
    stop_proxy,
    wait_udp_bound,
)

pytestmark = [pytest.mark.peer]


def register(
    sipp: str, workdir: Path, proxy_addr: str, user: str, password: str, count: int, port: int
) -> dict[str, str]:
    stats = workdir / f"reg-{user}-{password}.csv"
    subprocess.run(
        ["timeout", "30", sipp, "-sf", str(SCENARIOS / "register_auth.xml"), proxy_addr,
         "-i", UAC_IP, "-p", str(port), "-s", user, "-au", user, "-ap", password,
         "-auth_uri", "example.com", "-key", "domain", "example.com",
         "-m", str(count), "-r", "50", "-timeout", "20", "-timeout_error", "-nostdin",
         "-trace_stat", "-stf", str(stats), "-fd", "1"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=40,
    )  # fmt: skip
    return read_stats(stats)


def test_register_with_digest_from_sipp(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    users = tmp_path / "users.toml"
    users.write_text('realm = "example.com"\n[users]\nalice = "secret"\n')
    proxy = start_proxy(
        0, "--domain", "example.com", "--users", str(users), "--auth-algorithms", "MD5"
    )
    try:
        ok = register(sipp, tmp_path, proxy.addr, "alice", "secret", 5, free_port(UAC_IP))
        bad = register(sipp, tmp_path, proxy.addr, "alice", "wrong", 1, free_port(UAC_IP))
    finally:
        stop_proxy(proxy)
    assert ok["SuccessfulCall(C)"] == "5", ok
    assert ok["FailedCall(C)"] == "0", ok
    assert bad["SuccessfulCall(C)"] == "0", bad
    assert bad["FailedCall(C)"] == "1", bad


def test_call_to_registered_aor_is_routed_by_location(tmp_path: Path) -> None:
    """bob's contact (the SIPp UAS) is registered; SIPp calls sip:bob@example.com through
    the proxy, which finds the binding in its location service and forwards there."""
    sipp = require_tool("sipp")
    proxy = start_proxy(0, "--domain", "example.com")
    uas_port, uac_port = free_port(UAS_IP), free_port(UAC_IP)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((UAC_IP, 0))
            s.settimeout(5)
            me = s.getsockname()
            s.sendto(
                (
                    "REGISTER sip:example.com SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {me[0]}:{me[1]};branch=z9hG4bKreg-loc\r\n"
                    "Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=r1\r\n"
                    "To: <sip:bob@example.com>\r\nCall-ID: reg-loc\r\nCSeq: 1 REGISTER\r\n"
                    f"Contact: <sip:bob@{UAS_IP}:{uas_port}>\r\nExpires: 600\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                (proxy.host, proxy.port),
            )
            reply = s.recv(65535)
        assert reply.startswith(b"SIP/2.0 200"), reply[:80]
        uas = subprocess.Popen(
            ["timeout", "40", sipp, "-sf", str(SCENARIOS / "uas.xml"), "-i", UAS_IP,
             "-p", str(uas_port), "-m", "20", "-nostdin",
             "-trace_stat", "-stf", str(tmp_path / "uas.csv"), "-fd", "1"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_udp_bound(UAS_IP, uas_port)
            subprocess.run(
                ["timeout", "35", sipp, "-sf", str(SCENARIOS / "uac.xml"), proxy.addr,
                 "-i", UAC_IP, "-p", str(uac_port), "-s", "bob", "-key", "uas_host",
                 "example.com", "-m", "20", "-r", "20", "-timeout", "30", "-timeout_error",
                 "-nostdin", "-trace_stat", "-stf", str(tmp_path / "uac.csv"), "-fd", "1"],
                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=45,
            )  # fmt: skip
            uas.wait(timeout=30)
        finally:
            if uas.poll() is None:
                uas.kill()
                uas.wait(timeout=5)
    finally:
        stop_proxy(proxy)
    uac_stats, uas_stats = read_stats(tmp_path / "uac.csv"), read_stats(tmp_path / "uas.csv")
    assert uac_stats["SuccessfulCall(C)"] == "20", uac_stats
    assert uas_stats["SuccessfulCall(C)"] == "20", uas_stats
