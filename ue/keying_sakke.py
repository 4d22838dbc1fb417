"""UE keying ``sakke``: MIKEY-SAKKE (RFC 6509) with keys from the home operator's KMS.

* Offer: the caller's :class:`~ims.mikey.modes.sakke.SakkeInitiator` I_MESSAGE in
  ``a=key-mgmt:mikey`` (RFC 4567 §3), SAKKE-encapsulated to the callee's Identifier under the
  callee's KMS (RFC 6509 §2.1: the Initiator needs the Responder's KMS Public Key) and signed
  with the caller's ECCSI SSK. No response (§2.1 "a response is not expected"), so the answer
  carries no MIKEY.
* Answer: :class:`~ims.mikey.modes.sakke.SakkeResponder` with the caller's identity from the
  signalling: the ``P-Asserted-Identity`` the caller's P-CSCF inserted (RFC 3325 §9.1), else
  the From URI -- either way it must equal IDRi and the ECCSI signature must verify for it
  (§2.2.2), so a caller cannot borrow another subscriber's identity.
* Keys: per user and key period, issued by the user's home KMS (``proxies.kms``) and
  provisioned by ``imslab up`` into a directory (:mod:`ims.mikey.sakke_store` documents)::

      <dir>/community.json            every KMS's community keys (KPAK, Z), public
      <dir>/users/<user>@<host>.json  that user's key material per period (SSK, PVT, RSK)

  :func:`configure` points the process at one (``imslab call``/``run ue`` via
  ``lab.credentials``), or ``IMSLAB_SAKKE_KEYS`` names it. A keyring is loaded and validated
  (RFC 6507 §5.1.2, RFC 6508 §6.1.2: ~0.2 s per period) once per user per process.
* A KMS is named ``kms.<domain>`` (:func:`ims.mikey.sakke_store.kms_uri_of`): the caller
  finds the callee's KMS from the callee's domain; a peer whose domain runs no KMS (a non-IMS
  peer) cannot be keyed -- the offer fails with a clear error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ims.errors import ImsError
from ims.mikey.errors import MikeyError
from ims.mikey.modes.sakke import SakkeInitiator, SakkeResponder
from ims.mikey.replay import ReplayCache
from ims.mikey.sakke_keys import SakkeKeyring, acceptable_periods
from ims.mikey.sakke_store import community_from_doc, kms_uri_of, material_from_doc
from ue.keying import KeyingContext, KeyingError
from ue.keying_mikey import MikeyKeying, aor, domain_of

ENV_DIR = "IMSLAB_SAKKE_KEYS"

_state: dict[str, Any] = {"dir": None}
_keyrings: dict[str, SakkeKeyring] = {}
# one cache per process: an I_MESSAGE replayed to any of this process's UEs is refused
# (RFC 3830 §5.4, which RFC 6509 §2.2.2 keeps)
_replay = ReplayCache()


def configure(directory: Path | None, keyrings: dict[str, SakkeKeyring] | None = None) -> None:
    """Where this process's UEs read their MIKEY-SAKKE keys (or ready keyrings, in-process)."""
    _state["dir"] = directory
    _keyrings.clear()
    _keyrings.update(keyrings or {})


def user_file(directory: Path, uri: str) -> Path:
    """The file of one user's key material (``users/<user>@<host>.json``)."""
    name = aor(uri).partition(":")[2]
    if not name or "/" in name or name.startswith("."):
        raise KeyingError(f"no MIKEY-SAKKE key file for {uri!r}")
    return directory / "users" / f"{name}.json"


def load_keyring(directory: Path, uri: str, now: float) -> SakkeKeyring:
    """``uri``'s keyring from ``directory``: the periods acceptable at ``now`` (RFC 6509 §3.3)
    validated and installed, and every KMS's community keys trusted."""
    ring = SakkeKeyring(aor(uri))
    try:
        community = json.loads((directory / "community.json").read_text())
        docs = json.loads(user_file(directory, uri).read_text())
        if not isinstance(community, list) or not isinstance(docs, list):
            raise KeyingError(f"MIKEY-SAKKE keys in {directory} are not lists")
        for c in community:
            ring.trust(community_from_doc(c))
        wanted = acceptable_periods(now)
        for d in docs:
            m = material_from_doc(d)
            if m.period in wanted:
                ring.install(m)
    except OSError as exc:
        raise KeyingError(
            f"no MIKEY-SAKKE keys for {aor(uri)} ({exc}); `imslab up` provisions them"
        ) from None
    except (ImsError, ValueError) as exc:
        raise KeyingError(f"MIKEY-SAKKE keys for {aor(uri)} rejected: {exc}") from None
    if not ring.periods:
        raise KeyingError(f"no MIKEY-SAKKE keys of the current key period for {aor(uri)}")
    return ring


def keyring(uri: str, now: float) -> SakkeKeyring:
    """The process's keyring of ``uri`` (loaded once)."""
    key = aor(uri)
    ring = _keyrings.get(key)
    if ring is None:
        directory = _state["dir"]
        if directory is None and os.environ.get(ENV_DIR):
            directory = Path(os.environ[ENV_DIR])
        if directory is None:
            raise KeyingError("no MIKEY-SAKKE keys configured (`imslab up` provisions them)")
        ring = load_keyring(directory, key, now)
        _keyrings[key] = ring
    return ring


class SakkeKeying(MikeyKeying):
    """``--keying sakke``: one signed I_MESSAGE in the offer, nothing in the answer."""

    name = "sakke"
    needs_response = False

    def make_initiator(self, ctx: KeyingContext, now: float) -> Any:
        peer = aor(ctx.remote_uri)
        ring = keyring(ctx.local_uri, now)
        try:
            ring.kms(kms_uri_of(domain_of(peer)))
        except MikeyError:
            raise KeyingError(
                f"{peer} has no MIKEY-SAKKE KMS known to this UE (a non-IMS peer?)"
            ) from None
        return SakkeInitiator(
            keyring=ring, responder_uri=peer, responder_kms=kms_uri_of(domain_of(peer))
        )

    def make_responder(self, ctx: KeyingContext, now: float) -> Any:
        caller = ctx.asserted_uri or ctx.remote_uri
        return SakkeResponder(
            keyring=keyring(ctx.local_uri, now), initiator_uri=aor(caller), replay=_replay
        )
