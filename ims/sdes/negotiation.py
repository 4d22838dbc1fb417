"""SDES offer/answer (RFC 4568 §7).

- Offerer (§7.1.1): one or more ``a=crypto`` lines in preference order, each with a unique tag
  and the key *the offerer will send with*.
- Answerer (§7.1.2): picks exactly one acceptable line (first in offer order that it supports),
  answers with the same tag and suite and **its own** key for its own send direction. Lines it
  cannot run (unknown suite, MKI, KDR≠0, flags pylibsrtp cannot honour) are skipped with a reason;
  if none is left the stream is rejected (488 when it is the only one).
- Offerer processing the answer (§7.1.3): the answer's tag must name an offered line with the
  same suite; then the offerer sends with its offered key and receives with the answer's key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ims.media.keys import SrtpKeys
from ims.sdes.attribute import CryptoAttribute, KeyParam, unsupported_reason
from ims.sdes.errors import SdesNegotiationError
from ims.sdes.suites import RUNNABLE_SUITES, SUITES


@dataclass(frozen=True, slots=True, kw_only=True)
class SdesKeys:
    """Keys of one negotiated stream: ``tx`` protects what we send, ``rx`` what we receive."""

    tx: SrtpKeys
    rx: SrtpKeys
    tag: int
    suite: str


def keys_of(attr: CryptoAttribute) -> SrtpKeys:
    return SrtpKeys(suite=attr.suite, master_key=attr.master_key, master_salt=attr.master_salt)


def make_offer(
    suites: Sequence[str] = RUNNABLE_SUITES, rng: Callable[[int], bytes] = os.urandom
) -> tuple[CryptoAttribute, ...]:
    """Offer lines for ``suites`` (tags 1..n), each with a fresh key."""
    out = []
    for tag, name in enumerate(suites, start=1):
        suite = SUITES[name]
        out.append(
            CryptoAttribute(
                tag=tag, suite=name, key_params=(KeyParam(key_salt=rng(suite.key_salt_len)),)
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class SdesChoice:
    offered: CryptoAttribute
    answer: CryptoAttribute
    declined: tuple[tuple[int, str], ...] = ()  # (tag, reason) of lines skipped before

    @property
    def keys(self) -> SdesKeys:
        """The answerer's view: it sends with its own key, receives with the offered one."""
        return SdesKeys(
            tx=keys_of(self.answer),
            rx=keys_of(self.offered),
            tag=self.answer.tag,
            suite=self.answer.suite,
        )


class SdesAnswerer:
    """Picks one offered line per RFC 4568 §7.1.2 and makes our answer line."""

    def __init__(
        self, suites: Sequence[str] = RUNNABLE_SUITES, rng: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.suites = tuple(suites)
        self.rng = rng

    def answer(self, offered: Sequence[CryptoAttribute]) -> SdesChoice:
        tags = [a.tag for a in offered]
        if len(set(tags)) != len(tags):  # RFC 4568 §4.1: tags are unique per media description
            raise SdesNegotiationError(f"duplicate a=crypto tags in the offer: {tags}")
        declined: list[tuple[int, str]] = []
        for attr in offered:
            reason = unsupported_reason(attr)
            if reason is None and attr.suite not in self.suites:
                reason = f"crypto-suite {attr.suite} not enabled locally"
            if reason is not None:
                declined.append((attr.tag, reason))
                continue
            suite = SUITES[attr.suite]
            params = tuple(p for p in attr.session_params if p.name == "KDR" and not p.optional)
            ours = CryptoAttribute(
                tag=attr.tag,
                suite=attr.suite,
                key_params=(KeyParam(key_salt=self.rng(suite.key_salt_len)),),
                session_params=params,
            )
            return SdesChoice(offered=attr, answer=ours, declined=tuple(declined))
        raise SdesNegotiationError(
            "no acceptable a=crypto line", tuple(f"tag {t}: {r}" for t, r in declined)
        )


def select_answer(
    offered: Sequence[CryptoAttribute], answer: Sequence[CryptoAttribute]
) -> SdesKeys:
    """Offerer side (§7.1.3): match the single answer line to the offered one by tag."""
    if len(answer) != 1:
        raise SdesNegotiationError(f"answer has {len(answer)} a=crypto lines, expected exactly 1")
    ans = answer[0]
    for off in offered:
        if off.tag == ans.tag:
            if off.suite != ans.suite:
                raise SdesNegotiationError(
                    f"answer tag {ans.tag} changes suite {off.suite} -> {ans.suite}"
                )
            reason = unsupported_reason(ans)
            if reason is not None:
                raise SdesNegotiationError(f"answer line not usable: {reason}")
            return SdesKeys(tx=keys_of(off), rx=keys_of(ans), tag=ans.tag, suite=ans.suite)
    raise SdesNegotiationError(f"answer tag {ans.tag} was not offered")
