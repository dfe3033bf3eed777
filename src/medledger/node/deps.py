"""What every route depends on: the service, and the authenticated caller."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from medledger.access.delegation import HEADER as DELEGATION_HEADER
from medledger.node.caller import Caller, resolve_caller
from medledger.node.errors import ReplayedRequest, RequestNotAuthenticated, SignerRateLimited
from medledger.node.limits import RequestLimits
from medledger.node.service import NodeService
from medledger.node.signatures import SignedRequest, verify_request

#: Headers a request's signature must cover when it carries them: a node reading under
#: someone's delegation signs which delegation it reads under.
SIGNED_IF_PRESENT = (DELEGATION_HEADER.lower(),)


async def authenticated(request: Request) -> Caller:
    """The caller of a signed, fresh, first-seen request for this node, within its limits,
    as the ledger knows them."""
    service = service_of(request)
    limits: RequestLimits = request.app.state.limits
    address = request.client.host if request.client is not None else ""
    limits.admit_address(address)
    now_s = int(time.time())
    try:
        signed = verify_request(
            method=request.method,
            url=str(request.url),
            headers=request.headers,
            body=await request.body(),
            now_s=now_s,
            limits=service.settings.signature_limits,
            authority=service.settings.authority,
            covered_if_present=SIGNED_IF_PRESENT,
        )
        _record_nonce(service, limits, signed, now_s)
    except (RequestNotAuthenticated, ReplayedRequest):
        limits.failed(address)
        raise
    limits.spent(signed.signer)
    return resolve_caller(service.node.store, signed.signer)


def _record_nonce(
    service: NodeService, limits: RequestLimits, signed: SignedRequest, now_s: int
) -> None:
    """Record the request's nonce if its signer has a token to spend: a refused request
    leaves none, so the store grows no faster than the rate limits allow."""
    try:
        limits.admit_signer(signed.signer)
    except SignerRateLimited:
        # A replay is told as one even while its signer is held back, so that it counts
        # against the address that sent it rather than passing as the signer's retry.
        if not service.nonces.seen(signed.signer, signed.nonce):
            raise
        fresh = False
    else:
        fresh = service.nonces.first_use(signed.signer, signed.nonce, signed.expires, now_s)
    if not fresh:
        raise ReplayedRequest(f"request nonce already used by {signed.signer}")


def service_of(request: Request) -> NodeService:
    service: NodeService = request.app.state.service
    return service


async def _service(request: Request) -> NodeService:
    # FastAPI runs a plain function dependency in its thread pool: a hop to a worker and
    # back that costs far more than reading an attribute.
    return service_of(request)


AuthenticatedCaller = Annotated[Caller, Depends(authenticated)]
Service = Annotated[NodeService, Depends(_service)]
