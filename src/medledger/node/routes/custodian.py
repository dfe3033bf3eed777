"""The custodian route: release this institution's key share under a grant.

The custodian (access/custodian.py) checks the grant, the release request and
the record against this node's ledger, appends a receipt and waits for it to be
ordered before it seals its share to the reader's one-time key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from medledger.access.release_wire import ask_from_json, share_to_json
from medledger.crypto.errors import InvalidSignature
from medledger.errors import InvalidInput
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden

router = APIRouter(prefix="/v1/custodian", tags=["custodian"])

HEX32 = r"^0x[0-9a-fA-F]{64}$"


class ReleaseIn(BaseModel):
    grant: str = Field(pattern=HEX32)
    record: str = Field(pattern=HEX32, description="the record's commitment")
    reader_key: str = Field(pattern=HEX32, description="the reader's one-time X25519 key")
    not_after_ms: int = Field(ge=0, lt=2**64)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class ReleaseAskIn(BaseModel):
    release: ReleaseIn
    committed: dict[str, Any] = Field(
        description="the record as committed (records/wire.py form); the ciphertext may be empty"
    )


class ReleasedShareOut(BaseModel):
    custodian: str
    receipt: str = Field(description="the access.receipt transaction id")
    sealed: str = Field(description="the share sealed to the reader's one-time key, base64")


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
