"""MIKEY-TICKET (RFC 6043) helpers over the payload codecs: the chains nested in TP/TICKET.

RFC 6043 §6.10: "TP Data (variable length): The first 8 bits identify the first payload.  The
rest of TP Data SHALL be constructed of MIKEY payloads" -
``TP Data = First Payload, [IDRkms], [IDRi], [TRs], [TRe], [TRr], [KEMAC], {IDRapp}, (IDRr)``;
Initiator Data likewise (``First Payload, Vi, Vr``). :func:`encode_chain` and
:func:`decode_chain` are that framing; decoding is exact (every byte consumed), bounded and
raises only :class:`~ims.mikey.errors.MikeyDecodeError`. Unknown payload types cannot be skipped
(a MIKEY payload's length depends on its type), so "Unexpected payloads ... SHOULD be ignored"
holds for known types only: :func:`tp_data_view` ignores what it does not expect.

The exchanges themselves (REQUEST/TRANSFER/RESOLVE), the MIKEY base ticket (Appendix A) and the
KMS are future work; see docs/mikey-kms.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ims.buffer import Buffer, BufferReadError
from ims.mikey.constants import ErrorNo, PayloadType
from ims.mikey.errors import MikeyDecodeError
from ims.mikey.message import MAX_PAYLOADS, encode_subpayloads
from ims.mikey.payloads import DECODERS, KemacPayload, Payload
from ims.mikey.payloads_kms import IdRole, IdrPayload, TrPayload, TsRole


def encode_chain(payloads: Iterable[Payload]) -> bytes:
    """First-payload byte + the chain (empty chain: the single byte 0, "Last payload")."""
    items = list(payloads)
    first = items[0].TYPE if items else PayloadType.LAST
    return bytes([first]) + encode_subpayloads(items)


def decode_chain(data: bytes) -> tuple[Payload, ...]:
    """The inverse of :func:`encode_chain`; MikeyDecodeError on anything else."""
    if not data:
        raise MikeyDecodeError("empty nested payload chain", offset=0)
    buf = Buffer(data)
    out: list[Payload] = []
    try:
        nxt = buf.pull_uint8()
        while nxt != PayloadType.LAST:
            if len(out) >= MAX_PAYLOADS:
                raise MikeyDecodeError("too many payloads", offset=buf.position)
            decoder = DECODERS.get(nxt)
            if decoder is None:
                raise MikeyDecodeError(
                    f"unknown payload type {nxt} in nested chain",
                    offset=buf.position,
                    mikey_error=ErrorNo.UNSPECIFIED,
                )
            if nxt == PayloadType.SIGN:
                out.append(decoder(buf))
                break
            nxt = buf.pull_uint8()
            out.append(decoder(buf))
        buf.expect_end("nested payload chain")
    except MikeyDecodeError:
        raise
    except BufferReadError as exc:
        raise MikeyDecodeError(f"truncated nested chain: {exc}", offset=exc.offset) from None
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class TpDataView:
    """The TP Data fields RFC 6043 §6.10 names, picked out of the chain."""

    kms: bytes | None  # IDRkms: "a KMS that can resolve the ticket"
    initiator: bytes | None  # IDRi: "the peer that requested or created the ticket"
    valid_from: TrPayload | None  # TRs
    valid_to: TrPayload | None  # TRe
    rekey_interval: TrPayload | None  # TRr
    kemac: KemacPayload | None  # requested keys (NULL encryption, NULL MAC)
    applications: tuple[bytes, ...]  # {IDRapp}
    responders: tuple[bytes, ...]  # (IDRr): "each responder identity ... in a separate IDR"


def tp_data_view(tp_data: bytes) -> TpDataView:
    """Decode TP Data and pick out its fields; other (known) payloads are ignored."""
    chain = decode_chain(tp_data)

    def ids(role: IdRole) -> tuple[bytes, ...]:
        return tuple(p.data for p in chain if isinstance(p, IdrPayload) and p.role is role)

    def tr(role: TsRole) -> TrPayload | None:
        return next((p for p in chain if isinstance(p, TrPayload) and p.role is role), None)

    kms, initiator = ids(IdRole.KMS), ids(IdRole.INITIATOR)
    return TpDataView(
        kms=kms[0] if kms else None,
        initiator=initiator[0] if initiator else None,
        valid_from=tr(TsRole.VALIDITY_START),
        valid_to=tr(TsRole.VALIDITY_END),
        rekey_interval=tr(TsRole.REKEYING_INTERVAL),
        kemac=next((p for p in chain if isinstance(p, KemacPayload)), None),
        applications=ids(IdRole.APPLICATION),
        responders=ids(IdRole.RESPONDER),
    )


__all__ = ["TpDataView", "decode_chain", "encode_chain", "tp_data_view"]
