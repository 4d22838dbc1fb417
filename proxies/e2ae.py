"""End-to-access-edge SDES (3GPP TS 33.328 e2ae): SRTP that ends at the operator's media anchor.

The UE asks for it with ``a=3ge2ae:requested`` on the media line of its offer (TS 24.229); its
P-CSCF then keeps the UE's ``a=crypto`` keys to itself and puts the anchor's own keys in their
place on each side, and the anchor (the IMS-AGW role) decrypts what arrives on one leg and
protects it again with the other leg's key. The study's Q4 (seed line 69): "The provider would
have an obligation to deliver unencrypted ("en clair") intercept subject's media when encrypted
tunnels terminate in their network" -- so the anchor offers its content, decrypted, to the
observers of :attr:`EdgeMedia.content_hooks`, where the CC-POI taps.

Two halves, one per element, as the hop-by-hop MIKEY function is (:mod:`lab.mikey_hop`):

* :class:`EdgeSignalling` (sans-I/O) and :func:`signalling_hook`: a rewriting hook on the
  P-CSCF's :class:`~proxies.hooks.SipHooks`. An offer leaving toward the core with
  ``a=3ge2ae:requested`` gets, for every ``a=crypto`` line the anchor can run, a line with the
  **same tag and suite and a fresh key** of the anchor's (RFC 4568 §5.1: each line is its
  sender's key; the tag is what the answer picks, so tags map one to one and the answer's tag
  names both the UE's line and the anchor's). Lines the anchor cannot run are not offered
  onward. The attribute itself is not forwarded: the e2ae is this access edge's. The answer
  going back to the UE gets the anchor's own key for the chosen tag. The keys go to the anchor
  over its control port (``e2ae`` command: the Iq interface's role, TS 33.328 §7.2).
* :class:`EdgeMedia`: installed on the :class:`~proxies.media_anchor.MediaAnchor` (a rewriting
  hook on its :class:`~proxies.hooks.MediaHooks`, the ``e2ae`` control command, a session
  observer that forgets released sessions). Per terminated stream and direction it unprotects
  with the arriving leg's key (RFC 3711 §3.3: a packet that fails authentication is dropped),
  runs :attr:`EdgeMedia.content_hooks` on the clear packet (``clear=True``) and protects it with
  the other leg's key. Packets of streams it does not terminate pass through the content hooks
  as relayed, so one tap there sees every call once. A stream whose offer was terminated but
  whose answer has not yet arrived drops what arrives: neither side could decrypt it.

Only an initial offer from this P-CSCF's own UE (its registered flow) is terminated; offers
from the core pass untouched (the remote access edge is not ours).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ims.log import get_logger
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.sdes import CryptoAttribute, SdesError, crypto_for, keys_of, unsupported_reason
from ims.sdp import SdpError, SessionDescription, replace_crypto
from proxies.hooks import DROP, AnchorSessionEvent, MediaHooks, SessionChange, _Drop

_log = get_logger("proxies.e2ae")

#: TS 24.229 / TS 33.328: the UE's request for e2ae media protection on an m-line
E2AE_ATTRIBUTE = "3ge2ae"
E2AE_REQUESTED = "requested"
#: the anchor control command (proxies.media_anchor extensions)
COMMAND = "e2ae"
MAX_CALLS = 1000


class EdgeError(ValueError):
    """A control request the anchor cannot take (bad fields, keys it cannot run)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LegKeys:
    """One direction through the anchor: ``rx`` opens what arrives, ``tx`` protects it onward."""

    rx: CryptoAttribute
    tx: CryptoAttribute


@dataclass(frozen=True, slots=True, kw_only=True)
class Termination:
    """The keys of one terminated stream (``label``: the P-CSCF's anchor session side)."""

    call_id: str
    label: str
    stream: int
    from_access: LegKeys
    from_core: LegKeys

    def to_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "label": self.label,
            "stream": self.stream,
            "from_access": [self.from_access.rx.encode(), self.from_access.tx.encode()],
            "from_core": [self.from_core.rx.encode(), self.from_core.tx.encode()],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Termination:
        def leg(v: Any) -> LegKeys:
            if not isinstance(v, list) or len(v) != 2:
                raise EdgeError("a leg is [rx crypto, tx crypto]")
            rx, tx = (CryptoAttribute.parse(str(x)) for x in v)
            for a in (rx, tx):
                why = unsupported_reason(a)
                if why is not None:
                    raise EdgeError(why)
            return LegKeys(rx=rx, tx=tx)

        try:
            return cls(
                call_id=str(d["call_id"]),
                label=str(d.get("label", "")),
                stream=int(d["stream"]),
                from_access=leg(d["from_access"]),
                from_core=leg(d["from_core"]),
            )
        except SdesError as exc:
            raise EdgeError(str(exc)) from None


