"""The keying registry: every media keying a UE offers, under the name a user picks.

One explicit table (:data:`MODES`), in the study's order. Everything that lists or checks
keyings derives from it: ``imslab call --keying`` (choices and help), ``imslab run ue
--keying``, :func:`ue.keying.get` and the MIKEY credentials a running lab provisions
(:mod:`lab.credentials` generates every :data:`PROFILES` entry a mode names).

The study's PKE cases (2.3.1 A-D) use the same MIKEY mode; they differ only in who issued the
certificates and whom the UEs trust, i.e. in the *credential profile* the strategy reads:

=============== ==========================================================================
profile         certificates
=============== ==========================================================================
``operator``    each home operator's CA certifies its subscribers' keys (cases B, RSA-R,
                DH-SIGN); the default profile (also the PSKs of psk/psk-hop/dhhmac)
``external``    a CA outside the operators' control certifies the users (case A)
``escrow``      operator CAs, and the operator generated -- and keeps -- the subscriber's
                private key (case C)
``self-signed`` every user signs its own certificate (case D, DH with self-signed keys)
``kms``         no certificates: per-user MIKEY-SAKKE keys (RFC 6509) for the key period,
                issued by each home operator's KMS (:mod:`ue.keying_sakke`), and each
                user's PSK and TLS client certificate for MIKEY-TICKET (RFC 6043) with that
                KMS (:mod:`ue.keying_ticket`)
``operator-     the ``operator`` certificates under a flat trust store: a UE trusts every
flat``          operator CA for any name (case B without name binding)
``operator-psk`` the users' end-to-end PSKs made by their operators' key service, which
                keeps a copy (study Q6)
=============== ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ue import keying_mikey as km
from ue import keying_sakke, keying_ticket
from ue.keying import Keying, NoKeying, SdesE2aeKeying, SdesKeying

OPERATOR = "operator"
EXTERNAL = "external"
ESCROW = "escrow"
SELF_SIGNED = "self-signed"
KMS = "kms"
FLAT = "operator-flat"
OPERATOR_PSK = "operator-psk"

#: credential profiles and the study's words for them (lab.credentials maps them to PKIs)
PROFILES: dict[str, str] = {
    OPERATOR: "operator-issued certificates (each home operator's CA)",
    EXTERNAL: "certificates from a CA outside the operators' control",
    ESCROW: "operator-issued certificates, the operator keeps the private keys",
    SELF_SIGNED: "self-signed certificates",
    KMS: "per-user MIKEY-SAKKE keys and MIKEY-TICKET PSKs from each home operator's KMS",
    FLAT: "operator-issued certificates, every operator CA trusted for any name",
    OPERATOR_PSK: "end-to-end PSKs set up with the operators' help (they keep a copy)",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyingMode:
    """One keying a UE can use: its name, what it is, where the study discusses it."""

    name: str
    summary: str
    study: str  # the study's clause ("" when the study does not discuss it)
    factory: Callable[[], Keying]
    profile: str | None = None  # MIKEY credential profile; None: no MIKEY credentials

    @property
    def mikey(self) -> bool:
        return self.profile is not None


def _mikey(cls: type[km.MikeyKeying], name: str, profile: str) -> Callable[[], Keying]:
    def make() -> Keying:
        return cls(name=name, profile=profile)

    return make


def _user_layer() -> Keying:
    from ue.user_layer import SdesUserLayerKeying

    return SdesUserLayerKeying(profile=OPERATOR)


def _mode(
    name: str, summary: str, study: str, cls: type[km.MikeyKeying], profile: str
) -> KeyingMode:
    return KeyingMode(
        name=name, summary=summary, study=study, factory=_mikey(cls, name, profile), profile=profile
    )


MODES: tuple[KeyingMode, ...] = (
    KeyingMode(name="sdes", summary="SDES a=crypto (RFC 4568)", study="2.1", factory=SdesKeying),
    KeyingMode(
        name="sdes-user-layer",
        summary="SDES, plus the users' own end-to-end SRTP layer inside",
        study="2.4",
        factory=_user_layer,
        profile=OPERATOR,  # the users' own PSK (the one psk uses) keys the inner layer
    ),
    KeyingMode(
        name="sdes-e2ae",
        summary="SDES to the access edge (TS 33.328 e2ae): the IMS-AGW re-keys",
        study="2.2 Q4",
        factory=SdesE2aeKeying,
    ),
    KeyingMode(name="none", summary="plain RTP, no SRTP", study="", factory=NoKeying),
    _mode("psk", "MIKEY-PSK, key agreed by the two users", "2.2.1", km.PskKeying, OPERATOR),
    _mode("psk-public", "MIKEY-PSK, publicly known key", "2.2.1", km.PskPublicKeying, OPERATOR),
    _mode(
        "psk-operator",
        "MIKEY-PSK, key set up with the operators' help",
        "2.2.1 Q6",
        km.PskKeying,
        OPERATOR_PSK,
    ),
    _mode("psk-hop", "MIKEY-PSK hop by hop via the P-CSCFs", "2.2.2", km.PskHopKeying, OPERATOR),
    _mode(
        "psk-hop-cscf",
        "MIKEY-PSK hop by hop via the P-CSCFs and S-CSCFs",
        "2.2.2",
        km.PskHopCscfKeying,
        OPERATOR,
    ),
    _mode("pke", "MIKEY-PKE, the default PKI (as pke-b)", "2.3.1", km.PkeKeying, OPERATOR),
    _mode("pke-a", "MIKEY-PKE, CA outside the operators", "2.3.1 A", km.PkeKeying, EXTERNAL),
    _mode("pke-b", "MIKEY-PKE, operator-issued certificates", "2.3.1 B", km.PkeKeying, OPERATOR),
    _mode("pke-c", "MIKEY-PKE, operator holds the private keys", "2.3.1 C", km.PkeKeying, ESCROW),
    _mode("pke-d", "MIKEY-PKE, self-signed certificates", "2.3.1 D", km.PkeKeying, SELF_SIGNED),
    _mode(
        "rsa-r", "MIKEY-RSA-R (RFC 4738), operator certificates", "2.3.2", km.RsaRKeying, OPERATOR
    ),
    # issue 13: the case variants the study names beside its main rows
    _mode("pke-b-flat", "MIKEY-PKE, case B, flat trust store", "2.3.1 B", km.PkeKeying, FLAT),
    _mode("rsa-r-a", "MIKEY-RSA-R, CA outside the operators", "2.3.2/A", km.RsaRKeying, EXTERNAL),
    _mode("rsa-r-c", "MIKEY-RSA-R, operator holds the keys", "2.3.2/C", km.RsaRKeying, ESCROW),
    _mode(
        "rsa-r-d", "MIKEY-RSA-R, self-signed certificates", "2.3.2/D", km.RsaRKeying, SELF_SIGNED
    ),
    _mode("dh", "MIKEY-DH-SIGN, operator certificates", "2.3.3", km.DhKeying, OPERATOR),
    _mode("dh-a", "MIKEY-DH-SIGN, CA outside the operators", "2.3.3", km.DhKeying, EXTERNAL),
    _mode("dh-self-signed", "MIKEY-DH-SIGN, self-signed", "2.3.3", km.DhKeying, SELF_SIGNED),
    _mode("dhhmac", "MIKEY-DHHMAC (RFC 4650), users' PSK", "2.3.4", km.DhHmacKeying, OPERATOR),
    _mode(
        "dhhmac-hop",
        "MIKEY-DHHMAC, HMAC hop by hop via the P-CSCFs and S-CSCFs",
        "2.3.4",
        km.DhHmacHopKeying,
        OPERATOR,
    ),
    _mode(
        "dhhmac-public",
        "MIKEY-DHHMAC, publicly known PSK",
        "2.3.4",
        km.DhHmacPublicKeying,
        OPERATOR,
    ),
    _mode(
        "sakke",
        "MIKEY-SAKKE (RFC 6509), keys from the home operator's KMS",
        "",
        keying_sakke.SakkeKeying,
        KMS,
    ),
    _mode(
        "ticket",
        "MIKEY-TICKET (RFC 6043), tickets from the home operator's KMS",
        "",
        keying_ticket.TicketKeying,
        KMS,
    ),
)

BY_NAME: dict[str, KeyingMode] = {m.name: m for m in MODES}
assert len(BY_NAME) == len(MODES), "duplicate keying name"  # programmer error


def names() -> list[str]:
    """Every keying name, in the table's order."""
    return [m.name for m in MODES]


def profiles_used() -> list[str]:
    """The credential profiles the modes need (what a lab provisions)."""
    return list(dict.fromkeys(m.profile for m in MODES if m.profile is not None))


def help_text() -> str:
    """One line per mode, for ``--help``."""
    width = max(len(m.name) for m in MODES)
    return "\n".join(
        f"  {m.name:<{width}}  {m.summary}" + (f" (study {m.study})" if m.study else "")
        for m in MODES
    )
