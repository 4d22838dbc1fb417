"""``imslab sdp``: SDP tools.

- ``imslab sdp parse FILE|-``: print an SDP as JSON, with a=crypto decoded (keys only with
  ``--show-keys``) and a=key-mgmt summarised; ``--answer`` also shows what imslab would answer.
- ``imslab sdp offer``: write an audio offer (RTP/AVP, or RTP/SAVP with fresh SDES keys).
- ``imslab sdp answer FILE|-``: write imslab's answer to an offer (SDES §7 choice, codecs).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ims.errors import ImsError
from ims.sdes import RUNNABLE_SUITES, CryptoAttribute, make_offer, unsupported_reason
from ims.sdp import (
    KeyMgmtAttribute,
    LocalAudio,
    SdpError,
    SessionDescription,
    create_answer,
    create_offer,
)


def _crypto(c: CryptoAttribute, show_keys: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tag": c.tag,
        "suite": c.suite,
        "key_params": [],
        "session_params": [p.encode() for p in c.session_params],
        "usable": unsupported_reason(c) is None,
    }
    reason = unsupported_reason(c)
    if reason:
        out["unusable_because"] = reason
    for kp in c.key_params:
        d: dict[str, Any] = {"method": kp.method, "key_salt_bytes": len(kp.key_salt)}
        if kp.lifetime is not None:
            d["lifetime"] = kp.lifetime
        if kp.mki is not None:
            d["mki"] = kp.mki
            d["mki_length"] = kp.mki_length
        if show_keys and kp.method == "inline":
            d["master_key"] = c.master_key.hex() if kp is c.first_key else None
            d["master_salt"] = c.master_salt.hex() if kp is c.first_key else None
            d["key_salt"] = kp.key_salt.hex()
        out["key_params"].append(d)
    return out


def _key_mgmt(k: KeyMgmtAttribute, show_keys: bool) -> dict[str, Any]:
    d: dict[str, Any] = {"protocol": k.protocol, "bytes": len(k.data)}
    if show_keys:
        d["data"] = k.data.hex()
    return d


def describe(sdp: SessionDescription, *, show_keys: bool = False) -> dict[str, Any]:
    media = []
    for i, m in enumerate(sdp.media):
        conn = m.effective_connection(sdp)
        media.append(
            {
                "index": i,
                "media": m.media,
                "port": m.port,
                "rtcp_port": m.rtcp_port,
                "proto": m.proto,
                "formats": list(m.formats),
                "rtpmap": {str(pt): r.encode() for pt, r in m.rtpmaps.items()},
                "direction": sdp.media_direction(i).value,
                "connection": conn.address if conn else None,
                "ptime": m.ptime,
                "crypto": [_crypto(c, show_keys) for c in m.crypto],
                "key_mgmt": [_key_mgmt(k, show_keys) for k in m.key_mgmt],
                "attributes": [
                    a.encode() for a in m.attributes if a.name not in ("crypto", "key-mgmt")
                ],
            }
        )
    o = sdp.origin
    return {
        "origin": {
            "username": o.username,
            "sess_id": o.sess_id,
            "sess_version": o.sess_version,
            "address": o.address,
        },
        "session_name": sdp.session_name,
        "connection": sdp.connection.address if sdp.connection else None,
        "key_mgmt": [_key_mgmt(k, show_keys) for k in sdp.key_mgmt],
        "attributes": [a.encode() for a in sdp.attributes if a.name != "key-mgmt"],
        "media": media,
    }


def _parse(args: argparse.Namespace) -> int:
    data = _read(args.file)
    try:
        sdp = SessionDescription.parse(data)
        out = describe(sdp, show_keys=args.show_keys)
        if args.answer:
            ans = create_answer(sdp, LocalAudio(address="127.0.0.1", port=40000), session_id=1)
            out["answer"] = {
                "declined": list(ans.declined),
                "streams": [
                    {
                        "index": s.index,
                        "codec": s.codec,
                        "payload_type": s.payload_type,
                        "direction": s.direction.value,
                        "sdes_suite": s.sdes.suite if s.sdes else None,
                        "sdes_tag": s.sdes.tag if s.sdes else None,
                    }
                    for s in ans.streams
                ],
            }
    except SdpError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    except ImsError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _read(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()


def _offer(args: argparse.Namespace) -> int:
    crypto = make_offer(tuple(args.suite)) if args.suite else ()
    local = LocalAudio(
        address=args.address,
        port=args.port,
        codecs=tuple(args.codec or ("PCMU", "PCMA")),
        crypto=crypto,
    )
    sys.stdout.buffer.write(create_offer(local, session_id=args.session_id).encode())
    return 0


def _answer(args: argparse.Namespace) -> int:
    try:
        offer = SessionDescription.parse(_read(args.file))
        local = LocalAudio(
            address=args.address,
            port=args.port,
            codecs=tuple(args.codec or ("PCMU", "PCMA")),
            require_secure=args.require_srtp,
        )
        ans = create_answer(offer, local, session_id=args.session_id)
    except ImsError as exc:
        print(
            json.dumps({"error": str(exc), "status": getattr(exc, "status_hint", None)}),
            file=sys.stderr,
        )
        return 1
    sys.stdout.buffer.write(ans.sdp.encode())
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("sdp", help="SDP tools (parse, show what imslab would answer)")
    sdp_sub = parser.add_subparsers(dest="sdp_command", required=True)
    p = sdp_sub.add_parser("parse", help="print an SDP as JSON (a=crypto decoded)")
    p.add_argument("file", help="SDP file, or - for stdin")
    p.add_argument("--show-keys", action="store_true", help="include SRTP master keys and salts")
    p.add_argument("--answer", action="store_true", help="also show the answer imslab would give")
    p.set_defaults(func=_parse)
    o = sdp_sub.add_parser("offer", help="write an audio offer (SDES keys with --suite)")
    o.add_argument("--address", default="127.0.0.1", help="c= address (default %(default)s)")
    o.add_argument("--port", type=int, default=40000, help="m= port (default %(default)s)")
    o.add_argument(
        "--codec",
        action="append",
        choices=["PCMU", "PCMA"],
        default=None,
        help="codec, repeatable, in preference order (default: both)",
    )
    o.add_argument(
        "--suite",
        action="append",
        choices=list(RUNNABLE_SUITES),
        help="offer RTP/SAVP with this SDES suite (repeat for several)",
    )
    o.add_argument("--session-id", type=int, default=1, help="o= session id")
    o.set_defaults(func=_offer)
    a = sdp_sub.add_parser("answer", help="write imslab's answer to an offer")
    a.add_argument("file", help="offer SDP file, or - for stdin")
    a.add_argument("--address", default="127.0.0.1", help="c= address (default %(default)s)")
    a.add_argument("--port", type=int, default=40002, help="m= port (default %(default)s)")
    a.add_argument(
        "--codec",
        action="append",
        choices=["PCMU", "PCMA"],
        default=None,
        help="codec, repeatable, in preference order (default: both)",
    )
    a.add_argument("--require-srtp", action="store_true", help="reject plain RTP/AVP streams")
    a.add_argument("--session-id", type=int, default=2, help="o= session id")
    a.set_defaults(func=_answer)
