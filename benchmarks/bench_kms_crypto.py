"""Cost of the MIKEY-SAKKE primitives (pure Python) against OpenSSL anchors of the same run.

Per operation: ECCSI sign / verify (RFC 6507, P-256), SAKKE encapsulate / decapsulate
(RFC 6508, 1024-bit Parameter Set 1), the pairing alone, the KMS's per-user issuance (SSK/PVT +
RSK) and the user's validation of it, and a whole MIKEY-SAKKE exchange (initiator + responder);
for comparison, a whole MIKEY-TICKET call (RFC 6043: REQUEST, TRANSFER, RESOLVE forwarded by the
callee's KMS to the issuing one per §10, all sans-I/O: HMAC-SHA-1 and AES-CM only).
Anchors from ``cryptography`` (OpenSSL) in the same process: ECDSA P-256 sign and verify, and
an RSA-2048 sign (what the RFC 3830 PK modes pay). Ratios are what to compare across machines;
the absolute numbers move with load, which is printed (1-minute load average) with them.

Each measurement is bounded by a count *and* a time budget; the best of ``--repeat`` runs.

    ip netns exec h-kms .venv/bin/python benchmarks/bench_kms_crypto.py [--seconds 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from ims.mikey import eccsi, sakke
from ims.mikey.modes.sakke import SakkeInitiator, SakkeResponder
from ims.mikey.payloads_kms import IdScheme
from ims.mikey.replay import ReplayCache
from ims.mikey.sakke_keys import KmsKeyIssuer, SakkeKeyring, identifier, key_period

NOW = time.time()


def per_op(fn: Callable[[], Any], seconds: float, max_count: int, repeat: int) -> float:
    """Best seconds per call over ``repeat`` bounded runs."""
    best = float("inf")
    for _ in range(repeat):
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while n < max_count and time.perf_counter() < deadline:
            fn()
            n += 1
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    ecdsa_key = ec.generate_private_key(ec.SECP256R1())
    ecdsa_sig = ecdsa_key.sign(b"m" * 600, ec.ECDSA(hashes.SHA256()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    period = key_period(NOW)
    kms = KmsKeyIssuer("kms.ims.lab")
    alice_uri, bob_uri = "sip:alice@ims.lab", "sip:bob@ims.lab"
    alice = SakkeKeyring(alice_uri)
    alice.install(kms.issue(alice_uri, period))
    bob = SakkeKeyring(bob_uri)
    bob.install(kms.issue(bob_uri, period))
    signer = alice.signer(period)
    message = os.urandom(600)  # about a MIKEY-SAKKE I_MESSAGE without its SIGN
    signature = signer.sign(message)
    bob_id = identifier(period, bob_uri, IdScheme.LAB_SIP_URI_MONTHLY)
    enc = sakke.encapsulate(bob_id, kms.community.z)
    receiver = bob.receiver(period)
    cache = ReplayCache(window=1e9, max_entries=100_000)

    def exchange() -> None:
        data = SakkeInitiator(keyring=alice, responder_uri=bob_uri).initiate(NOW)
        assert SakkeResponder(keyring=bob, replay=cache).receive(data, NOW).ok

    from ims.mikey.modes.ticket import TicketRequester, TicketResolver
    from ims.mikey.modes.ticket_transfer import TicketTransferInitiator, TicketTransferResponder
    from proxies.kms_ticket import TicketService

    psk_a, psk_b, peer = os.urandom(16), os.urandom(16), os.urandom(16)
    kms_a = TicketService(kms_id="kms.a", user_psks={alice_uri: psk_a}, peer_psks={"kms.b": peer})
    kms_b = TicketService(kms_id="kms.b", user_psks={bob_uri: psk_b}, peer_psks={"kms.a": peer})
    kms_a.core.replay = kms_b.core.replay = ReplayCache(window=1e9, max_entries=1_000_000)

    def ticket_call() -> None:
        req = TicketRequester(identity=alice_uri, kms_id="kms.a", psk=psk_a, responders=[bob_uri])
        granted = req.receive(
            kms_a.handle(req.initiate(NOW), requester=alice_uri, now=NOW).message or b"", NOW
        )
        ini = TicketTransferInitiator(granted=granted, identity=alice_uri, responder=bob_uri)
        init = ini.initiate(NOW)
        resp = TicketTransferResponder(identity=bob_uri, replay=cache)
        res = TicketResolver(
            identity=bob_uri, kms_id="kms.b", psk=psk_b, ticket=resp.early_check(init, NOW)
        )
        out = kms_b.handle(res.initiate(NOW), requester=bob_uri, now=NOW)
        assert out.forward is not None
        answer = kms_a.handle(out.forward.message, requester="kms.b", now=NOW).message
        keys = res.receive(kms_b.forwarded(out.forward, answer, requester=bob_uri, now=NOW), NOW)
        done = resp.complete(init, keys, NOW)
        assert done.message is not None
        ini.receive(done.message, NOW)
        kms_a.drain_audit()
        kms_b.drain_audit()

    n = [0]

    def issue_and_validate() -> None:
        n[0] += 1
        uri = f"sip:user{n[0]}@ims.lab"
        SakkeKeyring(uri).install(kms.issue(uri, period))

    anchors: list[tuple[str, Callable[[], Any]]] = [
        ("ECDSA P-256 sign (OpenSSL)", lambda: ecdsa_key.sign(message, ec.ECDSA(hashes.SHA256()))),
        (
            "ECDSA P-256 verify (OpenSSL)",
            lambda: ecdsa_key.public_key().verify(ecdsa_sig, b"m" * 600, ec.ECDSA(hashes.SHA256())),
        ),
        (
            "RSA-2048 PKCS#1 v1.5 sign (OpenSSL)",
            lambda: rsa_key.sign(message, padding.PKCS1v15(), hashes.SHA256()),
        ),
    ]
    ours: list[tuple[str, Callable[[], Any]]] = [
        ("ECCSI sign (RFC 6507 §5.2.1)", lambda: signer.sign(message)),
        (
            "ECCSI verify (RFC 6507 §5.2.2)",
            lambda: eccsi.verify(signature, message, signer.identifier, kms.community.kpak),
        ),
        ("SAKKE encapsulate (RFC 6508 §6.2.1)", lambda: sakke.encapsulate(bob_id, kms.community.z)),
        ("SAKKE decapsulate (RFC 6508 §6.2.2)", lambda: sakke.decapsulate(enc.data, receiver)),
        ("Tate-Lichtenbaum pairing (§3.2)", lambda: sakke.pairing(sakke.CURVE.g, receiver.rsk)),
        ("KMS issue + user validate, one user-month", issue_and_validate),
        ("MIKEY-SAKKE exchange, both sides", exchange),
        ("MIKEY-TICKET call: 8 messages, 2 KMSs (RFC 6043 §4, §10)", ticket_call),
    ]
    load = os.getloadavg()[0]
    print(
        f"# {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.2f} at start; "
        f"best of {args.repeat} x {args.seconds}s"
    )
    times: dict[str, float] = {}
    print("| operation | ms/op | ops/s | x ECDSA sign | x ECDSA verify |")
    print("|---|---:|---:|---:|---:|")
    rows = anchors + ours
    for name, fn in rows:
        times[name] = per_op(fn, args.seconds, 100_000, args.repeat)
    sign_t, verify_t = times[anchors[0][0]], times[anchors[1][0]]
    for name, _ in rows:
        t = times[name]
        ratios = f"{t / sign_t:,.1f} | {t / verify_t:,.1f}"
        print(f"| {name} | {t * 1000:.3f} | {1 / t:,.1f} | {ratios} |")
    print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
