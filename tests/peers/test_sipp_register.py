"""REGISTER with digest authentication from SIPp against `imslab run sip-proxy --users`.

REGISTER -> 401 (WWW-Authenticate) -> REGISTER with [authentication] -> 200 OK listing the
binding; a wrong password never gets the 200. SIPp 3.6.1 computes only MD5 digests (it takes
the first challenge and refuses SHA-256), so the registrar offers MD5 here; the digest ``uri``
SIPp uses is forced to the Request-URI with ``-auth_uri``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.peers.test_sipp_proxy import (
    SCENARIOS,
    UAC_IP,
    free_port,
    read_stats,
    start_proxy,
    stop_proxy,
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
