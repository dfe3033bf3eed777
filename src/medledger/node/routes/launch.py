"""SMART App Launch, standalone: the authorization endpoint and the page's calls.

``GET /auth/authorize`` checks the app's request (fhir/authorization.py) and sends the
browser to the consent page (``/portal/authorize.html``), which shows the app and what
it asks in words, opens the user's keystore and signs the delegation the request names;
``POST /auth/authorize/decision`` takes the signature, or the user's no, and answers the
URL to send the browser back to the app with. A request naming no registered app or
redirect URI gets an error page and goes nowhere (RFC 6749 section 4.1.2.1).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from medledger.access.delegation import SignedDelegation
from medledger.errors import InvalidInput
from medledger.node.deps import Service
from medledger.node.fhir.apps import AppRegistry
from medledger.node.fhir.authorization import (
    PATIENT_LAUNCH,
    Authorizations,
    AuthorizeError,
    NoRedirect,
    Pending,
)
from medledger.node.limits import RequestLimits

router = APIRouter(tags=["smart"])

AUTHORIZE_PATH = "/auth/authorize"
CONSENT_PAGE = "/portal/authorize.html"
_REQUEST_ID = r"^[A-Za-z0-9_\-]{16,64}$"


def authorizations_of(request: Request) -> Authorizations:
    """The node's authorization requests and codes, made on first use."""
    found: Authorizations | None = getattr(request.app.state, "authorizations", None)
    if found is None:
        service = request.app.state.service
        found = Authorizations(
            AppRegistry(service.settings.data_dir), member=service.keys.member.address,
            network_id=service.node.network_id, fhir_base=service.settings.base_url + "/fhir",
        )  # fmt: skip
        request.app.state.authorizations = found
    return found


_NO_APP: dict[int | str, dict[str, Any]] = {
    400: {"description": "no registered app or redirect URI: a page saying so",
          "content": {"text/html": {"schema": {"type": "string"}}}},
}  # fmt: skip


@router.get(AUTHORIZE_PATH, response_class=HTMLResponse, status_code=303, responses=_NO_APP)
async def authorize(request: Request) -> Response:
    """Begin an authorization (SMART App Launch, standalone, PKCE S256)."""
    limits: RequestLimits = request.app.state.limits
    address = request.client.host if request.client is not None else ""
    limits.admit_address(address)
    try:
        pending = authorizations_of(request).begin(dict(request.query_params), client=address)
    except NoRedirect as exc:
        limits.failed(address)
        return _error_page(str(exc))
    except AuthorizeError as exc:
        return RedirectResponse(exc.redirect(), status_code=303)
    return RedirectResponse(f"{CONSENT_PAGE}?request={pending.request_id}", status_code=303)


class DelegationToSign(BaseModel):
    network_id: int
    delegate: str
    app: str
    types: str
    not_after_ms: int


class AuthorizationRequestOut(BaseModel):
    """What the consent page shows and has the user sign."""

    app: str
    app_name: str
    redirect_origin: str
    scope: str
    asks: list[str] = Field(description="the scopes in words")
    patient_launch: bool
    delegation: DelegationToSign


@router.get(AUTHORIZE_PATH + "/requests/{request_id}", response_model=AuthorizationRequestOut)
async def authorization_request(
    request: Request, request_id: Annotated[str, Path(pattern=_REQUEST_ID)]
) -> AuthorizationRequestOut:
    pending = authorizations_of(request).pending(request_id)
    d = pending.delegation
    return AuthorizationRequestOut(
        app=pending.app.client_id, app_name=pending.app.name,
        redirect_origin=_origin(pending.redirect_uri), scope=pending.granted.scope,
        asks=scope_words(pending), patient_launch=pending.context == "patient",
        delegation=DelegationToSign(network_id=d.network_id, delegate=d.delegate, app=d.app,
                                    types=d.resource_types, not_after_ms=d.not_after_ms),
    )  # fmt: skip


class DecisionIn(BaseModel):
    request: str = Field(pattern=_REQUEST_ID)
    #: The delegation the request names, signed by the user; absent when they said no.
    delegation: dict[str, Any] | None = None


class DecisionOut(BaseModel):
    redirect: str = Field(description="where to send the browser: the app, with a code or error")


@router.post(AUTHORIZE_PATH + "/decision", response_model=DecisionOut)
async def decision(
    request: Request, service: Service, body: Annotated[DecisionIn, Body()]
) -> DecisionOut:
    """The user's answer: the signed delegation (a code for the app), or none (a no)."""
    limits: RequestLimits = request.app.state.limits
    address = request.client.host if request.client is not None else ""
    limits.admit_address(address)
    authorizations = authorizations_of(request)
    if body.delegation is None:
        return DecisionOut(redirect=authorizations.deny(body.request))
    try:
        signed = SignedDelegation.from_json(body.delegation, service.node.network_id)
        redirect = authorizations.decide(body.request, signed, service.node.store,
                                         client=address)
    except InvalidInput:
        limits.failed(address)
        raise
    return DecisionOut(redirect=redirect)


def scope_words(pending: Pending) -> list[str]:
    """Each granted scope as the consent page says it."""
    words = []
    for scope in pending.granted.scope.split():
        if scope == PATIENT_LAUNCH:
            words.append("know that you are the patient")
            continue
        kind, _, what = scope.partition("/")[2].partition(".")
        records = "records of every kind" if kind == "*" else f"{kind} records"
        verbs = "search" if what == "s" else "read" if what == "r" else "read and search"
        if pending.context == "patient":
            words.append(f"{verbs} your {records}")
        else:
            words.append(f"{verbs} patients' {records} that your grants cover")
    if pending.context == "patient":
        # The delegation speaks for whoever signs it, and a guardian speaks for the patients
        # who named them: the app reaches those charts too, and the user must be told.
        words.append("do the same for every patient who named you their guardian")
    return words


def _origin(uri: str) -> str:
    scheme, _, rest = uri.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}"


def _error_page(message: str) -> HTMLResponse:
    page = (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>medledger · authorization refused</title></head><body>"
        "<h1>This app cannot be authorized here</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    )
    headers = {"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store"}
    return HTMLResponse(page, status_code=400, headers=headers)
