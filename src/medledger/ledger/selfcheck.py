"""A node's check of its own store against a replay of its own log.

Everything in a node's store but the log itself is derived from the log: the state
tables, the Merkle nodes, the state tree. An operator who edits the database (or a
disk that corrupts it) could change any of them without the node noticing, and
the node would then serve state nobody agreed on. The check replays every logged
transaction, signatures included, into a scratch store with the network's
contracts, and compares: every entry is accepted again at its index, the log's
root equals the replay's (and the latest cosigned checkpoint's, which anchors the
log itself to what the other members signed), the state tables are entry for
entry the replay's, and the state tree's root is the root of those entries. A node
runs it before it serves (and ``medledger ledger check`` on demand); it costs one
replay of the log, about as long as executing it the first time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medledger.crypto import merkle
from medledger.errors import MedledgerError
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts import checkpoint as checkpoint_contract
from medledger.ledger.contracts.base import ContractRegistry
from medledger.ledger.contracts.membership import active_members
from medledger.ledger.errors import TransactionRejected
from medledger.ledger.executor import BlockExecutor
from medledger.ledger.machine import CONFIG_KEY, NETWORK_NS, StateMachine
from medledger.ledger.ordering.base import Block
from medledger.ledger.store import LedgerStore, LoggedTx
from medledger.ledger.tx import SignedTransaction
from medledger.ledger.verify import Checked, decode_all

MAX_LISTED = 20


@dataclass
class SelfCheck:
    entries: int = 0
    blocks: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def flag(self, problem: str) -> None:
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "entries": self.entries, "blocks": self.blocks,
                "problems": list(self.problems)}  # fmt: skip


def check_store(
    store: LedgerStore,
    genesis: SignedTransaction,
    registry: ContractRegistry,
    *,
    limits: LedgerLimits | None = None,
    progress: Callable[[int], None] | None = None,
) -> SelfCheck:
    """Replay ``store``'s log and report every way the store differs from the replay."""
    limits = limits or LedgerLimits()
    report = SelfCheck()
    with tempfile.TemporaryDirectory(prefix="medledger-selfcheck-") as scratch:
        replay = LedgerStore.open(str(Path(scratch) / "replay.db"))
        machine = StateMachine(registry, genesis.tx.network_id, genesis.tx_id)
        try:
            _replay(store, BlockExecutor(replay, machine), limits, report, progress)
            if report.ok:
                _compare(store, replay, report)
        finally:
            replay.close()
    return report


def _blocks(store: LedgerStore) -> Iterator[list[LoggedTx]]:
    block: list[LoggedTx] = []
    for logged in store.iter_txs():
        if block and logged.seq != block[0].seq:
            yield block
            block = []
        block.append(logged)
    if block:
        yield block


def _replay(
    store: LedgerStore, executor: BlockExecutor, limits: LedgerLimits, report: SelfCheck,
    progress: Callable[[int], None] | None,
) -> None:  # fmt: skip
    for block in _blocks(store):
        raws = tuple(logged.raw for logged in block)
        decoded = [_checked(item) for item in decode_all(raws, limits)]
        outcomes = executor.apply(Block(block[0].seq, block[0].timestamp_ns, raws), decoded)
        for logged, outcome in zip(block, outcomes, strict=True):
            if outcome.index != logged.index:
                report.flag(
                    f"log entry {logged.index} ({logged.tx_type}) is not accepted by a replay: "
                    f"{outcome.code or 'at another index'}"
                )
            elif merkle.leaf_hash(logged.raw) != logged.leaf:
                report.flag(f"log entry {logged.index}: the stored leaf hash is not its own")
        report.entries += len(block)
        report.blocks += 1
        if progress is not None:
            progress(report.entries)


def _checked(item: Checked) -> Checked:
    """A decoded transaction whose signature holds, or why not: the executor trusts
    what it is given to be checked."""
    if isinstance(item, SignedTransaction):
        try:
            item.verify()
        except TransactionRejected as exc:
            return exc
    return item


def _compare(store: LedgerStore, replay: LedgerStore, report: SelfCheck) -> None:
    size = replay.size
    if store.size != size:
        report.flag(f"the store says the log holds {store.size} entries; it holds {size}")
        return
    if size and merkle.root(store, size) != merkle.root(replay, size):
        report.flag("the stored Merkle nodes do not give the log's root")
    ours, theirs = dict(_keyed(store)), dict(_keyed(replay))
    for entry in sorted(ours.keys() ^ theirs.keys()):
        report.flag(f"state {entry[0]}/{entry[1]}: {'extra' if entry in ours else 'missing'}")
    for entry in sorted(k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]):
        report.flag(f"state {entry[0]}/{entry[1]}: differs from the replay")
    tree_root = store.tree.root_at(size)
    if tree_root is not None and tree_root != replay.scanned_state_root():
        report.flag(f"the state tree's root at size {size} is not the root of the state")
    _check_checkpoint(replay, report)


def _keyed(store: LedgerStore) -> Iterator[tuple[tuple[str, str], bytes]]:
    for ns, key, value in store.state_entries():
        yield (ns, key), value


def _check_checkpoint(replay: LedgerStore, report: SelfCheck) -> None:
    """The replayed log must be the one the members cosigned at the latest checkpoint."""
    if replay.get(NETWORK_NS, checkpoint_contract.LATEST_KEY) is None:
        return
    entry = checkpoint_contract.latest_cosigned(replay)
    config = replay.get(NETWORK_NS, CONFIG_KEY)
    if entry is None or config is None:
        report.flag("the latest checkpoint's entry is missing from the replayed state")
        return
    checkpoint = Checkpoint.from_json(entry)
    try:
        checkpoint.verify(active_members(replay), int(config["checkpoint_threshold"]))
    except MedledgerError as exc:
        report.flag(f"the latest checkpoint does not verify: {exc}")
    if merkle.root(replay, checkpoint.head.size) != checkpoint.head.root:
        report.flag(f"the log differs from the checkpoint cosigned at {checkpoint.head.size}")
