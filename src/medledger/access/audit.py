"""A patient's audit: every read of their data, who, what, when, why, under which grant.

Entries come from the receipts custodians append before releasing shares
(access/receipts.py): one per custodian per release, naming every record it released.
The t receipts of one read name the same read (the digest of the reader's signed
release request) and make one :class:`Read` per record: the record as its author
signed it, when, by whom, and which custodians released. Each receipt carries the
inclusion proof of its transaction in the latest cosigned checkpoint, checked here; a
receipt newer than that checkpoint is listed as not yet proven. Break-glass grants are listed as
notices as soon as they are granted, whether or not anything was read under them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medledger.access.state import (
    AUDIT_COUNT_NS,
    AUDIT_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    patient_list,
)
from medledger.crypto import merkle
from medledger.crypto.keys import Address
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.membership import network_config
from medledger.ledger.node import LedgerNode


@dataclass(frozen=True)
class Receipt:
    """One custodian's receipt for its share of a read."""

    receipt: str
    custodian: Address
    index: int
    timestamp_ns: int
    #: Checkpoint size the receipt is proven in, with the proof; None if not yet covered.
    checkpoint_size: int | None
    proof: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "receipt": self.receipt,
            "custodian": self.custodian,
            "index": self.index,
            "timestamp_ns": self.timestamp_ns,
            "checkpoint": self.checkpoint_size,
            "proof": ["0x" + p.hex() for p in self.proof],
        }


@dataclass(frozen=True)
class Read:
    """One read of one record version, with the receipts of the custodians that released."""

    read: str
    #: None for an owner read: the patient, or a guardian, read (access/owner.py).
    grant: str | None
    reader: Address
    record_id: str
    version: int
    resource_type: str
    author: Address
    category: str
    purpose: str
    emergency: bool
    receipts: tuple[Receipt, ...]
    #: The node the reader read through and the app it served, for a delegated read.
    via: Address | None
    app: str | None
    #: Shares it takes to open a record: a read with fewer custodians' receipts opened
    #: nothing (or the reader split one read across releases; either way, look closer).
    threshold: int

    @property
    def complete(self) -> bool:
        return len({r.custodian for r in self.receipts}) >= self.threshold

    @property
    def timestamp_ns(self) -> int:
        """When the read began: its first receipt."""
        return min(r.timestamp_ns for r in self.receipts)

    @property
    def proven(self) -> bool:
        return all(r.checkpoint_size is not None for r in self.receipts)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "grant": self.grant,
            "reader": self.reader,
            "record_id": self.record_id,
            "version": self.version,
            "resource_type": self.resource_type,
            "author": self.author,
            "category": self.category,
            "purpose": self.purpose,
            "emergency": self.emergency,
            "via": self.via,
            "app": self.app,
            "timestamp_ns": self.timestamp_ns,
            "proven": self.proven,
            "complete": self.complete,
            "threshold": self.threshold,
            "receipts": [r.to_json() for r in self.receipts],
        }


def audit_log(node: LedgerNode, patient: Address) -> list[Read]:
    """The patient's reads, oldest first, each receipt proven into the latest checkpoint
    if it can be."""
    checkpoint = node.checkpoint()
    if checkpoint is not None:
        node.verify_checkpoint(checkpoint)
    entries = patient_list(node.store, AUDIT_NS, AUDIT_COUNT_NS, patient)
    threshold = int(network_config(node.store)["custodian_threshold"])
    # (read, record) -> the record as the first receipt names it, and every receipt
    proven: dict[str, Receipt] = {}
    rows: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], list[Receipt]]] = {}
    for n, entry in enumerate(entries):
        assert entry is not None, f"audit entry {n} of {patient} is counted but missing"
        receipt = proven.setdefault(entry["receipt"], _proven(node, checkpoint, entry))
        for record in entry["records"]:
            row = rows.setdefault((entry["read"], record["record"]), (entry, record, []))
            row[2].append(receipt)
    return [
        Read(
            read=first["read"],
            grant=first["grant"],
            reader=first["reader"],
            record_id=record["record_id"],
            version=int(record["version"]),
            resource_type=record["resource_type"],
            author=record["author"],
            category=record["category"],
            purpose=first["purpose"],
            emergency=bool(first["emergency"]),
            receipts=tuple(receipts),
            via=first["via"],
            app=first["app"],
            threshold=threshold,
        )
        for first, record, receipts in rows.values()
    ]


def _proven(node: LedgerNode, checkpoint: Checkpoint | None, entry: dict[str, Any]) -> Receipt:
    index = int(entry["index"])
    size: int | None = None
    proof: tuple[bytes, ...] = ()
    if checkpoint is not None and index < checkpoint.head.size:
        size = checkpoint.head.size
        proof = tuple(node.inclusion_proof(index, size))
        leaf = merkle.leaf_hash(node.store.tx_by_index(index).raw)
        merkle.verify_inclusion(leaf, index, size, proof, checkpoint.head.root)
    return Receipt(
        receipt=entry["receipt"],
        custodian=entry["custodian"],
        index=index,
        timestamp_ns=int(entry["timestamp_ns"]),
        checkpoint_size=size,
        proof=proof,
    )


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
        # The same list holds each grant's review and overdue flag, which name no terms.
        if notice is not None and "granted_ns" in notice
    ]


def audit_json(node: LedgerNode, patient: Address) -> dict[str, Any]:
    """The patient's audit as the node serves it: reads, then break-glass notices."""
    return {
        "patient": patient,
        "reads": [read.to_json() for read in audit_log(node, patient)],
        "break_glass": break_glass_notices(node.store, patient),
    }
