"""The KMS over HTTPS with mutual TLS: the thin asyncio adapter of :class:`proxies.kms.KmsCore`.

RFC 6509 §3.4: key provisioning "MUST provide confidentiality to all secret keys, integrity
protection to all keys, and mutual authentication of the device and the KMS" -- TLS with a
client certificate issued by the lab CA; the requester is the certificate's subject CN.
3GPP TS 33.180 defines an XML KMS interface for MCPTT; the lab's is JSON
(:mod:`ims.mikey.sakke_store` documents), one request per connection-level HTTP/1.1 message:

* ``GET /v1/community`` -- every KMS's community keys (any authenticated peer);
* ``GET /v1/keys/<YYYY-MM>`` -- the requester's own key material for that period; the
  provisioning agents (``provisioning`` CNs) add ``?user=<uri>``;
* ``POST /v1/mikey`` -- MIKEY-TICKET (RFC 6043, :mod:`proxies.kms_ticket`): a REQUEST_INIT_PSK
  or RESOLVE_INIT_PSK as the body, ``{"mikey": base64}`` the KMS's answer. A resolve of another
  KMS's ticket is forwarded to it (§10) with :class:`ims.mikey.aio_kms.KmsClient` on a worker
  thread; peer KMSs are clients here too, their CN is their KMS identity;
* ``POST /v1/li/recover`` -- the operator's LI function only (``li`` CNs): body
  ``{"i_message": base64, "targets": [uri...], "responder": uri|null}`` -- a MIKEY-SAKKE
  I_MESSAGE or a MIKEY-TICKET TRANSFER_INIT; answer the call's SRTP master keys per crypto
  session (never logged; only the audit line, without keys).

Every request's audit records go to the append-only ``audit.jsonl`` (0600) before the answer
is sent. Bounded: header 8 KiB, body 64 KiB, 10 s to read a request, 64 connections.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from ims.log import get_logger
from ims.mikey.aio_kms import MIKEY_PATH, KmsClient, KmsUnreachableError
from ims.mikey.constants import DataType
from ims.mikey.modes.base import KeyExchangeResult
from ims.mikey.sakke_store import community_doc, material_doc
from proxies.kms import PROVISIONING, AuditRecord, KmsCore, KmsRefusedError
from proxies.kms_ticket import TicketService

log = get_logger("proxies.kms")
T = TypeVar("T")

MAX_HEADER = 8192
MAX_BODY = 65536
MAX_CONNECTIONS = 64
READ_TIMEOUT = 10.0


def append_audit(path: Path, records: Iterable[AuditRecord]) -> None:
    """Append audit records (JSON lines) to the KMS's audit log, created 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        for r in records:
            f.write(json.dumps(r.as_dict()) + "\n")


def peer_common_name(ssl_object: Any) -> str | None:
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


