"""A record's proof, from its signed header up to a checkpoint the consortium cosigned.

A :class:`CommittedRecord` is the part a node checks against its own log (the
commitment in a committed batch); a :class:`RecordProof` adds the path into a
cosigned checkpoint, so that it holds without any node.

Whoever holds a record (a patient, a clinician it was shared with) can hand over
its proof; the receiver checks it against the members and threshold of the
network without asking any node: the author's signature over the header, the
salted commitment into the batch root, the batch's commit transaction into the
log, and the log's root cosigned by k of n members.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.node import LedgerNode
from medledger.ledger.tx import SignedTransaction
from medledger.records.contract import COMMIT, batch_state
from medledger.records.errors import RecordTampered, UnknownRecord
from medledger.records.header import RecordHeader, parse_json
from medledger.records.sealed import SealedRecord, record_commitment
from medledger.records.store import StoredRecord


def check_in_batch(
    label: str, commitment: bytes, position: int, batch_path: tuple[bytes, ...], commit_tx: bytes
) -> None:
    """Check that ``commitment`` is leaf ``position`` of the batch ``commit_tx`` commits."""
    tx = SignedTransaction.decode(commit_tx).tx
    if tx.tx_type != COMMIT:
        raise RecordTampered(label, "batch", f"log entry is a {tx.tx_type}, not a commit")
    root = bytes.fromhex(str(tx.payload["root"])[2:])
    count = int(tx.payload["count"])
    try:
        merkle.verify_inclusion(merkle.leaf_hash(commitment), position, count, batch_path, root)
    except InvalidProof as exc:
        raise RecordTampered(label, "commitment", f"not in the batch: {exc}") from None


@dataclass(frozen=True)
class CommittedRecord:
    """A sealed record with the path of its commitment into a batch in the log."""

    sealed: SealedRecord
    position: int
    batch_path: tuple[bytes, ...]
    log_index: int

    @property
    def commitment(self) -> bytes:
        return self.sealed.commitment

    def check(self, logged_commit: bytes) -> Address:
        """Check against the commit transaction a log holds at ``log_index``; return the
        author. The ciphertext is not checked: releasing a key share does not need it."""
        check_in_batch(
            self.sealed.header.label,
            self.commitment,
            self.position,
            self.batch_path,
            logged_commit,
        )
        return self.sealed.check_signed()


def committed_record(stored: StoredRecord, vault: str, node: LedgerNode) -> CommittedRecord:
    """A stored record with where its batch sits in the node's log."""
    entry = batch_state(node.store, vault, stored.batch)
    if entry is None:
        raise UnknownRecord(f"{stored.label}: its batch is not on the ledger")
    return CommittedRecord(stored.sealed, stored.position, stored.proof, entry.index)


@dataclass(frozen=True)
class RecordProof:
    header: RecordHeader
    signature: bytes
    salt: bytes
    position: int
    batch_path: tuple[bytes, ...]
    commit_tx: bytes
    log_index: int
    log_path: tuple[bytes, ...]
    checkpoint: Checkpoint

    def verify(self, members: Collection[Address], threshold: int) -> Address:
        """Check every link; return the author. Raises a VerificationError naming the link."""
        label = self.header.label
        self.checkpoint.verify(members, threshold)
        head = self.checkpoint.head
        if head.network_id != self.header.network_id:
            raise RecordTampered(label, "checkpoint", "checkpoint of another network")
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(self.commit_tx),
                self.log_index,
                head.size,
                self.log_path,
                head.root,
            )
        except InvalidProof as exc:
            raise RecordTampered(label, "checkpoint", f"commit not in the log: {exc}") from None
        commitment = record_commitment(self.salt, self.header.digest, self.signature)
        check_in_batch(label, commitment, self.position, self.batch_path, self.commit_tx)
        try:
            return self.header.author(self.signature)
        except InvalidInput as exc:
            raise RecordTampered(label, "signature", str(exc)) from None

    def to_json(self) -> dict[str, Any]:
        return {
            "header": self.header.to_json(),
            "signature": "0x" + self.signature.hex(),
            "salt": "0x" + self.salt.hex(),
            "position": self.position,
            "batchPath": ["0x" + p.hex() for p in self.batch_path],
            "commitTx": "0x" + self.commit_tx.hex(),
            "logIndex": self.log_index,
            "logPath": ["0x" + p.hex() for p in self.log_path],
            "checkpoint": self.checkpoint.to_json(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecordProof:
        return parse_json(
            "record proof",
            lambda: cls(
                header=RecordHeader.from_json(obj["header"]),
                signature=parse_hex(obj["signature"]),
                salt=parse_hex(obj["salt"]),
                position=int(obj["position"]),
                batch_path=tuple(parse_hex(p) for p in obj["batchPath"]),
                commit_tx=parse_hex(obj["commitTx"]),
                log_index=int(obj["logIndex"]),
                log_path=tuple(parse_hex(p) for p in obj["logPath"]),
                checkpoint=Checkpoint.from_json(obj["checkpoint"]),
            ),
        )


def prove(stored: StoredRecord, vault: str, node: LedgerNode) -> RecordProof:
    """The proof of a stored record up to the node's latest checkpoint."""
    committed = committed_record(stored, vault, node)
    index = committed.log_index
    checkpoint = node.checkpoint()
    if checkpoint is None or checkpoint.head.size <= index:
        raise UnknownRecord(f"{stored.label}: no checkpoint covers its batch yet")
    return RecordProof(
        header=stored.sealed.header,
        signature=stored.sealed.signature,
        salt=stored.sealed.salt,
        position=committed.position,
        batch_path=committed.batch_path,
        commit_tx=node.store.tx_by_index(index).raw,
        log_index=index,
        log_path=tuple(node.inclusion_proof(index, checkpoint.head.size)),
        checkpoint=checkpoint,
    )
