"""Writing records: plan versions, seal on every core, store and commit in batches.

The writer is the serial part of the pipeline. Sealed records arrive from the
pool in order; every ``batch_records`` of them become one batch: a Merkle tree
over their commitments, stored pending in the vault, committed to the ledger
with one ``records.commit`` transaction, then marked committed. Workers keep
sealing the next chunks meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from medledger.crypto import merkle
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import UsageError
from medledger.ledger.node import LedgerNode
from medledger.records.contract import COMMIT, batch_state
from medledger.records.errors import InvalidRecord
from medledger.records.header import FIRST_VERSION, NO_PREVIOUS, RECORD_ID_SIZE
from medledger.records.incoming import (
    AuthorCheck,
    authoring_refusal,
    check_incoming,
    check_version,
)
from medledger.records.pipeline import Incoming, Job, Sealed, SealingPool
from medledger.records.store import PENDING, VaultStore

log = logging.getLogger(__name__)

DEFAULT_BATCH_RECORDS = 2048


@dataclass(frozen=True)
class Written:
    source: str
    record_id: bytes
    version: int
    resource_type: str


@dataclass
class WriteReport:
    written: list[Written] = field(default_factory=list)
    rejected: list[InvalidRecord] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)


class RecordWriter:
    def __init__(
        self,
        store: VaultStore,
        node: LedgerNode,
        institution: PrivateKey,
        *,
        batch_records: int = DEFAULT_BATCH_RECORDS,
        authoring: AuthorCheck | None = None,
    ) -> None:
        """``authoring`` judges whether an author may write each record it is given (the
        network's rule, from the access layer); records that fail are refused."""
        if store.network_id != node.network_id:
            raise UsageError("the vault and the ledger node belong to different networks")
        self.store = store
        self.node = node
        self.institution = institution
        self.batch_records = batch_records
        self.authoring = authoring
        self.vault = "0x" + store.vault_id.hex()
        # Batches are numbered and committed one after another, whoever writes them.
        self._serial = asyncio.Lock()

    async def recover(self) -> list[int]:
        """Finish batches a crash left pending; return their numbers."""
        finished = []
        for batch in self.store.batches(PENDING):
            on_ledger = batch_state(self.node.store, self.vault, batch.seq)
            if on_ledger is None:
                await self._commit(batch.seq, batch.root, batch.count)
            elif on_ledger.root == batch.root:
                logged = self.node.store.tx_by_index(on_ledger.index)
                self.store.mark_committed(batch.seq, logged.tx_id, logged.index)
            else:
                raise UsageError(f"batch {batch.seq} on the ledger is not the one in this vault")
            finished.append(batch.seq)
        return finished

    async def write(
        self,
        jobs: Iterable[Job | InvalidRecord],
        pool: SealingPool,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> WriteReport:
        """Seal, store and commit every job; rejections are collected, not raised.

        Batch ``k`` is committed to the ledger while batch ``k + 1`` is sealed and
        stored; commits stay in order, as the records contract requires.
        """
        async with self._serial:
            return await self._write(jobs, pool, progress)

    async def write_sealed(self, batch: Sequence[Incoming]) -> int:
        """Check records sealed by their authors' clients, store and commit them as one
        batch; return its number. Nothing is stored if any record is refused."""
        async with self._serial:
            self._require_no_pending()
            accepted = check_incoming(
                self.node, self.store, self.institution.address, batch, self.authoring
            )
            seq = self.store.next_batch()
            await (await self._flush(seq, accepted, None))
            return seq

    async def write_together(self, sealed: Sequence[Sealed]) -> int:
        """Store and commit records sealed here as one batch, all or none: a record the
        authoring rule refuses refuses them all (its InvalidRecord is raised). Returns the
        log index of the batch's commit."""
        async with self._serial:
            self._require_no_pending()
            for item in sealed:
                judged = self._judged(item)
                if isinstance(judged, InvalidRecord):
                    raise judged
                # Under the lock: another write may have taken this version meanwhile.
                check_version(self.store, item.sealed, item.author)
            seq = self.store.next_batch()
            return await (await self._flush(seq, list(sealed), None))

    def _require_no_pending(self) -> None:
        if self.store.batches(PENDING):
            raise UsageError("the vault has pending batches: recover them first")

    async def _write(
        self,
        jobs: Iterable[Job | InvalidRecord],
        pool: SealingPool,
        progress: Callable[[int], None] | None,
    ) -> WriteReport:
        self._require_no_pending()
        report = WriteReport()
        pending: list[Sealed] = []
        seq = self.store.next_batch()
        committing: asyncio.Task[int] | None = None
        try:
            async for outcomes in pool.seal(self._jobs(jobs, report)):
                for outcome in outcomes:
                    judged = self._judged(outcome)
                    if isinstance(judged, InvalidRecord):
                        report.rejected.append(judged)
                    else:
                        pending.append(judged)
                while len(pending) >= self.batch_records:
                    committing = await self._flush(seq, pending[: self.batch_records], committing)
                    report.batches.append(seq)
                    report.written += _written(pending[: self.batch_records])
                    del pending[: self.batch_records]
                    seq += 1
                if progress is not None:
                    progress(len(report.written) + len(pending) + len(report.rejected))
            if pending:
                committing = await self._flush(seq, pending, committing)
                report.batches.append(seq)
                report.written += _written(pending)
            if committing is not None:
                await committing
        finally:
            if committing is not None and not committing.done():
                committing.cancel()
        return report

    def _judged(self, sealed: Sealed | InvalidRecord) -> Sealed | InvalidRecord:
        """A record sealed here, or why it was refused (invalid, or by the authoring rule)."""
        if self.authoring is None or isinstance(sealed, InvalidRecord):
            return sealed
        refusal = authoring_refusal(self.authoring, self.node.store, sealed.sealed, sealed.author,
                                    index=self.node.size, timestamp_ns=time.time_ns())  # fmt: skip
        if refusal is None:
            return sealed
        return InvalidRecord(sealed.source, sealed.sealed.header.resource_type, "", refusal)

    @staticmethod
    def _jobs(jobs: Iterable[Job | InvalidRecord], report: WriteReport) -> Iterator[Job]:
        for job in jobs:
            if isinstance(job, InvalidRecord):
                report.rejected.append(job)
            else:
                yield job

    async def _flush(
        self, seq: int, sealed: list[Sealed], previous: asyncio.Task[int] | None
    ) -> asyncio.Task[int]:
        """Store a batch, then start its commit once the previous one is done."""
        leaves = [merkle.leaf_hash(item.sealed.commitment) for item in sealed]
        root, proofs = merkle.root_and_proofs(leaves)
        # In a thread: the event loop keeps handing chunks to the sealing workers.
        await asyncio.to_thread(self.store.add_batch, seq, root, sealed, proofs)
        if previous is not None:
            await previous
        log.info("committing batch %d of %d records", seq, len(sealed))
        return asyncio.create_task(self._commit(seq, root, len(sealed)))

    async def _commit(self, seq: int, root: bytes, count: int) -> int:
        """Commit a stored batch; return the log index of its commit."""
        payload = {"vault": self.vault, "batch": seq, "count": count, "root": "0x" + root.hex()}
        outcome = await self.node.submit_payload(self.institution, COMMIT, payload)
        assert outcome.index is not None  # submit raises unless accepted
        self.store.mark_committed(seq, outcome.tx_id, outcome.index)
        return outcome.index


def _written(sealed: list[Sealed]) -> list[Written]:
    headers = [(s.source, s.sealed.header) for s in sealed]
    return [Written(source, h.record_id, h.version, h.resource_type) for source, h in headers]


def new_record_id() -> bytes:
    return os.urandom(RECORD_ID_SIZE)


def plan_new(
    source: str, resource: object, patient: Address, key: bytes, record_id: bytes | None = None
) -> Job:
    """A job that writes the parsed ``resource`` as the first version of a new record."""
    return Job(source, resource, record_id or new_record_id(), FIRST_VERSION, NO_PREVIOUS,
               patient, key)  # fmt: skip
