"""``imslab`` as a separate process, for tests that drive a running lab the way a user does."""

from __future__ import annotations

import asyncio
import sys


async def imslab(*argv: str, timeout: float = 40.0) -> tuple[int, str]:
    """Run ``imslab ARGV`` (this interpreter, ``-m lab.cli``): exit status and combined output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lab.cli",
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")