# --- the P-CSCF's half ---------------------------------------------------------------------


@dataclass(slots=True)
class _Offered:
    """One stream of an offer the edge terminated: per tag, the UE's line and the anchor's."""

    ue: dict[int, CryptoAttribute]
    anchor: dict[int, CryptoAttribute]
    answered: Termination | None = None
    #: the anchor's access-leg line given in the answer (the same on a 2xx retransmission)
    access: CryptoAttribute | None = None


@dataclass(slots=True)
class _Call:
    label: str
    streams: dict[int, _Offered] = field(default_factory=dict)


def requested(sdp: SessionDescription, index: int) -> bool:
    a = sdp.media[index].attribute(E2AE_ATTRIBUTE)
    return a is not None and (a.value or "").strip() == E2AE_REQUESTED


class EdgeSignalling:
    """The SDP side of the e2ae function (sans-I/O): rewrites offers and answers, and says which
    keys the anchor needs. At most ``max_calls`` calls are remembered, oldest dropped first."""

    def __init__(
        self, *, rng: Callable[[int], bytes] = os.urandom, max_calls: int = MAX_CALLS
    ) -> None:
        self.rng = rng
        self.max_calls = max_calls
        self.calls: dict[str, _Call] = {}

    def offer(self, call_id: str, label: str, body: bytes) -> tuple[bytes, list[int]] | None:
        """The offer to send toward the core and the streams now terminated (None: untouched).

        Streams without ``a=3ge2ae:requested``, or with no ``a=crypto`` line the anchor can
        run, stay end to end."""
        try:
            sdp = SessionDescription.parse(body)
        except SdpError:
            return None
        call = self.calls.get(call_id)
        streams: dict[int, _Offered] = {}
        out = sdp
        for i, m in enumerate(sdp.media):
            if m.rejected or not requested(sdp, i):
                continue
            ue = {c.tag: c for c in m.crypto if unsupported_reason(c) is None}
            if not ue:
                continue
            anchor = {tag: crypto_for(c.suite, tag, self.rng) for tag, c in ue.items()}
            streams[i] = _Offered(ue=ue, anchor=anchor)
            out = replace_crypto(out, i, list(anchor.values()))
            out = out.with_media(i, out.media[i].without_attributes(E2AE_ATTRIBUTE))
        if not streams:
            return None
        if call is None:
            while len(self.calls) >= self.max_calls:
                del self.calls[next(iter(self.calls))]
            call = self.calls[call_id] = _Call(label=label)
        call.streams.update(streams)
        return out.encode(), sorted(streams)

    def answer(self, call_id: str, body: bytes) -> tuple[bytes, list[Termination]] | None:
        """The answer to give the UE and the new terminations (None: not a terminated call).

        An answer that picks no tag we offered leaves that stream unterminated: the UE gets
        the answer as it came (and refuses it, having not offered those keys)."""
        call = self.calls.get(call_id)
        if call is None:
            return None
        try:
            sdp = SessionDescription.parse(body)
        except SdpError:
            return None
        out = sdp
        new: list[Termination] = []
        for i, offered in call.streams.items():
            if i >= len(sdp.media) or sdp.media[i].rejected:
                continue
            chosen = [c for c in sdp.media[i].crypto if c.tag in offered.anchor]
            if len(chosen) != 1 or unsupported_reason(chosen[0]) is not None:
                continue
            far = chosen[0]
            tag = far.tag
            if (
                offered.access is None
                or offered.answered is None
                or (offered.answered.from_core.rx != far)
            ):
                offered.access = crypto_for(offered.ue[tag].suite, tag, self.rng)
                offered.answered = Termination(
                    call_id=call_id,
                    label=call.label,
                    stream=i,
                    from_access=LegKeys(rx=offered.ue[tag], tx=offered.anchor[tag]),
                    from_core=LegKeys(rx=far, tx=offered.access),
                )
                new.append(offered.answered)
            out = replace_crypto(out, i, [offered.access])
        if out is sdp:
            return None
        return out.encode(), new

    def forget(self, call_id: str) -> None:
        self.calls.pop(call_id, None)


