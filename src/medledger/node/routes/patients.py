"""Patient routes: this institution's index of its patients' identifiers, for its staff.

An institution finds its patients by the identifiers its own systems give them (an
MRN); the ledger knows them by pseudonym. The index (records/patient_index.py) links
the two in the institution's own database, never on the ledger, as keyed hashes its
staff's clients compute: the node hands its key to its own staff only, and takes and
answers digests, never an identifier. Staff of another institution, patients and
strangers are refused every route here: an index of who is a patient at a hospital is
itself health information. Nothing of a request body is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Body

from medledger.access.care import enrolled_at
from medledger.crypto.keys import Address, to_checksum_address
from medledger.node.api import (
    FindIn,
    IdentifiersIn,
    IdentifiersOut,
    IndexKey,
    PatientFound,
)
from medledger.node.caller import Caller
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden
from medledger.records.patient_index import PatientIndex, index_key

router = APIRouter(prefix="/v1/patients", tags=["patients"])

T = TypeVar("T")


def _require_staff(service: Service, caller: Caller) -> Address:
    """This institution's address, if the caller is its staff (or the institution)."""
    institution = service.keys.member.address
    if not caller.is_staff_of(institution):
        raise Forbidden(f"{caller.address} is not staff of this institution")
    return institution


async def _in_index(service: Service, work: Callable[[PatientIndex], T]) -> T:
    """Run ``work`` on the index in the institution's database, off the event loop."""

    def run() -> T:
        with PatientIndex.open(service.settings.vault_database) as index:
            return work(index)

    return await asyncio.to_thread(run)


@router.get("/index-key", response_model=IndexKey)
async def key(service: Service, caller: AuthenticatedCaller) -> IndexKey:
    """The key under which this institution's staff hash patient identifiers."""
    institution = _require_staff(service, caller)
    return IndexKey(institution=institution, key="0x" + index_key(service.keys.member).hex())


@router.post("/identifiers", response_model=IdentifiersOut)
async def add(
    service: Service, caller: AuthenticatedCaller, body: Annotated[IdentifiersIn, Body()]
) -> IdentifiersOut:
    """Index identifier digests for a patient enrolled here; all or none, and none that
    the index holds for another patient."""
    institution = _require_staff(service, caller)
    patient = to_checksum_address(body.patient)
    if not enrolled_at(service.node.store, patient, institution, service.node.size):
        raise Forbidden(f"patient {patient} is not enrolled here")
    digests = [bytes.fromhex(d[2:]) for d in body.digests]
    added = await _in_index(service, lambda index: index.add(patient, digests))
    return IdentifiersOut(patient=patient, added=added)


@router.post("/find", response_model=list[PatientFound])
async def find(
    service: Service, caller: AuthenticatedCaller, body: Annotated[FindIn, Body()]
) -> list[PatientFound]:
    """The patients this institution indexed under any of the digests."""
    institution = _require_staff(service, caller)
    digests = [bytes.fromhex(d[2:]) for d in body.digests]
    owners = await _in_index(service, lambda index: index.owners(digests))
    view, now = service.node.store, service.node.size
    return [
        PatientFound(
            digest="0x" + digest.hex(),
            patient=patient,
            enrolled=enrolled_at(view, patient, institution, now),
        )
        for digest, patient in sorted(owners.items())
    ]
