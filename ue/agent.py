"""The UE: a SIP user agent that registers, places and answers calls with SRTP audio.

* **Register** (RFC 3261 §10.2) through its P-CSCF (its outbound proxy: every request goes there,
  on the configured transport — UDP, TCP or TLS), answering digest challenges (401/407).
* **Calls** (RFC 3261 §13-15): INVITE with an SDP offer (RFC 3264), keys agreed by a pluggable
  :mod:`ue.keying` strategy (default SDES AES_CM_128_HMAC_SHA1_80), ACK for the 2xx along the
  route set (Record-Route reversed for the UAC, §12.1.2), BYE, CANCEL (§9.1) of a pending
  INVITE. A provisional response arriving after the 2xx (a 180 overtaken by the 200 on a
  multi-worker proxy) is ignored: the dialog is already confirmed.
* **Answering**: incoming INVITEs are answered automatically (180, then 200 with the SDP answer)
  unless :attr:`UserAgent.auto_answer` is off; each lands in :meth:`UserAgent.next_call`.
* **Media**: :class:`ims.media.session.MediaSession` sends a tone or a WAV file over SRTP (or RTP
  with ``keying="none"``) and keeps what it receives, for the tone detector or a WAV file.

The SIP user-agent core is the shared sans-I/O one (:mod:`ims.sip.dialog`): request builders,
:class:`~ims.sip.dialog.RegistrationClient` (one Call-ID, CSeq raised, digest re-use, 423,
Service-Route), :class:`~ims.sip.dialog.UacInvite` (dialog, route set, ACK, re-ACK of a
retransmitted 2xx, a 1xx after the 2xx ignored), :class:`~ims.sip.dialog.UasInvite` (To tag,
Contact/Record-Route, 2xx retransmitted until the ACK) and :class:`~ims.sip.dialog.Dialog` for
BYE; this module adds the transport (``SipEndpoint``), the SDP/keying and the media.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ims.log import get_logger
from ims.media.audio import AudioSource, BufferSink, SilenceSource, ToneSource, WavSource, WavWriter
from ims.media.session import MediaSession
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.media.tone import detect_tone, tone_ratio
from ims.sdes import SdesAnswerer, SdesChoice
from ims.sdp import Attribute as SdpAttribute
from ims.sdp import (
    LocalAudio,
    SdpError,
    SessionDescription,
    create_answer,
    create_offer,
    process_answer,
)
from ims.sip.aio.endpoint import SipEndpoint
from ims.sip.auth import DigestClient
from ims.sip.dialog import (
    AckNeeded,
    Dialog,
    DialogConfirmed,
    DialogError,
    InviteFailed,
    Local,
    Registered,
    RegistrationClient,
    RegistrationState,
    ResponseIgnored,
    UacInvite,
    UasInvite,
    Unregistered,
    build_invite,
)
from ims.sip.dialog import RegistrationFailed as _RegFailed
from ims.sip.errors import SipBuildError
from ims.sip.message import Request, Response, make_response, new_call_id, new_tag
from ue import keying as keying_mod
from ue.keying import KeyingContext, KeyingError, KeyingSession, MediaKeys

_log = get_logger("ue")


#: default audio of a UE by role (``UserAgent.audio`` overrides both)
CALLER_AUDIO = "tone:440"
CALLEE_AUDIO = "tone:1000"


class CallFailed(Exception):
    """A call attempt ended without being answered (``status`` = the final SIP status)."""

    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status = status
        self.reason = reason


class RegistrationFailed(Exception):
    def __init__(self, status: int, reason: str = "") -> None:
        super().__init__(f"REGISTER failed: {status} {reason}".strip())
        self.status = status


@dataclass(frozen=True, slots=True, kw_only=True)
class UeConfig:
    name: str
    aor: str  # the public identity registered (sip:alice@ims-a.test)
    impi: str  # private identity = digest username (alice@ims-a.test)
    password: str
    domain: str  # home domain: the registrar's Request-URI
    local_address: str
    proxy: tuple[str, int]  # the P-CSCF (outbound proxy)
    transport: str = "udp"
    local_port: int = 0
    keying: str = "sdes"
    ssl_context: ssl.SSLContext | None = None
    expires: int = 600


def audio_source(spec: str | None) -> AudioSource:
    """``tone:440`` -> a sine; ``silence``; a path -> that WAV file (8 kHz mono 16-bit, looped)."""
    if spec is None or spec == "silence":
        return SilenceSource()
    if spec.startswith("tone:"):
        return ToneSource(float(spec.split(":", 1)[1]))
    return WavSource(Path(spec), loop=True)


@dataclass(eq=False)
class Call:
    """One call (dialog) of the UE."""

    ua: UserAgent
    call_id: str
    local_tag: str
    local_uri: str
    remote_uri: str
    outgoing: bool
    invite: Request | None = None
    dialog: Dialog | None = None  # ims.sip.dialog: tags, CSeq, route set, remote target
    uac: UacInvite | None = None  # outgoing: the INVITE's responses -> dialog, ACKs
    uas: UasInvite | None = None  # incoming: our responses, 2xx retransmissions
    media: MediaSession | None = None
    keys: MediaKeys | None = None
    sink: BufferSink = field(default_factory=BufferSink)
    status: int | None = None
    established: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    provisional: list[int] = field(default_factory=list)
    ignored_late: list[int] = field(default_factory=list)
    end_reason: str = ""
    _keying: KeyingSession | None = None
    _offer: SessionDescription | None = None
    _task: asyncio.Task[Any] | None = None
    _retransmit: asyncio.Task[Any] | None = None

    # -- dialog view (read-only) --------------------------------------------------------
    @property
    def remote_tag(self) -> str | None:
        return self.dialog.id.remote_tag if self.dialog is not None else None

    @property
    def route_set(self) -> list[str]:
        return [r.encode() for r in self.dialog.route_set] if self.dialog is not None else []

    @property
    def remote_target(self) -> str | None:
        return self.dialog.remote_target.encode() if self.dialog is not None else None

    # -- results ------------------------------------------------------------------------
    @property
    def received_pcm(self) -> bytes:
        return self.sink.pcm

    def detect_tone(self, freq: float, *, skip_seconds: float = 0.2) -> bool:
        pcm = self.received_pcm[int(skip_seconds * 16000) :]
        return len(pcm) >= 1600 and detect_tone(pcm, freq)

    def tone_ratio(self, freq: float) -> float:
        pcm = self.received_pcm[3200:]
        return tone_ratio(pcm, freq) if pcm else 0.0

    def save_received(self, path: str | Path) -> None:
        with WavWriter(path) as w:
            w.write(self.received_pcm)

    # -- actions ------------------------------------------------------------------------
    async def answered(self, timeout: float = 10.0) -> Call:
        """Wait for the 2xx (and our ACK); raises :class:`CallFailed` otherwise."""
        async with asyncio.timeout(timeout):
            while not self.established.is_set():
                if self.ended.is_set():
                    raise CallFailed(self.status or 0, self.end_reason)
                waiter = asyncio.ensure_future(self.established.wait())
                ender = asyncio.ensure_future(self.ended.wait())
                await asyncio.wait({waiter, ender}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                ender.cancel()
        return self

    async def cancel(self) -> None:
        """CANCEL the pending INVITE (§9.1); the INVITE then fails with 487."""
        if self.uac is None or self.established.is_set():
            return
        with contextlib.suppress(Exception):
            await self.ua.send(self.uac.cancel())  # §9.1: same branch, CSeq number, Route

    async def hangup(self) -> int:
        """BYE (or CANCEL while unanswered); returns the BYE's final status (0 if none sent)."""
        if self.ended.is_set():
            return 0
        if not self.established.is_set():
            await self.cancel()
            return 0
        status = 0
        try:
            resp = await self.ua.send(self.ua.in_dialog_request(self, "BYE"))
            status = resp.status
        finally:
            await self._finish("local hangup")
        return status

    async def _finish(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.ended.set()
        if self._retransmit is not None and self._retransmit is not asyncio.current_task():
            self._retransmit.cancel()
        if self.media is not None:
            await self.media.stop()
        self.ua.calls.pop(self.call_id, None)

    def summary(self) -> dict[str, Any]:
        stats = self.media.snapshot().as_dict() if self.media is not None else {}
        return {
            "call_id": self.call_id,
            "keys": self.keys.description if self.keys else None,
            "received_seconds": len(self.received_pcm) / 16000,
            **{k: v for k, v in stats.items()},
        }


class UserAgent:
    """A UE on one SIP endpoint. ``async with UserAgent(cfg) as ua:`` starts and closes it."""

    def __init__(self, config: UeConfig) -> None:
        self.config = config
        self.endpoint = SipEndpoint(name=f"ue-{config.name}", client_ssl=config.ssl_context)
        self.digest = DigestClient(config.impi, config.password)
        self.calls: dict[str, Call] = {}
        self.incoming: asyncio.Queue[Call] = asyncio.Queue()
        self.auto_answer = True
        # what this UE sends; None: the default tone of its role, distinct per direction so
        # that a recording shows which party it came from (caller 440 Hz, callee 1000 Hz)
        self.audio: str | None = None
        self.answer_delay = 0.0
        self.local_port = config.local_port
        self.registration: RegistrationClient | None = None
        self.service_route: list[str] = []
        self.associated: list[str] = []
        self._call_id_host = config.local_address
        self.on_call: Callable[[Call], None] | None = None

    async def __aenter__(self) -> UserAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport --------------------------------------------------------------------------
    async def start(self) -> None:
        ep = self.endpoint
        ep.on_request(self._on_request)
        ep.on_ack(self._on_ack)
        ep.on_stray_response(self._on_stray)
        transport = self.config.transport
        # UDP: our listening socket. TCP/TLS: the connection to the P-CSCF is opened on demand
        # and reused for requests towards us (flow reuse); we still bind a UDP socket on our
        # address so Via and Contact name a real local port.
        addr = await ep.listen("udp", self.config.local_address, self.config.local_port)
        if transport == "tcp":
            await ep.listen("tcp", self.config.local_address, int(addr[1]))
        self.local_port = int(addr[1])

    async def close(self) -> None:
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await call.hangup()
        await self.endpoint.close()
        # transports close on the next loop iteration: let them, so the address can be reused
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    @property
    def local(self) -> Local:
        """Our Via sent-by and Contact (RFC 3261 §18: sent-by is where responses go for UDP;
        for TCP/TLS they come back on the connection)."""
        return Local(
            host=self.config.local_address,
            port=self.local_port,
            transport=self.config.transport.upper(),
            user=self.config.impi.split("@")[0],
            user_agent="imslab-ue",
        )

    @property
    def contact(self) -> str:
        return self.local.contact().encode()

    @property
    def registered(self) -> bool:
        rc = self.registration
        return rc is not None and rc.state is RegistrationState.REGISTERED

    @staticmethod
    def now() -> float:
        return time.monotonic()

    async def send(self, request: Request, **kwargs: Any) -> Response:
        """Send through the outbound proxy (the P-CSCF) as a client transaction."""
        if request.via is None:
            request.headers.insert_first("Via", self.local.via().encode())
        return await self.endpoint.request(
            request,
            destination=self.config.proxy,
            transport=self.config.transport,
            **kwargs,
        )

    def send_stateless(self, message: Request | Response) -> None:
        self.endpoint.send_stateless(message, self.config.proxy, transport=self.config.transport)

    # -- registration -----------------------------------------------------------------------
    async def register(self, expires: int | None = None) -> Response:
        """REGISTER (with digest auth, ``expires=0`` removes the binding); returns the final 2xx
        or raises RegistrationFailed. One :class:`~ims.sip.dialog.RegistrationClient` per UE:
        the Call-ID is kept and the CSeq raised across refreshes (§10.2.4), the last challenge
        is answered again with nc + 1 (no 401 per refresh), a 423 is retried with Min-Expires."""
        exp = self.config.expires if expires is None else expires
        rc = self.registration
        if rc is None or rc.local != self.local:
            rc = self.registration = RegistrationClient(
                f"sip:{self.config.domain}",
                self.config.aor,
                self.local,
                expires=exp if exp > 0 else self.config.expires,
                credentials=self.digest,
            )
        if exp > 0:
            rc.expires = exp
            # a refresh that is due re-uses the last challenge (nc + 1): no 401 round trip
            req: Request | None = rc.handle_timer(self.now()) or rc.register(self.now())
        else:
            req = rc.unregister(self.now())
        resp: Response | None = None
        for _ in range(4):  # first try, a challenge, a stale nonce, a 423
            if req is None:
                break
            resp = await self.send(req)
            events, req = rc.receive_response(resp, self.now())
            for ev in events:
                if isinstance(ev, Registered):
                    self.service_route = [r.encode() for r in ev.service_route]
                    self.associated = [
                        a.uri.encode() for a in ev.response.addresses("P-Associated-URI")
                    ]
                    _log.info("registered", ue=self.config.name, aor=self.config.aor)
                    return ev.response
                if isinstance(ev, Unregistered):
                    return ev.response
                if isinstance(ev, _RegFailed):
                    failed = ev.response
                    raise RegistrationFailed(
                        failed.status if failed else 0, (failed.reason or "") if failed else ""
                    )
        raise RegistrationFailed(resp.status if resp else 0, (resp.reason or "") if resp else "")

    def refresh_due(self) -> float | None:
        """When (``time.monotonic()``) the registration should be refreshed, if registered."""
        return self.registration.get_timer() if self.registration is not None else None

    async def unregister(self) -> Response:
        return await self.register(expires=0)

    # -- outgoing calls ---------------------------------------------------------------------
    def dial(self, target: str, *, audio: str | None = None, keying: str | None = None) -> Call:
        """Start an INVITE to ``target``; returns the Call at once (await ``call.answered()``)."""
        call = Call(
            ua=self,
            call_id=new_call_id(self._call_id_host),
            local_tag=new_tag(),
            local_uri=self.config.aor,
            remote_uri=target,
            outgoing=True,
        )
        self.calls[call.call_id] = call
        call._task = asyncio.ensure_future(
            self._invite(call, audio or self.audio or CALLER_AUDIO, keying)
        )
        return call

    async def call(
        self,
        target: str,
        *,
        audio: str | None = None,
        keying: str | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Place a call and wait until it is answered (raises :class:`CallFailed`)."""
        call = self.dial(target, audio=audio, keying=keying)
        return await call.answered(timeout)

    async def _new_media(self, audio: str) -> MediaSession:
        return await MediaSession.create(
            local_host=self.config.local_address,
            local_port=0,
            source=audio_source(audio),
            sink=None,
        )

    async def _invite(self, call: Call, audio: str, keying_name: str | None) -> None:
        try:
            await self._invite_inner(call, audio, keying_name)
        except CallFailed as exc:
            call.status = exc.status
            await call._finish(exc.reason)  # answered() adds the status: "404 Not Found" once
        except Exception as exc:
            _log.warning("invite failed", ue=self.config.name, error=repr(exc))
            call.status = call.status or 0
            await call._finish(repr(exc))

    async def _invite_inner(self, call: Call, audio: str, keying_name: str | None) -> None:
        strategy = keying_mod.get(keying_name or self.config.keying)
        ks = strategy.session(
            KeyingContext(
                call_id=call.call_id,
                local_uri=call.local_uri,
                remote_uri=call.remote_uri,
                initiator=True,
            )
        )
        call._keying = ks
        media = await self._new_media(audio)
        media.sink = call.sink
        call.media = media
        await keying_mod.prepare_offer(ks)  # e.g. MIKEY-TICKET's ticket from the KMS
        material = ks.offer()
        offer = create_offer(
            LocalAudio(
                address=self.config.local_address,
                port=media.local_port,
                codecs=("PCMU",),
                secure=material.secure,
                crypto=material.crypto,
                key_mgmt=material.key_mgmt,
                key_mgmt_at_session_level=material.key_mgmt_at_session_level,
            ),
            session_id=random.getrandbits(31),
        )
        if material.media_attributes:  # e.g. a=3ge2ae:requested (ue.keying.SdesE2aeKeying)
            extra = (SdpAttribute.parse(a) for a in material.media_attributes)
            offer = offer.with_media(0, offer.media[0].with_attributes_appended(extra))
        call._offer = offer
        invite = build_invite(
            call.remote_uri,
            local=self.local,
            from_=f"<{call.local_uri}>;tag={call.local_tag}",
            to=call.remote_uri,
            body=offer.encode(),
            routes=self.service_route,  # RFC 3608: the Service-Route is our preloaded Route
            call_id=call.call_id,
        )

        def provisional(resp: Response) -> None:
            self._uac_response(call, resp)

        for _ in range(3):
            call.invite = invite
            call.uac = UacInvite(invite, self.local)
            resp = await self.send(invite, on_provisional=provisional)
            if resp.status not in (401, 407):
                break
            try:
                invite = self.digest.authorize(invite, resp)  # CSeq + 1, new branch
            except SipBuildError:
                raise CallFailed(resp.status, resp.reason or "") from None
        call.status = resp.status
        self._uac_response(call, resp)  # 2xx: dialog confirmed and ACKed; else InviteFailed
        if call.dialog is None or not resp.is_success:
            raise CallFailed(resp.status, resp.reason or "")
        try:
            answer = SessionDescription.parse(resp.body)
            streams = process_answer(offer, answer)
            stream = streams[0]
            call.keys = ks.answer_received(answer, stream.index)
        except (SdpError, KeyingError, IndexError) as exc:
            _log.warning("bad answer", ue=self.config.name, error=str(exc))
            call.established.set()
            await call.hangup()
            raise CallFailed(488, f"answer not usable: {exc}") from None
        self._start_media(call, stream.remote_address, stream.remote_rtp_port, stream.payload_type)
        call.established.set()

    def _uac_response(self, call: Call, resp: Response) -> None:
        """Feed a response to our INVITE (also a stray 2xx retransmission or a late 1xx) into
        the shared UAC core and carry out what it says."""
        if call.uac is None:
            return
        ignored = False
        for ev in call.uac.receive_response(resp):
            if isinstance(ev, ResponseIgnored):
                ignored = True
            elif isinstance(ev, DialogConfirmed):
                if call.dialog is None:
                    call.dialog = ev.dialog
            elif isinstance(ev, AckNeeded):
                self.send_stateless(ev.ack)  # §13.2.2.4: every 2xx (retransmission) is ACKed
                if ev.dialog is not call.dialog and not ev.retransmission:
                    # a second forked 2xx: ACK it, then end that dialog (§13.2.2.4)
                    bye = ev.dialog.create_request("BYE", local=self.local)
                    asyncio.ensure_future(self._quiet_send(bye))
            elif isinstance(ev, InviteFailed):
                pass  # the caller raises CallFailed with the final status
        if resp.is_provisional:
            # a 1xx after the 2xx (overtaken on a multi-worker proxy) changes nothing
            (call.ignored_late if ignored else call.provisional).append(resp.status)

    async def _quiet_send(self, request: Request) -> None:
        with contextlib.suppress(Exception):
            await self.send(request)

    def in_dialog_request(self, call: Call, method: str) -> Request:
        """A request within the call's dialog (§12.2.1.1: CSeq + 1, route set, remote target)."""
        if call.dialog is None:
            raise SipBuildError("the call has no dialog")
        return call.dialog.create_request(method, local=self.local)

    def _start_media(self, call: Call, host: str, port: int, payload_type: int) -> None:
        media = call.media
        assert media is not None and call.keys is not None
        media.payload_type = payload_type
        keys = call.keys
        if keys.tx is not None and keys.rx is not None:
            if keys.inner_tx is not None and keys.inner_rx is not None:
                from ue.user_layer import LayeredReceiver, LayeredSender

                media.sender = LayeredSender(keys.tx, keys.inner_tx)
                media.receiver = LayeredReceiver(keys.rx, keys.inner_rx)
            else:
                media.sender = SrtpSender(keys.tx)
                media.receiver = SrtpReceiver(keys.rx)
        media.set_remote(host, port)
        media.start()

    # -- incoming requests ------------------------------------------------------------------
    async def _on_request(self, ctx: Any) -> None:
        req: Request = ctx.request
        to = req.to
        if req.method == "INVITE" and (to is None or to.tag is None):
            await self._incoming_invite(ctx)
            return
        call = self.calls.get(req.call_id or "")
        if req.method in ("INVITE", "BYE"):
            if call is None or call.dialog is None:
                ctx.respond(make_response(req, 481))
                return
            try:
                call.dialog.receive_request(req)  # §12.2.2: CSeq order, target refresh, BYE
            except DialogError as exc:
                ctx.respond(make_response(req, exc.status))
                return
            if req.method == "INVITE":  # a re-INVITE: kept as is, answered without SDP
                ctx.respond(make_response(req, 200, headers=[("Contact", self.contact)]))
                return
            ctx.respond(make_response(req, 200))
            await call._finish("remote hangup")
        elif req.method in ("OPTIONS", "UPDATE", "INFO", "MESSAGE", "NOTIFY"):
            ctx.respond(make_response(req, 200))
        else:
            ctx.respond(make_response(req, 405))

    async def _incoming_invite(self, ctx: Any) -> None:
        req: Request = ctx.request
        frm, to = req.from_, req.to
        assert frm is not None and to is not None
        uas = UasInvite(req, self.local)
        call = Call(
            ua=self,
            call_id=req.call_id or "",
            local_tag=uas.to_tag,
            local_uri=to.uri.encode(),
            remote_uri=frm.uri.encode(),
            outgoing=False,
            invite=req,
            uas=uas,
        )
        self.calls[call.call_id] = call

        def cancelled() -> None:  # the endpoint already answered CANCEL 200 and INVITE 487
            call.status = 487
            asyncio.ensure_future(call._finish("cancelled by caller"))

        ctx.on_cancel(cancelled)
        try:
            offer = SessionDescription.parse(req.body)
            index = next(
                i for i, m in enumerate(offer.media) if m.media == "audio" and not m.rejected
            )
            name = self._keying_for_offer(offer, index)
            ks = keying_mod.get(name).session(
                KeyingContext(
                    call_id=call.call_id,
                    local_uri=call.local_uri,
                    remote_uri=call.remote_uri,
                    initiator=False,
                    asserted_uri=next(
                        (a.uri.encode() for a in req.addresses("P-Asserted-Identity")), None
                    ),
                )
            )
            await keying_mod.prepare_answer(ks, offer, index)  # e.g. MIKEY-TICKET's resolve
            material, keys = ks.answer(offer, index)
        except (SdpError, StopIteration, KeyingError) as exc:
            status = exc.status if isinstance(exc, KeyingError) else 488
            ctx.respond(uas.respond(status or 488, self.now()))
            self.calls.pop(call.call_id, None)
            return
        media = await self._new_media(self.audio or CALLEE_AUDIO)
        media.sink = call.sink
        call.media = media
        call.keys = keys
        sdes = _FixedAnswerer(offer, index, material.crypto) if material.crypto else None
        try:
            answer = create_answer(
                offer,
                LocalAudio(
                    address=self.config.local_address,
                    port=media.local_port,
                    codecs=("PCMU", "PCMA"),
                    secure=material.secure,
                    crypto=material.crypto,
                    key_mgmt=material.key_mgmt,
                    key_mgmt_at_session_level=material.key_mgmt_at_session_level,
                    key_mgmt_accepted=material.key_mgmt_accepted,
                ),
                session_id=random.getrandbits(31),
                sdes=sdes,
            )
        except SdpError:
            ctx.respond(uas.respond(488, self.now()))
            await call._finish("488")
            return
        self.incoming.put_nowait(call)
        if self.on_call is not None:
            self.on_call(call)
        ringing = uas.respond(180, self.now())  # To tag, Contact, Record-Route (§12.1.1)
        call.dialog = uas.dialog
        ctx.respond(ringing)
        if not self.auto_answer:
            return
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        if call.ended.is_set():
            return
        stream = answer.streams[0]
        self._start_media(call, stream.remote_address, stream.remote_rtp_port, stream.payload_type)
        ok = uas.respond(200, self.now(), body=answer.sdp.encode(), content_type="application/sdp")
        call.dialog = uas.dialog
        call.status = 200
        ctx.respond(ok)
        call.established.set()
        call._retransmit = asyncio.ensure_future(self._retransmit_2xx(call))

    async def _retransmit_2xx(self, call: Call) -> None:
        """§13.3.1.4: the UAS core resends its 2xx (T1 doubling up to T2) until the ACK; no ACK
        within 64*T1 ends the call with a BYE. The timing is the shared ``UasInvite``'s."""
        uas = call.uas
        assert uas is not None
        while not call.ended.is_set():
            due = uas.get_timer()
            if due is None:
                break
            await asyncio.sleep(max(0.0, due - self.now()))
            for response in uas.handle_timer(self.now()):
                self.send_stateless(response)
        if uas.timed_out and not call.ended.is_set():
            _log.warning("no ACK for our 2xx", ue=self.config.name, call_id=call.call_id)
            await call.hangup()

    def _keying_for_offer(self, offer: SessionDescription, index: int) -> str:
        """The strategy answering this offer: ours, or ``none`` for a plain RTP offer."""
        m = offer.media[index]
        if not m.is_secure:
            return "none"
        if m.crypto:
            return "sdes" if self.config.keying in ("sdes", "none") else self.config.keying
        return self.config.keying

    def _on_ack(self, request: Request, flow: Any) -> None:
        """The ACK for our 2xx stops its retransmissions."""
        call = self.calls.get(request.call_id or "")
        if call is None or call.uas is None or not call.uas.receive_ack(request, self.now()):
            return
        if call._retransmit is not None:
            call._retransmit.cancel()

    def _on_stray(self, response: Response, flow: Any) -> None:
        """A 2xx retransmission (our ACK was lost) gets the ACK again; late 1xx are ignored."""
        call = self.calls.get(response.call_id or "")
        if call is not None and call.outgoing:
            self._uac_response(call, response)

    async def next_call(self, timeout: float = 10.0) -> Call:
        """The next incoming call (answered automatically when ``auto_answer``)."""
        async with asyncio.timeout(timeout):
            return await self.incoming.get()


class _FixedAnswerer(SdesAnswerer):
    """Hands ``create_answer`` the line the keying strategy already chose."""

    def __init__(self, offer: SessionDescription, index: int, crypto: tuple[Any, ...]) -> None:
        super().__init__()
        self._answer = crypto[0]
        self._offered = next(c for c in offer.media[index].crypto if c.tag == self._answer.tag)

    def answer(self, offered: Any) -> SdesChoice:
        return SdesChoice(offered=self._offered, answer=self._answer)


def detect(call: Call, freq: float) -> tuple[bool, float]:
    """(tone present, ratio) for a call's received audio."""
    return call.detect_tone(freq), call.tone_ratio(freq)
