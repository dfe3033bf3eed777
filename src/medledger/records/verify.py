"""Verifying a vault against the ledger: every record, every batch, no key needed.

What verify trusts: the genesis transaction the node was started with (the
network's genesis file, shared out of band) and the cryptography. It takes nothing
from the node's state tables on their word: they only point at what to prove. In
one pass over the node's log it proves:

- the log's first n entries, hashed from their raw bytes, rebuild the root of the
  latest checkpoint (size n), and entry 0 is the genesis;
- the checkpoint is cosigned by the genesis checkpoint threshold of the members at
  size n, found by replaying the genesis and every signed membership proposal and
  vote among those entries through the membership contract itself;
- the vault's batches are this vault's ``records.commit`` transactions in that
  log, numbered 0, 1, 2 ... without gap or repeat; a commit after entry n is not
  yet under the checkpoint, and says so;
- the vault holds each batch with exactly the root and count of its commit;
- each record's ciphertext and wrapped keys match the header its author signed,
  and the author held a role at a member institution when the batch was
  committed, judged from the author's participant entry proven against the
  checkpoint's state root and the replayed membership;
- each record's salted commitment is its leaf, proven into the committed root;
- each amendment points to the version before it, committed earlier.

What the vault holds beyond what the log commits is reported too. Without a
checkpoint the log rebuilds, nothing is proven: the report says so, and authors are
not judged.

What one node's files cannot show: a log and vault rolled back together to an
older checkpoint (compare the reported checkpoint size with another member's), and
the orderer's timestamps, which are not part of the leaves (the replay takes them
from the log table to tell when a membership proposal expired).
"""

from __future__ import annotations

from dataclasses import dataclass

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.errors import InvalidInput
from medledger.ledger.node import LedgerNode
from medledger.records.errors import RecordTampered
from medledger.records.header import FIRST_VERSION
from medledger.records.store import StoredBatch, StoredRecord, VaultStore
from medledger.records.verify_log import (
    Authors,
    Committed,
    LogScan,
    latest_checkpoint,
    proven_checkpoint,
)
from medledger.records.verify_report import VerifyReport


@dataclass(frozen=True)
class _Seen:
    digest: bytes
    batch: int


def verify_vault(store: VaultStore, node: LedgerNode) -> VerifyReport:
    report = VerifyReport("0x" + store.vault_id.hex())
    latest = latest_checkpoint(node, report)
    scan = LogScan(node, store.vault_id, None if latest is None else latest.head.size)
    scan.run(report)
    checkpoint = None if latest is None else proven_checkpoint(latest, scan, node, report)
    authors = Authors(node, checkpoint, scan.members)
    if not scan.commits:
        report.flag("vault", "batch", "the ledger holds no batch of this vault")
    held = {batch.seq: batch for batch in store.batches()}
    seen: dict[tuple[bytes, int], _Seen] = {}
    amendments: list[tuple[StoredRecord, int]] = []
    for committed in _numbered(scan.commits, report):
        seq = committed.seq
        report.batches += 1
        if checkpoint is not None and committed.index >= checkpoint.head.size:
            report.flag(
                f"batch {seq}",
                "checkpoint",
                f"log entry {committed.index} is after checkpoint {checkpoint.head.size}",
            )
        batch = held.pop(seq, None)
        if not _batch_matches(batch, seq, committed, report):
            continue
        for stored in _records(store, seq, committed.count, report):
            report.records += 1
            if _record_holds(stored, committed, authors, report):
                header = stored.sealed.header
                seen[(header.record_id, header.version)] = _Seen(header.digest, seq)
                if header.version > FIRST_VERSION:
                    amendments.append((stored, seq))
    for stored, seq in amendments:
        _chain_holds(stored, seq, seen, report)
    for seq in sorted(held):
        report.flag(f"batch {seq}", "batch", "in the vault but not committed to the ledger")
    return report


def _numbered(commits: list[Committed], report: VerifyReport) -> list[Committed]:
    """The commits that number the vault's batches; the contract refuses any other, so
    a gap or a repeat in the log is reported."""
    numbered: list[Committed] = []
    expected = 0
    for committed in commits:
        seq, index = committed.seq, committed.index
        if seq < expected:
            report.flag(f"batch {seq}", "batch", f"committed again at log entry {index}")
            continue
        if seq > expected:
            report.flag(
                f"batch {expected}",
                "batch",
                f"no commit in the log; batch {seq} follows at log entry {index}",
            )
        numbered.append(committed)
        expected = seq + 1
    return numbered


def _batch_matches(
    batch: StoredBatch | None, seq: int, committed: Committed, report: VerifyReport
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
    stored: StoredRecord, batch: Committed, authors: Authors, report: VerifyReport
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
    holds = authors.allowed(author, batch.index, label, report)
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
