"""``imslab mikey``: decode MIKEY messages and run in-process demo exchanges.

    imslab mikey decode BASE64|@FILE [--psk HEX] [--private-key PEM] [--rand HEX]
                        [--dh-private HEX --peer-message BASE64|@FILE]
    imslab mikey demo --mode psk|pke|dh|dhhmac|rsa-r [--json] [--save DIR]

``decode`` prints every payload as JSON and, given the secret protecting the message, the
decrypted KEMAC and the derived TEK/salt per crypto session. A FILE may hold base64, raw
bytes, or SDP with an ``a=key-mgmt:mikey`` line. ``demo`` runs both sides in one process and
prints both messages and the keys each side derived (exit 1 if they differ). Printing keys is
what these commands are for; nothing here is logged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import time
from pathlib import Path
from typing import Any

from ims.mikey.certs import (
    TrustStore,
    issue_credentials,
    load_private_key,
    make_ca,
    private_key_pem,
)
from ims.mikey.constants import DhGroup
from ims.mikey.crypto import DhKeyPair
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.inspect import describe, describe_keys, open_message
from ims.mikey.message import MikeyMessage, decode_message
from ims.mikey.modes.base import KeyExchangeResult, ResponderReply
from ims.mikey.modes.dh import DhInitiator, DhResponder
from ims.mikey.modes.dhhmac import DhHmacInitiator, DhHmacResponder
from ims.mikey.modes.pke import PkeInitiator, PkeResponder
from ims.mikey.modes.psk import PskInitiator, PskResponder
from ims.mikey.modes.rsa_r import RsaRInitiator, RsaRResponder
from ims.mikey.payloads import DhPayload, RandPayload
from ims.mikey.sdp import find_key_mgmt, key_mgmt_attribute

MODES = ("psk", "pke", "dh", "dhhmac", "rsa-r")


def register(sub: Any) -> None:
    parser = sub.add_parser("mikey", help="decode MIKEY messages, run MIKEY demo exchanges")
    msub = parser.add_subparsers(dest="mikey_command", metavar="ACTION", required=True)

    dec = msub.add_parser("decode", help="print a MIKEY message (and its keys, given the secret)")
    dec.add_argument("message", help="base64 MIKEY message, or @FILE (base64, binary or SDP)")
    dec.add_argument("--psk", help="pre-shared key (hex) for PSK messages")
    dec.add_argument(
        "--private-key", type=Path, help="RSA private key (PEM) opening the PKE envelope"
    )
    dec.add_argument("--rand", help="RAND (hex) of the I_MESSAGE, for RSA-R responses")
    dec.add_argument("--dh-private", help="DH private exponent (hex) of one side (DH, DHHMAC)")
    dec.add_argument("--peer-message", help="the other message of a DH exchange (base64 or @FILE)")
    dec.set_defaults(func=_decode)

    demo = msub.add_parser("demo", help="run one MIKEY exchange in-process and show both sides")
    demo.add_argument(
        "--mode", choices=MODES, default="psk", help="MIKEY mode (default %(default)s)"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.add_argument(
        "--save",
        type=Path,
        metavar="DIR",
        help="write messages, SDP, keys (PEM), RAND, PSK and DH private value into DIR",
    )
    demo.set_defaults(func=_demo)


def _load(arg: str) -> bytes:
    if arg.startswith("@"):
        raw = Path(arg[1:]).read_bytes()
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return raw
        if "key-mgmt" in text:
            found = find_key_mgmt(text, 0)
            if found is None:
                raise SystemExit("no a=key-mgmt:mikey line in the file")
            return found
        arg = text
    try:
        return base64.b64decode("".join(arg.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SystemExit(f"not base64: {exc}") from None


def _decode(args: argparse.Namespace) -> int:
    data = _load(args.message)
    try:
        msg = decode_message(data)
    except MikeyDecodeError as exc:
        print(json.dumps({"error": str(exc), "mikey_error": exc.mikey_error.name}))
        return 1
    out: dict[str, Any] = {"length": len(data), "message": describe(msg)}
    kwargs: dict[str, Any] = {}
    if args.psk:
        kwargs["psk"] = bytes.fromhex(args.psk)
    if args.private_key:
        kwargs["private_key"] = load_private_key(args.private_key.read_bytes())
    if args.rand:
        kwargs["rand"] = bytes.fromhex(args.rand)
    if args.dh_private:
        if not args.peer_message:
            raise SystemExit("--dh-private needs --peer-message (the other side's DH value)")
        own = msg.find(DhPayload)
        peer_msg = decode_message(_load(args.peer_message))
        peer_dhs = [p for p in peer_msg.payloads if isinstance(p, DhPayload)]
        group = own.group if own is not None else DhGroup.OAKLEY_5
        kwargs["dh_private"] = DhKeyPair(group=group, private=int(args.dh_private, 16))
        mine = kwargs["dh_private"].public
        own_dhs = [p for p in msg.payloads if isinstance(p, DhPayload)]
        others = [p.value for p in (*own_dhs, *peer_dhs) if p.value != mine]
        if not others:
            raise SystemExit("the peer message carries no other DH value")
        kwargs["peer_dh_value"] = others[0]
        if "rand" not in kwargs:
            r = peer_msg.find(RandPayload)
            if r is not None:
                kwargs["rand"] = r.data
    if kwargs:
        try:
            opened = open_message(data, **kwargs)
        except MikeyError as exc:
            out["error"] = {"message": str(exc), "mikey_error": exc.mikey_error.name}
            print(json.dumps(out, indent=2))
            return 1
        if opened.sub_payloads:
            inner = MikeyMessage(hdr=msg.hdr, payloads=opened.sub_payloads)
            out["kemac_plaintext"] = describe(inner)["payloads"]
        if opened.tgk is not None:
            out["tgk"] = opened.tgk.hex()
        out["srtp_keys"] = describe_keys(opened.keys)
    print(json.dumps(out, indent=2))
    return 0


def _exchange(
    mode: str, now: float, save: Path | None = None
) -> tuple[bytes, ResponderReply, KeyExchangeResult | None]:
    if mode in ("pke", "dh", "rsa-r"):
        ca = make_ca("imslab demo operator CA", now=now)
        alice = issue_credentials(ca, "sip:alice@ims.lab", now=now)
        bob = issue_credentials(ca, "sip:bob@ims.lab", now=now)
        trust = TrustStore((ca.certificate,))
    ini: Any
    resp: Any
    if mode == "psk":
        psk = b"imslab-demo-psk!"
        ini = PskInitiator(psk=psk, idi="sip:alice@ims.lab", idr="sip:bob@ims.lab")
        resp = PskResponder(psk=psk, idr="sip:bob@ims.lab")
    elif mode == "pke":
        ini = PkeInitiator(
            credentials=alice, responder_certificate=bob.certificate, idr="sip:bob@ims.lab"
        )
        resp = PkeResponder(credentials=bob, trust=trust)
    elif mode == "dh":
        ini = DhInitiator(credentials=alice, trust=trust)
        resp = DhResponder(credentials=bob, trust=trust)
    elif mode == "dhhmac":
        ini = DhHmacInitiator(
            psk=b"imslab-demo-psk!", idi="sip:alice@ims.lab", idr="sip:bob@ims.lab"
        )
        resp = DhHmacResponder(psk=b"imslab-demo-psk!", idr="sip:bob@ims.lab")
    else:
        ini = RsaRInitiator(credentials=alice, trust=trust, idr="sip:bob@ims.lab")
        resp = RsaRResponder(credentials=bob, trust=trust)
    offer = ini.initiate(now)
    reply = resp.receive(offer, now)
    result = ini.result
    if reply.message is not None and reply.ok:
        result = ini.receive(reply.message, now)
    if save is not None:
        _save(save, mode, ini, offer, reply.message)
        if mode in ("pke", "dh", "rsa-r"):
            (save / "initiator.pem").write_bytes(private_key_pem(alice.private_key))
            (save / "responder.pem").write_bytes(private_key_pem(bob.private_key))
    return offer, reply, result


def _save(path: Path, mode: str, ini: Any, offer: bytes, answer: bytes | None) -> None:
    """Write the exchange so that the ``decode`` examples of docs/mikey.md run on it."""
    path.mkdir(parents=True, exist_ok=True)
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    (path / "i_message.b64").write_text(base64.b64encode(offer).decode() + "\n")
    (path / "offer.sdp").write_text(
        sdp + key_mgmt_attribute(offer) + "\r\nm=audio 40000 RTP/SAVP 0\r\n"
    )
    if answer is not None:
        (path / "r_message.b64").write_text(base64.b64encode(answer).decode() + "\n")
        (path / "answer.sdp").write_text(
            sdp + key_mgmt_attribute(answer) + "\r\nm=audio 40002 RTP/SAVP 0\r\n"
        )
    (path / "rand.hex").write_text(ini.rand.hex() + "\n")
    if mode in ("psk", "dhhmac"):
        (path / "psk.hex").write_text(b"imslab-demo-psk!".hex() + "\n")
    if mode in ("dh", "dhhmac"):
        (path / "initiator_dh.hex").write_text(f"{ini.dh_key.private:x}\n")


def _demo(args: argparse.Namespace) -> int:
    now = time.time()
    offer, reply, ini_result = _exchange(args.mode, now, args.save)
    resp_result = reply.result
    same = (
        ini_result is not None and resp_result is not None and ini_result.keys == resp_result.keys
    )
    doc = {
        "mode": args.mode,
        "i_message": {
            "base64": base64.b64encode(offer).decode(),
            "decoded": describe(decode_message(offer)),
        },
        "r_message": None
        if reply.message is None
        else {
            "base64": base64.b64encode(reply.message).decode(),
            "decoded": describe(decode_message(reply.message)),
        },
        "initiator_keys": describe_keys(ini_result.keys) if ini_result else None,
        "responder_keys": describe_keys(resp_result.keys) if resp_result else None,
        "keys_match": same,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(
            f"MIKEY {args.mode}: I_MESSAGE {len(offer)} bytes, "
            f"R_MESSAGE {len(reply.message) if reply.message else 0} bytes"
        )
        print(f"a=key-mgmt:mikey {doc['i_message']['base64']}")
        if reply.message:
            print(f"a=key-mgmt:mikey {doc['r_message']['base64']}")
        for side in ("initiator_keys", "responder_keys"):
            for k in doc[side] or []:
                print(
                    f"  {side.split('_')[0]:9s} CS {k['cs_id']} sender={k['sender']:9s} "
                    f"{k['suite']} key={k['master_key']} salt={k['master_salt']}"
                )
        print("keys match" if same else "KEYS DIFFER")
    if reply.error is not None:
        print(f"responder error: {reply.error}", file=sys.stderr)
    return 0 if same else 1
