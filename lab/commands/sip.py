"""``imslab sip parse FILE|-``: decode a SIP message and print it as JSON.
``imslab sip uri URI [URI2]``: a URI's fields as JSON; with two URIs, whether they are
equivalent (RFC 3261 §19.1.4 / RFC 3966 §4) -- exit 0 if equal, 1 if not, 2 if one is invalid.

Exit 0 with the message (start line, headers in order, parsed Via/From/To/CSeq/Contact/Route,
body); exit 2 with the error, its SIP status and where it failed. ``--stream`` frames the
input as a TCP stream (Content-Length mandatory) and prints every message in it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ims.sip import (
    NameAddr,
    Request,
    Response,
    SipParseError,
    SipUri,
    StreamParser,
    TelUri,
    Uri,
    Via,
    parse_message,
    parse_uri,
    uri_equal,
)


def register(sub: Any) -> None:
    parser = sub.add_parser("sip", help="SIP tools (parse a message)")
    sip_sub = parser.add_subparsers(dest="sip_command", metavar="SIPCOMMAND", required=True)
    p = sip_sub.add_parser("parse", help="parse a SIP message file (or - for stdin) to JSON")
    p.add_argument("file", help="message file, or - for stdin")
    p.add_argument("--stream", action="store_true", help="frame as a TCP stream (many messages)")
    p.add_argument("--no-validate", action="store_true", help="skip eager header validation")
    p.add_argument("--compact", action="store_true", help="one-line JSON")
    p.set_defaults(func=_parse)
    u = sip_sub.add_parser(
        "uri", help="parse a SIP/SIPS/tel URI to JSON; with two, compare them (RFC 3261 §19.1.4)"
    )
    u.add_argument("uri", nargs="+", help="one URI, or two to compare")
    u.set_defaults(func=_uri)


def uri_json(uri: Uri) -> dict[str, Any]:
    out: dict[str, Any] = {"scheme": uri.scheme, "text": uri.encode()}
    if isinstance(uri, SipUri):
        out.update(
            user=uri.user,
            host=uri.host,
            port=uri.port,
            params=[list(p) for p in uri.params],
            headers=[list(h) for h in uri.headers],
        )
    elif isinstance(uri, TelUri):
        out.update(number=uri.number, is_global=uri.is_global, params=[list(p) for p in uri.params])
    return out


def addr_json(addr: NameAddr | None) -> dict[str, Any] | None:
    if addr is None:
        return None
    return {
        "display_name": addr.display_name,
        "uri": uri_json(addr.uri),
        "params": [list(p) for p in addr.params],
    }


def via_json(via: Via) -> dict[str, Any]:
    return {
        "protocol": via.protocol,
        "transport": via.transport,
        "host": via.host,
        "port": via.port,
        "branch": via.branch,
        "received": via.received,
        "rport": via.rport if via.rport is not None else via.has_rport,
        "params": [list(p) for p in via.params],
    }


def _parsed(msg: Request | Response, name: str, fn: Any) -> Any:
    try:
        return fn()
    except SipParseError as exc:
        return {"error": str(exc), "status": exc.status_hint, "header": name}


def message_json(msg: Request | Response) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(msg, Request):
        out["type"] = "request"
        out["method"] = msg.method
        out["request_uri"] = uri_json(msg.uri)
    else:
        out["type"] = "response"
        out["status"] = msg.status
        out["reason"] = msg.reason
    out["start_line"] = msg.start_line()
    out["headers"] = [[n, v] for n, v in msg.headers]
    cseq = msg.cseq
    out["parsed"] = {
        "via": _parsed(msg, "Via", lambda: [via_json(v) for v in msg.vias]),
        "from": _parsed(msg, "From", lambda: addr_json(msg.from_)),
        "to": _parsed(msg, "To", lambda: addr_json(msg.to)),
        "call_id": msg.call_id,
        "cseq": None if cseq is None else {"seq": cseq.seq, "method": cseq.method},
        "max_forwards": _parsed(msg, "Max-Forwards", lambda: msg.max_forwards),
        "contact": _parsed(
            msg,
            "Contact",
            lambda: "*" if msg.contact_star else [addr_json(c) for c in msg.contacts],
        ),
        "route": _parsed(msg, "Route", lambda: [addr_json(r) for r in msg.routes]),
        "record_route": _parsed(
            msg, "Record-Route", lambda: [addr_json(r) for r in msg.record_routes]
        ),
        "content_type": msg.content_type,
    }
    out["body_length"] = len(msg.body)
    out["body"] = msg.body.decode("utf-8", "replace")
    return out


def _parse(args: argparse.Namespace) -> int:
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            print(f"imslab sip parse: {exc}", file=sys.stderr)
            return 1
    indent = None if args.compact else 2
    try:
        if args.stream:
            parser = StreamParser(validate=not args.no_validate)
            msgs = parser.feed(data)
            doc: Any = {
                "messages": [message_json(m) for m in msgs],
                "buffered": parser.buffered,
                "keepalives": parser.keepalives,
            }
        else:
            doc = message_json(parse_message(data, validate=not args.no_validate))
    except SipParseError as exc:
        print(json.dumps(_error_json(exc), indent=indent, ensure_ascii=False))
        print(f"imslab sip parse: {exc}", file=sys.stderr)
        return 2
    # A stream whose good messages came before a bad one: print them and the error, exit 2.
    stream_error = parser.error if args.stream else None
    if stream_error is not None:
        doc["error"] = _error_json(stream_error)
    print(json.dumps(doc, indent=indent, ensure_ascii=False))
    if stream_error is not None:
        print(f"imslab sip parse: {stream_error}", file=sys.stderr)
        return 2
    return 0


def _error_json(exc: SipParseError) -> dict[str, Any]:
    return {
        "error": str(exc),
        "status": exc.status_hint,
        "header": exc.header,
        "offset": exc.offset,
        "column": exc.column,
    }


def _uri(args: argparse.Namespace) -> int:
    if len(args.uri) > 2:
        print("imslab sip uri: give one URI, or two to compare", file=sys.stderr)
        return 2
    parsed = []
    for text in args.uri:
        try:
            parsed.append(parse_uri(text))
        except SipParseError as exc:
            print(json.dumps({"uri": text, "error": str(exc), "status": exc.status_hint}))
            return 2
    doc: dict[str, Any] = {"uris": [uri_json(u) for u in parsed]}
    for u in parsed:
        if isinstance(u, SipUri):
            tel = u.as_tel()
            doc.setdefault("aor", []).append(u.aor)
            if tel is not None:
                doc.setdefault("as_tel", []).append(tel.encode())
    if len(parsed) == 2:
        doc["equal"] = uri_equal(parsed[0], parsed[1])
    print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 0 if doc.get("equal", True) else 1
