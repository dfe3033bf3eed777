"""Writing through the FHIR API: an institution's system creates and updates records.

Only a system writes (a Backend Services session): the node holds the participant key
the institution registered it with, so its records are sealed and signed here as that
participant's, in the node's sealing workers. The institution's own node sees the
plaintext its own system sends it, and nothing else changes: custodians get shares,
the patient's key a copy, the ledger a commitment, and the authoring rule
(access/care.py: staff of this institution, the patient enrolled here) judges each
record as it judges any other.

A record's patient is the one it names (``subject``, ``patient`` or ``beneficiary``:
``Patient/<pseudonym>``); the chart's Patient record is written with ``PUT
Patient/<pseudonym>``. A resource that names no patient (a Practitioner, a Medication)
is institution-level, not a record, and is refused. A ``transaction`` is all or none:
every entry is planned and sealed before anything is stored, and the records are
committed as one batch; references to another entry's ``fullUrl`` (``urn:uuid:...``)
become references to the record it creates. A ``batch`` runs each entry on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.crypto.keys import Address, PrivateKey, to_checksum_address
from medledger.errors import InvalidInput
from medledger.node.errors import Forbidden
from medledger.node.fhir.bundle import EntryResult
from medledger.node.fhir.charts import serve
from medledger.node.fhir.tokens import Session
from medledger.node.service import NodeService
from medledger.records.errors import InvalidRecord, UnknownRecord
from medledger.records.fhir import is_resource_type
from medledger.records.fhir_search import Found
from medledger.records.header import FIRST_VERSION
from medledger.records.pipeline import Job, Sealed, SealingPool
from medledger.records.recipients import patient_key, sealing_context
from medledger.records.store import latest_versions
from medledger.records.writer import new_record_id, plan_new

__all__ = ["Done", "Entry", "FhirWriter", "TransactionRefused", "require_author"]

_PSEUDONYM = re.compile(r"0x[0-9a-fA-F]{40}")
_RECORD_ID = re.compile(r"[0-9a-f]{32}")
_ABOUT = ("subject", "patient", "beneficiary")
_MAX_POOLS = 4
#: Deeper than any FHIR resource needs: a deeper one cannot be handed to the sealing workers.
MAX_DEPTH = 64


class TransactionRefused(InvalidInput):
    """One entry of a transaction was refused, so none was written; names the entry."""


@dataclass(frozen=True)
class Entry:
    """One request of a write: ``POST Type`` (create) or ``PUT Type/id`` (update)."""

    method: str
    url: str
    resource: Mapping[str, Any]
    full_url: str | None = None
    #: How refusals name the entry (``entry[i]`` unless said: an NDJSON import's line).
    source: str | None = None


@dataclass(frozen=True)
class Done:
    """What became of one entry: its response, and the resource as now served."""

    result: EntryResult
    found: Found | None = None
    #: Whose chart the entry wrote to.
    patient: Address | None = None


@dataclass(frozen=True)
class _Planned:
    job: Job
    created: bool


class FhirWriter:
    def __init__(self, service: NodeService, base_url: str) -> None:
        self._service = service
        self._base = base_url
        self._pools: dict[Address, SealingPool] = {}
        self._keys: dict[Address, bytes] = {}

    async def transaction(self, session: Session, entries: Sequence[Entry]) -> list[Done]:
        """Write every entry, or none (TransactionRefused names the first refused)."""
        self._check_size(entries)
        author = require_author(session.author)
        for i, entry in enumerate(entries):
            kind = str(entry.resource.get("resourceType"))
            if not session.may_write(entry.method, kind):
                act = "create" if entry.method == "POST" else "update"
                where = entry.source or f"entry[{i}]"
                raise Forbidden(f"{where}: the token's scopes do not let it {act} {kind}")
        # Planning does not yield to the event loop, so one writer's key cache is safe.
        self._keys.clear()
        try:
            planned = self._plan(entries)
        except RecursionError:
            raise TransactionRefused("a resource is nested too deeply") from None
        sealed: list[Sealed] = []
        async for outcomes in self._pool(author).seal(p.job for p in planned):
            for outcome in outcomes:
                if isinstance(outcome, InvalidRecord):
                    raise TransactionRefused(str(outcome))  # it names its entry
                sealed.append(outcome)
        if not sealed:
            return []
        try:
            index = await self._service.writer.write_together(sealed)
        except InvalidInput as exc:
            raise TransactionRefused(f"nothing written: {exc}") from None
        committed_ns = self._service.node.store.tx_by_index(index).timestamp_ns
        return [self._stored(p, s, committed_ns) for p, s in zip(planned, sealed, strict=True)]

    async def batch(self, session: Session, entries: Sequence[Entry]) -> list[Done]:
        """Write each entry on its own; a refusal answers that entry only."""
        self._check_size(entries)
        results: list[Done] = []
        for entry in entries:
            try:
                results += await self.transaction(session, [entry])
            except (InvalidInput, Forbidden) as exc:
                results.append(Done(EntryResult.refused(exc)))
        return results

    def _check_size(self, entries: Sequence[Entry]) -> None:
        limit = self._service.settings.max_records_per_write
        if len(entries) > limit:
            raise InvalidInput(f"{len(entries)} entries in one write; this node takes {limit}")

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def _pool(self, author: PrivateKey) -> SealingPool:
        """One sealing pool per author, a few kept: starting worker processes per request
        would cost more than sealing."""
        pool = self._pools.get(author.address)
        if pool is None:
            if len(self._pools) >= _MAX_POOLS:
                oldest = next(iter(self._pools))
                self._pools.pop(oldest).close()
            pool = SealingPool(sealing_context(self._service.node, author))
            self._pools[author.address] = pool
        return pool

    def _plan(self, entries: Sequence[Entry]) -> list[_Planned]:
        """A job per entry, with references to entries' fullUrls resolved."""
        targets = self._targets(entries)
        references = {url: reference for url, (reference, _) in targets.items()}
        planned: list[_Planned] = []
        written: set[bytes] = set()
        for i, entry in enumerate(entries):
            source = entry.source or f"entry[{i}]"
            if _depth(entry.resource) > MAX_DEPTH:
                raise TransactionRefused(f"{source}: nested deeper than {MAX_DEPTH} levels")
            resource = _resolved(entry.resource, references) if references else entry.resource
            job = self._job(source, entry, dict(resource), targets)
            if job.job.record_id in written:
                raise TransactionRefused(f"{source}: writes a record another entry writes")
            written.add(job.job.record_id)
            planned.append(job)
        return planned

    def _targets(self, entries: Sequence[Entry]) -> dict[str, tuple[str, bytes | None]]:
        """fullUrl -> the reference it becomes, and the record id a create will take."""
        targets: dict[str, tuple[str, bytes | None]] = {}
        for entry in entries:
            if not entry.full_url:
                continue
            kind = str(entry.resource.get("resourceType"))
            if entry.method == "POST":
                record_id = new_record_id()
                targets[entry.full_url] = (f"{kind}/{record_id.hex()}", record_id)
            else:
                targets[entry.full_url] = (entry.url, None)
        return targets

    def _job(
        self, source: str, entry: Entry, resource: dict[str, Any],
        targets: Mapping[str, tuple[str, bytes | None]],
    ) -> _Planned:  # fmt: skip
        kind = resource.get("resourceType")
        if not isinstance(kind, str) or not is_resource_type(kind):
            raise TransactionRefused(f"{source}: resource.resourceType: unknown resource type")
        if entry.method == "POST":
            if entry.url.split("?")[0] != kind:
                raise TransactionRefused(f"{source}: POST {entry.url} with a {kind}")
            patient = self._patient_named(source, kind, resource)
            target = targets.get(entry.full_url) if entry.full_url else None
            record_id = None if target is None else target[1]
            job = plan_new(source, resource, patient, self._key(patient), record_id)
            return _Planned(job, True)
        if entry.method == "PUT":
            return self._update(source, entry.url, kind, resource)
        raise TransactionRefused(f"{source}: {entry.method}: only POST and PUT write here")

    def _update(self, source: str, url: str, kind: str, resource: dict[str, Any]) -> _Planned:
        url_kind, _, logical_id = url.partition("/")
        if url_kind != kind:
            raise TransactionRefused(f"{source}: PUT {url_kind} with a {kind}")
        vault = self._service.vault
        if kind == "Patient" and _PSEUDONYM.fullmatch(logical_id):
            patient = to_checksum_address(logical_id)
            charted = [s for s in latest_versions(vault.for_patient(patient))
                       if s.sealed.header.resource_type == "Patient"]  # fmt: skip
            if not charted:
                return _Planned(plan_new(source, resource, patient, self._key(patient)), True)
            stored = charted[-1]
        elif _RECORD_ID.fullmatch(logical_id):
            try:
                stored = vault.get(bytes.fromhex(logical_id))
            except UnknownRecord:
                raise TransactionRefused(f"{source}: {url}: no such record in this vault") from None
            patient = self._patient_named(source, kind, resource)
            if stored.sealed.header.patient != patient:
                raise TransactionRefused(f"{source}: {url} is another patient's record")
        else:
            raise TransactionRefused(f"{source}: {url}: ids here are record ids or pseudonyms")
        if stored.author == stored.sealed.header.patient:
            # The patient's own account and the clinicians' record stay apart.
            raise TransactionRefused(
                f"{source}: {url} is the patient's own account: a system does not amend it"
            )
        header = stored.sealed.header
        job = Job(source, resource, header.record_id, header.version + 1, header.digest,
                  header.patient, self._key(header.patient),
                  resource_type=header.resource_type)  # fmt: skip
        return _Planned(job, False)

    def _key(self, patient: Address) -> bytes:
        """The patient's published key, read once per write (a write names few patients)."""
        key = self._keys.get(patient)
        if key is None:
            key = self._keys[patient] = patient_key(self._service.node, patient)
        return key

    def _patient_named(self, source: str, kind: str, resource: Mapping[str, Any]) -> Address:
        """The one patient a resource is about: every ``subject``, ``patient`` and
        ``beneficiary``, its contained resources' too, must name the same
        ``Patient/<pseudonym>`` (as importing keeps a chart to its patient)."""
        if kind == "Patient":
            raise TransactionRefused(
                f"{source}: a chart's Patient is written with PUT Patient/<pseudonym>"
            )
        named: set[Address] = set()
        for where, value in _about(resource):
            reference = value.get("reference") if isinstance(value, Mapping) else None
            pseudonym = reference.removeprefix("Patient/") if isinstance(reference, str) else ""
            if not _PSEUDONYM.fullmatch(pseudonym):
                raise TransactionRefused(f"{source}: {where}: names no Patient/<pseudonym>")
            named.add(to_checksum_address(pseudonym))
        if not named:
            raise TransactionRefused(
                f"{source}: a {kind} names no patient: institution-level, not a patient's record"
            )
        if len(named) > 1:
            raise TransactionRefused(f"{source}: names more than one patient")
        return named.pop()

    def _stored(self, planned: _Planned, written: Sealed, committed_ns: int) -> Done:
        header = written.sealed.header
        resource = planned.job.resource
        assert isinstance(resource, dict), "planned from a resource object"
        found = serve(header, resource, committed_ns, self._base.removesuffix("/fhir"),
                      header.patient)  # fmt: skip
        created = planned.created and header.version == FIRST_VERSION
        result = EntryResult.stored(found, self._base, created=created)
        return Done(result, found, header.patient)


