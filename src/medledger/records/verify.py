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

import json
from dataclasses import dataclass, field
from typing import Any

from medledger.crypto import merkle
from medledger.crypto.errors import InvalidProof
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput, MedledgerError
from medledger.ledger.checkpoints import Checkpoint, TreeHead
from medledger.ledger.contracts import fields
from medledger.ledger.contracts import membership as governance
from medledger.ledger.contracts.base import TxContext
from medledger.ledger.contracts.identity import PARTICIPANT_NS, participant_at
from medledger.ledger.errors import ReplayedTransaction
from medledger.ledger.machine import check_network
from medledger.ledger.node import LedgerNode
from medledger.ledger.store import LoggedTx, encode_value
from medledger.ledger.tx import SignedTransaction
from medledger.records.contract import COMMIT, MAX_BATCH_RECORDS, VAULT_ID_SIZE
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

    seq: int
    root: bytes
    count: int
    index: int


@dataclass(frozen=True)
class _Seen:
    digest: bytes
    batch: int


def verify_vault(store: VaultStore, node: LedgerNode) -> VerifyReport:
    report = VerifyReport("0x" + store.vault_id.hex())
    latest = _latest_checkpoint(node, report)
    scan = _LogScan(node, store.vault_id, None if latest is None else latest.head.size)
    scan.run(report)
    checkpoint = None if latest is None else _proven_checkpoint(latest, scan, node, report)
    authors = _Authors(node, checkpoint, scan.members)
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


def _latest_checkpoint(node: LedgerNode, report: VerifyReport) -> Checkpoint | None:
    """The checkpoint the node names as its latest: a claim, proven by the log scan."""
    try:
        checkpoint = node.checkpoint()
    except MedledgerError as exc:
        report.flag("ledger", "checkpoint", str(exc))
        return None
    if checkpoint is None:
        report.flag("ledger", "checkpoint", "no checkpoint has been cosigned yet")
    return checkpoint


class _NoLog:
    """The membership contract never reads the log; a replay has none to show it."""

    committed_size = 0

    def root(self, size: int) -> bytes:
        raise LookupError("a membership replay has no log to read")

    def timestamp(self, size: int) -> int:
        raise LookupError("a membership replay has no log to read")


_MEMBERSHIP_TYPES = {governance.GENESIS, governance.PROPOSE, governance.VOTE}


class _Membership:
    """Membership as the log's own transactions make it: the genesis the node was
    started with, then each signed proposal and vote, run through the membership
    contract over this replay's state alone."""

    def __init__(self, genesis: SignedTransaction) -> None:
        self._genesis = genesis
        self._state: dict[tuple[str, str], Any] = {}
        self._nonces: dict[Address, int] = {}

    def get(self, ns: str, key: str) -> Any | None:
        return self._state.get((ns, key))

    def apply(self, stx: SignedTransaction, logged: LoggedTx, index: int) -> None:
        """Raise if the transaction could not have been accepted at ``index``."""
        tx = stx.tx
        if index == 0 or tx.tx_type == governance.GENESIS:
            if index != 0 or stx.tx_id != self._genesis.tx_id:
                raise InvalidInput("this network's genesis must be log entry 0, and only it")
        else:
            stx.verify()
        check_network(tx, self._genesis.tx.network_id)
        # The contract reads no nonces; without this, a copy of a signed vote would count.
        last = self._nonces.get(tx.sender)
        if last is not None and tx.nonce <= last:
            raise ReplayedTransaction(f"nonce {tx.nonce} of {tx.sender} is already used")
        context = TxContext.of(stx, index=index, timestamp_ns=logged.timestamp_ns, log=_NoLog())
        for write in governance.HANDLERS[tx.tx_type](context, self):
            if write.value is None:
                self._state.pop((write.ns, write.key), None)
            else:
                self._state[(write.ns, write.key)] = write.value
        self._nonces[tx.sender] = tx.nonce

    def members(self) -> list[Address]:
        return governance.active_members(self)

    def checkpoint_threshold(self) -> int:
        return int(governance.network_config(self)["checkpoint_threshold"])


#: Decoding an entry costs twenty times a substring search, and verify reads only
#: commits and membership. A type name reaches the wire spelled out or with JSON \u
#: escapes (no other escape spells a letter or a dot), so an entry holding none of
#: these marks is of no type verify reads.
_MARKS = (COMMIT.encode(), b"membership.", b"\\u")


