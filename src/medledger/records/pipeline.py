"""The per-record work of writing, run on every core.

Validating, canonicalising, encrypting, wrapping and signing a record need no
shared state, so worker processes do them in chunks and hand back sealed records.
Each resource is parsed once, where it is read (records/fhir_sources.py); a job
carries the parsed resource. The writer keeps what must be serial: numbering
batches, storing them in the vault (which alone lays out its rows) and committing
them to the ledger.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import NotCanonicalizable
from medledger.crypto.keys import Address, PrivateKey
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import validate_resource
from medledger.records.sealed import Custodians, Draft, KeyWrapper, SealedRecord, seal_record

DEFAULT_CHUNK = 128
# Chunks queued per worker: enough to keep workers busy while the writer stores a
# batch and commits it.
IN_FLIGHT_PER_WORKER = 6


@dataclass(frozen=True)
class Job:
    """One resource to write as one record version, as the writer planned it."""

    source: str
    #: The parsed JSON of the resource.
    resource: object
    record_id: bytes
    version: int
    previous: bytes
    patient: Address
    patient_key: bytes
    #: For an amendment: the resource type the record already has.
    resource_type: str | None = None


class Sealed(NamedTuple):
    """A sealed record version ready for the vault: sealed by a worker here, or sent by
    its author's client and checked (records/incoming.py)."""

    source: str
    sealed: SealedRecord
    author: Address
    #: The FHIR resource id, so that a later version of the same resource finds it.
    fhir_id: str | None


Outcome = Sealed | InvalidRecord


@dataclass(frozen=True)
class Incoming:
    """A sealed record version as its author's client sends it."""

    sealed: SealedRecord
    #: The FHIR resource id, so that a later version of the same resource finds it.
    fhir_id: str | None = None


@dataclass(frozen=True)
class SealingContext:
    """What every worker needs: whose signature, which network, which custodians."""

    network_id: int
    author_secret: bytes
    custodians: Custodians


def seal_jobs(context: SealingContext, jobs: Sequence[Job]) -> list[Outcome]:
    """Seal a chunk of jobs; a bad resource becomes its InvalidRecord, the rest go on."""
    author = _author(context.author_secret)
    wrapper = KeyWrapper(context.custodians)
    return [_seal_one(context.network_id, author, wrapper, job) for job in jobs]


def seal_for_upload(context: SealingContext, jobs: Sequence[Job]) -> list[Incoming | InvalidRecord]:
    """Seal on the author's own machine, for a node to check and commit (records/incoming.py)."""
    author = _author(context.author_secret)
    wrapper = KeyWrapper(context.custodians)
    results: list[Incoming | InvalidRecord] = []
    for job in jobs:
        sealed = _seal(context.network_id, author, wrapper, job)
        results.append(sealed if isinstance(sealed, InvalidRecord) else Incoming(*sealed))
    return results


def _seal_one(network_id: int, author: PrivateKey, wrapper: KeyWrapper, job: Job) -> Outcome:
    sealed = _seal(network_id, author, wrapper, job)
    if isinstance(sealed, InvalidRecord):
        return sealed
    record, fhir_id = sealed
    return Sealed(job.source, record, author.address, fhir_id)


def _seal(
    network_id: int, author: PrivateKey, wrapper: KeyWrapper, job: Job
) -> tuple[SealedRecord, str | None] | InvalidRecord:
    """Validate, canonicalise and seal one job; return the record and its FHIR id."""
    obj = job.resource
    try:
        resource = validate_resource(obj, job.source)
        canonical = canonical_json(resource.body)
    except InvalidRecord as exc:
        return exc
    except NotCanonicalizable as exc:
        return InvalidRecord(job.source, _name(obj), "", str(exc))
    if job.resource_type is not None and resource.resource_type != job.resource_type:
        return InvalidRecord(
            job.source, _name(obj), "resourceType", f"an amendment of a {job.resource_type}"
        )
    draft = Draft(
        record_id=job.record_id,
        version=job.version,
        previous=job.previous,
        patient=job.patient,
        patient_key=job.patient_key,
        resource_type=resource.resource_type,
        category=resource.category,
    )
    sealed = seal_record(draft, canonical, network_id=network_id, author=author, wrapper=wrapper)
    return sealed, resource.fhir_id


def _name(obj: object) -> str:
    if isinstance(obj, dict):
        return f"{obj.get('resourceType', 'resource')}/{obj.get('id', '?')}"
    return "resource"


_author_cache: dict[bytes, PrivateKey] = {}


def _author(secret: bytes) -> PrivateKey:
    # A worker seals many chunks for one author: derive the key object once.
    key = _author_cache.get(secret)
    if key is None:
        _author_cache.clear()
        key = _author_cache[secret] = PrivateKey.from_bytes(secret)
    return key


_worker_context: SealingContext | None = None


def _start_worker(context: SealingContext) -> None:
    global _worker_context  # noqa: PLW0603 - one context per worker process, set once
    _worker_context = context


def _seal_in_worker(jobs: Sequence[Job]) -> list[Outcome]:
    assert _worker_context is not None, "worker started without a context"
    return seal_jobs(_worker_context, jobs)


class SealingPool:
    """Seals jobs on ``workers`` processes, in order, a few chunks ahead of the consumer.

    With one worker everything runs in this process: for small imports, starting
    processes costs more than it saves.
    """

    def __init__(
        self, context: SealingContext, *, workers: int | None = None, chunk: int = DEFAULT_CHUNK
    ) -> None:
        self.context = context
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self.chunk = chunk
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            # forkserver: the writer runs threads (the ledger node's), which fork does not copy.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_start_worker,
                initargs=(context,),
            )

    async def warm_up(self) -> None:
        """Start every worker now rather than on the first chunk."""
        if self._pool is not None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(
                    loop.run_in_executor(self._pool, _seal_in_worker, [])
                    for _ in range(self.workers)
                )
            )

    async def seal(self, jobs: Iterable[Job]) -> AsyncIterator[list[Outcome]]:
        """Yield the outcomes chunk by chunk, in the order of ``jobs``."""
        chunks = _chunked(jobs, self.chunk)
        if self._pool is None:
            for chunk in chunks:
                yield seal_jobs(self.context, chunk)
            return
        loop = asyncio.get_running_loop()
        in_flight: list[asyncio.Future[list[Outcome]]] = []
        try:
            for chunk in chunks:
                in_flight.append(loop.run_in_executor(self._pool, _seal_in_worker, chunk))
                if len(in_flight) >= IN_FLIGHT_PER_WORKER * self.workers:
                    yield await in_flight.pop(0)
            while in_flight:
                yield await in_flight.pop(0)
        finally:
            for future in in_flight:
                future.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def _chunked(jobs: Iterable[Job], size: int) -> Iterable[list[Job]]:
    chunk: list[Job] = []
    for job in jobs:
        chunk.append(job)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
