"""A patient's audit: every read of their data, who, what, when, why, under which grant.

Entries come from the receipts custodians append before releasing a share, so
there is one for every read. Each carries the inclusion proof of its receipt in
the latest cosigned checkpoint, checked here; a receipt newer than that
checkpoint is listed as not yet proven. Break-glass grants are listed as notices
as soon as they are granted, whether or not anything was read under them yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medledger.access.contract import (
    AUDIT_COUNT_NS,
    AUDIT_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    patient_list,
)
from medledger.crypto import merkle
from medledger.crypto.keys import Address
from medledger.ledger.contracts.base import StateView
from medledger.ledger.node import LedgerNode


@dataclass(frozen=True)
class AuditEntry:
    receipt: str
    grant: str
    reader: Address
    record: str
    category: str
    purpose: str
    custodian: Address
    index: int
    timestamp_ns: int
    emergency: bool
    #: Checkpoint size the receipt is proven in, with the proof; None if not yet covered.
    checkpoint_size: int | None
    proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "receipt": self.receipt,
            "grant": self.grant,
            "reader": self.reader,
            "record": self.record,
            "category": self.category,
            "purpose": self.purpose,
            "custodian": self.custodian,
            "index": self.index,
            "timestamp_ns": self.timestamp_ns,
            "emergency": self.emergency,
            "checkpoint": self.checkpoint_size,
            "proof": ["0x" + p.hex() for p in self.proof],
        }


def audit_log(node: LedgerNode, patient: Address) -> list[AuditEntry]:
    """The patient's reads, oldest first, each proven into the latest checkpoint if it can be."""
    checkpoint = node.checkpoint()
    if checkpoint is not None:
        node.verify_checkpoint(checkpoint)
    entries = []
    for n, entry in enumerate(patient_list(node.store, AUDIT_NS, AUDIT_COUNT_NS, patient)):
        assert entry is not None, f"audit entry {n} of {patient} is counted but missing"
        index = int(entry["index"])
        size: int | None = None
        proof: tuple[bytes, ...] = ()
        if checkpoint is not None and index < checkpoint.head.size:
            size = checkpoint.head.size
            proof = tuple(node.inclusion_proof(index, size))
            leaf = merkle.leaf_hash(node.store.tx_by_index(index).raw)
            merkle.verify_inclusion(leaf, index, size, proof, checkpoint.head.root)
        entries.append(
            AuditEntry(
                receipt=entry["receipt"],
                grant=entry["grant"],
                reader=entry["reader"],
                record=entry["record"],
                category=entry["category"],
                purpose=entry["purpose"],
                custodian=entry["custodian"],
                index=index,
                timestamp_ns=int(entry["timestamp_ns"]),
                emergency=bool(entry.get("emergency")),
                checkpoint_size=size,
                proof=proof,
            )
        )
    return entries


def break_glass_notices(state: StateView, patient: Address) -> list[dict[str, Any]]:
    """Every emergency grant on the patient's data, oldest first, for them to review."""
    notices = patient_list(state, NOTICE_NS, NOTICE_COUNT_NS, patient)
    return [
        {
            key: notice[key]
            for key in (
                "grant",
                "requester",
                "categories",
                "purpose",
                "approvers",
                "granted_ns",
                "expires_ns",
            )
        }
        for notice in notices
        if notice is not None
    ]