def signalling_hook(
    edge: EdgeSignalling,
    *,
    is_access: Callable[[tuple[str, int]], bool],
    control: Callable[[dict[str, Any]], None],
) -> Callable[[Any], Any]:
    """A rewriting hook for the P-CSCF's SIP hooks. ``is_access(peer)``: the peer is one of
    this P-CSCF's registered UE flows. ``control(fields)`` sends an ``e2ae`` command to the
    anchor (fire and forget: media that arrives before its keys is dropped, not leaked)."""

    def rewrite(event: Any) -> Any:
        if str(event.direction) != "out":
            return None
        msg = event.message
        call_id = str(msg.call_id or "")
        body = getattr(msg, "body", b"") or b""
        method = getattr(msg, "method", None)
        if method is not None:
            if method == "BYE":
                edge.forget(call_id)
            if method not in ("INVITE", "UPDATE") or b"a=3ge2ae" not in body:
                return None
            if is_access(tuple(event.peer)):
                return None  # an offer from the core: the remote edge's business
            to = msg.to
            if to is not None and to.tag and call_id not in edge.calls:
                return None  # a re-offer in a dialog this edge never terminated
            done = edge.offer(call_id, "orig", body)
            if done is None:
                return None
            new_body, streams = done
            control({"op": "expect", "call_id": call_id, "label": "orig", "streams": streams})
        else:
            status = int(getattr(msg, "status", 0))
            if call_id not in edge.calls or not is_access(tuple(event.peer)):
                return None
            if status >= 300 and getattr(msg.cseq, "method", "") == "INVITE":
                edge.forget(call_id)
                return None
            if not body or not (100 < status < 300):
                return None
            answered = edge.answer(call_id, body)
            if answered is None:
                return None
            new_body, terminations = answered
            for t in terminations:
                control({"op": "keys", **t.to_json()})
        out = msg.copy()
        out.body = new_body
        return out

    return rewrite