class KmsHttpsServer:
    """Serve one operator's KMS core; ``provisioning``/``li`` are the CNs with those rights."""

    def __init__(
        self,
        core: KmsCore | Callable[[], KmsCore],
        *,
        ssl_context: ssl.SSLContext,
        audit_path: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        provisioning: Iterable[str] = (),
        li: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        tickets: TicketService | None = None,
        peers: Mapping[str, KmsClient] | None = None,
    ) -> None:
        if ssl_context.verify_mode is not ssl.CERT_REQUIRED:
            raise ValueError("the KMS needs mutual TLS (RFC 6509 §3.4)")
        # the MIKEY-SAKKE core may be given as a factory: loading a KMS's master secrets costs
        # pairing-group arithmetic, so a KMS that serves only MIKEY-TICKET never pays it
        self._core = core if isinstance(core, KmsCore) else None
        self._make_core = None if isinstance(core, KmsCore) else core
        self.ssl = ssl_context
        self.audit_path = audit_path
        self.host = host
        self.port = port
        self.provisioning = frozenset(provisioning)
        self.li = frozenset(li)
        self.clock = clock
        self.tickets = tickets
        self.peers = dict(peers or {})  # peer KMS identity -> how to reach it (RFC 6043 §10)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kms")

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_conn, self.host, self.port, ssl=self.ssl, limit=MAX_HEADER + 1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("KMS listening", host=self.host, port=self.port)

    @property
    def core(self) -> KmsCore:
        if self._core is None:
            assert self._make_core is not None
            self._core = self._make_core()
        return self._core

    async def _run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run core work on the KMS's one worker thread: off the event loop, and one request
        at a time (the cores and the audit log are not shared between threads)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args, **kw))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> KmsHttpsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._conns) >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        self._conns.add(writer)
        peer = peer_common_name(writer.get_extra_info("ssl_object"))
        try:
            request = await asyncio.wait_for(_read(reader), READ_TIMEOUT)
            status, body = (400, {"error": "bad request"}) if request is None else (0, {})
            if request is not None and request[:2] == ("POST", MIKEY_PATH):
                status, body = await self.handle_mikey(request[2], peer=peer)
            elif request is not None:
                # a recovery is a pairing (~0.3 s of pure Python): on the KMS's worker thread,
                # so an element sharing this event loop (the in-process lab) keeps relaying
                status, body = await self._run(self.handle, *request, peer=peer)
            data = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode("ascii")
                + data
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("KMS connection ended", error=type(exc).__name__)
        finally:
            self._conns.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    def handle(
        self, method: str, target: str, body: bytes, *, peer: str | None
    ) -> tuple[int, dict[str, Any]]:
        """One request from the authenticated ``peer`` (CN) -> (HTTP status, JSON body)."""
        now = self.clock()
        try:
            return 200, self._route(method, target, body, peer, now)
        except KmsRefusedError as exc:
            return exc.status, {"error": str(exc)}
        finally:
            self._audit()

    def _audit(self) -> None:
        records = self._core.drain_audit() if self._core is not None else []
        if self.tickets is not None:
            records += self.tickets.drain_audit()
        if records:
            append_audit(self.audit_path, records)

    async def handle_mikey(self, body: bytes, *, peer: str | None) -> tuple[int, dict[str, Any]]:
        """MIKEY-TICKET: one REQUEST_INIT_PSK / RESOLVE_INIT_PSK from the authenticated ``peer``."""
        if peer is None:
            return 401, {"error": "no client certificate"}
        if self.tickets is None:
            return 404, {"error": "this KMS runs no MIKEY-TICKET service"}
        message: bytes | None
        try:
            out = await self._run(self.tickets.handle, body, requester=peer, now=self.clock())
            if out.forward is not None:
                fwd = out.forward
                client = self.peers.get(fwd.kms_id)
                answer = None
                if client is not None:
                    try:
                        answer = await asyncio.to_thread(client.mikey, fwd.message)
                    except KmsUnreachableError as exc:
                        log.info("peer KMS unreachable", kms=fwd.kms_id, error=str(exc))
                message = await self._run(
                    self.tickets.forwarded, fwd, answer, requester=peer, now=self.clock()
                )
            else:
                message = out.message
        finally:
            await self._run(self._audit)
        if message is None:
            return 400, {"error": "no answer to an Error message"}
        return 200, {"mikey": base64.b64encode(message).decode("ascii")}

    def _route(
        self, method: str, target: str, body: bytes, peer: str | None, now: float
    ) -> dict[str, Any]:
        if peer is None:
            raise KmsRefusedError("no client certificate", 401)
        url = urlsplit(target)
        path = url.path
        if method == "GET" and path == "/v1/community":
            return {"community": [community_doc(k) for k in self.core.community()]}
        if method == "GET" and path.startswith("/v1/keys/"):
            period = unquote(path.removeprefix("/v1/keys/"))
            if peer in self.provisioning:
                users = parse_qs(url.query).get("user", [])
                if len(users) != 1:
                    raise KmsRefusedError("provisioning names exactly one ?user=", 400)
                m = self.core.issue(users[0], period, requester=PROVISIONING, now=now)
            else:
                m = self.core.issue(peer, period, requester=peer, now=now)
            return {"material": material_doc(m)}
        if method == "POST" and path == "/v1/li/recover":
            if peer not in self.li:
                self.core.refused(
                    requester=peer, detail="LI recovery by a non-LI identity", now=now
                )
                raise KmsRefusedError(f"{peer} is not this operator's LI function")
            req = _recover_request(body)
            if _is_transfer_init(req["i_message"]):
                if self.tickets is None:
                    raise KmsRefusedError("this KMS runs no MIKEY-TICKET service", 404)
                r = self.tickets.recover(
                    req["i_message"], requester=peer, targets=req["targets"], now=now
                )
                return {"method": "mikey-ticket", **_keys_doc(r)}
            got = self.core.recover(
                req["i_message"],
                requester=peer,
                targets=req["targets"],
                responder_uri=req["responder"],
                now=now,
            )
            return {
                "method": "mikey-sakke",
                "responder": got.responder_uri,
                "period": got.period,
                **_keys_doc(got.result),
            }
        raise KmsRefusedError(f"no such resource: {method} {path}", 404)


def _is_transfer_init(data: bytes) -> bool:
    return len(data) > 1 and data[1] == DataType.TRANSFER_INIT


def _keys_doc(r: KeyExchangeResult) -> dict[str, Any]:
    """The call's SRTP master keys per crypto session (for the LI function only)."""
    return {
        "csb_id": r.csb_id,
        "keys": [
            {
                "cs_id": k.cs_id,
                "sender": str(k.sender),
                "suite": str(k.suite),
                "master_key": k.master_key.hex(),
                "master_salt": k.master_salt.hex(),
            }
            for k in r.keys
        ],
    }


def _recover_request(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
        i_message = base64.b64decode(doc["i_message"], validate=True)
        targets = doc["targets"]
        responder = doc.get("responder")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise KmsRefusedError("malformed recovery request", 400) from None
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise KmsRefusedError("targets must be a list of URIs", 400)
    if responder is not None and not isinstance(responder, str):
        raise KmsRefusedError("responder must be a URI", 400)
    return {"i_message": i_message, "targets": targets, "responder": responder}


async def _read(reader: asyncio.StreamReader) -> tuple[str, str, bytes] | None:
    """One HTTP/1.1 request (start line, Content-Length body); None if malformed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    if len(head) > MAX_HEADER:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                return None
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            return None
    if length > MAX_BODY:
        return None
    body = await reader.readexactly(length) if length else b""
    return parts[0], parts[1], body


__all__ = ["KmsHttpsServer", "append_audit", "peer_common_name"]
