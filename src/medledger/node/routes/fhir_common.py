"""What the FHIR routes share: the bearer session, the kept charts, FHIR JSON answers,
the documented responses and the ids a FHIR client uses here."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from medledger.crypto.keys import Address, to_checksum_address
from medledger.node.deps import Service
from medledger.node.errors import RequestNotAuthenticated
from medledger.node.fhir.charts import Charts
from medledger.node.fhir.content import FORMAT_PARAM, fhir_body, negotiate
from medledger.node.fhir.federation import Federation
from medledger.node.fhir.tokens import Session
from medledger.node.limits import RequestLimits
from medledger.node.routes.smart import tokens_of
from medledger.records.errors import UnknownRecord

_FHIR_JSON = {"application/fhir+json": {"schema": {"type": "object"}}}
#: Every answer, refusals included, is FHIR JSON (refusals: OperationOutcomes).
FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": _FHIR_JSON}
    for status, description in (
        (200, "a resource or a Bundle"),
        (400, "a malformed or unsupported search"),
        (401, "no valid bearer token"),
        (403, "not allowed"),
        (404, "no such resource this token may read"),
        (406, "a format other than FHIR JSON asked for"),
        (422, "refused"),
        (429, "too many requests"),
        (503, "a vault or custodian did not answer"),
    )
}
RECORD_ID = re.compile(r"[0-9a-f]{32}")
PSEUDONYM = re.compile(r"0x[0-9a-fA-F]{40}")


def fhir_router() -> APIRouter:
    """A router under ``/fhir`` whose answers are FHIR JSON and whose requests ask for a
    format it serves, checked before anything is read."""
    return APIRouter(
        prefix="/fhir", tags=["fhir"], responses=FHIR_RESPONSES,
        dependencies=[Depends(check_format)],
    )  # fmt: skip


def session_of(request: Request) -> Session:
    """The session behind the request's bearer token, held to the limits signed requests
    are: a bad token counts as a failed authentication of its client address, and a
    session's requests spend its principal's bucket."""
    limits: RequestLimits = request.app.state.limits
    address = request.client.host if request.client is not None else ""
    limits.admit_address(address)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    session = tokens_of(request).session(token.strip()) if scheme.lower() == "bearer" else None
    if session is None:
        limits.failed(address)
        raise RequestNotAuthenticated("a valid bearer token from /auth/token is required")
    limits.admit_signer(session.principal)
    limits.spent(session.principal)
    return session


def check_format(request: Request) -> None:
    """Refuse a format we do not serve before anything is read (and receipted)."""
    negotiate(request.query_params.get(FORMAT_PARAM), request.headers.get("accept"))


def charts_of(request: Request, service: Service) -> Charts:
    charts: Charts | None = getattr(request.app.state, "fhir_charts", None)
    if charts is None:
        charts = Charts(Federation(service), fhir_base(service))
        request.app.state.fhir_charts = charts
    return charts


Reader = Annotated[Session, Depends(session_of)]
ChartsOf = Annotated[Charts, Depends(charts_of)]
ResourceType = Annotated[str, Path(pattern=r"^[A-Z][A-Za-z]{1,63}$")]


def fhir_base(service: Service) -> str:
    return service.settings.base_url + "/fhir"


def answer(request: Request, resource: dict[str, Any], status: int = 200) -> Response:
    media = negotiate(request.query_params.get(FORMAT_PARAM), request.headers.get("accept"))
    # Health data: no proxy or browser cache keeps a copy.
    return Response(fhir_body(resource), status, {"Cache-Control": "no-store"}, media_type=media)


def patient_of(value: str) -> Address:
    if not PSEUDONYM.fullmatch(value):
        raise UnknownRecord("Patient ids here are patients' pseudonyms (0x and 40 hex digits)")
    return to_checksum_address(value)
