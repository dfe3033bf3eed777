"""Record routes: who to seal for, write sealed records, list, fetch and prove them.

Records arrive sealed and signed by their author's client; the node checks and
commits them (records/incoming.py) and never sees plaintext. Reading returns
ciphertext: the patient opens it with their own key, a grant holder through
the custodians. Who sees what of a patient's records here: the patient (or a
guardian); this institution's staff while the patient is enrolled here (the care
team sees the chart's index, not its contents); a grant's holder, the records its
grant covers; a member's node acting under a holder's delegation (the
``Medledger-Delegation`` header, access/delegation.py), what the holder's grant covers
of the resource types delegated. A record the caller may not see is answered exactly
as a record that does not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from medledger.access.care import enrolled_at
from medledger.access.delegation import HEADER as DELEGATION_HEADER
from medledger.access.delegation import SignedDelegation, check_reader
from medledger.access.state import Grant, grant_of, held_grants, holding_grant, speaks_for
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput, MedledgerError
from medledger.ledger.contracts.base import StateView
from medledger.node.api import (
    ADDRESS,
    RECORD_ID,
    Custodian,
    Recipients,
    RecordSummary,
    WriteIn,
    WriteOut,
    WrittenRecord,
)
from medledger.node.caller import Caller
from medledger.node.deps import AuthenticatedCaller, Service, service_of
from medledger.node.errors import Forbidden
from medledger.records.errors import UnknownRecord
from medledger.records.header import FIRST_VERSION, MAX_VERSION, RecordHeader
from medledger.records.pipeline import Incoming
from medledger.records.proof import committed_record, prove
from medledger.records.recipients import custodians_of, patient_key
from medledger.records.store import StoredRecord, latest_versions
from medledger.records.wire import committed_to_json, sealed_from_json

router = APIRouter(prefix="/v1/records", tags=["records"])

GRANT = r"^0x[0-9a-fA-F]{64}$"
#: What a route answering its own encoded JSON says of it in the OpenAPI document.
_JSON_OBJECT: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}}
}


@router.get("/recipients", response_model=Recipients)
async def recipients(
    service: Service,
    caller: AuthenticatedCaller,
    patient: Annotated[str, Query(pattern=ADDRESS)],
) -> Recipients:
    """Whom a new record of this patient is sealed to: the custodians and the patient."""
    address = to_checksum_address(patient)
    _require_writer(service, caller, address)
    custodians = custodians_of(service.node)
    return Recipients(
        network=service.node.network_id,
        threshold=custodians.threshold,
        custodians=[Custodian(address=a, key="0x" + k.hex()) for a, k in custodians.holders],
        patient=address,
        patient_key="0x" + patient_key(service.node, address).hex(),
        max_records_per_write=service.settings.max_records_per_write,
    )


@router.post("", response_model=WriteOut)
async def write(
    service: Service, caller: AuthenticatedCaller, body: Annotated[WriteIn, Body()]
) -> WriteOut:
    """Commit records the caller sealed and signed, as one batch; all or none: staff's,
    or a patient's own, written into the vault of an institution they enrolled at."""
    limit = service.settings.max_records_per_write
    if len(body.records) > limit:
        raise InvalidInput(f"{len(body.records)} records in one upload; this node takes {limit}")
    batch = []
    for item in body.records:
        sealed = sealed_from_json(item.sealed)
        _require_writer(service, caller, sealed.header.patient)
        author = sealed.check()
        if author != caller.address:
            raise Forbidden(f"record {sealed.header.label} is signed by {author}, not the caller")
        batch.append(Incoming(sealed, item.fhir_id))
    seq = await service.writer.write_sealed(batch)
    return WriteOut(
        batch=seq,
        records=[
            WrittenRecord(
                record_id=i.sealed.header.record_id.hex(),
                version=i.sealed.header.version,
                commitment="0x" + i.sealed.commitment.hex(),
            )
            for i in batch
        ],
    )


async def _delegation(
    request: Request, service: Service, caller: AuthenticatedCaller
) -> SignedDelegation | None:
    """The delegation the caller acts under, checked: signed by someone, to the caller, a
    current member, and in force. Whether its principal holds the grant, _scope asks."""
    header = request.headers.get(DELEGATION_HEADER)
    if header is None:
        return None
    delegation = SignedDelegation.from_header(header, service.node.network_id)
    try:
        check_reader(service.node.store, caller.address, delegation,
                     holder=delegation.principal(), now_ns=time.time_ns())  # fmt: skip
    except MedledgerError as exc:
        raise Forbidden(f"delegation: {exc}") from None
    return delegation


Delegated = Annotated[SignedDelegation | None, Depends(_delegation)]


@router.get("", response_model=list[RecordSummary])
async def list_records(
    service: Service,
    caller: AuthenticatedCaller,
    delegation: Delegated,
    patient: Annotated[str, Query(pattern=ADDRESS)],
    grant: Annotated[str | None, Query(pattern=GRANT)] = None,
) -> list[RecordSummary]:
    """A patient's records in this vault that the caller may see, every version."""
    address = to_checksum_address(patient)
    scope = _scope(service, caller, address, grant, delegation)
    if scope is None:
        raise Forbidden("a grant covering this patient's records is needed")
    return [RecordSummary.of(r) for r in service.vault.for_patient(address) if scope.covers(r)]


