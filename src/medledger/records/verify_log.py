"""What verify proves from the node's log alone: the checkpoint, the members, the commits.

One streaming pass over the log hashes every entry from its raw bytes into the root
at the latest checkpoint's size, replays the genesis and every membership proposal
and vote through the membership contract itself to find who the members were, and
collects this vault's ``records.commit`` entries. The checkpoint is proven if the log
rebuilds its root and enough of those members cosigned it; an author's standing is
then judged from their participant entry proven against its state root.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
from medledger.records.verify_report import VerifyReport


@dataclass(frozen=True)
class Committed:
    """A batch as its commit transaction in the log states it."""

    seq: int
    root: bytes
    count: int
    index: int


def latest_checkpoint(node: LedgerNode, report: VerifyReport) -> Checkpoint | None:
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


class Membership:
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


class LogScan:
    """One streaming pass over the node's log: every leaf hashed from its raw bytes
    into the root at the checkpoint's size, membership replayed up to that size, and
    this vault's commits collected in log order."""

    def __init__(self, node: LedgerNode, vault_id: bytes, size: int | None) -> None:
        self._node = node
        self._vault_id = vault_id
        self._size = size
        self.members = Membership(node.genesis)
        self.commits: list[Committed] = []
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
            committed = Committed(
                seq=fields.integer(payload, "batch"),
                root=fields.hex_bytes(payload, "root", 32),
                count=fields.integer(payload, "count", minimum=1, maximum=MAX_BATCH_RECORDS),
                index=index,
            )
        except MedledgerError as exc:
            report.flag("ledger", "log", f"log entry {index} is not a valid commit: {exc}")
            return
        self.commits.append(committed)


def proven_checkpoint(
    checkpoint: Checkpoint, scan: LogScan, node: LedgerNode, report: VerifyReport
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


class Authors:
    """Who held a role when: each author's participant entry as of the checkpoint,
    proven against its state root, judged with the replayed membership."""

    def __init__(
        self, node: LedgerNode, checkpoint: Checkpoint | None, members: Membership
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
