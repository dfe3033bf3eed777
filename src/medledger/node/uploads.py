"""Records sealed on the author's own machine and committed at a node, and the
evidence a patient's client gathers for an issuer.

:func:`upload_chart` is ``records push``: files into one patient's chart, sorted by the
chart rules (records/chart.py) against what the node lists of the chart and what its
institution's patient index holds (as keyed hashes this client computes), and the
chart's Patient's identifiers indexed once it is written. :func:`upload_records`
writes whatever resources it is given.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from medledger.crypto.keys import Address
from medledger.errors import InvalidInput, MedledgerError
from medledger.node import api
from medledger.node.client import NodeClient, NodeRefused
from medledger.node.identities import PATIENT_LABEL, encryption_key
from medledger.node.proven_state import ProvenState
from medledger.records.chart import Chart, SharedResource, identifiers_named, sort_chart
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_sources import Loaded, Skipped
from medledger.records.importer import plan_pass
from medledger.records.patient_index import identifier_digest
from medledger.records.pipeline import Incoming, Job, SealingContext, seal_for_upload
from medledger.records.recipients import custodians_in, patient_key_in
from medledger.records.sealed import (
    Custodians,
    SealedRecord,
    open_as_patient,
    open_salted_as_patient,
)


class _Listed(NamedTuple):
    """A version the node lists: what an amendment of it needs (importer.Latest)."""

    record_id: bytes
    version: int
    resource_type: str
    digest: bytes


async def _listed(client: NodeClient, patient: Address) -> list[api.RecordSummary]:
    """The patient's record versions at this node, as far as the author may list them;
    an author who may list none writes new records, and the node judges whether they may
    write at all."""
    try:
        return await client.records(patient)
    except NodeRefused as refused:
        if refused.status != 403:
            raise
        return []


async def _listed_versions(client: NodeClient, patient: Address) -> dict[tuple[str, str], _Listed]:
    """The patient's newest versions at this node by type and FHIR id, of the author's kind."""
    rows = await _listed(client, patient)
    latest: dict[tuple[str, str], _Listed] = {}
    own_account = client.address == patient
    for row in rows:
        # A patient's own records and the clinicians' are amended only by their own kind.
        if row.fhir_id is not None and (row.author == patient) == own_account:
            latest[row.resource_type, row.fhir_id] = _Listed(
                bytes.fromhex(row.record_id), row.version, row.resource_type,
                bytes.fromhex(row.digest[2:]),
            )  # fmt: skip
    return latest


async def _check_amended(client: NodeClient, job: Job) -> None:
    """Before the author signs a next version, check that the version it follows is the
    one the node listed: signed, of this patient and type, with this digest, by the same
    kind of author (the patient, or staff). The FHIR id is not in what an author signs:
    the patient, who can open the version, also checks it is this resource. A node
    cannot steer an author into amending a record of its choosing."""
    sealed = (await client.record(job.record_id.hex(), job.version - 1)).sealed
    author = sealed.check()
    header = sealed.header
    own_account = client.address == job.patient
    listed = f"{job.record_id.hex()} v{job.version - 1}"
    if (
        (header.record_id, header.version, header.digest, header.patient)
        != (job.record_id, job.version - 1, job.previous, job.patient)
        or (job.resource_type is not None and header.resource_type != job.resource_type)
        or ((author == job.patient) != own_account)
    ):
        raise InvalidInput(f"the node lists record {listed} other than it serves it")
    if own_account and _identity(_opened(sealed, client)) != _identity(job.resource):
        raise InvalidInput(f"the node lists record {listed} under another resource's id")


def _opened(sealed: SealedRecord, client: NodeClient) -> object:
    """The resource a record version holds, opened with the patient's key; None if it
    does not open to JSON (then it is no resource this upload could follow)."""
    try:
        return json.loads(open_as_patient(sealed, encryption_key(client.key, PATIENT_LABEL)))
    except (MedledgerError, ValueError):
        return None


def _identity(resource: object) -> tuple[object, object] | None:
    """A resource's type and FHIR id, by which a next version finds the record."""
    if not isinstance(resource, dict):
        return None
    return resource.get("resourceType"), resource.get("id")


def _check_recipients(
    client: NodeClient, patient: Address, network: int, custodians: Custodians, key: bytes
) -> None:
    """Refuse to seal to recipients other than the ledger's: a node that named keys of its
    own choosing (its own custodian key for every share, or a patient key it holds) could
    open what its staff write. Believed only as proven at a checkpoint the members
    cosigned, covering the log as it stands (blocking, as ProvenState is)."""
    state = ProvenState(client)
    try:
        proven = (state.trusted.network_id, custodians_in(state), patient_key_in(state, patient))
    finally:
        state.close()
    if (network, custodians, key) != proven:
        raise InvalidInput(
            "the node names other recipients than the members cosigned; nothing was sealed"
        )


