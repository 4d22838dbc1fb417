"""The P-CSCF's hop-by-hop MIKEY function (study 2.2.2) as a SIP hook.

:class:`li.keys.HopByHopIntermediary` does the MIKEY work (open the I_MESSAGE with the key of
the hop it came from, re-protect it for the next one, answer the previous hop's V flag); this
hook finds the ``a=key-mgmt:mikey`` line in what the P-CSCF sends and swaps the message: an
INVITE's offer re-protected toward the UE it goes to (``ue_at``: UE address -> AoR) or toward
the network, a 2xx's R_MESSAGE replaced by the one for the previous hop. Messages that are not
MIKEY-PSK with a key this P-CSCF holds pass untouched. Used by the running lab's P-CSCFs
(:mod:`lab.roles.pcscf`) and the matrix runner.

Attachment: ``pcscf.sip_hooks.add(intermediary_hook(...))`` -- the P-CSCF's proxy-core hook
chain (:mod:`ims.hooks`). An OUT hook sees the forwarded INVITE after its SDP was anchored
(``event.peer``: the UE it goes to, or the S-CSCF) and each response to the UE after its answer
was anchored, and returns the rewritten copy; later hooks (the IRI-POI) and the wire see that
copy. Any other SIP-level media-security function at the P-CSCF attaches the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from li.keys import HopByHopIntermediary
from li.mitm.signalling import _find_mikey, _replace_mikey


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
            new = inter.reprotect(data, toward_ue=ue_at.get(event.peer[0]), now=clock())
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
