"""The CLI's one error path: every failure becomes one line on stderr and an exit status.

The line names what is wrong and what to do about it (``imslab call: ...; start one with
`imslab up```); tracebacks are for bugs only. Exit status, as the CLI documents it:

* ``0`` — done; ``1`` — a call, check or peer failed (the lab answered "no", or nothing
  answered); ``2`` — the user's input is wrong (a bad option, file, topology or URI);
  ``130`` — interrupted; ``141`` — stdout closed early (``| head``), as a SIGPIPE'd tool would.

Commands raise :class:`UserError` (or :class:`CheckFailed`) with a hint; everything else that
commonly escapes a command (a topology error, a missing file, nobody listening) is mapped by
:func:`explain`, so command modules need no try/except of their own.
"""

from __future__ import annotations

import errno
import re

from ims.errors import DecodeError, ImsError
from ims.sip.errors import SipParseError
from ims.sip.transport.errors import SipTimeoutError, SipTransportError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141

#: The hint for "nothing answered": the usual cause is a lab that is not running (or one
#: running on other addresses).
NO_LAB_HINT = (
    "is the lab running? Start it with `imslab up` (with the same --config/--net-offset/--subnet)"
)


class UserError(ImsError):
    """Wrong input from the user: ``what`` is wrong, ``hint`` says what to do (exit 2)."""

    status = EXIT_USAGE

    def __init__(self, what: str, *, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint

    def __str__(self) -> str:
        return self.what if not self.hint else f"{self.what}; {self.hint}"


class CheckFailed(UserError):
    """A call, check or peer failed (exit 1)."""

    status = EXIT_FAILED


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
        return True
    text = str(exc)
    return "Errno 111" in text or "Connection refused" in text


def explain(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit status) for an exception a user can act on; ``None`` for a bug."""
    # Imported here: lab.topology imports ims only, but ue/li pull in more than a CLI
    # error needs at import time.
    from lab.topology import TopologyError
    from li.x1.client import X1ErrorResponse, X1TransportError
    from ue.agent import CallFailed, RegistrationFailed

    if isinstance(exc, UserError):
        return str(exc), exc.status
    if isinstance(exc, TopologyError):
        hint = exc.hint or "fix the file, then check it with `imslab config check FILE`"
        return f"{exc}; {hint}", EXIT_USAGE
    if isinstance(exc, SipParseError):
        return f"{exc}; give a UE name of the topology or a sip:/tel: URI", EXIT_USAGE
    if isinstance(exc, DecodeError):  # a file given to a decode command is not what it says
        return f"{exc}; is it the right file?", EXIT_USAGE
    if isinstance(exc, SipTimeoutError):
        return f"no SIP answer ({exc}); {NO_LAB_HINT}", EXIT_FAILED
    if isinstance(exc, RegistrationFailed):
        return (
            f"{exc}; check the subscriber's password and first hop in the topology",
            EXIT_FAILED,
        )
    if isinstance(exc, CallFailed):
        return f"call failed: {exc}", EXIT_FAILED
    if isinstance(exc, X1ErrorResponse):
        return str(exc), EXIT_FAILED
    if isinstance(exc, X1TransportError):
        return f"cannot reach the X1 NE ({exc}); {NO_LAB_HINT}", EXIT_FAILED
    if isinstance(exc, SipTransportError | ConnectionError) and _refused(exc):
        return f"nothing answers ({_strip_errno(exc)}); {NO_LAB_HINT}", EXIT_FAILED
    if isinstance(
        exc, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
    ):
        name = exc.filename if exc.filename is not None else "?"
        reason = exc.strerror or type(exc).__name__
        return f"{name}: {reason.lower()}; check the path", EXIT_USAGE
    if isinstance(exc, OSError) and (
        exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) or "bind" in str(exc)
    ):
        return (
            f"{_strip_errno(exc)}: an address is in use or missing; is another lab running? "
            "Stop it, or move this one with --net-offset/--subnet",
            EXIT_FAILED,
        )
    if isinstance(exc, TimeoutError):
        return f"timed out ({exc or 'no answer'}); {NO_LAB_HINT}", EXIT_FAILED
    if isinstance(exc, OSError):
        return _strip_errno(exc), EXIT_FAILED
    return None


def _strip_errno(exc: BaseException) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``: no C-level noise."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror and exc.errno is not None and exc.filename:
        return f"{exc.filename}: {exc.strerror.lower()}"
    return re.sub(r"\[Errno \d+\]\s*", "", text).strip() or type(exc).__name__
