"""A node's heads and checkpoints: its state roots, its signed heads, the cosigning.

Mixed into :class:`~medledger.ledger.node.LedgerNode`. A node signs a head only for
a log it holds and a state root its own committer computed. It cosigns on its own
when another member cosigns a size, proposes heads on a schedule
(:class:`CheckpointScheduler`), and before it sends a cosignature it records the head
in its witness file: a node that later finds its log shorter than a head it signed,
or different from it, knows the ordering service lost or rewrote acknowledged
entries and refuses to serve (:meth:`HeadsMixin.check_witness`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medledger.crypto import merkle
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import MedledgerError, TransportError, UsageError
from medledger.ledger.checkpoints import (
    Checkpoint,
    Equivocation,
    Quorum,
    SignedTreeHead,
    TreeHead,
    find_equivocation,
)
from medledger.ledger.contracts import checkpoint as checkpoint_contract
from medledger.ledger.errors import CheckpointError, LogBehindWitness
from medledger.ledger.machine import NETWORK_NS
from medledger.ledger.timestamps import NS_PER_MS

if TYPE_CHECKING:
    from medledger.ledger.committer import CommitterProcess, CommitterThread
    from medledger.ledger.executor import TxOutcome
    from medledger.ledger.store import LedgerStore

log = logging.getLogger(__name__)


class HeadsMixin:
    name: str
    network_id: int
    store: LedgerStore
    key: PrivateKey | None
    witness: Path | None
    misbehaviour: list[Equivocation]
    _committer: CommitterThread | CommitterProcess | None
    _cosigning: set[int]
    _tasks: list[asyncio.Task[None]]

    @property
    def size(self) -> int:
        raise NotImplementedError

    def members(self) -> list[Address]:
        raise NotImplementedError

    def network_config(self) -> dict[str, Any]:
        raise NotImplementedError

    async def submit_payload(
        self, key: PrivateKey, tx_type: str, payload: dict[str, Any]
    ) -> TxOutcome:
        raise NotImplementedError

    async def state_root_at(self, size: int | None = None, *, timeout: float = 30.0) -> bytes:
        """The state root after the block that ended at ``size`` (default: the log now),
        once this node's state committer has reached it."""
        size = self.size if size is None else size
        deadline = time.monotonic() + timeout
        while True:
            root = self.store.tree.root_at(size)
            if root is not None:
                return root
            failure = None if self._committer is None else self._committer.failure
            if failure is not None:
                raise TransportError(f"{self.name}: the state committer failed") from failure
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} has no state root at log size {size} yet")
            await asyncio.sleep(0.005)

    def tree_head(self, size: int | None = None) -> TreeHead:
        """This node's head at ``size``: its log root, and its committer's state root."""
        size = self.size if size is None else size
        if not 0 < size <= self.size:
            raise UsageError(f"no tree head of size {size} (log has {self.size})")
        state_root = self.store.tree.root_at(size)
        if state_root is None:
            raise UsageError(f"no state root at log size {size} yet")
        root, timestamp_ms = self._log_head(size)
        return TreeHead(self.network_id, size, root, state_root, timestamp_ms)

    def _log_head(self, size: int) -> tuple[bytes, int]:
        """The log's root at ``size`` and the time its last entry was ordered, in ms."""
        last = self.store.tx_by_index(size - 1)
        return merkle.root(self.store, size), last.timestamp_ns // NS_PER_MS

    async def head_at(self, size: int | None = None, *, timeout: float = 30.0) -> TreeHead:
        """:meth:`tree_head`, once the committer has the state root."""
        size = self.size if size is None else size
        await self.state_root_at(size, timeout=timeout)
        return self.tree_head(size)

    def checkpoint(self, size: int | None = None) -> Checkpoint | None:
        """The latest checkpoint that reached the threshold, or the best cosigned head at
        ``size`` (the state root most members signed there)."""
        if size is None:
            latest = checkpoint_contract.latest_cosigned(self.store)
            return None if latest is None else Checkpoint.from_json(latest)
        candidates = [
            checkpoint_contract.cosigned_at(self.store, size, root)
            for root in checkpoint_contract.roots_at(self.store, size)
        ]
        entries = [e for e in candidates if e is not None]
        if not entries:
            return None
        return Checkpoint.from_json(max(entries, key=lambda e: len(e["cosignatures"])))

    def verify_checkpoint(self, checkpoint: Checkpoint) -> Quorum:
        """Check cosignatures against current members and the head against this log;
        return who cosigned."""
        threshold = int(self.network_config()["checkpoint_threshold"])
        quorum = checkpoint.verify(self.members(), threshold)
        head = checkpoint.head
        if head.size <= self.size and not self._agrees(head):
            raise CheckpointError(f"checkpoint at size {head.size} contradicts this node's log")
        return quorum

    def _agrees(self, head: TreeHead) -> bool:
        """Whether ``head`` is this node's own, as far as its committer got."""
        if (head.root, head.timestamp_ms) != self._log_head(head.size):
            return False
        ours = self.store.tree.root_at(head.size)
        return ours is None or ours == head.state_root

    async def cosign_head(
        self, size: int | None = None, *, key: PrivateKey | None = None
    ) -> TxOutcome:
        """Sign this node's head at ``size`` and submit the cosignature.

        ``key`` signs for a member other than this node's own, where one operator
        holds several members' keys (a sandbox).
        """
        key = key or self.key
        if key is None:
            raise UsageError(f"{self.name} has no signing key")
        signed = (await self.head_at(size)).sign(key)
        if key is self.key:
            self._witness(signed.head)
        return await self.submit_payload(key, checkpoint_contract.COSIGN, signed.cosign_payload())

    def is_member(self) -> bool:
        """Whether this node's key belongs to a current member, whose cosignature counts."""
        return self.key is not None and self.key.address in self.members()

    def _cosign_later(self, size: int) -> None:
        if self.key is None or not self.is_member():
            return
        if size in self._cosigning or self._has_cosigned(self.key.address, size):
            return
        # Every accepted cosignature of this size calls here; one of ours is enough, and a
        # second would be refused after taking a nonce that the next submission then lacks.
        self._cosigning.add(size)
        task = asyncio.create_task(self._cosign_quietly(size))
        self._tasks.append(task)

    def _has_cosigned(self, member: Address, size: int) -> bool:
        entries = [
            checkpoint_contract.cosigned_at(self.store, size, root)
            for root in checkpoint_contract.roots_at(self.store, size)
        ]
        return any(member in entry["cosignatures"] for entry in entries if entry is not None)

    async def _cosign_quietly(self, size: int) -> None:
        try:
            await self.cosign_head(size)
        except MedledgerError as exc:
            log.info("%s: did not cosign size %d: %s", self.name, size, exc)
        finally:
            self._cosigning.discard(size)

    def check_head(self, signed: SignedTreeHead) -> Equivocation | None:
        """Compare a head received from elsewhere with this log; report a contradiction."""
        signed.verify()
        head = signed.head
        if head.network_id != self.network_id or head.size > self.size:
            return None
        if self._agrees(head):
            return None
        ours = self.tree_head(head.size)
        if self.key is None:
            # Without a key of our own there is no second signed head to pair it with.
            raise CheckpointError(
                f"{signed.signer} signed a head of size {head.size} that contradicts this log"
            )
        evidence = find_equivocation(signed, ours.sign(self.key))
        if evidence is not None:
            log.warning(
                "%s: %s signed a head of size %d that contradicts this log",
                self.name,
                signed.signer,
                head.size,
            )
            self.misbehaviour.append(evidence)
        return evidence

    # -- the witness of what this node signed --------------------------------------

    def _witness(self, head: TreeHead) -> None:
        """Remember, durably and before it leaves, the largest head this node signs."""
        if self.witness is None:
            return
        known = _read_witness(self.witness)
        if known is not None and known.size >= head.size:
            return
        partial = self.witness.with_suffix(".partial")
        with partial.open("w") as file:
            json.dump(head.to_json(), file)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(self.witness)

    def check_witness(self) -> None:
        """Refuse to serve if this node's log is shorter than, or differs from, a head it
        signed: the ordering service lost or rewrote entries it had acknowledged."""
        if self.witness is None:
            return
        head = _read_witness(self.witness)
        if head is None:
            return
        if self.size < head.size:
            raise LogBehindWitness(
                f"{self.name} signed a head of size {head.size} but its log holds {self.size} "
                "entries after catching up: the ordering service lost acknowledged entries"
            )
        if merkle.root(self.store, head.size) != head.root:
            raise LogBehindWitness(
                f"{self.name}'s log at size {head.size} differs from the head it signed"
            )


