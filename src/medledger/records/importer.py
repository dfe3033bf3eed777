"""Importing FHIR files for a patient: new records, or new versions of known ones.

A resource whose type and FHIR id the patient already has in the vault becomes
the next version of that record, pointing to the version before; anything else
becomes a new record. A file that names the same resource twice is written in
passes, so that each version can point to the one written before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from medledger.crypto.keys import Address
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_sources import load_sources
from medledger.records.pipeline import Job, SealingPool
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter, WriteReport, plan_new

Source = tuple[str, object] | InvalidRecord


def plan_pass(
    store: VaultStore, patient: Address, key: bytes, sources: Iterable[Source]
) -> tuple[list[Job | InvalidRecord], list[Source]]:
    """Jobs for one pass, and the sources that must wait for the next."""
    jobs: list[Job | InvalidRecord] = []
    later: list[Source] = []
    seen: set[tuple[str, str]] = set()
    for item in sources:
        if isinstance(item, InvalidRecord):
            jobs.append(item)
            continue
        source, obj = item
        body = json.dumps(obj, ensure_ascii=False).encode()
        identity = _identity(obj)
        if identity is None:
            jobs.append(plan_new(source, body, patient, key))
            continue
        if identity in seen:
            later.append(item)
            continue
        seen.add(identity)
        latest = store.latest_by_fhir_id(patient, *identity)
        if latest is None:
            jobs.append(plan_new(source, body, patient, key))
        else:
            jobs.append(
                Job(
                    source,
                    body,
                    latest.record_id,
                    latest.version + 1,
                    latest.digest,
                    patient,
                    key,
                    resource_type=latest.resource_type,
                )
            )
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
        jobs, remaining = plan_pass(writer.store, patient, key, remaining)
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
