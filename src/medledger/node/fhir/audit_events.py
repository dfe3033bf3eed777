"""A patient's audit trail as FHIR R4 AuditEvents, in the shape of IHE Basic Audit Log
Patterns (BALP).

Each read of one record version (access/audit.py :class:`Read`) is a BALP "Read": a
RESTful read (``vread`` past a record's first version), action R, recorded when its
first custodian's receipt was logged. Its agents are the reader (requestor, with the
grant as policy, none for the patient's own read, and the purpose as v3-ActReason
PurposeOfUse), for a delegated read the app (``who.display``) and the node it read
through, and every custodian that released a share; the source observer is the
custodian whose receipt came first. Its entities are the patient, the record version
and each receipt, whose details (the custodian, the log index and, once a cosigned
checkpoint covers it, the checkpoint's size and the inclusion proof) let a reader check
it against the ledger without trusting this node. A break-glass grant has no BALP
profile: it is an emergency override (DICOM Security Alert) with a subtype of
:data:`SUBTYPE_SYSTEM`, purpose ETREAT, the requester and approvers as agents and the
grant as entity.

An event's id is the patient's pseudonym (without ``0x``) and a digest of what it is
about (the read, record and version, or the grant): stable across requests and nodes,
and naming the patient, so that ``AuditEvent/{id}`` finds whose trail it is in.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from medledger.access.audit import Read, Receipt
from medledger.access.policy import PURPOSE_SYSTEM, PURPOSES
from medledger.crypto.keys import Address, to_checksum_address
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.records.fhir_search import Found, Parameter
from medledger.records.header import FIRST_VERSION

__all__ = [
    "SEARCH_PARAMETERS",
    "SUBTYPE_SYSTEM",
    "audit_events",
    "break_glass_event",
    "patient_of_event",
    "read_event",
]

#: Our own AuditEvent subtypes: ``break-glass``, an emergency grant on the patient's data.
SUBTYPE_SYSTEM = "urn:medledger:audit-event-subtype"
#: What ``GET /fhir/AuditEvent`` searches by, as the CapabilityStatement declares it.
SEARCH_PARAMETERS = (
    Parameter("_id", "token", "The logical id"),
    Parameter("patient", "reference", "The patient whose audit trail it is (required)"),
    Parameter("date", "date", "AuditEvent.recorded"),
    Parameter("subtype", "token", f"AuditEvent.subtype: read, vread, {SUBTYPE_SYSTEM}|break-glass"),
)

_PARTICIPANT = "urn:medledger:participant"
_CUSTODIAN = "urn:medledger:custodian"
_TRANSACTION = "urn:medledger:transaction"
_GRANT = "urn:medledger:grant"
_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
_SUCCESS = "0"
_EMERGENCY = "ETREAT"
_DIGEST_BYTES = 11  # with the 40 hex digits of the pseudonym and a dash: 63 of 64 characters
_EVENT_ID = re.compile(r"([0-9a-f]{40})-[0-9a-f]{22}")


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


_RECIPIENT = _coding(_PARTICIPATION, "IRCP", "information recipient")
_SOURCE_ROLE = _coding(_DCM, "110153", "Source Role ID")
_DESTINATION_ROLE = _coding(_DCM, "110152", "Destination Role ID")
_APPLICATION = _coding(_DCM, "110150", "Application")
_APPROVER = _coding(_PARTICIPATION, "AUTHEN", "authenticator")
_APPLICATION_SERVER = _coding(_SOURCE_TYPE, "4", "Application Server")


def recorded_text(ns: int) -> str:
    """A FHIR instant to the millisecond, as BALP records events."""
    seconds, rest = divmod(ns, NS_PER_S)
    when = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{when}.{rest // NS_PER_MS:03d}Z"


def _event_id(patient: Address, kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\n".join(("medledger AuditEvent", kind, *parts)).encode())
    return f"{patient[2:].lower()}-{digest.hexdigest()[: 2 * _DIGEST_BYTES]}"


def patient_of_event(logical_id: str) -> Address | None:
    """The patient whose trail an AuditEvent id names, or None if it is none of ours."""
    match = _EVENT_ID.fullmatch(logical_id)
    return None if match is None else to_checksum_address("0x" + match[1])


def _who(system: str, address: str) -> dict[str, Any]:
    return {"identifier": {"system": system, "value": address}}


def _purpose(purpose: str) -> dict[str, Any]:
    # Grants carry PurposeOfUse codes; anything else is shown as the words it is.
    if purpose in PURPOSES:
        return {"coding": [{"system": PURPOSE_SYSTEM, "code": purpose}]}
    return {"text": purpose}


def _detail(kind: str, value: str) -> dict[str, str]:
    return {"type": kind, "valueString": value}


def _receipt_entity(receipt: Receipt) -> dict[str, Any]:
    details = [_detail("custodian", receipt.custodian), _detail("index", str(receipt.index)),
               _detail("timestamp", recorded_text(receipt.timestamp_ns))]  # fmt: skip
    if receipt.checkpoint_size is None:
        description = "custodian's receipt, not yet covered by a cosigned checkpoint"
    else:
        description = "custodian's receipt, proven into a cosigned checkpoint"
        proof = base64.b64encode(b"".join(receipt.proof)).decode()
        details.append(_detail("checkpoint", str(receipt.checkpoint_size)))
        details.append({"type": "inclusion-proof", "valueBase64Binary": proof})
    return {
        "what": {"identifier": {"system": _TRANSACTION, "value": receipt.receipt}},
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "description": description,
        "detail": details,
    }  # fmt: skip


def _patient_entity(patient: Address) -> dict[str, Any]:
    return {
        "what": {"reference": f"Patient/{patient}"},
        "type": _coding(_ENTITY_TYPE, "1", "Person"),
        "role": _coding(_OBJECT_ROLE, "1", "Patient"),
    }


def read_event(read: Read, patient: Address) -> Found:
    """One read of one record version as a BALP Read AuditEvent."""
    first = min(read.receipts, key=lambda r: (r.timestamp_ns, r.index))
    interaction = "read" if read.version == FIRST_VERSION else "vread"
    reader: dict[str, Any] = {
        "type": {"coding": [_RECIPIENT]},
        "who": _who(_PARTICIPANT, read.reader),
        "requestor": True,
        "purposeOfUse": [_purpose(read.purpose)],
    }
    if read.grant is not None:  # an owner read stands on no grant
        reader["policy"] = [f"{_GRANT}:{read.grant}"]
    agents = [reader]
    if read.app is not None:
        agents.append({"type": {"coding": [_APPLICATION]}, "who": {"display": read.app},
                       "requestor": False})  # fmt: skip
    if read.via is not None:
        agents.append({"type": {"coding": [_SOURCE_ROLE]}, "who": _who(_PARTICIPANT, read.via),
                       "requestor": False})  # fmt: skip
    custodians = dict.fromkeys(r.custodian for r in read.receipts)
    agents += [{"type": {"coding": [_DESTINATION_ROLE]}, "who": _who(_CUSTODIAN, custodian),
                "requestor": False} for custodian in custodians]  # fmt: skip
    target = f"{read.resource_type}/{read.record_id}/_history/{read.version}"
    record = {
        "what": {"reference": target},
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "role": _coding(_OBJECT_ROLE, "4", "Domain Resource"),
        "detail": [_detail("read", read.read), _detail("author", read.author),
                   _detail("category", read.category)],
    }  # fmt: skip
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _coding(_EVENT_TYPE, "rest", "Restful Operation"),
        "subtype": [_coding(_INTERACTION, interaction, interaction)],
        "action": "R",
        "recorded": recorded_text(read.timestamp_ns),
        "outcome": _SUCCESS,
        "agent": agents,
        "source": {"observer": _who(_CUSTODIAN, first.custodian), "type": [_APPLICATION_SERVER]},
        "entity": [_patient_entity(patient), record, *map(_receipt_entity, read.receipts)],
    }
    if not read.complete:
        # Fewer shares than a key takes: nothing was opened by this read alone.
        event["outcomeDesc"] = (
            f"{len(custodians)} of the {read.threshold} custodians a record takes released"
        )
    logical_id = _event_id(patient, "read", read.read, read.record_id, str(read.version))
    return Found(event, logical_id, "1", read.timestamp_ns, read.category)


def break_glass_event(notice: Mapping[str, Any], patient: Address, observer: Address) -> Found:
    """An emergency grant (a notice of access/audit.py) as an AuditEvent; ``observer`` is
    the member whose node reports it from its ledger."""
    granted_ns = int(notice["granted_ns"])
    purposes = [_EMERGENCY, *([notice["purpose"]] if notice["purpose"] != _EMERGENCY else [])]
    requester = {
        "type": {"coding": [_RECIPIENT]},
        "who": _who(_PARTICIPANT, notice["requester"]),
        "requestor": True,
        "policy": [f"{_GRANT}:{notice['grant']}"],
        "purposeOfUse": [_purpose(p) for p in purposes],
    }
    approvers = [{"type": {"coding": [_APPROVER]}, "who": _who(_PARTICIPANT, approver),
                  "requestor": False} for approver in notice["approvers"]]  # fmt: skip
    grant = {
        "what": {"identifier": {"system": _GRANT, "value": notice["grant"]}},
        "type": _coding(_ENTITY_TYPE, "2", "System Object"),
        "description": "break-glass grant",
        "detail": [*(_detail("category", c) for c in notice["categories"]),
                   _detail("expires", recorded_text(int(notice["expires_ns"])))],
    }  # fmt: skip
    event = {
        "resourceType": "AuditEvent",
        "type": _coding(_DCM, "110113", "Security Alert"),
        "subtype": [_coding(SUBTYPE_SYSTEM, "break-glass", "Break-glass grant")],
        "action": "E",
        "recorded": recorded_text(granted_ns),
        "outcome": _SUCCESS,
        "agent": [requester, *approvers],
        "source": {"observer": _who(_PARTICIPANT, observer), "type": [_APPLICATION_SERVER]},
        "entity": [_patient_entity(patient), grant],
    }
    logical_id = _event_id(patient, "break-glass", notice["grant"])
    return Found(event, logical_id, "1", granted_ns, "")


def audit_events(
    reads: Sequence[Read], notices: Sequence[Mapping[str, Any]], *, patient: Address,
    observer: Address,
) -> list[Found]:  # fmt: skip
    """The patient's whole trail: every read, then every break-glass grant."""
    events = [read_event(read, patient) for read in reads]
    return events + [break_glass_event(notice, patient, observer) for notice in notices]
