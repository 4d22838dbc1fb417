"""Structured logging set-up (structlog) with key redaction.

Key material never reaches ordinary logs (STYLE.md §6): any event field whose name looks like
key material is replaced by ``"<redacted>"`` unless the caller has explicitly enabled the key
log with :func:`configure` (``key_log=True``), which exists for lab debugging only.
Log lines carry context (Call-ID, branch, XID) through ``structlog.contextvars``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

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

_state = {"key_log": False, "configured": False}


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


def configure(*, level: str = "INFO", json: bool = False, key_log: bool = False) -> None:
    """Configure structlog once per process. ``key_log`` is the explicit opt-in for secrets."""
    _state["key_log"] = key_log
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_keys,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _state["configured"] = True


def get_logger(name: str) -> Any:
    """A structlog logger bound to ``component=name``; redaction is always in the chain."""
    if not _state["configured"]:
        configure(level="WARNING")
    return structlog.get_logger().bind(component=name)
