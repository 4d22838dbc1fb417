"""UE keying ``ticket``: MIKEY-TICKET (RFC 6043) with tickets from the home operator's KMS.

* Caller, before the offer: the Ticket Request exchange with its own KMS over HTTPS with mutual
  TLS (REQUEST_INIT_PSK / REQUEST_RESP, §4.2.1; the PSK shared with the KMS and a client
  certificate whose CN is the AoR): a ticket naming the callee, and MPKi plus the TGK.
* Offer: TRANSFER_INIT in ``a=key-mgmt:mikey`` (RFC 4567 §3; RFC 6043 §4.2.2).
* Callee, before the answer: the §4.2.2.2 early checks, then the Ticket Resolve exchange with its
  own KMS (RESOLVE_INIT_PSK / RESOLVE_RESP, §4.2.3) -- which asks the issuing KMS when the ticket
  is another operator's (§10) -- then TRANSFER_INIT verified with MPKi and TRANSFER_RESP in the
  answer (the granted policy sets F: "the Responder MUST send a TRANSFER_RESP message").
* Caller, on the answer: TRANSFER_RESP verified (V over it || TRANSFER_INIT), SRTP keys (§5.1.3).

Each user's KMS credentials are provisioned by ``imslab up`` (``lab.ticket_credentials``) as
``<dir>/<user>@<host>.json`` (0600): the identity, its KMS's identity and HTTPS address, the PSK
and the TLS files. :func:`configure` points the process at ``<dir>`` (or
``IMSLAB_TICKET_KEYS``). A peer without a KMS (a non-IMS peer) cannot resolve a ticket: the
call fails with a clear error at whoever lacks one.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims.mikey.aio_kms import KmsClient, KmsUnreachableError
from ims.mikey.errors import MikeyDecodeError, MikeyError
from ims.mikey.modes.base import ResponderReply
from ims.mikey.modes.ticket import GrantedTicket, TicketKeys, TicketRequester, TicketResolver
from ims.mikey.modes.ticket_transfer import TicketTransferInitiator, TicketTransferResponder
from ims.mikey.replay import ReplayCache
from ims.sdp.model import SessionDescription
from ue.keying import KeyingContext, KeyingError, KeyingSession
from ue.keying_mikey import SDP_IDS, MikeyKeying, _mikey_of, _MikeySession, _sdp_ids, aor

ENV_DIR = "IMSLAB_TICKET_KEYS"
_state: dict[str, Path | None] = {"dir": None}
# one cache per process: a TRANSFER_INIT replayed to any of this process's UEs is refused
_replay = ReplayCache()


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketUser:
    """One user's MIKEY-TICKET credentials: its home KMS, their PSK and the TLS files."""

    identity: str
    kms: str
    host: str
    port: int
    psk: bytes = field(repr=False)
    ca: Path
    cert: Path
    key: Path

    def client(self) -> KmsClient:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=str(self.ca))  # the KMS's certificate names its address
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return KmsClient(self.host, self.port, ctx)


def configure(directory: Path | None) -> None:
    """Where this process's UEs read their MIKEY-TICKET credentials."""
    _state["dir"] = directory


def user_file(directory: Path, uri: str) -> Path:
    name = aor(uri).partition(":")[2]
    if not name or "/" in name or name.startswith("."):
        raise KeyingError(f"no MIKEY-TICKET credentials for {uri!r}")
    return directory / f"{name}.json"