async def upload_records(
    client: NodeClient, patient: Address, sources: Sequence[tuple[str, object]],
    progress: Callable[[int], None] | None = None,
) -> tuple[list[api.WrittenRecord], list[InvalidRecord]]:  # fmt: skip
    """Seal FHIR resources on this machine with the client's key as author and have the
    node commit them, as many to a batch as the node says it takes; returns what was
    written and what failed validation. A resource whose type and FHIR id the patient has
    at this node becomes its next version, as an import does. ``progress`` hears how many
    resources are done so far."""
    r = await client.recipients(patient)
    custodians = Custodians(
        r.threshold, tuple((Address(c.address), bytes.fromhex(c.key[2:])) for c in r.custodians)
    )
    key = bytes.fromhex(r.patient_key[2:])
    await asyncio.to_thread(_check_recipients, client, patient, r.network, custodians, key)
    context = SealingContext(r.network, client.key.to_bytes(), custodians)
    latest = await _listed_versions(client, patient)
    batch = r.max_records_per_write
    written: list[api.WrittenRecord] = []
    rejected: list[InvalidRecord] = []
    checked: set[tuple[bytes, int]] = set()
    for start in range(0, len(sources), batch):
        remaining: list[tuple[str, object] | InvalidRecord] = list(sources[start : start + batch])
        while remaining:
            jobs, remaining = plan_pass(lambda kind, fhir_id: latest.get((kind, fhir_id)),
                                        patient, key, remaining)  # fmt: skip
            rejected += [job for job in jobs if isinstance(job, InvalidRecord)]
            planned = [j for j in jobs if isinstance(j, Job)]
            for job in planned:
                if job.version > 1 and (job.record_id, job.version) not in checked:
                    await _check_amended(client, job)
                    checked.add((job.record_id, job.version))
            ready: list[Incoming] = []
            for sealed in seal_for_upload(context, planned):
                if isinstance(sealed, InvalidRecord):
                    rejected.append(sealed)
                    continue
                header = sealed.sealed.header
                if sealed.fhir_id is not None:
                    latest[header.resource_type, sealed.fhir_id] = _Listed(
                        header.record_id, header.version, header.resource_type, header.digest
                    )
                ready.append(sealed)
            if ready:
                written += (await client.write_records(ready)).records
        if progress is not None:
            progress(min(start + batch, len(sources)))
    return written, rejected


@dataclass
class ChartUpload:
    """What a push into a chart did, and what it named without writing."""

    written: list[api.WrittenRecord] = field(default_factory=list)
    rejected: list[InvalidRecord] = field(default_factory=list)
    shared: list[SharedResource] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    #: Identifiers of the chart's Patient newly indexed at the node's institution.
    indexed: int = 0


async def upload_chart(
    client: NodeClient,
    patient: Address,
    items: Sequence[Loaded | InvalidRecord | Skipped],
    *,
    source_patient: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ChartUpload:
    """Seal what files were read (fhir_sources.read_files) into ``patient``'s chart at the
    node, as :func:`upload_records` does, after the chart rules: what is not the
    patient's is refused, institution-level resources are named, and, for staff of the
    node's institution, the chart's Patient's identifiers are looked up in and then
    added to its index. Raises chart.AmbiguousChart before anything is sealed if the
    files name several patients and ``source_patient`` does not say which is this one."""
    files = [item for item in items if isinstance(item, Loaded)]
    rows = await _listed(client, patient)
    secret = await _index_key(client)
    digests = {} if secret is None else {
        i: identifier_digest(secret, i) for i in identifiers_named(files)
    }  # fmt: skip
    found = await client.find_patients(list(digests.values())) if digests else {}
    owners = {i: found[d].patient for i, d in digests.items() if d in found}
    held = [row.fhir_id for row in rows if row.resource_type == "Patient"]
    sorted_ = sort_chart(files, Chart.of(patient, held, owners), source_patient)
    written, invalid = await upload_records(client, patient, sorted_.records, progress)
    unread = [item for item in items if isinstance(item, InvalidRecord)]
    done = ChartUpload(written, [*unread, *sorted_.refused, *invalid], sorted_.shared,
                       [item for item in items if isinstance(item, Skipped)])  # fmt: skip
    failed = {error.source for error in invalid}
    patients = [source for source, obj in sorted_.records
                if isinstance(obj, dict) and obj.get("resourceType") == "Patient"]  # fmt: skip
    patient_written = any(source not in failed for source in patients)
    if secret is not None and sorted_.identifiers and patient_written:
        ours = [identifier_digest(secret, i) for i in sorted_.identifiers]
        done.indexed = await client.add_patient_identifiers(patient, ours)
    return done


async def _index_key(client: NodeClient) -> bytes | None:
    """The node's institution's index key, or None if the client is not its staff."""
    try:
        return await client.patient_index_key()
    except NodeRefused as refused:
        if refused.status != 403:
            raise
        return None


async def gather_evidence(
    client: NodeClient, resource_types: Collection[str] | None = None
) -> list[api.EvidenceIn]:
    """The client's records at the node that its staff wrote (latest versions, of
    ``resource_types`` if given), opened with the patient's key: what an issuer checks
    (credentials/evidence.py)."""
    own = encryption_key(client.key, PATIENT_LABEL)
    latest: dict[str, api.RecordSummary] = {}
    for row in await client.records(client.address):
        if resource_types is not None and row.resource_type not in resource_types:
            continue
        if row.author == client.address:
            continue  # the patient's own account is no issuer's evidence
        if row.record_id not in latest or latest[row.record_id].version < row.version:
            latest[row.record_id] = row
    evidence = []
    for row in latest.values():
        sealed = (await client.record(row.record_id, row.version)).sealed
        salt, canonical = open_salted_as_patient(sealed, own)
        evidence.append(api.EvidenceIn(record_id=row.record_id, version=row.version,
                                       salt="0x" + salt.hex(),
                                       resource=base64.b64encode(canonical).decode()))  # fmt: skip
    return evidence
