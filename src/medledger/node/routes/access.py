"""Access routes: requests, approvals relayed by this node, grants, revocation.

Requests and revocations are ledger transactions the caller signs; approvals
are EIP-712 signatures (a patient's browser can make one) that this node relays
to the ledger under its own key, since anyone may relay them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from medledger.access.contract import (
    APPROVE,
    DENY,
    REQUEST,
    REVOKE,
    speaks_for,
)
from medledger.access.state import Grant, access_request, grant_status, requests_of
from medledger.access.visibility import grant_for_party, request_for_party
from medledger.crypto.keys import to_checksum_address
from medledger.node.api import (
    ADDRESS,
    ApprovalsIn,
    GrantState,
    Outcome,
    RequestState,
    TransactionIn,
)
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden
from medledger.node.routes.ledger import (
    decode_transaction,
    outcome_json,
    submit_about,
    submit_own,
)

router = APIRouter(prefix="/v1/access", tags=["access"])

REQUEST_ID = r"^0x[0-9a-fA-F]{64}$"


@router.post("/requests", response_model=RequestState)
async def make_request(
    service: Service, caller: AuthenticatedCaller, body: Annotated[TransactionIn, Body()]
) -> RequestState:
    """Ask for a patient's categories or records: an ``access.request`` the caller signed."""
    stx = decode_transaction(service, body.transaction)
    outcome = await submit_own(service, caller, stx, REQUEST)
    return _request_state(service, "0x" + outcome.tx_id.hex())


@router.get("/requests", response_model=list[RequestState])
async def list_requests(
    service: Service,
    caller: AuthenticatedCaller,
    patient: Annotated[str, Query(pattern=ADDRESS)],
) -> list[RequestState]:
    """Every request made of a patient's data, newest first: for the patient or a guardian."""
    address = to_checksum_address(patient)
    if not speaks_for(service.node.store, address, caller.address):
        raise Forbidden("only the patient or a guardian sees the requests made of their data")
    asked = requests_of(service.node.store, address)
    return [_request_state(service, request_id) for request_id in reversed(asked)]


@router.post("/requests/{request_id}/deny", response_model=RequestState)
async def deny(
    service: Service,
    caller: AuthenticatedCaller,
    request_id: Annotated[str, Path(pattern=REQUEST_ID)],
    body: Annotated[TransactionIn, Body()],
) -> RequestState:
    """Turn an open request down: an ``access.deny`` the patient or a guardian signed."""
    await submit_about(
        service, caller, body.transaction, DENY, field="request", target=request_id
    )
    return _request_state(service, request_id.lower())


@router.get("/requests/{request_id}", response_model=RequestState)
async def get_request(
    service: Service,
    caller: AuthenticatedCaller,
    request_id: Annotated[str, Path(pattern=REQUEST_ID)],
) -> RequestState:
    key = request_id.lower()
    request_for_party(service.node.store, caller.address, key)
    return _request_state(service, key)


@router.post("/requests/{request_id}/approvals", response_model=RequestState)
async def approve(
    service: Service,
    caller: AuthenticatedCaller,
    request_id: Annotated[str, Path(pattern=REQUEST_ID)],
    body: Annotated[ApprovalsIn, Body()],
) -> RequestState:
    """Relay approvals to the ledger; the grant exists once the policy holds."""
    key = request_id.lower()
    request_for_party(service.node.store, caller.address, key)
    if caller.address not in {a.signer for a in body.approvals}:
        raise Forbidden("a caller relays only approvals that include their own")
    payload = {"request": key, "approvals": [a.model_dump() for a in body.approvals]}
    await service.node.submit_payload(service.keys.member, APPROVE, payload)
    return _request_state(service, key)


@router.get("/grants/{grant_id}", response_model=GrantState)
async def get_grant(
    service: Service,
    caller: AuthenticatedCaller,
    grant_id: Annotated[str, Path(pattern=REQUEST_ID)],
) -> GrantState:
    key = grant_id.lower()
    return _grant_state(service, grant_for_party(service.node.store, caller.address, key))


@router.post("/grants/{grant_id}/revoke", response_model=Outcome)
async def revoke(
    service: Service,
    caller: AuthenticatedCaller,
    grant_id: Annotated[str, Path(pattern=REQUEST_ID)],
    body: Annotated[TransactionIn, Body()],
) -> Outcome:
    """End a grant at once: an ``access.revoke`` the patient or a guardian signed."""
    outcome = await submit_about(
        service, caller, body.transaction, REVOKE, field="grant", target=grant_id
    )
    return outcome_json(outcome)


def _request_state(service: Service, key: str) -> RequestState:
    request = access_request(service.node.store, key)
    granted = request.status == "granted"
    return RequestState(
        **dataclasses.asdict(request),
        grant_status=grant_status(service.node.store, key, time.time_ns()) if granted else None,
    )


def _grant_state(service: Service, grant: Grant) -> GrantState:
    status = grant.status(service.node.store, time.time_ns())
    return GrantState(status=status, **dataclasses.asdict(grant))