def user(uri: str) -> TicketUser:
    """``uri``'s credentials; KeyingError when it has no KMS (e.g. a non-IMS user)."""
    directory = _state["dir"]
    if directory is None and os.environ.get(ENV_DIR):
        directory = Path(os.environ[ENV_DIR])
    if directory is None:
        raise KeyingError("no MIKEY-TICKET credentials configured (`imslab up` provisions them)")
    try:
        doc = json.loads(user_file(directory, uri).read_text())
        return TicketUser(
            identity=str(doc["identity"]),
            kms=str(doc["kms"]),
            host=str(doc["host"]),
            port=int(doc["port"]),
            psk=bytes.fromhex(doc["psk"]),
            ca=Path(doc["ca"]),
            cert=Path(doc["cert"]),
            key=Path(doc["key"]),
        )
    except OSError:
        raise KeyingError(f"{aor(uri)} has no MIKEY-TICKET KMS (not an IMS subscriber?)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyingError(f"MIKEY-TICKET credentials of {aor(uri)} unreadable: {exc}") from None


async def _ask_kms(me: TicketUser, message: bytes) -> bytes:
    try:
        return await asyncio.to_thread(me.client().mikey, message)
    except (KmsUnreachableError, OSError, ssl.SSLError) as exc:
        raise KeyingError(f"KMS {me.kms} at {me.host}:{me.port}: {exc}") from None


class _Resolved:
    """The Responder with its resolved ticket: what :class:`_MikeySession` calls ``receive``."""

    def __init__(self, responder: TicketTransferResponder, keys: TicketKeys) -> None:
        self.responder, self.keys = responder, keys
        self.sdp_ids: str | None = None

    def receive(self, data: bytes, now: float) -> ResponderReply:
        self.responder.sdp_ids = self.sdp_ids
        return self.responder.complete(data, self.keys, now)


class _TicketSession(_MikeySession):
    """The generic MIKEY session plus the KMS round trips each side makes first."""

    def __init__(self, keying: TicketKeying, ctx: KeyingContext) -> None:
        super().__init__(keying, ctx)
        self.granted: GrantedTicket | None = None
        self.resolved: _Resolved | None = None

    async def prepare_offer(self) -> None:
        """§4.2.1: the Ticket Request exchange with our KMS (a ticket for the callee)."""
        me = user(self.ctx.local_uri)
        now = time.time()
        req = TicketRequester(
            identity=me.identity, kms_id=me.kms, psk=me.psk, responders=[aor(self.ctx.remote_uri)]
        )
        answer = await _ask_kms(me, req.initiate(now))
        try:
            self.granted = req.receive(answer, time.time())
        except (MikeyError, MikeyDecodeError) as exc:
            raise KeyingError(f"KMS {me.kms} refused the ticket: {exc}") from None

    async def prepare_answer(self, offer: SessionDescription, index: int) -> None:
        """§4.2.2.2 early checks, then §4.2.3 the Ticket Resolve exchange with our KMS."""
        data = _mikey_of(offer, index)
        if data is None:
            raise KeyingError("offer carries no a=key-mgmt:mikey")
        me = user(self.ctx.local_uri)
        now = time.time()
        responder = TicketTransferResponder(
            identity=me.identity, replay=_replay, sdp_ids=_sdp_ids(offer, index)
        )
        try:
            ticket = responder.early_check(data, now)
        except (MikeyError, MikeyDecodeError) as exc:
            raise KeyingError(f"MIKEY ticket rejected before resolving: {exc}") from None
        res = TicketResolver(identity=me.identity, kms_id=me.kms, psk=me.psk, ticket=ticket)
        answer = await _ask_kms(me, res.initiate(now))
        try:
            keys = res.receive(answer, time.time())
        except (MikeyError, MikeyDecodeError) as exc:
            raise KeyingError(f"KMS {me.kms} did not resolve the ticket: {exc}") from None
        self.resolved = _Resolved(responder, keys)

    def _make_initiator(self, now: float) -> Any:
        if self.granted is None:
            raise KeyingError("no ticket: the offer was not prepared (prepare_offer)")
        return TicketTransferInitiator(
            granted=self.granted,
            identity=aor(self.ctx.local_uri),
            responder=aor(self.ctx.remote_uri),
            sdp_ids=SDP_IDS,
        )

    def _make_responder(self, now: float) -> Any:
        if self.resolved is None:
            raise KeyingError("no resolved ticket: the answer was not prepared (prepare_answer)")
        return self.resolved


class TicketKeying(MikeyKeying):
    """``--keying ticket``: TRANSFER_INIT in the offer, TRANSFER_RESP in the answer."""

    name = "ticket"
    needs_response = True

    def session(self, ctx: KeyingContext) -> KeyingSession:
        return _TicketSession(self, ctx)


__all__ = ["ENV_DIR", "TicketKeying", "TicketUser", "configure", "user", "user_file"]
