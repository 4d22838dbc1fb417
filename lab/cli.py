"""The ``imslab`` command line.

Each sub-command lives in its own module under :mod:`lab.commands` and exposes
``register(subparsers)``; the dispatcher discovers them, so adding a command never means editing
this file. Long-running network elements are *roles* (:mod:`lab.roles`), started with
``imslab run ROLE ...``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from lab import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imslab",
        description="A real IMS network showing what each media-security method does to "
        "lawful interception.",
    )
    parser.add_argument("--log-level", default="WARNING", help="structlog level (default WARNING)")
    parser.add_argument("--log-json", action="store_true", help="log JSON lines")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from ims import log

    parser = build_parser()
    args = parser.parse_args(argv)
    log.configure(level=args.log_level, json=args.log_json)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        rc = 130
    except OSError as exc:
        # Environmental failures (an address already taken by another lab, a missing file)
        # get one clear line instead of a traceback.
        print(f"imslab {args.command}: {exc}", file=sys.stderr)
        if "bind" in str(exc) or getattr(exc, "errno", None) in (98, 99):
            print(
                "imslab: an address is in use or missing: is another lab running? "
                "Stop it, or move this one with --net-offset/--subnet where the command has them.",
                file=sys.stderr,
            )
        rc = 1
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
