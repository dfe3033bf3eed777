"""The custodian route: release this institution's key share under a grant.

The custodian (access/custodian.py) checks the grant, the release request and
the record against this node's ledger, appends a receipt and waits for it to be
ordered before it seals its share to the reader's one-time key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from medledger.access.release_wire import ask_from_json, share_to_json
from medledger.crypto.errors import InvalidSignature
from medledger.errors import InvalidInput
from medledger.node.api import (
    ReleaseAskIn,
    ReleasedShareOut,
)
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden

router = APIRouter(prefix="/v1/custodian", tags=["custodian"])



@router.post("/release", response_model=ReleasedShareOut)
async def release(
    service: Service, caller: AuthenticatedCaller, body: Annotated[ReleaseAskIn, Body()]
) -> ReleasedShareOut:
    ask = ask_from_json(body.model_dump(), service.node.network_id)
    try:
        signer = ask.release.signer(ask.signature)
    except InvalidSignature as exc:
        raise InvalidInput(f"release request: {exc}") from None
    if signer != caller.address:
        raise Forbidden("the release request is not signed by the caller")
    return ReleasedShareOut(**share_to_json(await service.custodian.release(ask)))
