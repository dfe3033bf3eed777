"""The FHIR R4 API (``/fhir``): reads of a patient's chart across the consortium.

Every route but ``metadata`` takes a SMART access token (``Authorization: Bearer``,
from ``/auth/token``, routes/smart.py). What a token reads is what its principal's
grants cover, narrowed by its scopes, across every member's vault, each record opened
through the custodians with its receipts (node/fhir/federation.py). Searches are of one
patient's chart (``patient=Pseudonym`` or ``Patient/{id}/$everything``): the chart is
the unit the grants and the receipts are about. ``Bundle.total`` counts only what the
token may read. Refusals are OperationOutcomes (app.py); answers are
``application/fhir+json`` with decimals as written. Writes: fhir_writes.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from fastapi import Request, Response

from medledger import __version__
from medledger.crypto.keys import Address
from medledger.errors import UsageError
from medledger.node.caller import resolve_caller
from medledger.node.deps import Service
from medledger.node.errors import Forbidden
from medledger.node.fhir.audit_events import SEARCH_PARAMETERS as AUDIT_SEARCH
from medledger.node.fhir.bundle import PAGE_PARAM, history, page_offset, searchset, served
from medledger.node.fhir.capability import (
    ResourceSupport,
    SmartEndpoints,
    Software,
    capability_statement,
)
from medledger.node.fhir.charts import Charts, ServedChart
from medledger.node.fhir.content import FORMAT_PARAM
from medledger.node.fhir.export_request import EXPORT_OPERATIONS
from medledger.node.fhir.tokens import Session
from medledger.node.routes.fhir_common import (
    PSEUDONYM,
    RECORD_ID,
    ChartsOf,
    Reader,
    ResourceType,
    answer,
    fhir_base,
    fhir_router,
    patient_of,
)
from medledger.node.routes.launch import AUTHORIZE_PATH
from medledger.node.routes.smart import TOKEN_PATH
from medledger.records.errors import UnknownRecord
from medledger.records.fhir import is_resource_type, resource_types
from medledger.records.fhir_search import (
    Found,
    InvalidSearch,
    Parameter,
    Query,
    parse_query,
    search,
)
from medledger.records.patient_index import (
    PatientIndex,
    identifier_digest,
    index_key,
    parse_identifier,
)

router = fhir_router()

_SKIP = frozenset({FORMAT_PARAM, PAGE_PARAM})
_RECORD_INTERACTIONS = ("read", "vread", "history-instance", "search-type", "create", "update")
#: The statement's date: when this server (process) started serving what it describes.
_STARTED_NS = time.time_ns()


def _chart_query(request: Request, resource_type: str | None) -> tuple[Query, Address]:
    query = parse_query(request.query_params.multi_items(), resource_type=resource_type,
                        skip=_SKIP)  # fmt: skip
    patients = query.patients
    if patients is None or len(patients) != 1:
        raise InvalidSearch("patient", "a search names one patient: patient=<pseudonym>")
    (patient,) = patients
    return query, patient_of(patient)


def _searchset(
    request: Request, service: Service, chart: ServedChart, query: Query
) -> dict[str, Any]:
    matches = search(query, chart.found)
    bundle = searchset(matches, query=query, base=fhir_base(service),
                       offset=page_offset(request.query_params.get(PAGE_PARAM)))  # fmt: skip
    if chart.unreachable:
        # R4: a searchset may carry an OperationOutcome about the search itself.
        bundle.setdefault("entry", []).append(_unreachable(chart.unreachable))
    return bundle


def _unreachable(urls: tuple[str, ...]) -> dict[str, Any]:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "incomplete", "diagnostics": why}
                  for why in urls],
    }  # fmt: skip
    return {"resource": outcome, "search": {"mode": "outcome"}}


@router.get("/metadata")
async def metadata(request: Request, service: Service) -> Response:
    """The CapabilityStatement: what this server does, open to anyone (FHIR R4)."""
    statement: dict[str, Any] | None = getattr(request.app.state, "fhir_capability", None)
    if statement is None:
        statement = await asyncio.to_thread(warm_up, request.app, service)
    return answer(request, statement)


def warm_up(app: Any, service: Service) -> dict[str, Any]:
    """Build the CapabilityStatement (and so every FHIR model) once, for the app to keep."""
    statement = _capability(service)
    app.state.fhir_capability = statement
    return statement


def _capability(service: Service) -> dict[str, Any]:
    """Every resource type a record can be, each read and searched in one patient's
    chart; built once (it lists the search parameters of some 140 types)."""
    target = Parameter("target", "reference", "The record: Type/<record id>, one per search")
    own = {
        "Provenance": ResourceSupport("Provenance", ("read", "search-type"),
                                      search_params=(target,)),
        "AuditEvent": ResourceSupport("AuditEvent", ("read", "search-type"),
                                      search_params=AUDIT_SEARCH, versioning="no-version"),
    }  # fmt: skip
    resources = [
        own.get(kind) or ResourceSupport(kind, _RECORD_INTERACTIONS)
        for kind in sorted(resource_types())
    ]
    return capability_statement(
        base=fhir_base(service), date_ns=_STARTED_NS, software=Software("medledger", __version__),
        resources=resources, system_interactions=("transaction", "batch", "search-system"),
        operations=EXPORT_OPERATIONS,
        smart=SmartEndpoints(token=service.settings.base_url + TOKEN_PATH,
                             authorize=service.settings.base_url + AUTHORIZE_PATH),
    )  # fmt: skip


@router.get("/Patient/{patient}/$everything")
async def everything(
    request: Request, service: Service, session: Reader, charts: ChartsOf, patient: str
) -> Response:
    """Every record of the patient's chart the token may read, from every vault."""
    address = patient_of(patient)
    query = parse_query(
        [(n, v) for n, v in request.query_params.multi_items() if n in ("_count", "_type")],
        skip=_SKIP,
    )
    chart = await charts.chart(session, address)
    return answer(request, _searchset(request, service, chart, query))


