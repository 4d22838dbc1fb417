"""A client of the operator's KMS over HTTPS with mutual TLS -- an I/O adapter (blocking; the
``aio`` prefix marks the adapter modules of this tree, STYLE.md §1).

The KMS (``proxies.kms_https``) speaks HTTP/1.1 with one JSON answer per request:

* ``POST /v1/mikey`` with a MIKEY message as the body (``application/mikey``): MIKEY-TICKET's
  REQUEST_INIT_PSK / RESOLVE_INIT_PSK (RFC 6043 §4.2.1, §4.2.3); the answer is
  ``{"mikey": base64}`` -- the KMS's response or MIKEY Error message;
* the JSON resources (keys, LI recovery) with :meth:`KmsClient.request`.

Blocking on purpose: the callers are a UE keying its call (``asyncio.to_thread``), the KMS
forwarding a resolve to the issuing KMS (§10, likewise) and the LI function's worker thread.
Bounded: a timeout per request and a cap on the answer's size; the server's certificate is
verified against the lab CA, and ours is presented (RFC 6509 §3.4 "mutual authentication").
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any

from ims.errors import ImsError

MAX_ANSWER = 256 * 1024
MIKEY_PATH = "/v1/mikey"


class KmsUnreachableError(ImsError):
    """No usable answer from the KMS (connection, TLS, HTTP status or body)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class KmsClient:
    """The KMS at ``host``:``port``; ``ssl_context`` trusts the lab CA and holds our cert."""

    host: str
    port: int
    ssl_context: ssl.SSLContext
    timeout: float = 5.0

    def request(
        self, method: str, path: str, body: bytes = b"", *, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        """One request; (HTTP status, JSON answer). Raises KmsUnreachableError."""
        conn = http.client.HTTPSConnection(
            self.host, self.port, context=self.ssl_context, timeout=self.timeout
        )
        try:
            conn.request(method, path, body=body, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            raw = resp.read(MAX_ANSWER + 1)
            status = resp.status
        except (OSError, http.client.HTTPException) as exc:
            raise KmsUnreachableError(f"KMS {self.host}:{self.port}: {exc}") from None
        finally:
            conn.close()
        if len(raw) > MAX_ANSWER:
            raise KmsUnreachableError("KMS answer too large", status)
        try:
            doc = json.loads(raw)
        except ValueError:
            raise KmsUnreachableError("KMS answer is not JSON", status) from None
        if not isinstance(doc, dict):
            raise KmsUnreachableError("KMS answer is not a JSON object", status)
        return status, doc

    def mikey(self, message: bytes) -> bytes:
        """Send a MIKEY message to the KMS; its MIKEY answer (a response or an Error message)."""
        status, doc = self.request("POST", MIKEY_PATH, message, content_type="application/mikey")
        if status != 200 or not isinstance(doc.get("mikey"), str):
            raise KmsUnreachableError(f"KMS refused: {doc.get('error', status)}", status)
        try:
            return base64.b64decode(doc["mikey"], validate=True)
        except (binascii.Error, ValueError):
            raise KmsUnreachableError("KMS answer is not base64", status) from None


__all__ = ["MIKEY_PATH", "KmsClient", "KmsUnreachableError"]
