"""Checking the records one holds, fetched from a node, each against its own proof.

What a patient (or anyone with records and their proofs) can check away from every
vault: that each sealed record is the one its author signed (ciphertext and keys
against the header), that its proof is of this very record, and that the proof
holds up to a checkpoint the trusted members cosigned. Unlike
:func:`medledger.records.verify.verify_vault`, which replays a whole vault against
the log, it needs no node's word for anything.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.records.errors import RecordTampered
from medledger.records.proof import RecordProof
from medledger.records.sealed import SealedRecord
from medledger.records.verify_report import VerifyReport


def verify_held(
    where: str,
    held: Iterable[tuple[SealedRecord, RecordProof | InvalidInput]],
    members: Collection[Address],
    threshold: int,
) -> VerifyReport:
    """One report over ``held``: each record with its proof, or why no proof came."""
    report = VerifyReport(where)
    batches: set[int] = set()
    for sealed, proof in held:
        report.records += 1
        label = sealed.header.label
        if isinstance(proof, InvalidInput):
            report.flag(label, "proof", str(proof))
            continue
        try:
            sealed.check()
            if (proof.header, proof.signature, proof.salt) != (
                sealed.header, sealed.signature, sealed.salt
            ):
                report.flag(label, "proof", "the proof is of another record")
                continue
            quorum = proof.checkpoint.verify(members, threshold)
            proof.verify(members, threshold)
        except RecordTampered as exc:
            report.flag(label, exc.check, exc.detail)
            continue
        except InvalidInput as exc:
            report.flag(label, "checkpoint", str(exc))
            continue
        batches.add(proof.log_index)
        size = proof.checkpoint.head.size
        if report.checkpoint_size is None or size > report.checkpoint_size:
            report.checkpoint_size = size
            report.checkpoint_quorum = quorum.describe()
    report.batches = len(batches)
    return report