class _LogScan:
    """One streaming pass over the node's log: every leaf hashed from its raw bytes
    into the root at the checkpoint's size, membership replayed up to that size, and
    this vault's commits collected in log order."""

    def __init__(self, node: LedgerNode, vault_id: bytes, size: int | None) -> None:
        self._node = node
        self._vault_id = vault_id
        self._size = size
        self.members = _Membership(node.genesis)
        self.commits: list[_Committed] = []
        #: The root of the first ``size`` entries, if the log holds that many.
        self.root: bytes | None = None
        self.entries = 0

    def run(self, report: VerifyReport) -> None:
        frontier = merkle.Frontier()
        expected = 0
        for logged in self._node.store.iter_txs():
            if logged.index == expected + 1:
                report.flag("ledger", "log", f"log entry {expected} is missing")
            elif logged.index != expected:
                missing = f"log entries {expected} to {logged.index - 1} are missing"
                report.flag("ledger", "log", missing)
            expected = logged.index + 1
            # Leaves go by position: a missing entry must change the root, not be skipped.
            index = frontier.size
            raw = logged.raw
            frontier.append(merkle.leaf_hash(raw))
            if frontier.size == self._size:
                self.root = frontier.root()
            if index == 0 or any(mark in raw for mark in _MARKS):
                self._read(logged, index, report)
        self.entries = frontier.size

    def _read(self, logged: LoggedTx, index: int, report: VerifyReport) -> None:
        try:
            stx = SignedTransaction.decode(logged.raw, self._node.limits)
        except MedledgerError as exc:
            report.flag("ledger", "log", f"log entry {index} does not decode: {exc}")
            return
        tx_type = stx.tx.tx_type
        replayed = self._size is not None and index < self._size and tx_type in _MEMBERSHIP_TYPES
        if index == 0 or replayed:
            try:
                self.members.apply(stx, logged, index)
            except MedledgerError as exc:
                report.flag("ledger", "members", f"log entry {index}: {exc}")
        elif tx_type == COMMIT:
            self._commit(stx, index, report)

    def _commit(self, stx: SignedTransaction, index: int, report: VerifyReport) -> None:
        payload = stx.tx.payload
        try:
            # Read as the records contract reads it, so both see the same vault and batch.
            if fields.hex_bytes(payload, "vault", VAULT_ID_SIZE) != self._vault_id:
                return
            committed = _Committed(
                seq=fields.integer(payload, "batch"),
                root=fields.hex_bytes(payload, "root", 32),
                count=fields.integer(payload, "count", minimum=1, maximum=MAX_BATCH_RECORDS),
                index=index,
            )
        except MedledgerError as exc:
            report.flag("ledger", "log", f"log entry {index} is not a valid commit: {exc}")
            return
        self.commits.append(committed)


def _proven_checkpoint(
    checkpoint: Checkpoint, scan: _LogScan, node: LedgerNode, report: VerifyReport
) -> Checkpoint | None:
    """The checkpoint, if the scanned log rebuilds its root and its cosigners reach the
    threshold of the members the log itself names."""
    head = checkpoint.head
    size = head.size
    if head.network_id != node.network_id:
        report.flag("ledger", "checkpoint", f"checkpoint {size} is of network {head.network_id}")
        return None
    if scan.root is None:
        report.flag(
            "ledger", "checkpoint", f"the log holds {scan.entries} entries, checkpoint {size} more"
        )
        return None
    if scan.root != head.root:
        report.flag(
            "ledger", "checkpoint", f"the log's first {size} entries do not rebuild its root"
        )
        return None
    try:
        quorum = checkpoint.verify(scan.members.members(), scan.members.checkpoint_threshold())
    except MedledgerError as exc:
        report.flag("ledger", "checkpoint", str(exc))
        return None
    report.checkpoint_size = size
    report.checkpoint_quorum = quorum.describe()
    return checkpoint


def _numbered(commits: list[_Committed], report: VerifyReport) -> list[_Committed]:
    """The commits that number the vault's batches; the contract refuses any other, so
    a gap or a repeat in the log is reported."""
    numbered: list[_Committed] = []
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


class _Authors:
    """Who held a role when: each author's participant entry as of the checkpoint,
    proven against its state root, judged with the replayed membership."""

    def __init__(
        self, node: LedgerNode, checkpoint: Checkpoint | None, members: _Membership
    ) -> None:
        self._node = node
        self._checkpoint = checkpoint
        self._members = members
        self._participants: dict[str, Any] = {}
        self._unproven: dict[str, str] = {}

    def get(self, ns: str, key: str) -> Any | None:
        if ns == PARTICIPANT_NS:
            return self._participants.get(key)
        return self._members.get(ns, key)

    def allowed(self, author: Address, index: int, label: str, report: VerifyReport) -> bool:
        if self._checkpoint is None:
            # Nothing is proven without a checkpoint, and the report already says so.
            return True
        head = self._checkpoint.head
        if author not in self._participants and author not in self._unproven:
            self._prove(author, head)
        unproven = self._unproven.get(author)
        if unproven is not None:
            detail = f"the participant entry of {author} at checkpoint {head.size}: {unproven}"
            report.flag(label, "author", detail)
            return False
        if self._participants[author] is None:
            detail = f"signed by {author}, not a registered participant at checkpoint {head.size}"
            report.flag(label, "author", detail)
            return False
        if participant_at(self, author, index) is None:
            detail = f"signed by {author}, not a participant at log entry {index}"
            report.flag(label, "author", detail)
            return False
        return True

    def _prove(self, author: Address, head: TreeHead) -> None:
        # The table's value is only a candidate: the proof says whether it held then.
        current = self._node.store.get(PARTICIPANT_NS, author)
        encoded = None if current is None else encode_value(current)
        try:
            proof = self._node.store.tree.prove(PARTICIPANT_NS, author, head.size, encoded)
            proof.verify(head.state_root)
        except (LookupError, ValueError, InvalidProof) as exc:
            self._unproven[author] = f"not proven ({exc})"
            return
        self._participants[author] = None if proof.value is None else json.loads(proof.value)


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
    stored: StoredRecord, batch: _Committed, authors: _Authors, report: VerifyReport
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
