"""``imslab demo [NAME]``: run a self-contained demo scenario on the built-in lab and stop.

Scenarios live in :mod:`lab.demos`; without a name the one with the highest ``PRIORITY`` runs
(the full IMS call once it exists). Exit status 0 means every check in the demo passed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
from typing import Any

from lab import aio, demos


def _demo_modules() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(demos.__path__):
        if not info.name.startswith("_"):
            mod = importlib.import_module(f"{demos.__name__}.{info.name}")
            found[mod.NAME] = mod
    return found


def register(sub: Any) -> None:
    mods = _demo_modules()
    parser = sub.add_parser(
        "demo",
        help="run a demo scenario on the built-in lab",
        description="Demos: " + "; ".join(f"{n}: {m.HELP}" for n, m in sorted(mods.items())),
    )
    parser.add_argument("name", nargs="?", choices=sorted(mods), help="which demo (default: best)")
    for mod in mods.values():
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(parser)
    parser.set_defaults(func=lambda args: _run(args, mods))


def _run(args: argparse.Namespace, mods: dict[str, Any]) -> int:
    if not mods:
        print("no demo scenarios are installed")
        return 2
    name = args.name or max(mods.values(), key=lambda m: int(m.PRIORITY)).NAME
    mod = mods[name]
    try:
        ok = aio.run(lambda: mod.run(args))
    except asyncio.CancelledError:
        return 130
    return 0 if ok else 1
