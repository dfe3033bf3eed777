"""Bulk export (FHIR Bulk Data Access v2, the async pattern) and the Groups it exports.

``Patient/$export`` covers every patient on whose data the token's principal holds a
live grant; ``Group/{id}/$export`` the Group's members among them (node/fhir/groups.py).
The kick-off answers 202 with the job's status URL in ``Content-Location``; the status
answers 202 with ``X-Progress`` while the job runs, then the manifest; ``DELETE`` ends
the job and removes its files. Jobs and files are their kick-off's principal's, through
the same app (node/fhir/export.py). Included before routes/fhir.py's routes, whose
``/fhir/{type}/{id}`` would otherwise take ``Patient/$export`` and ``Group/{id}``.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import FileResponse

from medledger.access.contract import speaks_for
from medledger.access.state import held_grants
from medledger.crypto.keys import Address
from medledger.node.deps import Service
from medledger.node.errors import Forbidden, NotFound
from medledger.node.fhir.content import NotAcceptable, fhir_body
from medledger.node.fhir.export import ExportLimits, Exports, Job, held_patients
from medledger.node.fhir.export_request import NDJSON, ExportRequest
from medledger.node.fhir.groups import Group, GroupRegistry
from medledger.node.fhir.outcome import Issue, operation_outcome
from medledger.node.fhir.tokens import Session
from medledger.node.routes import fhir
from medledger.node.routes.fhir_common import (
    FHIR_RESPONSES,
    RECORD_ID,
    ChartsOf,
    Reader,
    answer,
    charts_of,
    check_format,
    fhir_base,
)

router = APIRouter(prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES)

JOB_ID = r"^[0-9a-f]{32}$"
_STATUS = "/_export"
_POLL_AFTER_S = "2"
_NDJSON_RANGES = frozenset({NDJSON, "application/ndjson", "application/*", "*/*"})
_NEGOTIATED = [Depends(check_format)]


def exports_of(request: Request, service: Service, charts: ChartsOf) -> Exports:
    exports: Exports | None = getattr(request.app.state, "fhir_exports", None)
    if exports is None:
        settings = service.settings
        limits = ExportLimits(settings.export_file_bytes, settings.export_ttl_s,
                              settings.export_jobs_per_principal)  # fmt: skip
        exports = Exports(settings.data_dir, charts_of(request, service), limits)
        request.app.state.fhir_exports = exports
    return exports


ExportsOf = Annotated[Exports, Depends(exports_of)]
JobId = Annotated[str, Path(pattern=JOB_ID)]


@router.get("/Patient/$export", dependencies=_NEGOTIATED, status_code=202)
async def export_patients(
    request: Request, service: Service, session: Reader, exports: ExportsOf
) -> Response:
    """Start exporting every chart the token's principal holds a live grant for."""
    asked = _asked(request, service)
    patients = held_patients(service.node.store, session.principal, time.time_ns())
    return _started(service, exports.start(session, asked, patients))


@router.get("/Group/{group_id}/$export", dependencies=_NEGOTIATED, status_code=202)
async def export_group(
    request: Request, service: Service, session: Reader, exports: ExportsOf, group_id: str
) -> Response:
    """Start exporting the charts of the Group's members the token may read."""
    asked = _asked(request, service)
    group = _group(service, group_id)
    return _started(service, exports.start(session, asked, _readable(service, session, group)))


@router.get("/Group/{group_id}", dependencies=_NEGOTIATED)
async def read_group(
    request: Request, service: Service, session: Reader, charts: ChartsOf, group_id: str
) -> Response:
    """A Group this node keeps, naming the members the token may read; a record id is a
    record of type Group, read as any other."""
    if RECORD_ID.fullmatch(group_id):
        return await fhir.read(request, session, charts, "Group", group_id)
    if not session.delegation.delegation.allows("Group"):
        raise Forbidden("the token's scopes do not reach Group")
    group = _group(service, group_id)
    return answer(request, group.resource(_readable(service, session, group)))


_STATUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the manifest", "content": {"application/json": {}}},
    202: {"description": "the job runs: X-Progress says how far"},
    500: {"description": "the job failed", "content": {"application/fhir+json": {}}},
}


@router.get(_STATUS + "/{job_id}", dependencies=_NEGOTIATED, responses=_STATUS_RESPONSES)
async def export_status(
    request: Request, service: Service, session: Reader, exports: ExportsOf, job_id: JobId
) -> Response:
    """202 with ``X-Progress`` while the job runs; then its manifest."""
    job = exports.job(session, job_id)
    if job.finished_ns is None:
        headers = {"X-Progress": job.progress, "Retry-After": _POLL_AFTER_S}
        return Response(status_code=202, headers=headers)
    if job.failed:
        outcome = operation_outcome([Issue("fatal", "exception", "the bulk export failed")])
        return answer(request, outcome, 500)
    manifest = exports.manifest(job, fhir_base(service) + _STATUS)
    expires = exports.expires_ns(job) or job.finished_ns
    headers = {"Cache-Control": "no-store", "Expires": formatdate(expires / 1e9, usegmt=True)}
    return Response(fhir_body(manifest), 200, headers, media_type="application/json")


@router.delete(_STATUS + "/{job_id}", status_code=202)
async def export_delete(session: Reader, exports: ExportsOf, job_id: JobId) -> Response:
    """End the job (if it still runs) and remove its files."""
    await exports.delete(session, job_id)
    return Response(status_code=202)


@router.get(_STATUS + "/{job_id}/{name}")
async def export_file(
    request: Request, session: Reader, exports: ExportsOf, job_id: JobId, name: str
) -> Response:
    """One NDJSON file of a completed job."""
    accept = request.headers.get("accept")
    if accept and not any(r.split(";")[0].strip().lower() in _NDJSON_RANGES
                          for r in accept.split(",")):  # fmt: skip
        raise NotAcceptable(f"Accept: the files are {NDJSON}")
    path = exports.file(session, job_id, name)
    return FileResponse(path, media_type=NDJSON, headers={"Cache-Control": "no-store"})


def _asked(request: Request, service: Service) -> ExportRequest:
    url = fhir_base(service) + request.url.path.removeprefix("/fhir")
    if request.url.query:
        url += "?" + request.url.query
    params = request.query_params.multi_items()
    return ExportRequest.parse(url, params, request.headers.get("prefer"))


def _group(service: Service, group_id: str) -> Group:
    group = GroupRegistry(service.settings.data_dir).get(group_id)
    if group is None:
        raise NotFound(f"no Group/{group_id[:64]} at this node")
    return group


def _readable(service: Service, session: Session, group: Group) -> list[Address]:
    """The members whose chart the token's principal may read now: under a live grant,
    or as the patient or her guardian (an owner read)."""
    now, store = time.time_ns(), service.node.store
    return [m for m in group.members
            if speaks_for(store, m, session.principal)
            or held_grants(store, session.principal, m, now)]  # fmt: skip


def _started(service: Service, job: Job) -> Response:
    status_url = f"{fhir_base(service)}{_STATUS}/{job.id}"
    return Response(status_code=202, headers={"Content-Location": status_url})
