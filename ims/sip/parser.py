"""Decoding SIP messages from datagrams and streams (RFC 3261 §7, §18.3, §25).

* :func:`parse_message` decodes one UDP datagram: the body is delimited by Content-Length
  when present (extra trailing octets are ignored, RFC 4475 §3.1.1.8) and is the rest of the
  datagram otherwise (§18.3); a Content-Length larger than the datagram is an error (400).
* :class:`StreamParser` frames messages on TCP/TLS: Content-Length is mandatory (§18.3),
  CRLF keep-alives between messages are skipped (RFC 5626 §3.5.1), and a size cap turns an
  oversize header block into 513 and an oversize body into 413.

By default the parser validates the header fields every element (proxy or UA) relies on: Via,
From, To, CSeq and its method, Max-Forwards, Expires, Content-Length; so a malformed request
is answered 400 before any layer acts on it (RFC 4475 §3.1.2); the parsed values stay cached
in the message. Other headers (Contact, Route, Record-Route, auth...) are kept raw and parsed
when first asked for: a proxy that never looks at a Contact does not pay for it, and the UA
or registrar that does gets a :class:`SipParseError` (answer 400) from the accessor.
"""

from __future__ import annotations

import re

from ims.sip.errors import SipParseError
from ims.sip.grammar import TOKEN, TOKEN_RE, parse_delta_seconds
from ims.sip.headers import (
    CSeq,
    Headers,
    Via,
    header_key,
    parse_cseq,
    parse_name_addr,
    parse_vias,
)
from ims.sip.message import Message, Request, Response, _parse_max_forwards
from ims.sip.uri import SipUri, parse_uri

__all__ = ["DEFAULT_MAX_MESSAGE", "StreamParser", "is_keepalive", "parse_message"]

DEFAULT_MAX_MESSAGE = 65535
_VERSION_RE = re.compile(r"SIP/([0-9]{1,3})\.([0-9]{1,3})\Z", re.IGNORECASE)
_STATUS_RE = re.compile(r"[1-6][0-9][0-9]\Z")
# header lines without folding, each preceded by CRLF: "\r\nName : value"
_FIELD = rf"\r\n({TOKEN})[ \t]*:([^\r\n]*)"
_FIELD_RE = re.compile(_FIELD)
_FIELDS_RE = re.compile(rf"(?:{_FIELD})*\r\n\Z")
_CL_RE = re.compile(r"[ \t]*([0-9]{1,10})[ \t]*\Z")


def is_keepalive(data: bytes) -> bool:
    """A datagram/stream chunk made only of CRLFs (RFC 5626 §3.5.1 ping/pong)."""
    return bool(data) and not data.strip(b"\r\n")


def _start_line(line: str, offset: int) -> tuple[str, str, str | int]:
    """-> ("req", method, uri) or ("resp", reason, status)."""
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2:
            raise SipParseError(f"bad status line {line[:60]!r}", offset=offset)
        version, code = parts[0], parts[1]
        reason = parts[2] if len(parts) == 3 else ""
        if not _VERSION_RE.match(version):
            raise SipParseError(f"bad SIP version {version[:20]!r}", offset=offset)
        if version.upper() != "SIP/2.0":
            raise SipParseError(f"unsupported version {version}", status_hint=505, offset=offset)
        if not _STATUS_RE.match(code):
            raise SipParseError(f"bad status code {code[:20]!r}", offset=offset)
        return "resp", reason, int(code)
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            f"request line must be 'Method SP Request-URI SP SIP-Version': {line[:80]!r}",
            offset=offset,
        )
    method, uri, version = parts
    if not TOKEN_RE.match(method):
        raise SipParseError(f"bad method {method[:30]!r}", offset=offset)
    if not _VERSION_RE.match(version):
        raise SipParseError(f"bad SIP version {version[:20]!r}", offset=offset)
    if version.upper() != "SIP/2.0":
        raise SipParseError(f"unsupported version {version}", status_hint=505, offset=offset)
    return "req", method, uri


