"""Structured logging set-up (structlog) with key redaction and per-call context.

One process, one configuration: the ``imslab`` CLI calls :func:`configure` once with the level
and renderer the user chose (``--log-level``, ``--log-json``); library code only ever calls
:func:`get_logger`, whose loggers are lazy proxies that read the configuration *at each call*
(so a module-level ``log = get_logger(...)`` made at import time still honours the CLI's level).
Without a CLI (tests, embedding) the first :func:`get_logger` installs the WARNING console
default.

Context: every line carries the fields bound with :func:`bound` / :func:`bind` through
``structlog.contextvars`` (``element``, ``xid``...) and those of the message being handled
(:func:`message` / :func:`tag_message`: ``call_id``, ``branch``, ``xid``, ``correlation_id``).
asyncio copies the context into each task and into each transport's reader callback when it is
created, so binding ``element`` around an element's start-up tags everything that element logs
afterwards, and a :func:`message` block around one datagram's processing tags its lines.

Key material never reaches ordinary logs (STYLE.md §6): any event field whose name looks like
key material is replaced by ``"<redacted>"`` unless the caller has explicitly enabled the key
log with :func:`configure` (``key_log=True``), which exists for lab debugging only.

Standard-library ``logging`` records (asyncio's "Task exception was never retrieved", library
warnings) go through the same renderer, so a JSON log stays one JSON object per line.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, TextIO

import structlog

# Field names that may carry secrets. Matched case-insensitively as whole names or suffixes.
_SECRET_NAMES = (
    "key",
    "keys",
    "psk",
    "salt",
    "tgk",
    "tek",
    "master_key",
    "inline",
    "secret",
    "password",
    "private_key",
    "envelope_key",
    "crypto",
)

#: The levels ``--log-level`` accepts (structlog's filtering levels).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

#: Context keys the stack binds (documented here so log consumers know what to filter on).
CONTEXT_KEYS = ("element", "call_id", "branch", "xid", "correlation_id")

_state: dict[str, Any] = {"key_log": False, "configured": False, "level": "WARNING", "json": False}


def _is_secret(name: str) -> bool:
    lname = name.lower()
    return any(lname == s or lname.endswith("_" + s) for s in _SECRET_NAMES)


def redact_keys(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank out secret-looking fields unless the key log is enabled."""
    if _state["key_log"]:
        return event_dict
    for name in list(event_dict):
        if _is_secret(name):
            event_dict[name] = "<redacted>"
    return event_dict


def parse_level(level: str) -> int:
    """The numeric level for ``level`` (any case); ``ValueError`` names the accepted ones."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"unknown log level {level!r} (one of {', '.join(LEVELS)})")
    return int(logging.getLevelNamesMapping()[name])


class _StderrLoggerFactory:
    """A PrintLogger on the *current* ``sys.stderr`` (pytest's capture swaps it per test)."""

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(file=_state.get("stream") or sys.stderr)


def configure(
    *,
    level: str = "INFO",
    json: bool = False,
    key_log: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure logging for the process. ``key_log`` is the explicit opt-in for secrets.

    Raises ``ValueError`` for an unknown level (never silently falls back to another one).
    """
    numeric = parse_level(level)
    _state.update(key_log=key_log, level=level.upper(), json=json, stream=stream)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_message,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_keys,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    # The standard library's records (asyncio, libraries) through the same chain.
    handler = logging.StreamHandler(stream)
    if stream is None:
        handler.setStream(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_imslab", False)]:
        root.removeHandler(old)
    handler._imslab = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    _state["configured"] = True


def current() -> dict[str, Any]:
    """The level and renderer in force (the orchestrator passes them on to child processes)."""
    return {"level": _state["level"], "json": _state["json"]}


def get_logger(name: str) -> Any:
    """A logger with ``component=name``; redaction and the bound context are always in the chain.

    It is a lazy proxy: the level and renderer are looked up on every call, never frozen.
    """
    if not _state["configured"]:
        configure(level="WARNING")
    return structlog.get_logger(component=name)


def bind(**context: Any) -> None:
    """Bind context for the rest of the current task (e.g. ``element`` in a role's process)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


_message: ContextVar[dict[str, Any] | None] = ContextVar("imslab_log_message", default=None)


def merge_message(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the context of the message being handled (:func:`message`)."""
    msg = _message.get()
    if msg:
        for key, value in msg.items():
            if key == "sip_event":  # resolved here, lazily: only lines that are logged pay
                for k, v in message_context(value).items():
                    event_dict.setdefault(k, v)
                continue
            if key == "correlation_id" and isinstance(value, int):
                value = f"{value:016x}"  # formatted here: only lines that are logged pay
            elif isinstance(value, uuid.UUID):
                value = str(value)
            event_dict.setdefault(key, value)
    return event_dict


@contextmanager
def message(**context: Any) -> Iterator[None]:
    """The context of one message's handling (Call-ID, branch, XID...), undone at the end.

    One ``ContextVar`` set and reset (well under a microsecond), so a proxy can afford it on
    every datagram; :func:`tag_message` adds what is learnt while handling it. Tasks created
    inside the block keep the message's context.
    """
    token = _message.set({k: v for k, v in context.items() if v is not None})
    try:
        yield
    finally:
        _message.reset(token)


def begin_message(**context: Any) -> Token[dict[str, Any] | None]:
    """:func:`message` without the ``with`` (hot paths): pass the token to
    :func:`end_message` in a ``finally``."""
    return _message.set({k: v for k, v in context.items() if v is not None})


def end_message(token: Token[dict[str, Any] | None]) -> None:
    _message.reset(token)


def tag_message(**context: Any) -> None:
    """Add to the current :func:`message` context (nothing outside one). ``sip_event=EV``
    (a SIP event or message) stands for its Call-ID and branch, looked up only when a line
    is actually written (:func:`message_context`)."""
    msg = _message.get()
    if msg is not None:
        msg.update(context)


def message_context(event: object) -> dict[str, Any]:
    """The Call-ID (and transaction branch) of a SIP event or message, for :func:`tag_message`."""
    msg = getattr(event, "request", None) or getattr(event, "response", None) or event
    out: dict[str, Any] = {}
    call_id = getattr(msg, "call_id", None)
    if isinstance(call_id, str):
        out["call_id"] = call_id
    tx = getattr(event, "transaction", None)
    branch = getattr(tx, "branch", None)
    if isinstance(branch, str):
        out["branch"] = branch
    return out


@contextmanager
def bound(**context: Any) -> Iterator[None]:
    """Bind context for the ``with`` block only (one message's processing); ``None`` values
    are left out, so callers can pass what they have."""
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in context.items() if v is not None}
    ):
        yield
