"""Writes through the FHIR API (``/fhir``): create, update, conditional create,
transaction and batch Bundles, for an institution's systems (node/fhir/writes.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response

from medledger.crypto.json_numbers import parse_json
from medledger.crypto.keys import Address
from medledger.node.deps import Service
from medledger.node.fhir.bundle import batch_response, served, transaction_response
from medledger.node.fhir.charts import Charts
from medledger.node.fhir.outcome import PreconditionFailed
from medledger.node.fhir.tokens import Session
from medledger.node.fhir.writes import Done, Entry, FhirWriter, TransactionRefused, require_author
from medledger.node.routes.fhir_common import (
    ChartsOf,
    Reader,
    ResourceType,
    answer,
    fhir_base,
    fhir_router,
    patient_of,
)
from medledger.records.fhir_search import Found, InvalidSearch, parse_query, search

router = fhir_router()


def _writer(request: Request, service: Service) -> FhirWriter:
    writer: FhirWriter | None = getattr(request.app.state, "fhir_writer", None)
    if writer is None:
        writer = FhirWriter(service, fhir_base(service))
        request.app.state.fhir_writer = writer
    return writer


Writer = Annotated[FhirWriter, Depends(_writer)]
_BODY_TYPES = frozenset({"application/fhir+json", "application/json"})
_MAX_BODY_DEPTH_ERROR = "the body is not JSON a FHIR server reads"


async def _body(request: Request) -> dict[str, Any]:
    """The request's FHIR JSON, numbers as written."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _BODY_TYPES:
        raise InvalidSearch("", "the body must be application/fhir+json")
    try:
        body = parse_json(await request.body())
    except (ValueError, RecursionError):
        raise InvalidSearch("", _MAX_BODY_DEPTH_ERROR) from None
    if not isinstance(body, dict):
        raise InvalidSearch("", "the body must be a FHIR resource (a JSON object)")
    return body


@router.post("")
async def transaction_or_batch(
    request: Request, session: Reader, writer: Writer, charts: ChartsOf
) -> Response:
    """A ``transaction`` (all or none) or ``batch`` (each on its own) Bundle of creates
    (``POST Type``) and updates (``PUT Type/id``)."""
    bundle = await _body(request)
    kind = bundle.get("type")
    if bundle.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
        raise InvalidSearch("", "POST to the base takes a transaction or batch Bundle")
    entries = [_entry(i, e) for i, e in enumerate(bundle.get("entry") or [])]
    done = await (writer.transaction if kind == "transaction" else writer.batch)(session, entries)
    _forget(charts, done)
    results = [d.result for d in done]
    response = transaction_response(results) if kind == "transaction" else batch_response(results)
    return answer(request, response)


_NDJSON_TYPES = frozenset({"application/fhir+ndjson", "application/ndjson"})


@router.post("/$import")
async def import_ndjson(
    request: Request, session: Reader, writer: Writer, charts: ChartsOf
) -> Response:
    """NDJSON, one resource a line as Bulk Data files are, written all or none as
    creates: one commit, and a refusal names its line. Lines that name each other by
    ``Type/id`` stay linked, as entries of a transaction do by fullUrl."""
    require_author(session.author)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _NDJSON_TYPES:
        raise InvalidSearch("", "the body must be application/fhir+ndjson")
    entries = [_line(n, text) for n, text in enumerate(_lines(await request.body()), 1)]
    if not entries:
        raise InvalidSearch("", "the body holds no resource")
    done = await writer.transaction(session, entries)
    _forget(charts, done)
    return answer(request, transaction_response([d.result for d in done]))


def _lines(body: bytes) -> list[bytes]:
    lines = body.split(b"\n")
    if lines and not lines[-1].strip():
        lines.pop()  # the newline that ends the last line
    return lines


def _line(n: int, text: bytes) -> Entry:
    where = f"line {n}"
    try:
        resource = parse_json(text)
    except (ValueError, RecursionError):
        raise InvalidSearch("", f"{where}: not a JSON resource") from None
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise InvalidSearch("", f"{where}: not a FHIR resource")
    kind, logical_id = resource["resourceType"], resource.get("id")
    full_url = f"{kind}/{logical_id}" if isinstance(logical_id, str) and logical_id else None
    return Entry("POST", kind, resource, full_url, source=where)


def _entry(i: int, entry: object) -> Entry:
    where = f"entry[{i}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or not isinstance(resource, dict):
        raise TransactionRefused(f"{where}: needs a request and a resource")
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or not isinstance(url, str):
        raise TransactionRefused(f"{where}.request: needs a method and a url")
    full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
    return Entry(method, url, resource, full_url if isinstance(full_url, str) else None)


def _forget(charts: Charts, done: list[Done]) -> None:
    """Kept charts of the patients written to no longer show what is there."""
    for patient in {d.patient for d in done if d.patient is not None}:
        charts.forget(patient)


@router.post("/{resource_type}")
async def create(
    request: Request, session: Reader, writer: Writer, charts: ChartsOf,
    resource_type: ResourceType,
) -> Response:  # fmt: skip
    """Create a record (201); with ``If-None-Exist``, only if the patient's chart has no
    match (200 with the match; 412 if several match)."""
    require_author(session.author)
    resource = await _body(request)
    condition = request.headers.get("if-none-exist")
    if condition is not None:
        existing = await _matches(session, charts, resource_type, resource, condition)
        if len(existing) > 1:
            raise PreconditionFailed(f"{len(existing)} {resource_type} match If-None-Exist")
        if existing:
            return answer(request, served(existing[0]))
    (done,) = await writer.transaction(session, [Entry("POST", resource_type, resource)])
    _forget(charts, [done])
    return _written(request, done, 201)


@router.put("/{resource_type}/{logical_id}")
async def update(
    *, request: Request, session: Reader, writer: Writer, charts: ChartsOf,
    resource_type: ResourceType, logical_id: str,
) -> Response:  # fmt: skip
    """A next version of a record this vault keeps (or the chart's Patient, by pseudonym)."""
    resource = await _body(request)
    entry = Entry("PUT", f"{resource_type}/{logical_id}", resource)
    (done,) = await writer.transaction(session, [entry])
    _forget(charts, [done])
    return _written(request, done, 201 if done.result.status == 201 else 200)


def _written(request: Request, done: Done, status: int) -> Response:
    assert done.found is not None, "a write that succeeded serves what it wrote"
    written = answer(request, served(done.found), status)
    if done.result.location is not None:
        written.headers["Location"] = done.result.location
    if done.result.etag is not None:
        written.headers["ETag"] = done.result.etag
    return written


async def _matches(
    session: Session, charts: Charts, resource_type: str, resource: dict[str, Any],
    condition: str,
) -> list[Found]:  # fmt: skip
    """What of the patient's chart matches a conditional create's search."""
    patient = _named_patient(resource)
    query = parse_query(parse_qsl(condition, keep_blank_values=True), resource_type=resource_type)
    chart = await charts.chart(session, patient)
    return search(query, chart.found)


def _named_patient(resource: dict[str, Any]) -> Address:
    for element in ("subject", "patient", "beneficiary"):
        value = resource.get(element)
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return patient_of(reference.removeprefix("Patient/"))
    raise InvalidSearch("", "a conditional create names its patient: Patient/<pseudonym>")
