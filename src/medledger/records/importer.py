"""Importing FHIR files for a patient: new records, or new versions of known ones.

A resource whose type and FHIR id the patient already has in the vault becomes
the next version of that record, pointing to the version before; anything else
becomes a new record. A file that names the same resource twice is written in
passes, so that each version can point to the one written before it.

:func:`import_chart` is the import of files into one patient's chart: what is not
that patient's is refused or set aside first (chart.py), and the identifiers of the
chart's Patient go to the institution's index (patient_index.py).
:func:`import_sources` writes whatever resources it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from medledger.crypto.keys import Address
from medledger.records.chart import Chart, SharedResource, identifiers_named, sort_chart
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_sources import Loaded, Skipped, load_sources
from medledger.records.patient_index import PatientIndex, identifier_digest
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


@dataclass
class ChartReport:
    """What an import into a chart did: written and refused (``report``), and what it
    named without writing: institution-level resources, files it does not read."""

    report: WriteReport
    shared: list[SharedResource] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Identifiers of the chart's Patient newly indexed.
    indexed: int = 0


async def import_chart(
    writer: RecordWriter,
    pool: SealingPool,
    patient: Address,
    key: bytes,
    items: Sequence[Loaded | InvalidRecord | Skipped],
    *,
    index: PatientIndex,
    index_key: bytes,
    source_patient: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChartReport:
    """Import what files were read (fhir_sources.read_files) into ``patient``'s chart in
    this vault, as its institution: resources that are not the patient's are refused,
    institution-level ones named, and the chart's Patient's identifiers indexed once it
    is written. Raises chart.AmbiguousChart before anything is written if the files
    name several patients and ``source_patient`` does not say which is this one."""
    files = [item for item in items if isinstance(item, Loaded)]
    digests = {i: identifier_digest(index_key, i) for i in identifiers_named(files)}
    owners = index.owners(digests.values())
    held = [r.fhir_id for r in writer.store.for_patient(patient)
            if r.sealed.header.resource_type == "Patient"]  # fmt: skip
    chart = Chart.of(patient, held, {i: owners[d] for i, d in digests.items() if d in owners})
    sorted_ = sort_chart(files, chart, source_patient)
    unread = [item for item in items if isinstance(item, InvalidRecord)]
    sources: list[tuple[str, object] | InvalidRecord] = [*unread, *sorted_.refused,
                                                         *sorted_.records]  # fmt: skip
    report = await import_sources(writer, pool, patient, key, sources, progress=progress)
    indexed = 0
    if sorted_.identifiers and any(w.resource_type == "Patient" for w in report.written):
        ours = [identifier_digest(index_key, i) for i in sorted_.identifiers]
        indexed = index.add(patient, ours)
    skipped = [item for item in items if isinstance(item, Skipped)]
    return ChartReport(report, sorted_.shared, skipped, indexed)