def anchor_control(client: Any) -> Callable[[dict[str, Any]], None]:
    """``control`` for :func:`signalling_hook` over an :class:`~proxies.media_anchor.AnchorClient`
    (its ``command``); failures are logged (the media then stays dropped, never in clear)."""
    tasks: set[asyncio.Task[Any]] = set()

    def send(fields: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(client.command(COMMAND, **fields))
        tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                _log.warning("e2ae keys not taken by the anchor", error=repr(t.exception()))

        task.add_done_callback(done)

    return send


# --- the anchor's half ---------------------------------------------------------------------


@dataclass(slots=True)
class _Relay:
    rx: SrtpReceiver
    tx: SrtpSender


@dataclass(slots=True)
class _Stream:
    from_access: _Relay | None = None
    from_core: _Relay | None = None


def _relay(keys: LegKeys) -> _Relay:
    return _Relay(rx=SrtpReceiver(keys_of(keys.rx)), tx=SrtpSender(keys_of(keys.tx)))


class EdgeMedia:
    """The anchor's SRTP termination for e2ae streams, and the tap point of its content.

    ``allowed``: addresses whose control requests are taken (the operator's P-CSCFs that use
    this anchor); empty accepts none."""

    def __init__(
        self, element: str, *, allowed: frozenset[str] = frozenset(), max_streams: int = 4000
    ) -> None:
        self.element = element
        self.allowed = allowed
        self.max_streams = max_streams
        self.content_hooks = _ContentHooks(f"{element}.content", self._sync)
        self.streams: dict[tuple[str, str, int], _Stream] = {}
        self.stats = {"terminated": 0, "unkeyed": 0, "failed": 0}
        self._anchor: Any = None
        self._detach: Callable[[], None] | None = None

    def _sync(self) -> None:
        """On the anchor's media hooks only while there is work (a terminated stream, or an
        observer of the content): without hooks the anchor relays on its bare path."""
        if self._anchor is None:
            return
        needed = bool(self.streams) or bool(self.content_hooks)
        if needed and self._detach is None:
            self._detach = self._anchor.hooks.add(self.hook)
        elif not needed and self._detach is not None:
            self._detach()
            self._detach = None

    # control
    def control(self, req: dict[str, Any], sender: tuple[str, int]) -> dict[str, Any]:
        """The ``e2ae`` command of the anchor's control protocol."""
        if sender[0] not in self.allowed:
            raise EdgeError(f"e2ae keys from {sender[0]} refused: not a P-CSCF of this anchor")
        op = req.get("op")
        if op == "expect":
            streams = req.get("streams")
            if not isinstance(streams, list):
                raise EdgeError("expect needs streams")
            for s in streams:
                self.expect(str(req["call_id"]), str(req.get("label", "")), int(s))
        elif op == "keys":
            self.key(Termination.from_json(req))
        else:
            raise EdgeError(f"unknown e2ae op {op!r}")
        return {}

    def _stream(self, key: tuple[str, str, int]) -> _Stream:
        s = self.streams.get(key)
        if s is None:
            while len(self.streams) >= self.max_streams:
                del self.streams[next(iter(self.streams))]
            s = self.streams[key] = _Stream()
            self._sync()
        return s

    def expect(self, call_id: str, label: str, stream: int) -> None:
        """From now on, the stream's packets are dropped until its keys arrive."""
        self._stream((call_id, label, stream))

    def key(self, t: Termination) -> None:
        s = self._stream((t.call_id, t.label, t.stream))
        s.from_access = _relay(t.from_access)
        s.from_core = _relay(t.from_core)

    def release(self, call_id: str, label: str | None = None) -> None:
        for k in [k for k in self.streams if k[0] == call_id and (label is None or k[1] == label)]:
            del self.streams[k]
        self._sync()

    def on_session(self, event: AnchorSessionEvent) -> None:
        key = (event.call_id, event.label, event.stream)
        if event.change is SessionChange.RELEASED and self.streams.pop(key, None) is not None:
            self._sync()

    # media
    def hook(self, event: Any) -> bytes | _Drop | None:
        """A rewriting hook for the anchor's media hooks."""
        stream = (
            self.streams.get((event.call_id, event.label, event.stream)) if self.streams else None
        )
        if stream is None:
            if not self.content_hooks:
                return None
            out = self.content_hooks.process(event)
            return None if out is event.data else out
        relay = stream.from_access if event.leg == "access" else stream.from_core
        if relay is None:
            self.stats["unkeyed"] += 1
            return DROP
        data = event.data
        plain = relay.rx.unprotect_rtcp(data) if event.rtcp else relay.rx.unprotect(data)
        if plain is None:
            self.stats["failed"] += 1
            return DROP
        if self.content_hooks:
            seen = self.content_hooks.process(dataclasses.replace(event, data=plain, clear=True))
            if isinstance(seen, _Drop):
                return DROP
            plain = seen
        sent = relay.tx.protect_rtcp(plain) if event.rtcp else relay.tx.protect(plain)
        if sent is None:
            self.stats["failed"] += 1
            return DROP
        self.stats["terminated"] += 1
        return sent

    def install(self, anchor: Any) -> Callable[[], None]:
        """Attach to ``anchor`` (a MediaAnchor); returns the detach function. Install it before
        anything else hooks the anchor's media: an observer of the content (the CC-POI) then
        sees packets as they arrived, ahead of any later rewriting hook."""
        self._anchor = anchor
        self._sync()
        remove_obs = anchor.session_observers.add(self.on_session)
        anchor.extensions[COMMAND] = self.control

        def remove() -> None:
            if self._detach is not None:
                self._detach()
                self._detach = None
            self._anchor = None
            remove_obs()
            anchor.extensions.pop(COMMAND, None)

        return remove


class _ContentHooks(MediaHooks):
    """The content hook chain, telling its :class:`EdgeMedia` when observers come and go."""

    def __init__(self, name: str, changed: Callable[[], None]) -> None:
        super().__init__(name)
        self._changed = changed

    def add(self, hook: Callable[[Any], bytes | _Drop | None]) -> Callable[[], None]:
        remove = super().add(hook)
        self._changed()

        def detach() -> None:
            remove()
            self._changed()

        return detach
