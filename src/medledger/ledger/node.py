"""A ledger node: takes submissions, orders them, executes the ordered log, serves proofs.

Submission checks a transaction before it is ordered (decode, network, signature,
nonce) so that junk is refused with a specific error and never reaches the log.
Execution repeats every check that decides acceptance, deterministically, on every
node; a node's own pre-checked signatures are not checked twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medledger.crypto import merkle
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import MedledgerError, TransportError, UsageError
from medledger.ledger.checkpoints import (
    Equivocation,
)
from medledger.ledger.committer import CommitterProcess, CommitterThread
from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts import checkpoint as checkpoint_contract
from medledger.ledger.contracts.base import ContractRegistry
from medledger.ledger.contracts.membership import active_members
from medledger.ledger.contracts.standard import ledger_contracts
from medledger.ledger.errors import (
    ProtocolMismatch,
    ReplayedTransaction,
    TransactionRejected,
    UnknownTransaction,
    rejection_from_code,
)
from medledger.ledger.executor import BlockExecutor, TxOutcome
from medledger.ledger.heads import HeadsMixin
from medledger.ledger.machine import (
    CONFIG_KEY,
    NETWORK_NS,
    NONCE_NS,
    StateMachine,
    check_network,
    check_nonce,
)
from medledger.ledger.ordering.base import LENGTH_PREFIX, Block, Orderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.ledger.verify import Checked, SignatureVerifier, decode_all

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    tx: SignedTransaction
    raw: bytes
    futures: list[asyncio.Future[TxOutcome]] = field(default_factory=list)


class LedgerNode(HeadsMixin):
    def __init__(
        self,
        *,
        genesis: SignedTransaction,
        store: LedgerStore,
        orderer: Orderer,
        registry: ContractRegistry | None = None,
        key: PrivateKey | None = None,
        limits: LedgerLimits | None = None,
        verifier: SignatureVerifier | None = None,
        name: str = "node",
        committer: Literal["thread", "process"] = "thread",
        witness: Path | None = None,
    ) -> None:
        """``witness`` is where the node records the largest head it signed (heads.py);
        ``committer`` where its state tree is hashed: a thread, or a process of its own."""
        self.name = name
        self.genesis = genesis
        self.network_id = genesis.tx.network_id
        self.store = store
        self.orderer = orderer
        self.key = key
        self.limits = limits or LedgerLimits()
        registry = registry or ledger_contracts()
        pinned = genesis.tx.payload.get("protocol")
        if registry.protocol() != pinned:
            raise ProtocolMismatch(
                f"{name} runs protocol {registry.protocol()}, the genesis pins {pinned}"
            )
        self.machine = StateMachine(registry, self.network_id, genesis.tx_id)
        self.executor = BlockExecutor(store, self.machine)
        self._verifier = verifier or SignatureVerifier(self.limits)
        self._owns_verifier = verifier is None
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._pending: dict[bytes, _Pending] = {}
        self._pending_raw: dict[bytes, _Pending] = {}
        self._next_nonce: dict[Address, int] = {}
        self._pending_per_sender: dict[Address, int] = {}
        self._progress = asyncio.Event()
        self._own_tx_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        self.misbehaviour: list[Equivocation] = []
        self._cosigning: set[int] = set()
        self._committer_kind = committer
        self.witness = witness
        self._committer: CommitterThread | CommitterProcess | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self, *, timeout: float = 30.0) -> None:
        """Catch up with the ordered log and start taking submissions."""
        if self._committer_kind == "process":
            self._committer = CommitterProcess(
                self.store.url, self.store.tree_url, name=f"{self.name}-state"
            )
        else:
            self._committer = CommitterThread(
                self.store.engine, self.store.tree_engine, name=f"{self.name}-state"
            )
        self._committer.start()
        self.store.on_commit = self._committer.wake
        self._tasks = [
            asyncio.create_task(self._follow(), name=f"{self.name}-follow"),
            asyncio.create_task(self._batch(), name=f"{self.name}-batch"),
        ]
        if self.executor.size == 0:
            outcome = (await self.submit_raw_many([self.genesis.encode()]))[0]
            if not outcome.accepted and outcome.code not in {ReplayedTransaction.code, None}:
                log.info("%s: genesis not ordered by this node (%s)", self.name, outcome.code)
            await self.wait_for_size(1, timeout=timeout)
        if self.witness is not None:
            await self.catch_up(timeout=timeout)
            self.check_witness()

    async def catch_up(self, *, timeout: float = 30.0) -> None:
        """Wait until this node has applied every block ordered so far."""
        head = await self.orderer.head_seq()
        deadline = time.monotonic() + timeout
        while self.executor.applied_seq < head:
            if self._failure is not None:
                raise TransportError(f"{self.name} stopped following the log") from self._failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not catch up with block {head}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        pending = set(self._tasks)
        while pending:
            for task in pending:
                task.cancel()
            # Cancel again until the task ends: in Python 3.11 a wait_for inside a client
            # library can swallow one cancellation when its inner future completes at once.
            _, pending = await asyncio.wait(pending, timeout=0.5)
        self._tasks = []
        if self._committer is not None:
            await asyncio.to_thread(self._committer.stop)
            self._committer = None
        if self._owns_verifier:
            self._verifier.close()
        self._fail_pending(TransportError(f"{self.name} stopped"))

    # -- submission ------------------------------------------------------------

    async def submit(self, tx: SignedTransaction) -> TxOutcome:
        """Order and execute one transaction; raise its specific rejection if refused."""
        outcome = (await self.submit_raw_many([tx.encode()]))[0]
        if not outcome.accepted:
            raise rejection_from_code(outcome.code or "", outcome.message or "")
        return outcome

    async def submit_raw_many(self, raws: Sequence[bytes]) -> list[TxOutcome]:
        """Submit wire-form transactions; wait until each is executed or refused."""
        if self._failure is not None:
            raise TransportError(f"{self.name} has stopped following the log") from self._failure
        decoded = decode_all(raws, self.limits)
        candidates = [(i, d) for i, d in enumerate(decoded) if isinstance(d, SignedTransaction)]
        checked = await self._verifier.check(
            [d for _, d in candidates], [raws[i] for i, _ in candidates]
        )
        for (i, _), result in zip(candidates, checked, strict=True):
            decoded[i] = result
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[TxOutcome]] = []
        for raw, item in zip(raws, decoded, strict=True):
            future: asyncio.Future[TxOutcome] = loop.create_future()
            waits.append(future)
            refusal = item if isinstance(item, TransactionRejected) else None
            if isinstance(item, SignedTransaction):
                try:
                    self._admit(item, raw, future)
                except TransactionRejected as exc:
                    refusal = exc
            if refusal is not None:
                future.set_result(TxOutcome(b"", 0, 0, None, refusal.code, str(refusal)))
        return list(await asyncio.gather(*waits))

    def _admit(self, stx: SignedTransaction, raw: bytes, future: asyncio.Future[TxOutcome]) -> None:
        tx = stx.tx
        check_network(tx, self.network_id)
        pending = self._pending.get(stx.tx_id)
        if pending is not None:
            pending.futures.append(future)
            return
        committed = self.store.get(NONCE_NS, tx.sender) or 0
        expected = max(committed, self._next_nonce.get(tx.sender, 0))
        check_nonce(tx, expected)
        self._next_nonce[tx.sender] = tx.nonce + 1
        self._pending_per_sender[tx.sender] = self._pending_per_sender.get(tx.sender, 0) + 1
        entry = _Pending(stx, raw, [future])
        self._pending[stx.tx_id] = entry
        self._pending_raw[raw] = entry
        self._queue.put_nowait(entry)

    async def submit_payload(
        self, key: PrivateKey, tx_type: str, payload: dict[str, Any]
    ) -> TxOutcome:
        """Sign with the sender's next nonce and submit: for keys this process holds."""
        async with self._own_tx_lock:
            nonce = self.next_nonce(key.address)
            tx = Transaction(self.network_id, key.address, nonce, tx_type, payload).sign(key)
            waiter = asyncio.ensure_future(self.submit(tx))
            # Let the submission reserve its nonce before the next one is chosen.
            await asyncio.sleep(0)
        return await waiter

    def next_nonce(self, address: Address) -> int:
        committed = self.store.get(NONCE_NS, address) or 0
        return int(max(committed, self._next_nonce.get(address, 0)))

    async def _batch(self) -> None:
        limits = self.limits
        # The submission that did not fit in the last block opens the next one.
        carried: _Pending | None = None
        while True:
            batch = [carried or await self._queue.get()]
            carried = None
            size = len(batch[0].raw) + LENGTH_PREFIX
            if self._queue.empty():
                await asyncio.sleep(limits.block_linger_s)
            while len(batch) < limits.max_block_txs and not self._queue.empty():
                entry = self._queue.get_nowait()
                size += len(entry.raw) + LENGTH_PREFIX
                if size > limits.max_block_bytes:
                    carried = entry
                    break
                batch.append(entry)
            try:
                await self.orderer.append([entry.raw for entry in batch])
            except MedledgerError as exc:
                log.warning(
                    "%s: ordering failed for %d transactions: %s", self.name, len(batch), exc
                )
                for entry in batch:
                    self._settle(entry, exc)

    # -- execution -------------------------------------------------------------

    async def _follow(self) -> None:
        try:
            async for block in self.orderer.blocks(self.executor.applied_seq):
                await self._apply(block)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._failure = exc
            log.error("%s: stopped following the log: %s", self.name, exc)
            self._fail_pending(TransportError(f"{self.name} stopped following the log"))
            raise

    async def _apply(self, block: Block) -> None:
        # Our own submissions were decoded and checked on the way in: reuse them.
        decoded: list[Checked] = []
        for raw in block.txs:
            own = self._pending_raw.get(raw)
            decoded.append(own.tx if own is not None else decode_all([raw], self.limits)[0])
        unchecked = [
            i
            for i, d in enumerate(decoded)
            if isinstance(d, SignedTransaction) and not self._checked_here(d.tx_id, block.txs[i])
        ]
        items: list[Any] = [decoded[i] for i in unchecked]
        checked = await self._verifier.check(items, [block.txs[i] for i in unchecked])
        for i, result in zip(unchecked, checked, strict=True):
            decoded[i] = result
        outcomes = await asyncio.to_thread(self.executor.apply, block, decoded)
        cosigned: list[int] = []
        for item, outcome in zip(decoded, outcomes, strict=True):
            entry = self._pending.get(outcome.tx_id)
            if entry is not None:
                self._settle(entry, outcome)
            if (
                outcome.accepted
                and isinstance(item, SignedTransaction)
                and item.tx.tx_type == checkpoint_contract.COSIGN
            ):
                cosigned.append(int(item.tx.payload["size"]))
        self._progress.set()
        self._progress = asyncio.Event()
        for size in cosigned:
            self._cosign_later(size)

    def _checked_here(self, tx_id: bytes, raw: bytes) -> bool:
        # Same id is not enough: a relayer could pair our transaction with a bad signature.
        entry = self._pending.get(tx_id)
        return entry is not None and entry.raw == raw

    def _settle(self, entry: _Pending, result: TxOutcome | MedledgerError) -> None:
        self._pending.pop(entry.tx.tx_id, None)
        self._pending_raw.pop(entry.raw, None)
        sender = entry.tx.tx.sender
        remaining = self._pending_per_sender.get(sender, 1) - 1
        if remaining <= 0:
            self._pending_per_sender.pop(sender, None)
            self._next_nonce.pop(sender, None)
        else:
            self._pending_per_sender[sender] = remaining
        for future in entry.futures:
            if future.done():
                continue
            if isinstance(result, TxOutcome):
                future.set_result(result)
            else:
                future.set_exception(result)

    def _fail_pending(self, error: MedledgerError) -> None:
        for entry in list(self._pending.values()):
            self._settle(entry, error)

    async def wait_for_size(self, size: int, *, timeout: float = 30.0) -> None:
        """Wait until at least ``size`` transactions are accepted here."""
        deadline = time.monotonic() + timeout
        while self.executor.size < size:
            if self._failure is not None:
                raise TransportError(f"{self.name} stopped following the log") from self._failure
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self.name} has {self.executor.size} transactions, waited for {size}"
                )
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                continue

    # -- state, proofs, checkpoints ----------------------------------------------

    @property
    def size(self) -> int:
        return self.executor.size

    def root(self) -> bytes:
        return self.executor.root()

    def members(self) -> list[Address]:
        return active_members(self.store)

    def network_config(self) -> dict[str, Any]:
        return dict(self.store.get(NETWORK_NS, CONFIG_KEY) or {})

    def outcome(self, tx_id: bytes) -> TxOutcome:
        logged = self.store.tx_by_id(tx_id)
        if logged is not None:
            return TxOutcome(tx_id, logged.seq, logged.timestamp_ns, logged.index)
        rejected = self.store.rejection(tx_id)
        if rejected is None:
            raise UnknownTransaction(f"no transaction 0x{tx_id.hex()} on this node")
        return TxOutcome(tx_id, rejected.seq, 0, None, rejected.code, rejected.message)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        if not 0 <= index < size <= self.size:
            raise UnknownTransaction(
                f"no entry {index} in a log of {size} (this node has {self.size})"
            )
        return merkle.inclusion_proof(self.store, index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size if new_size is None else new_size
        if not 0 < old_size <= new_size <= self.size:
            raise UsageError(
                f"no consistency proof from {old_size} to {new_size} (log has {self.size})"
            )
        return merkle.consistency_proof(self.store, old_size, new_size)