@router.get("/committed")
async def list_committed(
    service: Service,
    caller: AuthenticatedCaller,
    delegation: Delegated,
    patient: Annotated[str, Query(pattern=ADDRESS)],
    grant: Annotated[str | None, Query(pattern=GRANT)] = None,
) -> list[dict[str, Any]]:
    """The latest version of each of a patient's records here that the caller may see,
    sealed, with the path of its commitment into the log: what a reader sends the
    custodians, for a whole chart in one answer."""
    address = to_checksum_address(patient)
    scope = _scope(service, caller, address, grant, delegation)
    if scope is None:
        raise Forbidden("a grant covering this patient's records is needed")
    return [
        committed_to_json(committed_record(stored, service.vault_id, service.node))
        for stored in latest_versions(service.vault.for_patient(address))
        if scope.covers(stored)
    ]


@dataclass(frozen=True)
class _Scope:
    """What of one patient's records a caller may see."""

    everything: bool
    grants: tuple[Grant, ...] = ()
    delegation: SignedDelegation | None = None
    owner: bool = False

    def covers(self, stored: StoredRecord) -> bool:
        if self.everything:
            return True
        header: RecordHeader = stored.sealed.header
        commitment = "0x" + stored.commitment.hex()
        if self.delegation is not None and not self.delegation.delegation.allows(
            header.resource_type
        ):
            return False
        return self.owner or any(grant.covers(header.category, commitment) for grant in self.grants)


def _scope(
    service: Service, caller: Caller, patient: Address, grant: str | None,
    delegation: SignedDelegation | None = None,
) -> _Scope | None:  # fmt: skip
    """What the caller may see of ``patient``'s records here; None: nothing. A delegated
    node sees only what its principal's grant covers (or, when the principal speaks for the
    patient, her records), never what it may see itself."""
    view, institution = service.node.store, service.keys.member.address
    if delegation is not None:
        principal = delegation.principal()
        if speaks_for(view, patient, principal):
            # An owner read (access/owner.py): her records, of the types she delegated.
            return _Scope(False, owner=True, delegation=delegation)
        return _grant_scope(view, principal, patient, grant, delegation)
    if speaks_for(view, patient, caller.address):
        return _Scope(True)
    here_now = service.node.size
    if caller.is_staff_of(institution) and enrolled_at(view, patient, institution, here_now):
        return _Scope(True)
    return _grant_scope(view, caller.address, patient, grant, None)


def _grant_scope(
    view: StateView, holder: Address, patient: Address, grant: str | None,
    delegation: SignedDelegation | None,
) -> _Scope | None:  # fmt: skip
    if grant is None:
        # Without a grant named, any the holder holds on the patient's data; with none,
        # as with a grant that does not reach a record, the record is not shown.
        held = held_grants(view, holder, patient, time.time_ns())
        return _Scope(False, grants=tuple(held), delegation=delegation) if held else None
    named = grant_of(view, grant.lower())
    if named is None or named.requester != holder or named.patient != patient:
        return None
    # The holder may hear why their own grant no longer reads (revoked, expired, void).
    holding = holding_grant(view, grant.lower(), time.time_ns())
    return _Scope(False, grants=(holding,), delegation=delegation)


async def _readable(
    request: Request,
    caller: AuthenticatedCaller,
    record_id: Annotated[str, Path(pattern=RECORD_ID)],
    version: Annotated[int | None, Query(ge=FIRST_VERSION, le=MAX_VERSION)] = None,
    grant: Annotated[str | None, Query(pattern=GRANT)] = None,
) -> StoredRecord:
    """The record (its latest or a given version) if the caller may see it; a record the
    caller may not see is refused as one this vault does not hold."""
    # Every read comes through here: each dependency the framework resolves costs about
    # as much as the work below, so the service and the delegation are called directly.
    service = service_of(request)
    delegation = await _delegation(request, service, caller)
    stored = service.vault.get(bytes.fromhex(record_id), version)
    scope = _scope(service, caller, stored.sealed.header.patient, grant, delegation)
    if scope is None or not scope.covers(stored):
        raise UnknownRecord.not_held(record_id, version)
    return stored


ReadableRecord = Annotated[StoredRecord, Depends(_readable)]


def _require_writer(service: Service, caller: Caller, patient: Address) -> None:
    """Staff of this institution, or the patient themself while enrolled here; whether
    the author may write this record at all, the ledger's rules judge (access/care.py)."""
    institution = service.keys.member.address
    if caller.is_staff_of(institution):
        return
    if caller.address == patient and enrolled_at(
        service.node.store, patient, institution, service.node.size
    ):
        return
    raise Forbidden(f"{caller.address} is not staff of this institution")


@router.get("/{record_id}", response_class=Response, responses=_JSON_OBJECT)
async def fetch(request: Request, stored: ReadableRecord) -> Response:
    """The sealed record with the path of its commitment into the log."""
    service = service_of(request)
    answer = committed_to_json(committed_record(stored, service.vault_id, service.node))
    # Encoded once, here: the framework would check the dict against its annotation and
    # encode it again.
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get("/{record_id}/proof")
async def proof(service: Service, stored: ReadableRecord) -> dict[str, Any]:
    """The record's proof up to the latest cosigned checkpoint, checkable without a node."""
    return prove(stored, service.vault_id, service.node).to_json()
