"""Care relationships, and who may write a record into a patient's history.

A record is the patient's own account, written by the patient, or needs an author
in a role genesis lets write (``author_roles``: clinical staff, never a verifier)
and a care relationship the patient gave the author's institution: the patient
enrolled there (``access.enrol``, ended by ``access.unenrol``), or the author held a
grant covering the record's category.
Both are judged at the log entry of the batch the record was committed in, so a
record written while the relationship held stays valid after it ends. The label a
record carries must also be a category its resource type can be in.

Enrolment is the patient's own act (or a guardian's), like registering at a
clinic: a dishonest institution cannot give itself a patient, and a dishonest
staff member of a real care provider can only write where the provider may.
Custodians check this before they release a key (access/custodian.py), ``verify``
flags records that fail it, and a node refuses them at upload.
"""

from __future__ import annotations

from typing import Any

from medledger.access.errors import (
    AlreadyEnrolled,
    NoCareRelationship,
    NotAnAuthor,
    WrongCategory,
)
from medledger.access.settings import access_settings
from medledger.access.state import (
    CARE_NS,
    care_key,
    grant_of,
    named_patient,
    require_patient,
    require_patient_or_guardian,
)
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.identity import participant_at
from medledger.ledger.contracts.membership import require_member
from medledger.records.categories import categories_for
from medledger.records.fhir import is_resource_type

ENROL = "access.enrol"
UNENROL = "access.unenrol"
#: The grants each holder got of each patient: ``patient/holder`` -> grant ids.
HELD_NS = "access.held"
MAX_HELD = 256


def held_key(patient: Address, holder: Address) -> str:
    return f"{patient}/{holder}"


def _spans(view: StateView, patient: Address, institution: Address) -> list[list[Any]]:
    return [list(span) for span in view.get(CARE_NS, care_key(patient, institution)) or []]


def enrolled_at(view: StateView, patient: Address, institution: Address, index: int) -> bool:
    return any(
        since <= index and (until is None or index < until)
        for since, until in _spans(view, patient, institution)
    )


def enrol(ctx: TxContext, view: StateView) -> list[Write]:
    patient = named_patient(ctx.payload, ctx.sender)
    require_patient(view, patient)
    require_patient_or_guardian(view, patient, ctx.sender)
    institution = p.address(ctx.payload, "institution")
    require_member(view, institution)
    spans = _spans(view, patient, institution)
    if spans and spans[-1][1] is None:
        raise AlreadyEnrolled(f"{patient} is already enrolled at {institution}")
    return [Write(CARE_NS, care_key(patient, institution), [*spans, [ctx.index, None]])]


def unenrol(ctx: TxContext, view: StateView) -> list[Write]:
    patient = named_patient(ctx.payload, ctx.sender)
    require_patient_or_guardian(view, patient, ctx.sender)
    institution = p.address(ctx.payload, "institution")
    spans = _spans(view, patient, institution)
    if not spans or spans[-1][1] is not None:
        raise AlreadyEnrolled(f"{patient} is not enrolled at {institution}")
    spans[-1][1] = ctx.index
    return [Write(CARE_NS, care_key(patient, institution), spans)]


def check_author(
    view: StateView, *, author: Address, patient: Address, category: str, resource_type: str,
    index: int, timestamp_ns: int,
) -> None:  # fmt: skip
    """Raise unless ``author`` could write this record for ``patient`` when the batch
    holding it was committed at log entry ``index`` (orderer time ``timestamp_ns``)."""
    # Not a rule of the ledger (no handler runs it): the node's writer and each custodian
    # judge with their own FHIR library, so a type it does not know is refused here only.
    if not is_resource_type(resource_type):
        raise WrongCategory(f"{resource_type!r} is not a FHIR resource type")
    if category not in categories_for(resource_type):
        raise WrongCategory(f"a {resource_type} is never in category {category}")
    if author == patient:
        # The patient's own account (a home reading, a document they keep): its author
        # says so to every reader, and no issuer takes it as an institution's word.
        return
    held = participant_at(view, author, index)
    if held is None:
        raise NotAnAuthor(f"{author} held no role at a member institution at entry {index}")
    role, institution = held
    if role not in access_settings(view).author_roles:
        raise NotAnAuthor(f"{author} was a {role}, a role that does not write records")
    if enrolled_at(view, patient, institution, index):
        return
    for grant_id in view.get(HELD_NS, held_key(patient, author)) or []:
        grant = grant_of(view, grant_id)
        # Writing under a grant needs its category; records a grant names narrow reads.
        if grant is None or category not in grant.categories:
            continue
        if grant.held_at(index, timestamp_ns):
            return
    raise NoCareRelationship(
        f"{author}'s institution had no care relationship with {patient} at entry {index}"
    )


HANDLERS: dict[str, Handler] = {ENROL: enrol, UNENROL: unenrol}
