"""The audit route: every read of a patient's data, each proven, and break-glass grants."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from medledger.access.audit import audit_json
from medledger.access.contract import speaks_for
from medledger.crypto.keys import to_checksum_address
from medledger.node.api import (
    ADDRESS,
    Audit,
)
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("/{patient}", response_model=Audit)
async def audit(
    service: Service,
    caller: AuthenticatedCaller,
    patient: Annotated[str, Path(pattern=ADDRESS)],
) -> Audit:
    """For the patient or a guardian only."""
    address = to_checksum_address(patient)
    if not speaks_for(service.node.store, address, caller.address):
        raise Forbidden("only the patient or a guardian sees who read their data")
    return Audit(**audit_json(service.node, address))
