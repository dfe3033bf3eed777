"""What every route depends on: the service, and the authenticated caller."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from medledger.node.caller import Caller, resolve_caller
from medledger.node.errors import ReplayedRequest
from medledger.node.service import NodeService
from medledger.node.signatures import verify_request


async def authenticated(request: Request) -> Caller:
    """The caller of a signed, fresh, first-seen request, as the ledger knows them."""
    service = service_of(request)
    now_s = int(time.time())
    signed = verify_request(
        method=request.method,
        url=str(request.url),
        headers=request.headers,
        body=await request.body(),
        now_s=now_s,
        limits=service.settings.signature_limits,
    )
    if not service.nonces.first_use(signed.signer, signed.nonce, signed.expires, now_s):
        raise ReplayedRequest(f"request nonce already used by {signed.signer}")
    return resolve_caller(service.node.store, signed.signer)


def service_of(request: Request) -> NodeService:
    service: NodeService = request.app.state.service
    return service


AuthenticatedCaller = Annotated[Caller, Depends(authenticated)]
Service = Annotated[NodeService, Depends(service_of)]
