"""The study's table and cases, as data.

Source: the 3GPP SA3-LI contribution answering SA3's LS S3-070213 on IMS media security and
lawful interception (``../shared/seed/``). Its section numbers are quoted as printed in the
study (which is itself inconsistent: SDES is "2.2" but referred to as "3.1"; the RSA method is
"2.3.1" but referred to as "3.3.1"). Every :class:`Expectation` cites the clause it comes from.

Two levels:

* :data:`STUDY_TABLE` -- the four-row summary table of clause 2.1 ("LI agency needs to:
  overcome key management-specific security in addition to IMS security / play MITM in the
  signalling path / play MITM in the media path").
* :data:`EXPECTATIONS` -- one row per (method, scenario) that ``imslab matrix`` runs: what LI
  needs, whether keys and audio are recoverable by the intercepting operator, with the quote.

The matrix compares what a real call produced against these rows (:func:`compare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Method(StrEnum):
    """Key-management methods of the study (clauses 2.2-2.3.4)."""

    SDES = "sdes"
    PSK_E2E = "psk"  # 2.2.1 pre-shared key between end points, set up by the users
    PSK_PUBLIC = "psk-public"  # 2.2.1 variation: publicly known PSK
    PSK_HOP = "psk-hop"  # 2.2.2 pre-shared key between UE and intermediaries
    PKE_A = "pke-a"  # 2.3.1 case A: CAs outside the operators' control
    PKE_A_MITM = "pke-a-mitm"  # case A, with the operator attempting the MITM anyway
    PKE_B = "pke-b"  # 2.3.1 case B: operator-issued certificates, both operators assist
    PKE_B_ONE = "pke-b-one"  # 2.3.1 case B with only one operator assisting
    PKE_C = "pke-c"  # 2.3.1 case C: operator holds the responder's private key
    PKE_D = "pke-d"  # 2.3.1 case D: self-signed certificates
    RSA_R = "rsa-r"  # 2.3.2 reverse mode RSA (RFC 4738), operator-issued certificates
    DH_SIGN = "dh"  # 2.3.3 DH with digital signatures, operator-issued certificates
    DH_SIGN_ONE = "dh-one"  # 2.3.3 with only one operator assisting
    DH_SELF_SIGNED = "dh-self-signed"  # 2.3.3 with self-signed certificates
    DHHMAC = "dhhmac"  # 2.3.4 DH-HMAC with a PSK agreed by the users
    DHHMAC_PUBLIC = "dhhmac-public"  # 2.3.4 DH-HMAC with a publicly known PSK
    SAKKE = "sakke"  # beyond the study: MIKEY-SAKKE (RFC 6509) with the operators' KMSs
    TICKET = "ticket"  # beyond the study: MIKEY-TICKET (RFC 6043) with the operators' KMSs
    # issue 13 item 6: the case variants the study names but the main table does not run
    RSA_R_A = "rsa-r-a"  # 2.3.2 with 2.3.1 case A: CAs outside the operators' control
    RSA_R_C = "rsa-r-c"  # 2.3.2 with case C: the operator holds the private keys
    RSA_R_D = "rsa-r-d"  # 2.3.2 with case D: self-signed certificates
    DH_A = "dh-a"  # 2.3.3: DH-SIGN, the users' CA outside the operators' control
    PKE_B_FLAT = "pke-b-flat"  # case B, a UE trusts every operator CA for any name
    PSK_OPERATOR = "psk-operator"  # 2.2.1 Q6: end-to-end PSK set up with the operator's help
    SDES_USER_LAYER = "sdes-user-layer"  # 2.4: SDES baseline + the users' own e2e layer inside
    PSK_HOP_CSCF = "psk-hop-cscf"  # 2.2.2 hop by hop through the S-CSCFs as well as the P-CSCFs
    DHHMAC_HOP = "dhhmac-hop"  # 2.3.4 DH-HMAC authenticated between users and intermediaries
    # issue 13 item 2: SDES ending at the access edge (TS 33.328 e2ae), the anchor re-keying
    SDES_E2AE = "sdes-e2ae"


class Scenario(StrEnum):
    """Where the call runs and who intercepts (clauses 2.1 Q2/Q3, 2.2 Q4/Q5, 3)."""

    HOME = "home"  # both UEs at home; the target (alice) calls; her operator A intercepts
    HOME_TARGET_ANSWERS = "home-target-answers"  # bob calls the target alice (she responds)
    ROAMING_HOME_PCSCF = "roaming-home-pcscf"  # visited network intercepts; P-CSCF in the home
    ROAMING_VISITED_PCSCF = "roaming-visited-pcscf"  # visited network intercepts at its P-CSCF
    NON_IMS_PEER = "non-ims-peer"  # the target calls a SIP user on the Internet
    MEDIA_PROVIDER = "media-provider"  # media carried by a separate provider (not the IMS one)
    # issue 13 item 5: the roamer's *home* network intercepts (the roamer on the visited P-CSCF)
    ROAMING_HOME_NETWORK = "roaming-home-network"


class Capability(StrEnum):
    """One rung of the capability ladder: what LI is granted, each only through an X1 task.

    The rungs are tried in this order; each adds to the ones below it. Key material an operator
    already holds comes before any MITM: handing over a key is passive, and TS 33.106 (quoted in
    the answer to Q9) expects the CSP to deliver keys it holds, whereas the answers to Q7/Q8 say
    the provider is not expected to act as a man-in-the-middle. (Climbing the MITM rungs first
    would report case C as needing a MITM instead of the responder operator's key.)
    """

    OWN_POIS = "own-pois"  # passive POIs of the intercepting (target's) network
    OTHER_POIS = "other-pois"  # + POIs of the other networks on the path
    OPERATOR_KEYS = "operator-keys"  # + key material a tasked operator holds (escrowed keys)
    MITM_ONE = "mitm-one"  # + MITM on signalling by the intercepting operator
    MITM_BOTH = "mitm-both"  # + the other operators assist the MITM (substitute certificates)
    MITM_MEDIA = "mitm-media"  # + MITM on the media path (anchor or media provider)


#: The ladder, lowest rung first.
LADDER: tuple[Capability, ...] = tuple(Capability)

RUNG_TEXT: dict[Capability, str] = {
    Capability.OWN_POIS: "passive POIs of the target's network",
    Capability.OTHER_POIS: "+ POIs of the other networks on the path",
    Capability.OPERATOR_KEYS: "+ key material the tasked operators hold",
    Capability.MITM_ONE: "+ MITM on signalling by the intercepting operator",
    Capability.MITM_BOTH: "+ the other operators assist the MITM",
    Capability.MITM_MEDIA: "+ MITM on the media path",
}


class Need(StrEnum):
    """What LI had to use to get the audio of both directions (from a rung's evidence)."""

    NOTHING = "nothing extra"  # the target's network's own POIs
    OTHER_NETWORK = "other network's LI"  # output of another network's POI was needed
    OPERATOR_KEY = "operator-held key"  # a private key an operator holds, lent over X1
    MITM_SIGNALLING = "MITM signalling"
    BOTH_OPERATORS = "both operators"  # substitute certificates from another operator's CA
    MITM_MEDIA = "MITM media"
    NOT_POSSIBLE = "not possible with any capability"


def needs_text(needs: frozenset[Need] | set[Need]) -> str:
    order = list(Need)
    return " + ".join(n.value for n in sorted(needs, key=order.index))


@dataclass(frozen=True, slots=True, kw_only=True)
class TableRow:
    """One row of the summary table in clause 2.1."""

    family: str
    overcome_key_management: bool
    mitm_signalling: bool
    mitm_media: bool
    note: str = ""


#: Clause 2.1, "The four examples for key management ... proceed from lower to higher
#: difficulties for LI as shown in the following table."
STUDY_TABLE: tuple[TableRow, ...] = (
    TableRow(family="SDES", overcome_key_management=False, mitm_signalling=False, mitm_media=False),
    TableRow(
        family="MIKEY / pre-shared key",
        overcome_key_management=True,
        mitm_signalling=False,
        mitm_media=False,
    ),
    TableRow(
        family="MIKEY / pk encryption",
        overcome_key_management=True,
        mitm_signalling=True,
        mitm_media=False,
        note="1) for case B in section 3.3.1",
    ),
    TableRow(
        family="MIKEY / DH", overcome_key_management=True, mitm_signalling=True, mitm_media=True
    ),
)

FAMILY: dict[Method, str] = {
    Method.SDES: "SDES",
    Method.PSK_E2E: "MIKEY / pre-shared key",
    Method.PSK_PUBLIC: "MIKEY / pre-shared key",
    Method.PSK_HOP: "MIKEY / pre-shared key",
    Method.PSK_HOP_CSCF: "MIKEY / pre-shared key",
    Method.DHHMAC_HOP: "MIKEY / DH",
    Method.PKE_A: "MIKEY / pk encryption",
    Method.PKE_A_MITM: "MIKEY / pk encryption",
    Method.PKE_B: "MIKEY / pk encryption",
    Method.PKE_B_ONE: "MIKEY / pk encryption",
    Method.PKE_C: "MIKEY / pk encryption",
    Method.PKE_D: "MIKEY / pk encryption",
    Method.RSA_R: "MIKEY / pk encryption",
    Method.DH_SIGN: "MIKEY / DH",
    Method.DH_SIGN_ONE: "MIKEY / DH",
    Method.DH_SELF_SIGNED: "MIKEY / DH",
    Method.DHHMAC: "MIKEY / DH",
    Method.DHHMAC_PUBLIC: "MIKEY / DH",
    # identity-based public-key encryption of the TGK (RFC 6508): the envelope family
    Method.SAKKE: "MIKEY / pk encryption",
    # keys made and handed out by a KMS the users share a PSK with (RFC 6043): the PSK family
    Method.TICKET: "MIKEY / pre-shared key",
    Method.RSA_R_A: "MIKEY / pk encryption",
    Method.RSA_R_C: "MIKEY / pk encryption",
    Method.RSA_R_D: "MIKEY / pk encryption",
    Method.DH_A: "MIKEY / DH",
    Method.PKE_B_FLAT: "MIKEY / pk encryption",
    Method.PSK_OPERATOR: "MIKEY / pre-shared key",
    Method.SDES_USER_LAYER: "SDES",
    Method.SDES_E2AE: "SDES",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What the study says one (method, scenario) gives LI, with the clause it comes from.

    ``rung``: the lowest rung of the capability ladder at which the study says LI gets the
    audio of both directions (None: not possible with any capability). ``withheld``: rungs the
    experiment does not grant (e.g. "only one operator assists"); ``first_rung``: where the
    ladder starts (a row that shows what a MITM attempt does to the call).
    """

    method: Method
    scenario: Scenario
    rung: Capability | None
    needs: frozenset[Need]
    keys_recoverable: bool
    audio_recoverable: bool
    call_succeeds: bool = True
    section: str
    quote: str
    seed_line: int  # line of ../shared/seed/000_*.txt holding the quote
    withheld: frozenset[Capability] = frozenset()
    first_rung: Capability = Capability.OWN_POIS

    @property
    def key(self) -> str:
        return f"{self.method.value}/{self.scenario.value}"

    def needs_text(self) -> str:
        return needs_text(self.needs)

    @property
    def rung_text(self) -> str:
        return self.rung.value if self.rung is not None else "none"


def _e(
    method: Method,
    scenario: Scenario,
    rung: Capability | None,
    needs: set[Need],
    section: str,
    seed_line: int,
    quote: str,
    *,
    call_succeeds: bool = True,
    withheld: frozenset[Capability] = frozenset(),
    first_rung: Capability = Capability.OWN_POIS,
) -> Expectation:
    possible = rung is not None
    return Expectation(
        method=method,
        scenario=scenario,
        rung=rung,
        needs=frozenset(needs),
        keys_recoverable=possible,
        audio_recoverable=possible,
        call_succeeds=call_succeeds,
        section=section,
        quote=quote,
        seed_line=seed_line,
        withheld=withheld,
        first_rung=first_rung,
    )


M, S, N, C = Method, Scenario, Need, Capability
ONE_OPERATOR = frozenset({Capability.MITM_BOTH})

#: One row per experiment that ``imslab matrix`` runs (a ladder of real calls each).
EXPECTATIONS: tuple[Expectation, ...] = (
    # --- both UEs at home -----------------------------------------------------------------
    _e(M.SDES, S.HOME, C.OWN_POIS, {N.NOTHING}, "2.2", 66,
       "interception of SIP signaling at any of the involved P-CSCFs or S-CSCFs using existing "
       "3GPP LI standards will reveal the media encryption keys and associated security "
       "parameters for both directions of the communications"),
    _e(M.PSK_E2E, S.HOME, None, {N.NOT_POSSIBLE}, "2.2.1", 81,
       "If this is the case then the involved operators have no reasonable way in which to "
       "provide the key to an LI agency."),
    _e(M.PSK_PUBLIC, S.HOME, C.OWN_POIS, {N.NOTHING}, "2.2.1", 85,
       "Interception could then be performed by intercepting the MIKEY messages at the P-CSCF "
       "or S-CSCFs and the scheme would have the same LI characteristics and issues as the use "
       "of SDES"),
    _e(M.PSK_HOP, S.HOME, C.OWN_POIS, {N.NOTHING}, "2.2.2", 89,
       "If all or some of the involved P-CSCFs and S-CSCFs act as intermediaries, then this "
       "case has the same LI characteristics and issues as the use of SDES"),
    _e(M.PKE_A, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.1 case A", 98,
       "The users use CAs that are outside the operator's control. Then the operator has no "
       "reasonable way to assist with interception."),
    # the same case, but the operator tries the MITM anyway: what does the call do?
    _e(M.PKE_A_MITM, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.1 case A", 98,
       "Then the operator has no reasonable way to assist with interception.",
       call_succeeds=False, first_rung=C.MITM_BOTH),
    _e(M.PKE_B, S.HOME, C.MITM_BOTH, {N.MITM_SIGNALLING, N.BOTH_OPERATORS}, "2.3.1 case B", 143,
       "The LI agency, or the operator acting on its behalf, need only act as a "
       "man-in-the-middle in the MIKEY exchange. It does not need to act as a man-in-the-middle "
       "on the media stream."),
    _e(M.PKE_B_ONE, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.1 case B", 145,
       "The IMS operators of both endpoints need to assist in the interception. If only one "
       "operator assists, then interception is not possible.", withheld=ONE_OPERATOR),
    # the target initiates: the envelope key is sealed to the *peer's* key (B holds it)
    _e(M.PKE_C, S.HOME, C.OPERATOR_KEYS, {N.OTHER_NETWORK, N.OPERATOR_KEY}, "2.3.1 case C", 147,
       "Then the operator of the responder could facilitate lawful interception by providing "
       "the private decryption key of the responder and access to the encrypted MIKEY "
       "exchange."),
    # the target answers: its own operator holds the responder's key
    _e(M.PKE_C, S.HOME_TARGET_ANSWERS, C.OPERATOR_KEYS, {N.OPERATOR_KEY}, "2.3.1 case C", 147,
       "the operator of the responder could facilitate lawful interception by providing the "
       "private decryption key of the responder"),
    _e(M.PKE_D, S.HOME, C.MITM_ONE, {N.MITM_SIGNALLING}, "2.3.1 case D", 149,
       "Interception could then be performed by acting as a man-in-the-middle in the MIKEY "
       "exchange at the P-CSCF or S-CSCFs."),
    _e(M.RSA_R, S.HOME, C.MITM_BOTH, {N.MITM_SIGNALLING, N.BOTH_OPERATORS}, "2.3.2", 155,
       "Quite similar considerations as in section 3.3.1 apply."),
    _e(M.DH_SIGN, S.HOME, C.MITM_MEDIA, {N.MITM_SIGNALLING, N.MITM_MEDIA, N.BOTH_OPERATORS},
       "2.3.3", 206,
       "the LI agency, or the operator acting on its behalf, can intercept IMS media by acting "
       "as a man-in-the-middle in both the MIKEY exchange and the media stream."),
    _e(M.DH_SIGN_ONE, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.3", 208,
       "If only one operator assists in this case, then interception is not possible.",
       withheld=ONE_OPERATOR),
    _e(M.DH_SELF_SIGNED, S.HOME, C.MITM_MEDIA, {N.MITM_SIGNALLING, N.MITM_MEDIA}, "2.3.3", 208,
       "When self-signed certificates are used, no operator-assistance regarding certificates "
       "is required."),
    _e(M.DHHMAC, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.4", 218,
       "This approach could make use of a pre-shared HMAC key agreed out of band by the end "
       "users"),
    _e(M.DHHMAC_PUBLIC, S.HOME, C.MITM_MEDIA, {N.MITM_SIGNALLING, N.MITM_MEDIA}, "2.3.3", 162,
       "the DH HMAC variant with a publicly known pre-shared key, and rely on IMS control plane "
       "security to authenticate the DH values"),
    # beyond the study (issue 14): MIKEY-SAKKE, the SSV encrypted under the responder's KMS
    # (RFC 6508 §6.2.1), whose operator can derive the responder's key -- case C's principle
    _e(M.SAKKE, S.HOME, C.OPERATOR_KEYS, {N.OTHER_NETWORK, N.OPERATOR_KEY},
       "2.3.1 case C, applied to RFC 6509", 147,
       "Then the operator of the responder could facilitate lawful interception"),
    _e(M.SAKKE, S.HOME_TARGET_ANSWERS, C.OPERATOR_KEYS, {N.OPERATOR_KEY},
       "2.3.1 case C, applied to RFC 6509", 147,
       "the operator of the responder could facilitate lawful interception"),
    # the roamer calls bob: the visited network has no KMS; bob's operator's KMS has the keys
    _e(M.SAKKE, S.ROAMING_VISITED_PCSCF, C.OPERATOR_KEYS, {N.OTHER_NETWORK, N.OPERATOR_KEY},
       "2.3.1 case C, applied to RFC 6509", 147,
       "Then the operator of the responder could facilitate lawful interception"),
    # an Internet SIP user has no KMS, hence no SAKKE identity keys: no MIKEY-SAKKE call at all
    # (RFC 6509 §2.1: the Initiator needs the Responder's KMS Public Key)
    _e(M.SAKKE, S.NON_IMS_PEER, None, {N.NOT_POSSIBLE}, "2.1, applied to RFC 6509", 23,
       "when only one of the involved users is an IMS user and the other is a SIP user on the "
       "Internet", call_succeeds=False),
    # beyond the study (issue 14): MIKEY-TICKET. The *Initiator's* KMS makes the keys and issues
    # the ticket; the Responder's KMS resolves it (RFC 6043 §10) and so learns them too. The
    # operator that provides the keys can hand them over: the answer to Q9 (TS 33.106)
    _e(M.TICKET, S.HOME, C.OPERATOR_KEYS, {N.OPERATOR_KEY},
       "Q9 answer (TS 33.106), applied to RFC 6043", 241,
       "the CSP provides encryption keys to the subscriber or customer but does not provide the "
       "encryption itself, the CSP shall provide the keys to the LEA"),
    _e(M.TICKET, S.HOME_TARGET_ANSWERS, C.OPERATOR_KEYS, {N.OPERATOR_KEY},
       "Q9 answer (TS 33.106), applied to RFC 6043", 241,
       "the CSP provides encryption keys to the subscriber or customer but does not provide the "
       "encryption itself, the CSP shall provide the keys to the LEA"),
    # the roamer calls bob: the visited network holds no KMS; both home KMSs know the keys
    _e(M.TICKET, S.ROAMING_VISITED_PCSCF, C.OPERATOR_KEYS, {N.OTHER_NETWORK, N.OPERATOR_KEY},
       "Q9 answer (TS 33.106), applied to RFC 6043", 241,
       "the CSP provides encryption keys to the subscriber or customer but does not provide the "
       "encryption itself, the CSP shall provide the keys to the LEA"),
    # an Internet SIP user has no KMS to resolve the ticket at: no MIKEY-TICKET call
    _e(M.TICKET, S.NON_IMS_PEER, None, {N.NOT_POSSIBLE}, "2.1, applied to RFC 6043", 23,
       "when only one of the involved users is an IMS user and the other is a SIP user on the "
       "Internet", call_succeeds=False),
    # --- roaming: the visited network intercepts ---------------------------------------------
    _e(M.SDES, S.ROAMING_HOME_PCSCF, C.OTHER_POIS, {N.OTHER_NETWORK}, "2.2 Q4", 70,
       "an LI agency cannot obtain the media encryption keys from a visited network which "
       "transports the media for inbound roamers that use a P-CSCF in their home network"),
    _e(M.SDES, S.ROAMING_VISITED_PCSCF, C.OWN_POIS, {N.NOTHING}, "3", 243,
       "in the case of IMS roaming the keys will be known in both VPLMN and HPLMN"),
    _e(M.PSK_HOP, S.ROAMING_HOME_PCSCF, C.OTHER_POIS, {N.OTHER_NETWORK}, "2.2.2", 89,
       "if all intermediaries are located in the home network then a visited network cannot "
       "assist in providing the media keys to the LI agency"),
    # --- IMS user calling a non-IMS Internet user ---------------------------------------------
    _e(M.SDES, S.NON_IMS_PEER, C.OWN_POIS, {N.NOTHING}, "2.1 Q3", 26,
       "SA3LI does not see a difference in the requirement for the provider to deliver the "
       "information available."),
    _e(M.PSK_E2E, S.NON_IMS_PEER, None, {N.NOT_POSSIBLE}, "2.1", 23,
       "the key management methods described below may also be used when only one of the "
       "involved users is an IMS user and the other is a SIP user on the Internet"),
    _e(M.PKE_D, S.NON_IMS_PEER, C.MITM_ONE, {N.MITM_SIGNALLING}, "2.1 Q3", 26,
       "While the requirements are the same the information available to be delivered may be "
       "different."),
    # --- media through a separate provider ---------------------------------------------------
    _e(M.SDES, S.MEDIA_PROVIDER, C.OTHER_POIS, {N.OTHER_NETWORK}, "2.1 Q2", 19,
       "An LI agency then may need to interact with both the IMS provider and the media "
       "transport provider in order to lawfully intercept IMS media."),
    # both providers act: the IMS provider MITMs the MIKEY exchange, the media provider the media
    _e(M.DH_SIGN, S.MEDIA_PROVIDER, C.MITM_MEDIA,
       {N.OTHER_NETWORK, N.MITM_SIGNALLING, N.MITM_MEDIA, N.BOTH_OPERATORS}, "2.1 Q2 / 2.3.3", 19,
       "An LI agency then may need to interact with both the IMS provider and the media "
       "transport provider in order to lawfully intercept IMS media."),
)  # fmt: skip

#: Issue 13 item 6: the cases the study names beside its main rows (same modes, other
#: credentials, another peer, another trust model). Kept apart so other row sets merge cleanly.
CASE_VARIANTS: tuple[Expectation, ...] = (
    # RSA-R (2.3.2: "quite similar considerations ... apply") under cases A, C and D of 2.3.1
    _e(M.RSA_R_A, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.2 with 2.3.1 case A", 98,
       "The users use CAs that are outside the operator's control. Then the operator has no "
       "reasonable way to assist with interception."),
    # reverse mode: the envelope key travels sealed to the *initiator's* key, so case C's
    # "operator of the responder" becomes the initiator's operator: the target's own when it calls
    _e(M.RSA_R_C, S.HOME, C.OPERATOR_KEYS, {N.OPERATOR_KEY}, "2.3.2 with 2.3.1 case C", 153,
       "the responder sends the envelope key encrypted with the initiator's public key"),
    _e(M.RSA_R_C, S.HOME_TARGET_ANSWERS, C.OPERATOR_KEYS, {N.OTHER_NETWORK, N.OPERATOR_KEY},
       "2.3.2 with 2.3.1 case C", 153,
       "the responder sends the envelope key encrypted with the initiator's public key"),
    _e(M.RSA_R_D, S.HOME, C.MITM_ONE, {N.MITM_SIGNALLING}, "2.3.2 with 2.3.1 case D", 149,
       "Interception could then be performed by acting as a man-in-the-middle in the MIKEY "
       "exchange at the P-CSCF or S-CSCFs."),
    _e(M.DH_A, S.HOME, None, {N.NOT_POSSIBLE}, "2.3.3", 210,
       "If the users use CAs that are outside the operator's control, then the operator has no "
       "reasonable way to assist with interception."),
    # a non-IMS Internet peer: there is no second operator to issue the peer's substitute
    _e(M.PKE_B, S.NON_IMS_PEER, None, {N.NOT_POSSIBLE}, "2.3.1 case B / 2.1 Q3", 145,
       "If only one operator assists, then interception is not possible."),
    _e(M.DH_SIGN, S.NON_IMS_PEER, None, {N.NOT_POSSIBLE}, "2.3.3 / 2.1 Q3", 208,
       "If only one operator assists in this case, then interception is not possible."),
    # case B under a flat trust store: step 1's "fake" certificate can come from the
    # initiator's own operator, so one operator suffices (the study's "both" assumes name-bound
    # trust; docs/li-matrix.md)
    _e(M.PKE_B_FLAT, S.HOME, C.MITM_ONE, {N.MITM_SIGNALLING}, "2.3.1 case B, step 1", 104,
       "Here the initiator would need to be provided by the operator with a \"fake\" "
       "certificate which has the identity of the responder, but the public encryption key of "
       "the MITM."),
)  # fmt: skip

#: Issue 13 item 4 (Q6): the caller asked its operator's key service for the PSK it shares with
#: the callee; that operator keeps a copy and lends it under an X1 task (``operator-keys``).
OPERATOR_PSK_ROWS: tuple[Expectation, ...] = (
    _e(M.PSK_OPERATOR, S.HOME, C.OPERATOR_KEYS, {N.OPERATOR_KEY}, "2.2.1 Q6", 82,
       "any assistance by the operator to set up the pre-shared key between end users may "
       "constitute a requirement on the operator to provide this pre-shared key to the LI "
       "agency"),
    # bob calls the target: bob's operator B helped, so A's agency needs B's delivery
    _e(M.PSK_OPERATOR, S.HOME_TARGET_ANSWERS, C.OPERATOR_KEYS,
       {N.OTHER_NETWORK, N.OPERATOR_KEY}, "2.2.1 Q6", 82,
       "any assistance by the operator to set up the pre-shared key between end users may "
       "constitute a requirement on the operator to provide this pre-shared key to the LI "
       "agency"),
)  # fmt: skip

#: Issue 13 item 3 (study 2.4 and the TS 33.106 rule in the answer to Q9): the operator's SDES
#: baseline with the users' own end-to-end layer inside; LI decrypts only the outer layer.
USER_LAYER_ROWS: tuple[Expectation, ...] = (
    _e(M.SDES_USER_LAYER, S.HOME, None, {N.NOT_POSSIBLE}, "2.4", 232,
       "Develop the IMS media security standard such that it does not prevent (and maybe even "
       "facilitates) end users providing their own additional end-to-end security if needed."),
)  # fmt: skip

#: Issue 13 item 5: the home network intercepting its roaming subscriber (clause 3's answer).
#: The roamer uses the visited P-CSCF; the home S-CSCF sees the SDES keys, the media stays in
#: the visited network.
ROAMING_ROWS: tuple[Expectation, ...] = (
    _e(M.SDES, S.ROAMING_HOME_NETWORK, C.OTHER_POIS, {N.OTHER_NETWORK}, "3", 249,
       "Based upon national regulations, UMTS services executed in the home network may be "
       "intercepted in the home network."),
)  # fmt: skip

#: Issue 13 item 6, the intermediaries' variants: the hop-by-hop chain through the S-CSCFs as
#: well as the P-CSCFs (each link its own PSK), for MIKEY-PSK and for DH-HMAC.
HOP_ROWS: tuple[Expectation, ...] = (
    _e(M.PSK_HOP_CSCF, S.HOME, C.OWN_POIS, {N.NOTHING}, "2.2.2", 89,
       "If all or some of the involved P-CSCFs and S-CSCFs act as intermediaries, then this "
       "case has the same LI characteristics and issues as the use of SDES"),
    # the target answers: the chain's keys at the target's end are its own operator's too
    _e(M.PSK_HOP_CSCF, S.HOME_TARGET_ANSWERS, C.OWN_POIS, {N.NOTHING}, "2.2.2", 89,
       "If all or some of the involved P-CSCFs and S-CSCFs act as intermediaries, then this "
       "case has the same LI characteristics and issues as the use of SDES"),
    # DH-HMAC authenticated hop by hop: the intermediaries hold the HMAC keys, never the DH
    # secret -- so no key to hand over, but the target's own operator can MITM (it holds the
    # keys of both hops at its P-CSCF) without the other operator
    _e(M.DHHMAC_HOP, S.HOME, C.MITM_MEDIA, {N.MITM_SIGNALLING, N.MITM_MEDIA}, "2.3.4", 218,
       "or could involve running the HMAC authentication between the end users and "
       "intermediaries"),
)  # fmt: skip

#: Issue 13 items 2 and 5: the SDES security ends at the access edge (TS 33.328 e2ae, the
#: anchor decrypts and re-encrypts), at home and at the roamer's visited P-CSCF: the network
#: where it ends delivers the content en clair from its own anchor.
ACCESS_EDGE_ROWS: tuple[Expectation, ...] = (
    _e(M.SDES_E2AE, S.HOME, C.OWN_POIS, {N.NOTHING}, "2.2 Q4", 69,
       "The provider would have an obligation to deliver unencrypted (“en clair”) "
       "intercept subject’s media when encrypted tunnels terminate in their network."),
    _e(M.SDES_E2AE, S.ROAMING_VISITED_PCSCF, C.OWN_POIS, {N.NOTHING}, "3 (TS 33.106)", 249,
       "The visited network shall intercept only those UMTS services that the visited network "
       "provides to the target subscriber."),
)  # fmt: skip

EXPECTATIONS = (
    EXPECTATIONS
    + CASE_VARIANTS
    + OPERATOR_PSK_ROWS
    + USER_LAYER_ROWS
    + ROAMING_ROWS
    + HOP_ROWS
    + ACCESS_EDGE_ROWS
)

#: TS 33.106 rule quoted in the answer to Question 9.
TS_33_106_RULE = (
    "CSPs shall not be responsible for decrypting, or ensuring the LEA's ability to decrypt, any "
    "communication encrypted by a subscriber or customer, unless the encryption was provided by "
    "the CSP and the CSP possesses the information necessary to decrypt the communication or "
    "the CSP provides encryption keys but does not provide the encryption itself."
)


def ts33106_statement(
    needs: frozenset[Need],
    *,
    user_applied: bool,
    outer_layer_only: bool = False,
    own_keys: bool = False,
    en_clair: bool = False,
    visited: bool = False,
) -> str:
    """The TS 33.106 / Q7-Q8 statement for one row, from what its ladder observed.

    ``user_applied``: the keys or credentials came from the users, not from a CSP (the POI's
    content-unavailable reason or the issuer of the certificates in the MIKEY exchange).
    ``outer_layer_only``: the intercepting operator's delivery held working keys for its own
    SRTP layer, yet the decrypted media held no audio (the users encrypted again inside).
    ``own_keys``: the keys that worked came from the intercepting operator's own delivery.
    ``en_clair``: the CC came decrypted by the intercepting network itself (its anchor
    terminated the SRTP: e2ae). ``visited``: the intercepting network is the target's visited
    network, not its home.
    """
    if en_clair and needs == frozenset({Need.NOTHING}):
        if visited:
            return (
                "TS 33.106: the visited network intercepts the service it provides to the "
                "roamer -- the access-edge media security ends at its anchor -- and delivers "
                "the media en clair"
            )
        return (
            "Q4: the encryption terminates in the provider's network (its access edge): the "
            "provider delivers the media en clair, no keys needed"
        )
    if Need.NOT_POSSIBLE in needs and outer_layer_only:
        return (
            "TS 33.106: the CSP delivers the layer it encrypted, decrypted (keys from its own "
            "signalling); the content inside is encrypted by the user, which the CSP is not "
            "responsible for decrypting"
        )
    if Need.NOT_POSSIBLE in needs:
        if user_applied:
            return (
                "TS 33.106: encryption by the user, keys outside every CSP: the CSP is not "
                "responsible for decrypting; encrypted content delivered"
            )
        return (
            "Q7/Q8: CSP-issued credentials but no CSP holds the keys; only a MITM by every "
            "operator could decrypt and the provider is not expected to provide this type of "
            "assistance: encrypted content delivered"
        )
    if Need.MITM_SIGNALLING in needs or Need.MITM_MEDIA in needs:
        return (
            "Q7/Q8: decrypted only by a man-in-the-middle; the provider is not expected to "
            "provide this type of assistance (LI confidentiality could be jeopardized)"
        )
    if Need.OPERATOR_KEY in needs:
        return (
            "TS 33.106: the CSP provides the encryption keys but not the encryption: it shall "
            "provide the keys to the LEA if required by national regulations"
        )
    if Need.OTHER_NETWORK in needs and own_keys:
        return (
            "TS 33.106: the intercepting network delivers the IRI and the keys it holds; the "
            "media is carried by another network (study 2.1 Q2, clause 3), which delivers the "
            "CC of the services it provides: only together they give decrypted content"
        )
    if Need.OTHER_NETWORK in needs:
        return (
            "Q4 / TS 33.106: the intercepting network cannot provide the keys (the keys are in "
            "another CSP's network); each CSP delivers what it has and only together they give "
            "decrypted content"
        )
    return (
        "TS 33.106: encryption provided by the CSP, which possesses the keys: decrypted content "
        "delivered"
    )


def expectation(method: Method | str, scenario: Scenario | str) -> Expectation:
    m, s = Method(method), Scenario(scenario)
    for e in EXPECTATIONS:
        if e.method is m and e.scenario is s:
            return e
    raise KeyError(f"no study row for {m.value}/{s.value}")


def table_row(method: Method) -> TableRow:
    fam = FAMILY[method]
    return next(r for r in STUDY_TABLE if r.family == fam)


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """What a row's ladder of real calls gave LI (filled in by the matrix runner)."""

    rung: Capability | None  # lowest rung with both directions' audio; None: none did
    needs: frozenset[Need]
    keys_recovered: bool
    audio_recovered: bool
    call_succeeded: bool


def compare(exp: Expectation, got: Observed) -> list[str]:
    """Differences between the study's row and the observed ladder (empty: reproduced)."""
    diffs: list[str] = []
    if got.rung != exp.rung:
        g = got.rung.value if got.rung is not None else "none"
        diffs.append(f"lowest rung: study {exp.rung_text}, observed {g}")
    if got.keys_recovered != exp.keys_recoverable:
        diffs.append(f"keys: study {exp.keys_recoverable}, observed {got.keys_recovered}")
    if got.audio_recovered != exp.audio_recoverable:
        diffs.append(f"audio: study {exp.audio_recoverable}, observed {got.audio_recovered}")
    if got.call_succeeded != exp.call_succeeds:
        diffs.append(f"call: study {exp.call_succeeds}, observed {got.call_succeeded}")
    if got.needs != exp.needs:
        diffs.append(f"LI needs: study {exp.needs_text()}, observed {needs_text(got.needs)}")
    return diffs
