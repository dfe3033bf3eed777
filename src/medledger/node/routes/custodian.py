"""The custodian route: release this institution's key share under a grant.

The custodian (access/custodian.py) checks the grant, the release request and
the record against this node's ledger, appends a receipt and waits for it to be
ordered before it seals its share to the reader's one-time key.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from medledger.access.custodian import ReleaseAsk
from medledger.access.release import Release
from medledger.crypto.errors import InvalidSignature
from medledger.errors import InvalidInput
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden
from medledger.records.wire import committed_from_json

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
    r = body.release
    terms = Release(
        service.node.network_id,
        bytes.fromhex(r.grant[2:]),
        bytes.fromhex(r.record[2:]),
        bytes.fromhex(r.reader_key[2:]),
        r.not_after_ms,
    )
    signature = bytes.fromhex(r.signature[2:])
    try:
        signer = terms.signer(signature)
    except InvalidSignature as exc:
        raise InvalidInput(f"release request: {exc}") from None
    if signer != caller.address:
        raise Forbidden("the release request is not signed by the caller")
    ask = ReleaseAsk(terms, signature, committed_from_json(body.committed))
    share = await service.custodian.release(ask)
    return ReleasedShareOut(
        custodian=share.custodian,
        receipt="0x" + share.receipt.hex(),
        sealed=base64.b64encode(share.sealed).decode(),
    )
