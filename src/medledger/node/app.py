"""The node's HTTP API (FastAPI): authentication, error mapping, metrics and request logs.

Every ``/v1`` route except ``/v1/health`` takes a request signed with the
caller's ledger key (RFC 9421, node/signatures.py), fresh (created, expires)
and never seen before (its nonce), addressed to this node, and within the rate
limits of its signer and of its client address. Who may do what is decided from the ledger:
the caller's standing (member, participant with a role, patient) and grants.
A refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    generate_latest,
)
from pydantic import BaseModel

from medledger import __version__
from medledger.access.errors import NoGrant, NotPatient, UnknownRequest
from medledger.errors import InvalidInput, MedledgerError, TransportError, UsageError
from medledger.ledger.errors import (
    Conflict,
    NonceGap,
    ReplayedTransaction,
    TransactionRejected,
    Unauthorized,
    UnknownTransaction,
)
from medledger.node.errors import (
    Forbidden,
    NotFound,
    RateLimited,
    ReplayedRequest,
    RequestNotAuthenticated,
)
from medledger.node.fhir.content import MEDIA_TYPE, fhir_body
from medledger.node.fhir.outcome import Issue, operation_outcome, outcome_of
from medledger.node.limits import Rate, RequestLimits
from medledger.node.observe import Metrics, Observed, route_of
from medledger.node.routes import (
    access,
    audit,
    credentials,
    custodian,
    fhir,
    fhir_audit,
    fhir_categories,
    fhir_export,
    fhir_writes,
    launch,
    ledger,
    patients,
    records,
    smart,
)
from medledger.node.service import NodeService
from medledger.portal.serve import mount_portal
from medledger.records.errors import UnknownRecord

log = logging.getLogger("medledger.node.http")

#: Most specific first: the first class an error is an instance of decides its status.
STATUS: list[tuple[type[MedledgerError], int]] = [
    (RequestNotAuthenticated, 401),
    (ReplayedRequest, 401),
    (Forbidden, 403),
    (Unauthorized, 403),
    (NotPatient, 403),
    (NotFound, 404),
    (UnknownRecord, 404),
    (UnknownRequest, 404),
    (NoGrant, 404),
    (UnknownTransaction, 404),
    (ReplayedTransaction, 409),
    (NonceGap, 409),
    (Conflict, 409),
    (RateLimited, 429),
    (TransactionRejected, 422),
    (InvalidInput, 422),
    (UsageError, 400),
    (TransportError, 503),
]


class ErrorBody(BaseModel):
    """Every refusal: the error's class, a message naming what failed (never health data
    or a secret) and, for a ledger rejection, its stable code."""

    error: str
    message: str
    code: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "misuse"),
        (401, "not signed, stale, tampered, replayed or addressed to another node"),
        (403, "the ledger does not allow this caller"),
        (404, "no such record, request, grant or transaction"),
        (409, "conflicts with the ledger (nonce, duplicate)"),
        (413, "body too large"),
        (422, "invalid input, or refused by the ledger"),
        (429, "over the signing key's rate limit, or too many failed authentications"),
        (503, "a server behind the node failed"),
    )
}
ERROR_RESPONSES[429]["headers"] = {
    "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
}


def status_of(exc: MedledgerError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


def error_body(exc: MedledgerError) -> dict[str, Any]:
    code = exc.code if isinstance(exc, TransactionRejected) else None
    body = ErrorBody(error=type(exc).__name__, message=str(exc), code=code)
    return body.model_dump(exclude_none=True)


def _is_fhir(request: Request) -> bool:
    """FHIR clients read refusals as OperationOutcomes."""
    return request.url.path == "/fhir" or request.url.path.startswith("/fhir/")


async def _close_fhir(app: FastAPI) -> None:
    """The FHIR API's sealing workers, its bulk exports (their files with them) and its
    connections to the other nodes."""
    writer = getattr(app.state, "fhir_writer", None)
    if writer is not None:
        writer.close()
    exports = getattr(app.state, "fhir_exports", None)
    if exports is not None:
        await exports.close()
    charts = getattr(app.state, "fhir_charts", None)
    if charts is not None:
        await charts.close()


def create_app(service: NodeService, *, manage: bool = True) -> FastAPI:
    """The node's API; ``manage`` starts and stops the service with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage:
            await service.start()
        # Before serving: the first listing of every FHIR resource type builds each model
        # (a second and more), which would hold up whatever else the node is answering.
        await asyncio.to_thread(fhir.warm_up, app, service)
        try:
            yield
        finally:
            await _close_fhir(app)
            if manage:
                await service.stop()

    app = FastAPI(
        title="medledger node",
        version=__version__,
        summary="One institution's node of a medledger consortium",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.service = service
    settings = service.settings
    limits = RequestLimits(
        signers=Rate(settings.rate_limit_per_s, settings.rate_limit_burst),
        failures=Rate(settings.auth_failures_per_s, settings.auth_failure_burst),
    )
    app.state.limits = limits
    metrics = Metrics()
    app.state.metrics = metrics

    @app.exception_handler(MedledgerError)
    async def refused(request: Request, exc: MedledgerError) -> Response:
        # The message may name an address or a record id, never health data or a secret.
        log.info("refused %s %s: %s", request.method, route_of(request.scope), type(exc).__name__)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        if _is_fhir(request):
            status, outcome = outcome_of(exc)
            return Response(fhir_body(outcome), status, headers, media_type=MEDIA_TYPE)
        return JSONResponse(error_body(exc), status_code=status_of(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> Response:
        # Where and what, never the offending value: it may be part of a record.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        if _is_fhir(request):
            outcome = operation_outcome([Issue("error", "invalid", problems)])
            return Response(fhir_body(outcome), 400, media_type=MEDIA_TYPE)
        body = ErrorBody(error="MalformedRequest", message=problems[:1000])
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        if service.running:
            metrics.log_size.set(service.node.size)
            metrics.request_nonces.set(service.nonces.size())
        metrics.rate_tracked.labels("signer").set(len(limits.signers))
        metrics.rate_tracked.labels("address").set(len(limits.failures))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for module in (ledger, records, access, custodian, audit, credentials, fhir_categories):
        app.include_router(module.router)
    app.include_router(patients.router)
    app.include_router(smart.router)
    app.include_router(launch.router)
    # Before fhir.router, whose /fhir/{resource_type} routes would take AuditEvent too.
    app.include_router(fhir_audit.router)
    # Before fhir.router, whose /fhir/{resource_type}/{id} would take Patient/$export.
    app.include_router(fhir_export.router)
    app.include_router(fhir.router)
    app.include_router(fhir_writes.router)
    mount_portal(app)
    app.add_middleware(Observed, metrics=metrics, max_body_bytes=service.settings.max_body_bytes)
    return app
