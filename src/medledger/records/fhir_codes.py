"""R4's required code bindings: the codes an element bound to a *required* value set
may take. The fhir.resources models do not enforce them, and a wrong status changes
what a record means."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from medledger.records.errors import InvalidRecord

__all__ = ["REQUIRED_CODES", "CodeBinding", "check_code", "check_codes"]


class CodeBinding(NamedTuple):
    """The codes an element allows; with ``system`` it is a CodeableConcept whose
    codings from that (HL7) system must use them, other systems being free."""

    codes: tuple[str, ...]
    system: str | None = None


def _codes(words: str, system: str | None = None) -> CodeBinding:
    return CodeBinding(tuple(words.split()), system)


_TERM = "http://terminology.hl7.org/CodeSystem/"
_GENDER = _codes("male female other unknown")
_FM_STATUS = _codes("active cancelled draft entered-in-error")
# R4 (4.0.1) elements bound to a "required" value set, one entry each. Absent elements
# pass: the models already enforce cardinality (1..1 elements are required there).
REQUIRED_CODES: dict[tuple[str, str], CodeBinding] = {
    ("Observation", "status"): _codes(
        "registered preliminary final amended corrected cancelled entered-in-error unknown"),
    ("Patient", "gender"): _GENDER,
    ("Practitioner", "gender"): _GENDER,
    ("RelatedPerson", "gender"): _GENDER,
    ("Condition", "clinicalStatus"): _codes(
        "active recurrence relapse inactive remission resolved", _TERM + "condition-clinical"),
    ("Condition", "verificationStatus"): _codes(
        "unconfirmed provisional differential confirmed refuted entered-in-error",
        _TERM + "condition-ver-status"),
    ("Immunization", "status"): _codes("completed entered-in-error not-done"),
    ("AllergyIntolerance", "clinicalStatus"): _codes(
        "active inactive resolved", _TERM + "allergyintolerance-clinical"),
    ("AllergyIntolerance", "verificationStatus"): _codes(
        "unconfirmed confirmed refuted entered-in-error",
        _TERM + "allergyintolerance-verification"),
    ("AllergyIntolerance", "category"): _codes("food medication environment biologic"),
    ("AllergyIntolerance", "criticality"): _codes("low high unable-to-assess"),
    ("DiagnosticReport", "status"): _codes("registered partial preliminary final amended "
                                           "corrected appended cancelled entered-in-error unknown"),
    ("MedicationRequest", "status"): _codes(
        "active on-hold cancelled completed entered-in-error stopped draft unknown"),
    ("MedicationRequest", "intent"): _codes(
        "proposal plan order original-order reflex-order filler-order instance-order option"),
    ("MedicationStatement", "status"): _codes(
        "active completed entered-in-error intended stopped on-hold unknown not-taken"),
    ("Procedure", "status"): _codes(
        "preparation in-progress not-done on-hold stopped completed entered-in-error unknown"),
    ("Encounter", "status"): _codes("planned arrived triaged in-progress onleave finished "
                                    "cancelled entered-in-error unknown"),
    ("Bundle", "type"): _codes("document message transaction transaction-response batch "
                               "batch-response history searchset collection"),
    ("Claim", "status"): _FM_STATUS,
    ("Claim", "use"): _codes("claim preauthorization predetermination"),
    ("Coverage", "status"): _FM_STATUS,
    ("Appointment", "status"): _codes("proposed pending booked arrived fulfilled cancelled "
                                      "noshow entered-in-error checked-in waitlist"),
    ("CarePlan", "status"): _codes(
        "draft active on-hold revoked completed entered-in-error unknown"),
    ("CarePlan", "intent"): _codes("proposal plan order option"),
    ("Goal", "lifecycleStatus"): _codes("proposed planned accepted active on-hold completed "
                                        "cancelled entered-in-error rejected"),
    ("AdverseEvent", "actuality"): _codes("actual potential"),
    ("QuestionnaireResponse", "status"): _codes(
        "in-progress completed amended entered-in-error stopped"),
    ("DocumentReference", "status"): _codes("current superseded entered-in-error"),
}  # fmt: skip
_BINDINGS: dict[str, list[tuple[str, CodeBinding]]] = {}
for (_type, _field), _binding in REQUIRED_CODES.items():
    _BINDINGS.setdefault(_type, []).append((_field, _binding))


def check_codes(
    body: Mapping[str, Any], resource_type: str, prefix: str, source: str, label: str
) -> None:
    """Apply :data:`REQUIRED_CODES` to a resource whose structure is checked (so shapes
    are right), then to the resources nested in it: ``contained`` and Bundle entries."""
    for field, binding in _BINDINGS.get(resource_type, ()):
        value = body.get(field)
        if isinstance(value, list):
            for i, item in enumerate(value):
                check_code(item, binding, f"{prefix}{field}[{i}]", source, label)
        elif value is not None:
            check_code(value, binding, prefix + field, source, label)
    nested = [(f"contained[{i}]", r) for i, r in enumerate(body.get("contained") or ())]
    if resource_type == "Bundle":
        entries = enumerate(body.get("entry") or ())
        nested += [(f"entry[{i}].resource", e["resource"]) for i, e in entries if e.get("resource")]
    for path, resource in nested:
        check_codes(resource, resource["resourceType"], f"{prefix}{path}.", source, label)


def check_code(value: Any, binding: CodeBinding, path: str, source: str, label: str) -> None:
    if binding.system is None:
        if value not in binding.codes:
            raise InvalidRecord(source, label, path, _not_one_of(binding))
        return
    for i, coding in enumerate(value.get("coding") or ()):
        if coding.get("system") == binding.system and coding.get("code") not in binding.codes:
            raise InvalidRecord(source, label, f"{path}.coding[{i}].code", _not_one_of(binding))


def _not_one_of(binding: CodeBinding) -> str:
    return "not one of " + ", ".join(binding.codes)
