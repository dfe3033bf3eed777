"""Importing FHIR files for a patient: new records, or new versions of known ones.

A resource whose type and FHIR id the patient already has in the vault becomes
the next version of that record, pointing to the version before; anything else
becomes a new record. A file that names the same resource twice is written in
passes, so that each version can point to the one written before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from medledger.crypto.keys import Address
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_sources import load_sources
from medledger.records.pipeline import Job, SealingPool
from medledger.records.writer import RecordWriter, WriteReport, plan_new

Source = tuple[str, object] | InvalidRecord


class Latest(Protocol):
    """The newest version of a record, as much as an amendment needs of it."""

    @property
    def record_id(self) -> bytes: ...

    @property
    def version(self) -> int: ...

    @property
    def resource_type(self) -> str: ...

    @property
    def digest(self) -> bytes: ...


def plan_pass(
    latest: Callable[[str, str], Latest | None], patient: Address, key: bytes,
    sources: Iterable[Source],
) -> tuple[list[Job | InvalidRecord], list[Source]]:  # fmt: skip
    """Jobs for one pass, and the sources that must wait for the next. ``latest`` finds
    the patient's newest version of a resource by type and FHIR id: in a vault here,
    or in the record list a node serves to the author."""
    jobs: list[Job | InvalidRecord] = []
    later: list[Source] = []
    seen: set[tuple[str, str]] = set()
    for item in sources:
        if isinstance(item, InvalidRecord):
            jobs.append(item)
            continue
        source, obj = item
        identity = _identity(obj)
        if identity is None:
            jobs.append(plan_new(source, obj, patient, key))
            continue
        if identity in seen:
            later.append(item)
            continue
        seen.add(identity)
        found = latest(*identity)
        if found is None:
            jobs.append(plan_new(source, obj, patient, key))
        else:
            jobs.append(Job(source, obj, found.record_id, found.version + 1, found.digest,
                            patient, key, resource_type=found.resource_type))  # fmt: skip
    return jobs, later


def _identity(obj: object) -> tuple[str, str] | None:
    if not isinstance(obj, dict):
        return None
    resource_type, fhir_id = obj.get("resourceType"), obj.get("id")
    if isinstance(resource_type, str) and isinstance(fhir_id, str):
        return resource_type, fhir_id
    return None


async def import_sources(
    writer: RecordWriter,
    pool: SealingPool,
    patient: Address,
    key: bytes,
    sources: Sequence[Source],
    *,
    progress: Callable[[int], None] | None = None,
) -> WriteReport:
    """Import loaded FHIR sources; every rejection is reported at the end, none raised."""
    report = WriteReport()
    remaining = list(sources)
    while remaining:
        jobs, remaining = plan_pass(
            lambda kind, fhir_id: writer.store.latest_by_fhir_id(patient, kind, fhir_id),
            patient, key, remaining,
        )  # fmt: skip
        done = await writer.write(jobs, pool, progress=progress)
        report.written += done.written
        report.rejected += done.rejected
        report.batches += done.batches
    return report


async def import_paths(
    writer: RecordWriter,
    pool: SealingPool,
    patient: Address,
    key: bytes,
    paths: Sequence[Path],
) -> WriteReport:
    """Import files and folders of FHIR JSON (see :func:`import_sources`)."""
    return await import_sources(writer, pool, patient, key, list(load_sources(paths)))
