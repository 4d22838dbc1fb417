"""``imslab run ROLE ...``: run one network element until stopped (what a container runs)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
from typing import Any

from ims import log
from lab import aio, roles


def _role_modules() -> list[Any]:
    mods = []
    for info in sorted(pkgutil.iter_modules(roles.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            mods.append(importlib.import_module(f"{roles.__name__}.{info.name}"))
    return mods


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run one network element until stopped")
    role_sub = parser.add_subparsers(dest="role", metavar="ROLE", required=True)
    for mod in _role_modules():
        p = role_sub.add_parser(mod.ROLE, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(func=_runner(mod))


def _runner(mod: Any) -> Any:
    def func(args: argparse.Namespace) -> int:
        log.bind(element=getattr(args, "name", None) or mod.ROLE)  # on every line it logs
        try:
            return int(aio.run(lambda: mod.run(args)) or 0)
        except asyncio.CancelledError:
            return 0

    return func
