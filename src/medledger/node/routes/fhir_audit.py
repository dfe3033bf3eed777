"""A patient's audit trail over FHIR: ``GET /fhir/AuditEvent?patient=`` and
``GET /fhir/AuditEvent/{id}`` (node/fhir/audit_events.py builds them).

The rule is ``/v1/audit``'s: only the patient or a guardian they named sees who read
their data, so the token's principal must speak for the patient, and its scopes must
reach AuditEvent. The trail is the ledger's, read from this node's copy with every
receipt proven into the latest cosigned checkpoint; no vault or custodian is asked.
Searches take ``patient`` (one, required), ``date`` (AuditEvent.recorded), ``subtype``,
``_id``, ``_count``, ``_sort``, ``_summary`` and ``_elements``; anything else is refused.
Without ``_sort`` events come oldest first.
"""

from __future__ import annotations

import dataclasses

from fastapi import Request, Response

from medledger.access.audit import audit_log, break_glass_notices
from medledger.access.contract import speaks_for
from medledger.crypto.keys import Address
from medledger.node.deps import Service
from medledger.node.errors import Forbidden
from medledger.node.fhir.audit_events import audit_events, patient_of_event
from medledger.node.fhir.bundle import PAGE_PARAM, page_offset, searchset, served
from medledger.node.fhir.content import FORMAT_PARAM
from medledger.node.fhir.tokens import Session
from medledger.node.routes.fhir_common import Reader, answer, fhir_base, fhir_router, patient_of
from medledger.records.errors import UnknownRecord
from medledger.records.fhir_search import (
    Found,
    InvalidSearch,
    SortKey,
    UnsupportedSearch,
    parse_query,
    search,
)

router = fhir_router()

_KIND = "AuditEvent"
_SKIP = frozenset({FORMAT_PARAM, PAGE_PARAM})
_PARAMETERS = frozenset(
    {"patient", "date", "subtype", "_id", "_count", "_sort", "_summary", "_elements"}
)
_OLDEST_FIRST = (SortKey("date", descending=False),)


def _trail(service: Service, session: Session, patient: Address) -> list[Found]:
    """The patient's AuditEvents, for a session that speaks for them."""
    store = service.node.store
    if not speaks_for(store, patient, session.principal):
        raise Forbidden("only the patient or a guardian sees who read their data")
    if not session.delegation.delegation.allows(_KIND):
        raise Forbidden("the token's scopes do not reach AuditEvent")
    return audit_events(audit_log(service.node, patient), break_glass_notices(store, patient),
                        patient=patient, observer=service.keys.member.address)  # fmt: skip


@router.get(f"/{_KIND}")
async def audit_search(request: Request, service: Service, session: Reader) -> Response:
    """The AuditEvents of one patient's trail: ``patient=<pseudonym>``."""
    for name in request.query_params:
        if name not in _PARAMETERS | _SKIP:
            raise UnsupportedSearch(name, "not a parameter of AuditEvent searches here")
    query = parse_query(request.query_params.multi_items(), resource_type=_KIND, skip=_SKIP)
    patients = query.patients
    if patients is None or len(patients) != 1:
        raise InvalidSearch("patient", "an AuditEvent search names one patient: patient=<id>")
    (patient,) = patients
    if not query.sort:
        query = dataclasses.replace(query, sort=_OLDEST_FIRST)
    events = search(query, _trail(service, session, patient_of(patient)))
    offset = page_offset(request.query_params.get(PAGE_PARAM))
    return answer(request, searchset(events, query=query, base=fhir_base(service), offset=offset))


@router.get(f"/{_KIND}/{{logical_id}}")
async def audit_event(
    request: Request, service: Service, session: Reader, logical_id: str
) -> Response:
    """One AuditEvent; its id names the patient whose trail holds it."""
    patient = patient_of_event(logical_id)
    found = None
    if patient is not None:
        found = next((e for e in _trail(service, session, patient)
                      if e.logical_id == logical_id), None)  # fmt: skip
    if found is None:
        raise UnknownRecord(f"no AuditEvent/{logical_id} here")
    return answer(request, served(found))
