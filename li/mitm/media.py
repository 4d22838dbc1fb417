"""Media MITM for Diffie-Hellman keying (study 2.3.3): decrypt one leg, re-encrypt for the other.

With DH-SIGN (or DH-HMAC with a known PSK) the MITM shares a different TGK with each end, so the
anchor must terminate SRTP on both legs. :class:`MediaMitm` is a rewriting hook for the anchor's
:class:`proxies.hooks.MediaHooks`: for an armed call, a packet from the initiator is unprotected
with the initiator leg's key and protected again with the responder leg's key for the same
stream (CS 1 / initiator's sender), and the reverse for the responder's packets. Which anchor
side is the initiator is learnt from the first packet whose authentication tag verifies.
Only calls armed by :mod:`li.mitm.signalling` (task-authorised) are touched; nothing is logged
per packet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ims.media.keys import SrtpKeys
from ims.media.srtp import SrtpReceiver, SrtpSender
from ims.mikey.modes.base import KeyExchangeResult
from ims.mikey.policy import Sender


def srtp_keys(result: KeyExchangeResult, sender: Sender) -> SrtpKeys:
    k = next(k for k in result.keys if k.sender is sender)
    return SrtpKeys(
        suite=str(k.suite), master_key=k.master_key, master_salt=k.master_salt, roc=k.roc
    )


@dataclass(slots=True)
class _Relay:
    """One direction: unprotect with one leg's key, protect with the other's."""

    rx: SrtpReceiver
    tx: SrtpSender


@dataclass(slots=True)
class _ArmedCall:
    from_initiator: _Relay
    from_responder: _Relay
    roles: dict[str, bool] = field(default_factory=dict)  # anchor direction -> from initiator?


class MediaMitm:
    """Re-keying relay hook for the anchor; ``arm`` per call once both MIKEY legs are keyed.

    At most ``max_calls`` calls stay armed (the oldest is dropped first): a call's contexts
    are small, but nothing tells the anchor's hook that a call ended.
    """

    def __init__(self, max_calls: int = 1000) -> None:
        self.max_calls = max_calls
        self._calls: dict[str, _ArmedCall] = {}
        self.stats = {"rekeyed": 0, "failed": 0}

    def arm(
        self, call_id: str, initiator_leg: KeyExchangeResult, responder_leg: KeyExchangeResult
    ) -> None:
        ini, res = Sender.INITIATOR, Sender.RESPONDER
        while len(self._calls) >= self.max_calls:
            del self._calls[next(iter(self._calls))]
        self._calls[call_id] = _ArmedCall(
            from_initiator=_Relay(
                rx=SrtpReceiver(srtp_keys(initiator_leg, ini)),
                tx=SrtpSender(srtp_keys(responder_leg, ini)),
            ),
            from_responder=_Relay(
                rx=SrtpReceiver(srtp_keys(responder_leg, res)),
                tx=SrtpSender(srtp_keys(initiator_leg, res)),
            ),
        )

    def disarm(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    @property
    def armed(self) -> int:
        return len(self._calls)

    def rewrite(self, *, call_id: str, direction: str, data: bytes, rtcp: bool) -> bytes | None:
        """The packet to send on (re-encrypted), or None to leave it as it is."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        role = call.roles.get(direction)
        relays = (
            [call.from_initiator, call.from_responder]
            if role is None
            else [call.from_initiator if role else call.from_responder]
        )
        for relay in relays:
            plain = relay.rx.unprotect_rtcp(data) if rtcp else relay.rx.unprotect(data)
            if plain is None:
                continue
            if role is None:
                call.roles[direction] = relay is call.from_initiator
            out = relay.tx.protect_rtcp(plain) if rtcp else relay.tx.protect(plain)
            if out is not None:
                self.stats["rekeyed"] += 1
                return out
        self.stats["failed"] += 1
        return None

    def hook(self) -> Callable[[Any], bytes | None]:
        """A rewriting hook for :class:`proxies.hooks.MediaHooks`."""

        def rewrite(event: Any) -> bytes | None:
            if event.call_id not in self._calls:
                return None
            # a call can cross the same anchor twice (one session per side: "orig"/"term"),
            # and only the session whose packet verifies re-keys it: roles per session side
            return self.rewrite(
                call_id=event.call_id,
                direction=f"{getattr(event, 'label', '')}/{event.direction}",
                data=event.data,
                rtcp=event.rtcp,
            )

        return rewrite
