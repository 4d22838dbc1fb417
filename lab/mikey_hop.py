"""The P-CSCF's (and S-CSCF's) hop-by-hop MIKEY function (study 2.2.2) as a SIP hook.

:class:`li.keys.HopByHopIntermediary` does the MIKEY work (open the I_MESSAGE with the key of
the hop it came from, re-protect it for the next one, answer the previous hop's V flag); this
hook finds the ``a=key-mgmt:mikey`` line in what the P-CSCF sends and swaps the message: an
INVITE's offer re-protected toward the UE it goes to (``ue_at``: UE address -> AoR) or toward
the network (the next hop's link key when it has one: a chain through the S-CSCFs), a 2xx's
R_MESSAGE replaced by the one for the previous hop. Messages that are not
MIKEY-PSK with a key this element holds pass untouched. Used by the running lab's P-CSCFs
(:mod:`lab.roles.pcscf`) and the matrix runner.

Attachment: ``pcscf.sip_hooks.add(intermediary_hook(...))`` -- the P-CSCF's proxy-core hook
chain (:mod:`ims.hooks`). An OUT hook sees the forwarded INVITE after its SDP was anchored
(``event.peer``: the UE it goes to, or the S-CSCF) and each response to the UE after its answer
was anchored, and returns the rewritten copy; later hooks (the IRI-POI) and the wire see that
copy. Any other SIP-level media-security function at the P-CSCF attaches the same way.

:func:`chain_intermediaries` builds the chain that runs through the S-CSCFs as well
(``psk-hop-cscf``: each link its own key, study 2.2.2 "all or some of the involved P-CSCFs and
S-CSCFs act as intermediaries"); :func:`chain_secrets` is what one operator holds of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.topology import Topology
from li.keys import HopByHopIntermediary
from li.mitm.signalling import _find_mikey, _replace_mikey
from ue.keying_mikey import aor, chain_psk


def intermediary_hook(
    inter: HopByHopIntermediary, ue_at: dict[str, str], clock: Callable[[], float]
) -> Callable[[Any], Any]:
    def rewrite(event: Any) -> Any:
        if str(event.direction) != "out":
            return None
        msg = event.message
        body = getattr(msg, "body", b"")
        if b"a=key-mgmt:mikey" not in body:
            return None
        data = _find_mikey(body)
        if data is None:
            return None
        if getattr(msg, "method", None) == "INVITE":
            new = inter.reprotect(
                data, toward_ue=ue_at.get(event.peer[0]), now=clock(), toward=event.peer[0]
            )
        elif getattr(msg, "status", 0) // 100 == 2:
            new = inter.answer(data)
        else:
            return None
        if new is None:
            return None
        out = msg.copy()
        out.body = _replace_mikey(body, new)
        return out

    return rewrite


# --- the chain through the S-CSCFs as well (psk-hop-cscf) -----------------------------------

CHAIN_ROLES = ("pcscf", "scscf")


def link_name(op1: str, op2: str) -> str:
    """The key name of the link between an element of ``op1`` and one of ``op2``."""
    return "|".join(sorted((op1, op2)))


def chain_links(topo: Topology) -> list[str]:
    """Every link key a chain through the topology's P-CSCFs and S-CSCFs can use."""
    ops = sorted({e.operator for e in topo.elements.values() if e.role in CHAIN_ROLES})
    return sorted({link_name(a, b) for a in ops for b in ops})


def chain_intermediaries(
    topo: Topology, hop_psks: dict[str, bytes], link: Callable[[str], bytes]
) -> dict[str, HopByHopIntermediary]:
    """Element -> its intermediary of the chain UE - P-CSCF - S-CSCF - S-CSCF - P-CSCF - UE.

    A P-CSCF holds its UEs' chain keys (:func:`ue.keying_mikey.chain_psk` of their P-CSCF
    PSKs) and its links to the S-CSCFs; an S-CSCF its links to the P-CSCFs and to the other
    S-CSCFs. ``link(name)`` gives the key of a link (:func:`link_name`), so one network
    (the running lab's credentials) or one matrix row (fresh keys) supplies them."""
    out: dict[str, HopByHopIntermediary] = {}
    for name, e in topo.elements.items():
        if e.role not in CHAIN_ROLES:
            continue
        peers = [
            p
            for p in topo.elements.values()
            if p.name != name
            and (p.role == "scscf" if e.role == "pcscf" else p.role in CHAIN_ROLES)
        ]
        links = {p.address: link(link_name(e.operator, p.operator)) for p in peers}
        ues = {}
        if e.role == "pcscf":
            for spec in topo.ues.values():
                impu = aor(topo.subscribers[spec.subscriber].sip_impu)
                if spec.pcscf == name and impu in hop_psks:
                    ues[impu] = chain_psk(hop_psks[impu])
        out[name] = HopByHopIntermediary(ue_psks=ues, network_psk=None, link_psks=links)
    return out


def chain_secrets(
    topo: Topology, operator: str, hop_psks: dict[str, bytes], link: Callable[[str], bytes]
) -> tuple[bytes, ...]:
    """The chain keys ``operator`` holds: its UEs' links to its P-CSCFs, and every link one of
    its P-CSCFs or S-CSCFs is on (what its LI key policy may try, li.keys.MikeySecrets)."""
    mine = [e for e in topo.elements.values() if e.role in CHAIN_ROLES and e.operator == operator]
    if not mine:
        return ()
    keys: dict[bytes, None] = {}
    for inter in (chain_intermediaries(topo, hop_psks, link)[e.name] for e in mine):
        keys.update(dict.fromkeys(inter.ue_psks.values()))
        keys.update(dict.fromkeys(inter.link_psks.values()))
    return tuple(keys)