def _about(resource: Mapping[str, Any]) -> Iterator[tuple[str, object]]:
    """Where a resource and its contained resources say whom they are about."""
    kind = resource.get("resourceType")
    for element in _ABOUT:
        if element in resource:
            yield f"{kind}.{element}", resource[element]
    contained = resource.get("contained")
    for i, inner in enumerate(contained if isinstance(contained, list) else ()):
        if not isinstance(inner, Mapping):
            continue
        if inner.get("resourceType") == "Patient":
            yield f"{kind}.contained[{i}]", {}  # a Patient inside a record: someone else's
        for element in _ABOUT:
            if element in inner:
                yield f"{kind}.contained[{i}].{element}", inner[element]


def _depth(value: object) -> int:
    """How deeply a JSON value nests (iterative: the input is untrusted)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
            items = node.values() if isinstance(node, dict) else node
            stack.extend((item, depth + 1) for item in items)
    return deepest


def _resolved(resource: Mapping[str, Any], targets: Mapping[str, str]) -> dict[str, Any]:
    """A copy with every ``reference`` to a transaction entry's fullUrl rewritten."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            reference = out.get("reference")
            if isinstance(reference, str) and reference in targets:
                out["reference"] = targets[reference]
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    resolved: dict[str, Any] = walk(resource)
    return resolved


def require_author(author: PrivateKey | None) -> PrivateKey:
    """Writes need a system's session: the node holds no person's key."""
    if author is None:
        raise Forbidden("only a registered system writes through the FHIR API")
    return author
