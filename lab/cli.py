"""The ``imslab`` command line.

Each sub-command lives in its own module under :mod:`lab.commands` and exposes
``register(subparsers)``; the dispatcher discovers them, so adding a command never means editing
this file. Long-running network elements are *roles* (:mod:`lab.roles`), started with
``imslab run ROLE ...``.

Logging is configured here, once, before any command runs (``--log-level``, ``--log-json``;
see :mod:`ims.log`). Errors take one path (:mod:`lab.errors`): one line on stderr naming what is
wrong and what to do, exit 2 for bad input, 1 for a failed call or check.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn

from ims import log
from lab import commands, errors


class _SubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """A sub-command's one-line ``help`` is also its ``--help`` description when it has none."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if kwargs.get("description") is None and kwargs.get("help"):
            help_text = str(kwargs["help"])
            kwargs["description"] = help_text[:1].upper() + help_text[1:] + "."
        return super().add_parser(name, **kwargs)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line usage error that points at ``--help`` (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)

    def error(self, message: str) -> NoReturn:
        self.exit(errors.EXIT_USAGE, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def _version() -> str:
    try:
        return metadata.version("imslab")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _level(text: str) -> str:
    try:
        log.parse_level(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="imslab",
        description="A real IMS network showing what each media-security method does to "
        "lawful interception.",
        epilog="Exit status: 0 done, 1 a call/check failed, 2 bad input, 130 interrupted.",
    )
    parser.add_argument(
        "--version", action="version", version=f"imslab {_version()}", help="print the version"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        type=_level,
        metavar="LEVEL",
        help=f"log level: {', '.join(log.LEVELS)} (default WARNING)",
    )
    parser.add_argument(
        "--log-json", action="store_true", help="log one JSON object per line (default: console)"
    )
    parser.add_argument(
        "--key-log",
        action="store_true",
        help="DEBUGGING ONLY: let key material into the log (it is redacted otherwise)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def _fail(command: str, line: str) -> None:
    print(f"imslab {command}: {line}" if command else f"imslab: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else errors.EXIT_USAGE
    log.configure(level=args.log_level, json=args.log_json, key_log=args.key_log)
    command = " ".join(
        str(v)
        for k in ("command", "role", "li_cmd", "task_cmd", "dest_cmd", "config_cmd", "hi2_cmd")
        if isinstance(v := getattr(args, k, None), str)
    )
    return _dispatch(args, command)


def _dispatch(args: Any, command: str) -> int:
    try:
        rc = args.func(args)
        sys.stdout.flush()
    except KeyboardInterrupt:
        rc = errors.EXIT_INTERRUPTED
    except BrokenPipeError:
        # `imslab ... | head`: the reader is gone. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and exit like a SIGPIPE'd tool.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        rc = errors.EXIT_PIPE
    except SystemExit as exc:
        # a command's `raise SystemExit("message")`: the message is a user error
        if isinstance(exc.code, str):
            text = exc.code
            print(
                text if text.startswith("imslab") else f"imslab {command}: {text}", file=sys.stderr
            )
            rc = errors.EXIT_USAGE
        else:
            rc = exc.code or 0
    except Exception as exc:
        leaf: BaseException = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]  # a TaskGroup's one failure
        known = errors.explain(leaf)
        if known is None:
            raise  # a bug: the traceback is what a developer needs
        line, rc = known
        _fail(command, line)
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