def _read_witness(path: Path) -> TreeHead | None:
    try:
        return TreeHead.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, CheckpointError) as exc:
        raise LogBehindWitness(f"the witness file {path.name} is unreadable: {exc}") from exc


class CheckpointScheduler:
    """Proposes heads so that every entry gets under a cosigned checkpoint soon.

    A member proposes (cosigns its own head, which makes the others cosign) when the
    log holds entries beyond the latest checkpoint other than cosignatures, and either
    ``every_entries`` of them are waiting or ``interval_s`` passed since the latest
    checkpoint. Members take turns by time slot, and one whose turn it is not steps in
    after three slots without a checkpoint, so a member that is down delays, not stops.
    """

    def __init__(
        self, node: HeadsMixin, *, interval_s: float = 10.0, every_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.node = node
        self.interval_s = interval_s
        self.every_entries = every_entries
        self._clock = clock
        # Turns follow wall-clock slots, which all members share.
        self._wall = wall
        self._last_progress = clock()
        self._last_latest = 0

    def due(self) -> bool:
        node = self.node
        if node.key is None or not node.is_member():
            return False
        latest = node.store.get(NETWORK_NS, checkpoint_contract.LATEST_KEY)
        covered = 0 if latest is None else int(latest["size"])
        now = self._clock()
        if covered != self._last_latest:
            self._last_latest, self._last_progress = covered, now
        waiting = node.size - covered
        if waiting <= 0 or not node.store.has_entries_besides(covered, checkpoint_contract.COSIGN):
            return False
        quiet = now - self._last_progress
        if waiting < self.every_entries and quiet < self.interval_s:
            return False
        members = sorted(node.members())
        slot = int(self._wall() // self.interval_s) % len(members)
        mine = members[slot] == node.key.address
        return mine or quiet >= 3 * self.interval_s

    async def run(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.interval_s / 4))
            if not self.due():
                continue
            try:
                await self.node.cosign_head()
            except (MedledgerError, TimeoutError) as exc:
                log.info("%s: no checkpoint proposed: %s", self.node.name, exc)
            # Give the others time to cosign before judging whether another is due.
            self._last_progress = self._clock()
