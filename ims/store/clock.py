"""The clock stored records live on.

The wall clock (``time.time()``): records are shared between processes and hosts and outlive
restarts, and a monotonic clock has no origin they share. The one place in the store package
that reads a clock; an element keeping state in a store runs its proxy core on it
(``Element(clock=Store.now)``) so that ``ctx.now`` and the stored expiries compare.
"""

from __future__ import annotations

import time


def wall_clock() -> float:
    return time.time()
