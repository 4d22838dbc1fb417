"""lab.tls: elements started together share one lab CA (no race between processes)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from lab import tls


def _issue(directory: str, name: str, address: str) -> None:
    tls.issue(Path(directory), name, address)


def test_concurrent_processes_get_certificates_from_one_ca(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")  # start together: maximal contention
    names = [(f"pcscf-{i}", f"127.0.1.{100 + i}") for i in range(6)]
    procs = [ctx.Process(target=_issue, args=(str(tmp_path), n, a)) for n, a in names]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for name, address in names:
        cert = x509.load_pem_x509_certificate((tmp_path / f"{name}-{address}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)  # raises if another process's CA signed it
    assert not list(tmp_path.glob("*.tmp"))
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
