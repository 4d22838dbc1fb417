"""Running coroutines from the CLI: uvloop when installed, clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on uvloop if available; SIGTERM cancels it like Ctrl-C does."""

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        return await main()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(wrapper())
    return uvloop.run(wrapper())