@router.get("/Provenance/{logical_id}")
async def provenance(
    request: Request, session: Reader, charts: ChartsOf, logical_id: str
) -> Response:
    """A record version's Provenance: ``<record id>-<version>`` (node/fhir/provenance.py)."""
    record, _, version = logical_id.partition("-")
    found = None
    if RECORD_ID.fullmatch(record) and version.isascii() and version.isdigit():
        found = await charts.provenance(session, bytes.fromhex(record), int(version))
    if found is None or found.logical_id != logical_id:
        raise UnknownRecord(f"no Provenance/{logical_id} this token may read")
    return answer(request, served(found))


@router.get("/Provenance")
async def provenance_search(
    request: Request, service: Service, session: Reader, charts: ChartsOf
) -> Response:
    """The Provenance of the records a search names: ``target=Type/<record id>``, the
    record's latest version (one target per search)."""
    targets = request.query_params.getlist("target")
    if len(targets) != 1 or not all(n in ("target", "_count") for n in request.query_params):
        raise InvalidSearch("target", "a Provenance search names one target=Type/<id>")
    kind, _, logical_id = targets[0].partition("/")
    found = None
    if RECORD_ID.fullmatch(logical_id):
        found = await charts.provenance(session, bytes.fromhex(logical_id))
    matches = [] if found is None or not found.resource["target"][0]["reference"].startswith(
        f"{kind}/"
    ) else [found]  # fmt: skip
    query = parse_query(request.query_params.multi_items(), resource_type="Provenance",
                        skip=frozenset({"target"}))  # fmt: skip
    return answer(request, searchset(matches, query=query, base=fhir_base(service), offset=0))


@router.get("/{resource_type}/{logical_id}/_history/{version_id}")
async def vread(
    *, request: Request, session: Reader, charts: ChartsOf, resource_type: ResourceType,
    logical_id: str, version_id: str,
) -> Response:  # fmt: skip
    """One version of a resource (``meta.versionId``)."""
    record_id = await _record_id(session, charts, resource_type, logical_id)
    missing = UnknownRecord(f"no {resource_type}/{logical_id} version {version_id} here")
    if not version_id.isascii() or not version_id.isdigit() or not 0 < int(version_id) < 2**32:
        raise missing
    found = await charts.record(session, record_id, int(version_id))
    if found is None or found.resource_type != resource_type:
        raise missing
    if found.logical_id != logical_id:  # the chart's Patient, asked by its pseudonym
        found = dataclasses.replace(found, logical_id=logical_id)
    return answer(request, served(found))


@router.get("/{resource_type}/{logical_id}/_history")
async def history_of(
    *, request: Request, service: Service, session: Reader, charts: ChartsOf,
    resource_type: ResourceType, logical_id: str,
) -> Response:  # fmt: skip
    """Every version of a resource the token may read, newest first."""
    record_id = await _record_id(session, charts, resource_type, logical_id)
    versions = [
        dataclasses.replace(f, logical_id=logical_id)
        for f in await charts.history(session, record_id)
        if f.resource_type == resource_type
    ]
    if not versions:
        raise UnknownRecord(f"no {resource_type}/{logical_id} this token may read")
    count = parse_query([(n, v) for n, v in request.query_params.multi_items() if n == "_count"])
    offset = page_offset(request.query_params.get(PAGE_PARAM))
    endpoint = f"{resource_type}/{logical_id}/_history"
    bundle = history(versions, base=fhir_base(service), endpoint=endpoint, count=count.count,
                     offset=offset)  # fmt: skip
    return answer(request, bundle)


