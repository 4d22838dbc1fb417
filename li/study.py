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


class Scenario(StrEnum):
    """Where the call runs and who intercepts (clauses 2.1 Q2/Q3, 2.2 Q4/Q5, 3)."""

    HOME = "home"  # both UEs at home; the target's home operator intercepts
    ROAMING_HOME_PCSCF = "roaming-home-pcscf"  # visited network intercepts; P-CSCF in the home
    ROAMING_VISITED_PCSCF = "roaming-visited-pcscf"  # visited network intercepts at its P-CSCF
    NON_IMS_PEER = "non-ims-peer"  # the target calls a SIP user on the Internet
    MEDIA_PROVIDER = "media-provider"  # media carried by a separate provider (not the IMS one)


class Need(StrEnum):
    """What the LI agency (or the operator on its behalf) has to do beyond ordinary IMS LI."""

    NOTHING = "nothing extra"
    BREAK_KM = "break key management"
    MITM_SIGNALLING = "MITM signalling"
    MITM_MEDIA = "MITM media"
    BOTH_OPERATORS = "both operators"
    BOTH_PROVIDERS = "both providers"  # IMS provider (keys) and media provider (CC)
    HOME_NETWORK = "home network"  # only the home network can help (visited cannot)


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
    Method.PKE_A: "MIKEY / pk encryption",
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
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What the study says one (method, scenario) gives the intercepting operator."""

    method: Method
    scenario: Scenario
    needs: frozenset[Need]
    keys_recoverable: bool
    audio_recoverable: bool
    call_succeeds: bool = True
    section: str
    quote: str

    @property
    def key(self) -> str:
        return f"{self.method.value}/{self.scenario.value}"

    def needs_text(self) -> str:
        order = list(Need)
        return " + ".join(n.value for n in sorted(self.needs, key=order.index))


def _e(
    method: Method,
    scenario: Scenario,
    needs: set[Need],
    keys: bool,
    audio: bool,
    section: str,
    quote: str,
    *,
    call_succeeds: bool = True,
) -> Expectation:
    return Expectation(
        method=method,
        scenario=scenario,
        needs=frozenset(needs),
        keys_recoverable=keys,
        audio_recoverable=audio,
        call_succeeds=call_succeeds,
        section=section,
        quote=quote,
    )


M, S, N = Method, Scenario, Need

#: One row per call that ``imslab matrix`` places.
EXPECTATIONS: tuple[Expectation, ...] = (
    # --- both UEs at home -----------------------------------------------------------------
    _e(M.SDES, S.HOME, {N.NOTHING}, True, True, "2.2",
       "interception of SIP signaling at any of the involved P-CSCFs or S-CSCFs using existing "
       "3GPP LI standards will reveal the media encryption keys and associated security "
       "parameters for both directions of the communications"),
    _e(M.PSK_E2E, S.HOME, {N.BREAK_KM}, False, False, "2.2.1",
       "If this is the case then the involved operators have no reasonable way in which to "
       "provide the key to an LI agency."),
    _e(M.PSK_PUBLIC, S.HOME, {N.NOTHING}, True, True, "2.2.1",
       "Interception could then be performed by intercepting the MIKEY messages at the P-CSCF "
       "or S-CSCFs and the scheme would have the same LI characteristics and issues as the use "
       "of SDES"),
    _e(M.PSK_HOP, S.HOME, {N.NOTHING}, True, True, "2.2.2",
       "If all or some of the involved P-CSCFs and S-CSCFs act as intermediaries, then this "
       "case has the same LI characteristics and issues as the use of SDES"),
    # The lab runs case A with the MITM authorised anyway: the UE, trusting only its own CA,
    # rejects the substitute certificate, so the call fails (and the failure is reported).
    _e(M.PKE_A, S.HOME, {N.BREAK_KM}, False, False, "2.3.1 case A",
       "The users use CAs that are outside the operator's control. Then the operator has no "
       "reasonable way to assist with interception.", call_succeeds=False),
    _e(M.PKE_B, S.HOME, {N.MITM_SIGNALLING, N.BOTH_OPERATORS}, True, True, "2.3.1 case B",
       "The LI agency, or the operator acting on its behalf, need only act as a "
       "man-in-the-middle in the MIKEY exchange. It does not need to act as a man-in-the-middle "
       "on the media stream."),
    _e(M.PKE_B_ONE, S.HOME, {N.MITM_SIGNALLING, N.BOTH_OPERATORS}, False, False,
       "2.3.1 case B",
       "The IMS operators of both endpoints need to assist in the interception. If only one "
       "operator assists, then interception is not possible."),
    _e(M.PKE_C, S.HOME, {N.BREAK_KM}, True, True, "2.3.1 case C",
       "the operator of the responder could facilitate lawful interception by providing the "
       "private decryption key of the responder and access to the encrypted MIKEY exchange"),
    _e(M.PKE_D, S.HOME, {N.MITM_SIGNALLING}, True, True, "2.3.1 case D",
       "Interception could then be performed by acting as a man-in-the-middle in the MIKEY "
       "exchange at the P-CSCF or S-CSCFs."),
    _e(M.RSA_R, S.HOME, {N.MITM_SIGNALLING, N.BOTH_OPERATORS}, True, True, "2.3.2",
       "Quite similar considerations as in section 3.3.1 apply."),
    _e(M.DH_SIGN, S.HOME, {N.MITM_SIGNALLING, N.MITM_MEDIA, N.BOTH_OPERATORS}, True, True,
       "2.3.3",
       "The MITM shares a different DH secret key with the initiator and the responder and thus "
       "the LI agency ... can intercept IMS media by acting as a man-in-the-middle in both the "
       "MIKEY exchange and the media stream."),
    _e(M.DH_SIGN_ONE, S.HOME, {N.MITM_SIGNALLING, N.MITM_MEDIA, N.BOTH_OPERATORS}, False, False,
       "2.3.3",
       "Unless self-signed certificates are used the IMS operators of both endpoints need to "
       "assist in the interception. If only one operator assists in this case, then "
       "interception is not possible."),
    _e(M.DH_SELF_SIGNED, S.HOME, {N.MITM_SIGNALLING, N.MITM_MEDIA}, True, True, "2.3.3",
       "When self-signed certificates are used, no operator-assistance regarding certificates "
       "is required."),
    _e(M.DHHMAC, S.HOME, {N.BREAK_KM}, False, False, "2.3.4 / 2.1 table",
       "a pre-shared HMAC key agreed out of band by the end users (MIKEY / DH: overcome key "
       "management-specific security YES)"),
    _e(M.DHHMAC_PUBLIC, S.HOME, {N.MITM_SIGNALLING, N.MITM_MEDIA}, True, True, "2.3.4 / 2.3",
       "the DH HMAC variant with a publicly known pre-shared key, and rely on IMS control plane "
       "security to authenticate the DH values"),
    # --- roaming: the visited network intercepts ---------------------------------------------
    _e(M.SDES, S.ROAMING_HOME_PCSCF, {N.HOME_NETWORK}, False, False, "2.2 Q4",
       "an LI agency cannot obtain the media encryption keys from a visited network which "
       "transports the media for inbound roamers that use a P-CSCF in their home network"),
    _e(M.SDES, S.ROAMING_VISITED_PCSCF, {N.NOTHING}, True, True, "3",
       "in the case of IMS roaming the keys will be known in both VPLMN and HPLMN"),
    _e(M.PSK_HOP, S.ROAMING_HOME_PCSCF, {N.HOME_NETWORK}, False, False, "2.2.2",
       "if all intermediaries are located in the home network then a visited network cannot "
       "assist in providing the media keys to the LI agency"),
    # --- IMS user calling a non-IMS Internet user ---------------------------------------------
    _e(M.SDES, S.NON_IMS_PEER, {N.NOTHING}, True, True, "2.1 Q3",
       "SA3LI does not see a difference in the requirement for the provider to deliver the "
       "information available."),
    _e(M.PSK_E2E, S.NON_IMS_PEER, {N.BREAK_KM}, False, False, "2.1 / 2.2.1",
       "the key management methods described below may also be used when only one of the "
       "involved users is an IMS user and the other is a SIP user on the Internet"),
    _e(M.PKE_D, S.NON_IMS_PEER, {N.MITM_SIGNALLING}, True, True, "2.1 Q3 / 2.3.1 case D",
       "While the requirements are the same the information available to be delivered may be "
       "different."),
    # --- media through a separate provider ---------------------------------------------------
    _e(M.SDES, S.MEDIA_PROVIDER, {N.BOTH_PROVIDERS}, True, True, "2.1 Q2",
       "An LI agency then may need to interact with both the IMS provider and the media "
       "transport provider in order to lawfully intercept IMS media."),
    _e(M.DH_SIGN, S.MEDIA_PROVIDER, {N.MITM_SIGNALLING, N.MITM_MEDIA, N.BOTH_PROVIDERS}, False,
       False, "2.1 Q2 / 2.3.3",
       "the operator carrying the IMS signalling is not affected by any LI requirements "
       "relating to the media path (MITM on media needs the media provider)"),
)  # fmt: skip

#: TS 33.106 rule quoted in the answer to Question 9.
TS_33_106_RULE = (
    "CSPs shall not be responsible for decrypting, or ensuring the LEA's ability to decrypt, any "
    "communication encrypted by a subscriber or customer, unless the encryption was provided by "
    "the CSP and the CSP possesses the information necessary to decrypt the communication or "
    "the CSP provides encryption keys but does not provide the encryption itself."
)

#: Methods whose keys the operator provides or holds (TS 33.106: deliver decrypted content).
OPERATOR_PROVIDED: frozenset[Method] = frozenset(
    {Method.SDES, Method.PSK_PUBLIC, Method.PSK_HOP, Method.PKE_C}
)


def ts33106_outcome(method: Method, keys_recovered: bool) -> str:
    """The TS 33.106 outcome stated in the LEMF summary of a call."""
    if keys_recovered and method in OPERATOR_PROVIDED:
        return "operator-provided encryption with keys held: decrypted content delivered"
    if keys_recovered:
        return "keys obtained by task-authorised interception: decrypted content delivered"
    return (
        "encryption by the user end-to-end: encrypted content delivered with a notice "
        "(CSP not responsible for decrypting)"
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
    """What a real call gave LI (filled in by the matrix runner)."""

    needs: frozenset[Need]
    keys_recovered: bool
    audio_recovered: bool
    call_succeeded: bool


def compare(exp: Expectation, got: Observed) -> list[str]:
    """Differences between the study's row and the observed call (empty: reproduced)."""
    diffs: list[str] = []
    if got.keys_recovered != exp.keys_recoverable:
        diffs.append(f"keys: study {exp.keys_recoverable}, observed {got.keys_recovered}")
    if got.audio_recovered != exp.audio_recoverable:
        diffs.append(f"audio: study {exp.audio_recoverable}, observed {got.audio_recovered}")
    if got.call_succeeded != exp.call_succeeds:
        diffs.append(f"call: study {exp.call_succeeds}, observed {got.call_succeeded}")
    if got.needs != exp.needs:
        order = list(Need)
        g = " + ".join(n.value for n in sorted(got.needs, key=order.index))
        diffs.append(f"LI needs: study {exp.needs_text()}, observed {g}")
    return diffs