def _split_head(head: bytes, base: int) -> tuple[str, list[tuple[str, str, str]]]:
    """Header block (no final CRLFCRLF) -> start line and unfolded (key, name, value) fields."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header block is not UTF-8", offset=base + exc.start) from None
    nl = text.find("\r\n")
    start = text if nl < 0 else text[:nl]
    crlf = text.count("\r\n")
    if text.count("\n") != crlf or text.count("\r") != crlf:
        raise SipParseError("bare CR or LF in header block", offset=base)
    if nl < 0:
        return start, []
    rest = text[nl:] + "\r\n"
    if "\r\n " not in rest and "\r\n\t" not in rest and _FIELDS_RE.match(rest):
        # no folding and every line well formed: split in C
        return start, [(header_key(n), n, v.strip(" \t")) for n, v in _FIELD_RE.findall(rest)]
    lines = text.split("\r\n")
    fields: list[tuple[str, str, str]] = []
    for line in lines[1:]:
        if not line:
            raise SipParseError("empty line inside header block", offset=base)
        c = line[0]
        if c == " " or c == "\t":
            if not fields:
                raise SipParseError("continuation line before any header", offset=base)
            k, n, v = fields[-1]
            stripped = line.strip(" \t")
            fields[-1] = (k, n, f"{v} {stripped}" if v else stripped)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without ':' {line[:40]!r}", offset=base)
        name = name.rstrip(" \t")
        if not TOKEN_RE.match(name):
            raise SipParseError(f"bad header name {name[:40]!r}", offset=base)
        fields.append((header_key(name), name, value.strip(" \t")))
    return start, fields


def _content_length(fields: list[tuple[str, str, str]]) -> int | None | bool:
    """The declared length; None if absent; False if several different values."""
    found: int | None = None
    for k, _, v in fields:
        if k == "content-length":
            m = _CL_RE.match(v)
            if m is None:
                raise SipParseError(f"bad Content-Length {v[:20]!r}", header="Content-Length")
            n = int(m.group(1))
            if found is not None and n != found:
                return False
            found = n
    return found


def _build(start: str, fields: list[tuple[str, str, str]], body: bytes, base: int) -> Message:
    kind, a, b = _start_line(start, base)
    headers = Headers._from_keyed(fields)
    if kind == "req":
        assert isinstance(b, str)
        try:
            uri = parse_uri(b)
        except SipParseError as exc:
            exc.offset = base + len(a) + 1
            raise
        if isinstance(uri, SipUri) and uri.headers:
            # RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475
            # §3.1.2.11 allows answering 400)
            raise SipParseError("URI headers in Request-URI", offset=base)
        return Request(a, uri, headers, body)
    assert isinstance(b, int)
    return Response(b, a, headers, body)


def _validate(msg: Message) -> None:
    """Parse the fields every element relies on; errors become 400 (RFC 4475 §3.1.2).

    One pass over the fields; the first parsed value of each header is left in the typed
    cache so the accessors do not parse again.
    """
    cache = msg.headers.cache
    vias: list[Via] = []
    for key, _, value in msg.headers._fields:
        if key == "via":
            vias.extend(parse_vias(value))
        elif key == "cseq":
            cseq = parse_cseq(value)
            cache.setdefault("cseq", cseq)
        elif key == "from" or key == "to":
            addr = parse_name_addr(value, header="From" if key == "from" else "To")
            cache.setdefault(key, addr)
        elif key == "max-forwards":
            _parse_max_forwards(value)
        elif key == "expires":
            parse_delta_seconds(value, header="Expires")
    cache["via"] = vias
    if isinstance(msg, Request):
        first = cache.get("cseq")
        if isinstance(first, CSeq) and first.method != msg.method:
            raise SipParseError(
                f"CSeq method {first.method} does not match {msg.method}", header="CSeq"
            )


def _with_location(exc: SipParseError, head: bytes, base: int) -> SipParseError:
    """Point an error raised on a header value at that header's line (and at the failing
    character when the value parser said where, ``column``, and the line is not folded)."""
    if exc.header is not None and exc.offset is None:
        key = header_key(exc.header)
        pos = 0
        lines = head.split(b"\r\n")
        for i, line in enumerate(lines):
            name = line.split(b":", 1)[0].strip(b" \t").decode("utf-8", "replace")
            if line[:1] not in (b" ", b"\t") and pos and header_key(name) == key:
                exc.offset = base + pos
                folded = i + 1 < len(lines) and lines[i + 1][:1] in (b" ", b"\t")
                colon = line.find(b":")
                if exc.column is not None and colon >= 0 and not folded:
                    start = colon + 1
                    while start < len(line) and line[start] in (32, 9):
                        start += 1
                    value = line[start:].decode("utf-8", "replace")
                    exc.offset += start + len(value[: exc.column].encode("utf-8"))
                break
            pos += len(line) + 2
    return exc


def _validate_values(msg: Message) -> None:
    """_validate, with value-relative error offsets turned into ``column``."""
    try:
        _validate(msg)
    except SipParseError as exc:
        if exc.offset is not None:
            exc.column, exc.offset = exc.offset, None
        raise


def _skip_crlf(data: bytes | bytearray, pos: int) -> int:
    n = len(data)
    while pos + 1 < n and data[pos] == 13 and data[pos + 1] == 10:
        pos += 2
    return pos


def parse_message(data: bytes, *, validate: bool = True) -> Request | Response:
    """Decode one SIP message from a datagram (see module docstring).

    Raises :class:`SipParseError` carrying ``status_hint`` and ``offset``.
    """
    start = _skip_crlf(data, 0)
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("no empty line after the headers", offset=len(data))
    head = data[start:end]
    try:
        start_line, fields = _split_head(head, start)
        body_start = end + 4
        clen = _content_length(fields)
        if clen is None or clen is False:
            body = data[body_start:]
        else:
            if body_start + clen > len(data):
                raise SipParseError(
                    f"Content-Length {clen} larger than the {len(data) - body_start} body "
                    "octets in the datagram",
                    header="Content-Length",
                    offset=body_start,
                )
            body = data[body_start : body_start + clen]
        msg = _build(start_line, fields, bytes(body), start)
        if validate:
            _validate_values(msg)
    except SipParseError as exc:
        raise _with_location(exc, head, start) from None
    return msg  # type: ignore[return-value]


class StreamParser:
    """Incremental framing for stream transports (TCP/TLS), h11-style.

    ``feed(data)`` returns the complete messages now available, in order. A framing/parse
    error never costs the messages framed before it:

    * when the error comes after messages framed in the same call, ``feed`` returns those
      messages and records the error in :attr:`error` (it does not raise);
    * a call that frames nothing before the error raises :class:`SipParseError`;
    * once :attr:`error` is set, every later call raises it.

    So a caller that only loops on ``feed`` processes every good message and sees the error on
    its next call; a transport checks :attr:`error` after each call to answer the failed
    request (its raw bytes are :attr:`unparsed`) and close at once. The stream cannot be
    resynchronised after an error.
    """

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE, validate: bool = True
    ) -> None:
        self.max_message_size = max_message_size
        self.validate = validate
        self.keepalives = 0  #: CRLFCRLF pings seen between messages (answer each with CRLF)
        self._buf = bytearray()
        self._scan = 0
        self._head: tuple[int, str, list[tuple[str, str, str]], int] | None = None
        self._error: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    @property
    def error(self) -> SipParseError | None:
        """The framing/parse error that stopped this stream, if any (see class docstring)."""
        return self._error

    @property
    def unparsed(self) -> bytes:
        """The bytes not yet framed: after an error, the failed message and what follows it
        (what a transport needs to recover the Via and answer it)."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[Request | Response]:
        if self._error is not None:
            raise self._error
        self._buf += data
        out: list[Request | Response] = []
        try:
            while True:
                msg = self._next()
                if msg is None:
                    break
                out.append(msg)
        except SipParseError as exc:
            self._error = exc
            if not out:
                raise
        return out

    def _next(self) -> Request | Response | None:
        buf = self._buf
        # keep-alives: a CRLFCRLF ping, or stray CRLFs before a start line (§7.5)
        pos = 0
        while buf.startswith(b"\r\n", pos):
            if buf.startswith(b"\r\n\r\n", pos):
                self.keepalives += 1
                pos += 4
            elif b"\r\n\r\n".startswith(buf[pos:]):
                break  # maybe the start of a ping: wait for more
            else:
                pos += 2
        if pos:
            del buf[:pos]
            self._scan = 0
        if b"\r\n\r\n".startswith(buf):
            return None  # empty, or a partial CRLF
        if self._head is None:
            end = buf.find(b"\r\n\r\n", self._scan)
            if end < 0:
                if len(buf) > self.max_message_size:
                    raise SipParseError(
                        f"header block exceeds {self.max_message_size} octets", status_hint=513
                    )
                self._scan = max(0, len(buf) - 3)
                return None
            if end + 4 > self.max_message_size:
                raise SipParseError(
                    f"header block exceeds {self.max_message_size} octets", status_hint=513
                )
            try:
                start_line, fields = _split_head(bytes(buf[:end]), 0)
                found = _content_length(fields)
                if found is None:
                    raise SipParseError(
                        "Content-Length is mandatory on stream transports",
                        header="Content-Length",
                    )
                if found is False:
                    raise SipParseError(
                        "conflicting Content-Length values", header="Content-Length"
                    )
                clen = int(found)
                if end + 4 + clen > self.max_message_size:
                    raise SipParseError(
                        f"message of {end + 4 + clen} octets exceeds {self.max_message_size}",
                        status_hint=413,
                        header="Content-Length",
                    )
            except SipParseError as exc:
                raise _with_location(exc, bytes(buf[:end]), 0) from None
            self._head = (end, start_line, fields, clen)
        end, start_line, fields, clen = self._head
        if len(buf) < end + 4 + clen:
            return None  # head parsed once; wait for the rest of the body
        self._head = None
        self._scan = 0
        head = bytes(buf[:end])
        body = bytes(buf[end + 4 : end + 4 + clen])
        try:
            msg = _build(start_line, fields, body, 0)
            if self.validate:
                _validate_values(msg)
        except SipParseError as exc:
            raise _with_location(exc, head, 0) from None  # the failed message stays unparsed
        del buf[: end + 4 + clen]
        return msg  # type: ignore[return-value]