async def _record_id(
    session: Session, charts: Charts, resource_type: str, logical_id: str
) -> bytes:
    """The record a logical id names: a record id, or the chart's Patient by pseudonym."""
    if RECORD_ID.fullmatch(logical_id):
        return bytes.fromhex(logical_id)
    if resource_type == "Patient" and PSEUDONYM.fullmatch(logical_id):
        record = (await charts.chart(session, patient_of(logical_id))).patient_record
        if record is not None:
            return record
    raise UnknownRecord(f"no {resource_type}/{logical_id} this token may read")


@router.get("/{resource_type}/{logical_id}")
async def read(
    request: Request, session: Reader, charts: ChartsOf, resource_type: ResourceType,
    logical_id: str,
) -> Response:  # fmt: skip
    """One resource: a record by its record id, or the chart's Patient by the pseudonym."""
    found = await _read(session, charts, resource_type, logical_id)
    return answer(request, served(found))


async def _read(session: Session, charts: Charts, resource_type: str, logical_id: str) -> Found:
    missing = UnknownRecord(f"no {resource_type}/{logical_id} this token may read")
    if not is_resource_type(resource_type):
        raise missing
    if resource_type == "Patient" and PSEUDONYM.fullmatch(logical_id):
        chart = await charts.chart(session, patient_of(logical_id))
        found = next((f for f in chart.found if f.logical_id == chart.patient), None)
    elif RECORD_ID.fullmatch(logical_id):
        found = await charts.record(session, bytes.fromhex(logical_id))
    else:
        found = None
    if found is None or found.resource_type != resource_type:
        raise missing
    return found


@router.get("/{resource_type}")
async def search_type(
    request: Request, service: Service, session: Reader, charts: ChartsOf,
    resource_type: ResourceType,
) -> Response:  # fmt: skip
    """A search of one type in one patient's chart; ``Patient?identifier=`` finds the
    patient by an identifier this institution gave them (its index, off the ledger)."""
    named = {"patient", "subject", "_id"} & set(request.query_params)
    if resource_type == "Patient" and "identifier" in request.query_params and not named:
        return answer(request, await _patients_by_identifier(request, service, session, charts))
    query, patient = _chart_query(request, resource_type)
    chart = await charts.chart(session, patient)
    return answer(request, _searchset(request, service, chart, query))


async def _patients_by_identifier(
    request: Request, service: Service, session: Session, charts: Charts
) -> dict[str, Any]:
    """The chart's Patient of each patient the institution's index holds one of the
    identifiers for, as far as the token may read it (a patient it may not read is as
    one the index does not hold). Only this institution's staff ask its index. The index
    is the institution's word that the identifier is this patient's: the Patient served
    (the chart's newest, maybe another institution's) need not carry it."""
    member = service.keys.member.address
    if not resolve_caller(service.node.store, session.principal).is_staff_of(member):
        raise Forbidden("the patient index answers this institution's staff only")
    query = parse_query(request.query_params.multi_items(), resource_type="Patient",
                        skip=_SKIP)  # fmt: skip
    key = index_key(service.keys.member)
    try:
        identifiers = [parse_identifier(text) for value in request.query_params.getlist(
            "identifier") for text in value.split(",")]  # fmt: skip
    except UsageError as exc:
        raise InvalidSearch("identifier", str(exc)) from None
    digests = [identifier_digest(key, identifier) for identifier in identifiers]

    def owners() -> set[Address]:
        with PatientIndex.open(service.settings.vault_database) as index:
            return set(index.owners(digests).values())

    found: list[Found] = []
    for patient in sorted(await asyncio.to_thread(owners)):
        chart = await charts.chart(session, patient)
        found += [f for f in chart.found if f.logical_id == chart.patient]
    return searchset(found, query=query, base=fhir_base(service),
                     offset=page_offset(request.query_params.get(PAGE_PARAM)))  # fmt: skip


@router.get("")
async def search_all(
    request: Request, service: Service, session: Reader, charts: ChartsOf
) -> Response:
    """A search across types (``_type``) in one patient's chart."""
    query, patient = _chart_query(request, None)
    chart = await charts.chart(session, patient)
    return answer(request, _searchset(request, service, chart, query))
