"""Verifying a vault against the ledger: every record, every batch, no key needed.

For each batch the ledger says this vault committed, in order:

- the ``records.commit`` transaction is in the log, proven by an inclusion proof
  up to the latest checkpoint, whose cosignatures reach the consortium's threshold;
- the vault holds the batch, with exactly the records the ledger counted;
- each record's ciphertext and wrapped keys match the header its author signed;
  the author was a registered participant when the batch was committed;
- each record's salted commitment is its leaf, proven into the committed root;
- each amendment points to the version before it, committed earlier.

What the vault holds beyond what the ledger committed is reported too. The ledger
side is checked through the cosigned log, not through the node's state tables,
so tampering with a node's own database does not hide tampering with the vault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput, MedledgerError
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts.identity import PARTICIPANT_NS
from medledger.ledger.node import LedgerNode
from medledger.ledger.tx import SignedTransaction
from medledger.records.contract import COMMIT, batch_state, vault_state
from medledger.records.errors import RecordTampered
from medledger.records.header import FIRST_VERSION
from medledger.records.store import StoredBatch, StoredRecord, VaultStore


@dataclass(frozen=True)
class Problem:
    subject: str
    check: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "check": self.check, "detail": self.detail}


@dataclass
class VerifyReport:
    vault: str
    records: int = 0
    batches: int = 0
    checkpoint_size: int | None = None
    checkpoint_quorum: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # Nothing verified is not a pass: an empty vault has nothing to vouch for.
        return not self.problems and self.batches > 0

    def flag(self, subject: str, check: str, detail: str) -> None:
        self.problems.append(Problem(subject, check, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "vault": self.vault,
            "records": self.records,
            "batches": self.batches,
            "checkpoint": {"size": self.checkpoint_size, "quorum": self.checkpoint_quorum},
            "problems": [p.to_json() for p in self.problems],
        }


@dataclass(frozen=True)
class _Committed:
    """A batch as its commit transaction in the log states it."""

    root: bytes
    count: int
    index: int


@dataclass(frozen=True)
class _Seen:
    digest: bytes
    batch: int


def verify_vault(store: VaultStore, node: LedgerNode) -> VerifyReport:
    vault = "0x" + store.vault_id.hex()
    report = VerifyReport(vault)
    checkpoint = _checkpoint(node, report)
    state = vault_state(node.store, vault)
    committed = int(state["batches"]) if state else 0
    if committed == 0:
        report.flag("vault", "batch", "the ledger holds no batch of this vault")
    held = {batch.seq: batch for batch in store.batches()}
    seen: dict[tuple[bytes, int], _Seen] = {}
    amendments: list[tuple[StoredRecord, int]] = []
    for seq in range(committed):
        committed_batch = _ledger_batch(node, vault, seq, checkpoint, report)
        report.batches += 1
        batch = held.pop(seq, None)
        if committed_batch is None or not _batch_matches(batch, seq, committed_batch, report):
            continue
        for stored in _records(store, seq, committed_batch.count, report):
            report.records += 1
            if _record_holds(stored, committed_batch, node, report):
                header = stored.sealed.header
                seen[(header.record_id, header.version)] = _Seen(header.digest, seq)
                if header.version > FIRST_VERSION:
                    amendments.append((stored, seq))
    for stored, seq in amendments:
        _chain_holds(stored, seq, seen, report)
    for seq in sorted(held):
        report.flag(f"batch {seq}", "batch", "in the vault but not committed to the ledger")
    return report


def _checkpoint(node: LedgerNode, report: VerifyReport) -> Checkpoint | None:
    checkpoint = node.checkpoint()
    if checkpoint is None:
        report.flag("ledger", "checkpoint", "no checkpoint has been cosigned yet")
        return None
    try:
        quorum = node.verify_checkpoint(checkpoint)
    except MedledgerError as exc:
        report.flag("ledger", "checkpoint", str(exc))
        return None
    report.checkpoint_size = checkpoint.head.size
    report.checkpoint_quorum = quorum.describe()
    return checkpoint


def _ledger_batch(
    node: LedgerNode, vault: str, seq: int, checkpoint: Checkpoint | None, report: VerifyReport
) -> _Committed | None:
    """The batch as its commit transaction has it, checked into the checkpoint."""
    subject = f"batch {seq}"
    entry = batch_state(node.store, vault, seq)
    if entry is None:
        report.flag(subject, "batch", "the ledger state has no entry for it")
        return None
    index = int(entry["index"])
    logged = node.store.tx_by_index(index)
    tx = SignedTransaction.decode(logged.raw).tx
    payload = tx.payload
    if (tx.tx_type, payload.get("vault"), payload.get("batch")) != (COMMIT, vault, seq):
        report.flag(subject, "batch", f"log entry {index} is not this batch's commit")
        return None
    committed = _Committed(bytes.fromhex(str(payload["root"])[2:]), int(payload["count"]), index)
    if checkpoint is None:
        return committed
    size = checkpoint.head.size
    if index >= size:
        report.flag(subject, "checkpoint", f"log entry {index} is after checkpoint {size}")
        return committed
    try:
        proof = node.inclusion_proof(index, size)
        merkle.verify_inclusion(
            merkle.leaf_hash(logged.raw), index, size, proof, checkpoint.head.root
        )
    except (InvalidProof, InvalidInput) as exc:
        report.flag(subject, "checkpoint", f"commit not proven in checkpoint {size}: {exc}")
    return committed


def _batch_matches(
    batch: StoredBatch | None, seq: int, committed: _Committed, report: VerifyReport
) -> bool:
    subject = f"batch {seq}"
    if batch is None:
        report.flag(
            subject, "missing", f"committed with {committed.count} records, not in the vault"
        )
        return False
    if batch.root != committed.root or batch.count != committed.count:
        report.flag(subject, "batch", "the vault's root or count differs from the ledger's")
    return True


def _records(store: VaultStore, seq: int, count: int, report: VerifyReport) -> list[StoredRecord]:
    readable = []
    positions = set()
    for position, item in store.batch_records(seq):
        positions.add(position)
        if isinstance(item, RecordTampered):
            report.flag(item.subject, item.check, item.detail)
            report.records += 1
        elif position >= count:
            report.flag(item.label, "batch", f"position {position} beyond the committed {count}")
        else:
            readable.append(item)
    for position in sorted(set(range(count)) - positions):
        report.flag(f"batch {seq}", "missing", f"record at position {position} is missing")
    return readable


def _record_holds(
    stored: StoredRecord, batch: _Committed, node: LedgerNode, report: VerifyReport
) -> bool:
    label = stored.label
    try:
        author = stored.sealed.check()
    except RecordTampered as exc:
        report.flag(exc.subject, exc.check, exc.detail)
        return False
    except InvalidInput as exc:
        report.flag(label, "unreadable", str(exc))
        return False
    if author != stored.author:
        report.flag(label, "signature", f"signed by {author}, the vault names {stored.author}")
        return False
    holds = _author_allowed(author, batch.index, label, node, report)
    commitment = stored.sealed.commitment
    if commitment != stored.commitment:
        report.flag(label, "commitment", "the stored commitment is not the record's")
        holds = False
    try:
        leaf = merkle.leaf_hash(commitment)
        merkle.verify_inclusion(leaf, stored.position, batch.count, stored.proof, batch.root)
    except InvalidProof as exc:
        report.flag(label, "commitment", f"not in the committed batch root: {exc}")
        holds = False
    return holds


def _author_allowed(
    author: Address, index: int, label: str, node: LedgerNode, report: VerifyReport
) -> bool:
    participant = node.store.get(PARTICIPANT_NS, author)
    if participant is None:
        report.flag(label, "author", f"signed by {author}, who is not a registered participant")
        return False
    until = participant.get("until")
    if participant["since"] > index or (until is not None and until <= index):
        report.flag(label, "author", f"signed by {author}, not a participant at log entry {index}")
        return False
    return True


def _chain_holds(
    stored: StoredRecord, seq: int, seen: dict[tuple[bytes, int], _Seen], report: VerifyReport
) -> None:
    header = stored.sealed.header
    before = seen.get((header.record_id, header.version - 1))
    if before is None:
        report.flag(stored.label, "version chain", f"version {header.version - 1} is missing")
    elif before.digest != header.previous:
        report.flag(
            stored.label, "version chain", f"does not point to version {header.version - 1}"
        )
    elif before.batch >= seq:
        report.flag(stored.label, "version chain", "committed before the version it amends")
