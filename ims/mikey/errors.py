"""MIKEY errors carrying the MIKEY error number to answer with (RFC 3830 §6.12, STYLE.md §5).

The codec and the crypto layer only raise; the mode state machines turn a :class:`MikeyError`
into a MIKEY Error message (data type 6, RFC 3830 §6.12: HDR, T, {ERR}, [V|SIGN]).
"""

from __future__ import annotations

from ims.errors import DecodeError, ImsError
from ims.mikey.constants import ErrorNo


class MikeyError(ImsError):
    """A MIKEY exchange failed; ``mikey_error`` is the ERR payload value to send back.

    ``remote`` is True when the error was *received* from the peer in an Error message.
    """

    def __init__(
        self, message: str, *, mikey_error: ErrorNo = ErrorNo.UNSPECIFIED, remote: bool = False
    ) -> None:
        super().__init__(message)
        self.mikey_error = ErrorNo(mikey_error)
        self.remote = remote


class MikeyDecodeError(DecodeError):
    """A MIKEY message or payload could not be decoded.

    Carries the MIKEY error number to answer with (RFC 3830 §6.12); unknown data types map to
    ``Invalid DT``, everything structural to ``Unspecified``.
    """

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        mikey_error: ErrorNo = ErrorNo.UNSPECIFIED,
    ) -> None:
        super().__init__(message, offset=offset)
        self.mikey_error = ErrorNo(mikey_error)
