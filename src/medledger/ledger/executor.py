"""Applies ordered blocks to a store: the machine decides, the store persists.

Accepted transactions become leaves of the RFC 6962 log; rejected ones are
recorded with their code but change no state and take no log position.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medledger.crypto import merkle
from medledger.ledger.contracts.base import Write
from medledger.ledger.errors import TransactionRejected
from medledger.ledger.machine import StateMachine
from medledger.ledger.ordering.base import Block
from medledger.ledger.store import BlockCommit, LedgerStore, LoggedTx, Rejection
from medledger.ledger.tx import SignedTransaction

log = logging.getLogger(__name__)


class HandlerFailed(TransactionRejected):
    """A handler raised something other than a rejection: a bug.

    Rejecting the transaction the same way on every node keeps the ledger live.
    """

    code = "handler_failed"


@dataclass(frozen=True)
class TxOutcome:
    """What became of one ordered transaction."""

    tx_id: bytes
    seq: int
    timestamp_ns: int
    index: int | None
    code: str | None = None
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.index is not None


class _Overlay:
    """A block's pending writes over the committed state."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self.writes: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any | None:
        if (ns, key) in self.writes:
            return self.writes[(ns, key)]
        return self._store.get(ns, key)

    def apply(self, writes: Sequence[Write]) -> None:
        for write in writes:
            self.writes[(write.ns, write.key)] = write.value


class _CommittedLog:
    """The log as committed before the current block, for handlers that check roots."""

    def __init__(self, store: LedgerStore, size: int) -> None:
        self._store = store
        self.committed_size = size

    def root(self, size: int) -> bytes:
        if not 0 <= size <= self.committed_size:
            raise ValueError(f"size {size} is beyond the committed log of {self.committed_size}")
        return merkle.root(self._store, size)

    def timestamp(self, size: int) -> int:
        if not 0 < size <= self.committed_size:
            raise ValueError(f"size {size} is outside the committed log of {self.committed_size}")
        return self._store.tx_by_index(size - 1).timestamp_ns


class BlockExecutor:
    def __init__(self, store: LedgerStore, machine: StateMachine) -> None:
        self.store = store
        self.machine = machine
        self.size = store.size
        self.frontier = merkle.Frontier.restore(store, self.size)

    @property
    def applied_seq(self) -> int:
        return self.store.applied_seq

    def root(self) -> bytes:
        return self.frontier.root()

    def apply(
        self,
        block: Block,
        decoded: Sequence[SignedTransaction | TransactionRejected],
    ) -> list[TxOutcome]:
        """Execute one block whose signatures are already checked; commit it atomically."""
        overlay = _Overlay(self.store)
        commit = BlockCommit(seq=block.seq, writes=overlay.writes, txs=[], nodes=[], rejected=[])
        outcomes: list[TxOutcome] = []
        size = self.size
        frontier = self.frontier.copy()
        committed = _CommittedLog(self.store, size)
        for pos, (raw, item) in enumerate(zip(block.txs, decoded, strict=True)):
            if isinstance(item, TransactionRejected):
                outcomes.append(self._reject(commit, block, pos, _raw_id(raw), item))
                continue
            try:
                writes = self.machine.execute(
                    item, overlay, index=size, timestamp_ns=block.timestamp_ns, log=committed
                )
            except TransactionRejected as exc:
                outcomes.append(self._reject(commit, block, pos, item.tx_id, exc))
                continue
            except Exception as exc:
                log.exception("handler for %s failed", item.tx.tx_type)
                failure = HandlerFailed(
                    f"handler for {item.tx.tx_type} failed: {type(exc).__name__}"
                )
                outcomes.append(self._reject(commit, block, pos, item.tx_id, failure))
                continue
            overlay.apply(writes)
            leaf = merkle.leaf_hash(raw)
            commit.nodes.extend(frontier.append(leaf))
            tx = item.tx
            commit.txs.append(
                LoggedTx(
                    index=size,
                    tx_id=item.tx_id,
                    seq=block.seq,
                    sender=tx.sender,
                    nonce=tx.nonce,
                    tx_type=tx.tx_type,
                    timestamp_ns=block.timestamp_ns,
                    leaf=leaf,
                    raw=raw,
                )
            )
            outcomes.append(TxOutcome(item.tx_id, block.seq, block.timestamp_ns, size))
            size += 1
        self.store.commit(commit, size)
        self.size = size
        self.frontier = frontier
        return outcomes

    @staticmethod
    def _reject(
        commit: BlockCommit, block: Block, pos: int, tx_id: bytes, error: TransactionRejected
    ) -> TxOutcome:
        message = str(error)
        commit.rejected.append(Rejection(block.seq, pos, tx_id, error.code, message))
        return TxOutcome(tx_id, block.seq, block.timestamp_ns, None, error.code, message)


def _raw_id(raw: bytes) -> bytes:
    # An undecodable transaction has no EIP-712 id; its content hash names it instead.
    return hashlib.sha256(raw).digest()
