"""SMART on FHIR: discovery and the token endpoint (Backend Services).

``/.well-known/smart-configuration`` is served beside the FHIR base URL (``/fhir``), where
SMART clients look, and at the root. It lists only what this node implements: the
``client_credentials`` grant with ``private_key_jwt`` (RS384, ES384), and the
``authorization_code`` grant with PKCE for launched public apps (routes/launch.py).
Token errors follow RFC 6749 (``{"error", "error_description"}``, 400, or 401 for a
client that did not authenticate), never a stack of medledger's own error shapes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from medledger.node.api import OAuthError, TokenOut
from medledger.node.deps import Service
from medledger.node.fhir.clients import ClientRegistry
from medledger.node.fhir.tokens import ALGORITHMS, TokenError, Tokens
from medledger.node.identities import passphrase
from medledger.node.limits import RequestLimits
from medledger.node.routes.launch import AUTHORIZE_PATH, authorizations_of

router = APIRouter(tags=["smart"])

TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path, not a secret
_MAX_FORM_BYTES = 16 * 1024


def tokens_of(request: Request) -> Tokens:
    """The node's token store, made on first use (the node's network id is known then)."""
    tokens: Tokens | None = getattr(request.app.state, "tokens", None)
    if tokens is None:
        service = request.app.state.service
        registry = ClientRegistry(service.settings.data_dir)
        tokens = Tokens(registry, service.keys.member.address, service.node.network_id)
        request.app.state.tokens = tokens
    return tokens


def _configuration(service: Service) -> dict[str, Any]:
    base = service.settings.base_url
    return {
        "issuer": base,
        "token_endpoint": base + TOKEN_PATH,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "grant_types_supported": ["client_credentials", "authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [
            *("system/*.rs", "system/*.cruds", "system/*.read", "system/*.write"),
            *("patient/*.rs", "user/*.rs", "launch/patient"),
        ],
        "response_types_supported": ["code"],
        "capabilities": [
            *("client-confidential-asymmetric", "permission-v1", "permission-v2"),
            *("launch-standalone", "client-public", "context-standalone-patient"),
            *("permission-patient", "permission-user"),
        ],
    }


@router.get("/.well-known/smart-configuration")
async def smart_configuration(service: Service) -> dict[str, Any]:
    return _configuration(service)


@router.get("/fhir/.well-known/smart-configuration")
async def smart_configuration_at_base(service: Service) -> dict[str, Any]:
    return _configuration(service)


_OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "a malformed request or a scope not allowed"},
    401: {"model": OAuthError, "description": "the client did not prove itself"},
}


@router.post(TOKEN_PATH, response_model=TokenOut, responses=_OAUTH_ERRORS)
async def token(request: Request, service: Service) -> JSONResponse:
    """An access token for a client that proved itself (RFC 6749, RFC 7523, SMART).

    Unauthenticated by nature, so held to the per-address limit on failed attempts that
    guards signed requests: a client address that keeps failing is refused for a while."""
    limits: RequestLimits = request.app.state.limits
    address = request.client.host if request.client is not None else ""
    limits.admit_address(address)
    answer = await _token(request, service)
    if answer.status_code >= 400:
        limits.failed(address)
    return answer


async def _token(request: Request, service: Service) -> JSONResponse:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return _oauth_error(TokenError("invalid_request", "the form is too large"))
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return _oauth_error(TokenError("invalid_request", "expected a form post"))
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        return _oauth_error(TokenError("invalid_request", "the form is not UTF-8"))
    grant = form.get("grant_type")
    if grant not in ("client_credentials", "authorization_code"):
        refused = TokenError("unsupported_grant_type", "client_credentials or authorization_code")
        return _oauth_error(refused)
    tokens = tokens_of(request)
    patient = None
    try:
        if grant == "authorization_code":
            issued, session, patient = authorizations_of(request).exchange(form, tokens)
        else:
            # Off the event loop: the JWT check and, once per client, its keystore's scrypt.
            issued, session = await asyncio.to_thread(
                tokens.client_credentials, form,
                token_url=service.settings.base_url + TOKEN_PATH, passphrase=passphrase(),
            )  # fmt: skip
    except TokenError as exc:
        return _oauth_error(exc)
    answer = {
        "access_token": issued,
        "token_type": "bearer",
        "expires_in": max(0, (session.expires_ns - time.time_ns()) // 10**9),
        "scope": session.scope,
    } | ({"patient": patient} if patient is not None else {})
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _oauth_error(exc: TokenError) -> JSONResponse:
    status = 401 if exc.error == "invalid_client" else 400
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )

