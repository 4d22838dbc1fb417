"""The capability ladder of one matrix row: what each rung grants, and what a rung's call needed.

A row of the study's table is measured by climbing the ladder of :data:`li.study.LADDER`: one real
call per rung, each rung granting LI more (always and only through X1 tasks on the network
elements), until the LEMF's output holds the decrypted audio of both directions. The lowest such
rung is the row's answer; "LI needed" is derived from the evidence of that rung's call
(:func:`needs_from_evidence`) -- which operators' LEMF directories the audio came from, where the
keys came from, whose CA issued the MITM's substitute certificates, whether the media was
re-keyed -- and from nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from li.study import LADDER, Capability, Need


@dataclass(frozen=True, slots=True, kw_only=True)
class Grants:
    """What LI may do at one rung (cumulative: every rung below it, minus the withheld ones)."""

    other_pois: bool = False  # task the POIs of the other networks on the path
    operator_keys: bool = False  # tasked operators lend the private keys they hold (X1)
    mitm_signalling: bool = False  # the intercepting operator's task authorises the MITM
    others_assist: bool = False  # the other operators' tasks authorise issuing substitutes
    mitm_media: bool = False  # the media path's anchor task authorises re-keying SRTP

    def describe(self) -> list[str]:
        out = ["own POIs"]
        if self.other_pois:
            out.append("other networks' POIs")
        if self.operator_keys:
            out.append("operator-held keys")
        if self.mitm_signalling:
            out.append("MITM signalling (intercepting operator)")
        if self.others_assist:
            out.append("other operators assist the MITM")
        if self.mitm_media:
            out.append("MITM media")
        return out


def grants(rung: Capability, withheld: frozenset[Capability] = frozenset()) -> Grants:
    """The grants of ``rung``: every capability up to it that is not withheld."""
    have = {c for c in LADDER[: LADDER.index(rung) + 1] if c not in withheld}
    return Grants(
        other_pois=Capability.OTHER_POIS in have,
        operator_keys=Capability.OPERATOR_KEYS in have,
        mitm_signalling=Capability.MITM_ONE in have,
        others_assist=Capability.MITM_BOTH in have,
        mitm_media=Capability.MITM_MEDIA in have,
    )


#: LEMF key sources (li.keys.KeySource values) that are a key an operator held and lent
OPERATOR_KEY_SOURCES = frozenset(
    {"mikey-pke-escrow", "mikey-sakke-kms", "mikey-ticket-kms", "mikey-psk-operator"}
)
MITM_KEY_SOURCES = frozenset({"mitm"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What one successful rung's call shows about how the audio was obtained."""

    intercepting_operator: str
    keys_from: frozenset[str]  # operators whose LEMF directory held the keys used
    media_from: frozenset[str]  # operators whose LEMF directory held the CC used
    key_sources: frozenset[str]  # KeySource values of the keys used
    substitutes_from: frozenset[str]  # operators whose CA issued a substitute certificate
    media_rekeyed: int  # SRTP packets the media MITM re-encrypted


def needs_from_evidence(ev: Evidence | None) -> frozenset[Need]:
    """ "LI needed" for a row: None (no rung gave both directions) is "not possible"."""
    if ev is None:
        return frozenset({Need.NOT_POSSIBLE})
    needs: set[Need] = set()
    if (ev.keys_from | ev.media_from) - {ev.intercepting_operator}:
        needs.add(Need.OTHER_NETWORK)
    if ev.key_sources & OPERATOR_KEY_SOURCES:
        needs.add(Need.OPERATOR_KEY)
    if ev.key_sources & MITM_KEY_SOURCES:
        needs.add(Need.MITM_SIGNALLING)
        if ev.substitutes_from - {ev.intercepting_operator}:
            needs.add(Need.BOTH_OPERATORS)
    if ev.media_rekeyed > 0:
        needs.add(Need.MITM_MEDIA)
    return frozenset(needs or {Need.NOTHING})
