"""FHIR R4 validation: the HL7 examples, bundles, required codes, categories, and errors
that never leak a value from the record."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from medledger.records import categories
from medledger.records.categories import CATEGORIES, category_of
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import Resource, validate_resource
from medledger.records.fhir_codes import REQUIRED_CODES, CodeBinding
from medledger.records.fhir_sources import expand, load_sources
from tests.data import FHIR_EXAMPLES as EXAMPLES

INVALID_EXAMPLES = {
    # STU3 ProcedureRequest resources inside ``contained``: not an R4 resource type.
    "diagnosticReport-example1.json": ("DiagnosticReport/f001", "contained[0].resourceType"),
    "diagnosticReport-example2.json": ("DiagnosticReport/micro", "contained[25].resourceType"),
}
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.json"))
VALID_EXAMPLES = [name for name in EXAMPLE_FILES if name not in INVALID_EXAMPLES]
# 62 single resources + the entries of bundle-example1 (transaction) and -2 (collection).
EXPECTED_GOOD_RESOURCES = 70
SECRET = "SECRET-VALUE-123"

REF = {"reference": "Patient/p1"}
ORG = {"reference": "Organization/o1"}
TEXT = {"text": "something"}
HL7 = "http://terminology.hl7.org/CodeSystem/"


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


# A minimal valid R4 resource per type of REQUIRED_CODES, with every checked element set.
MINIMAL: dict[str, dict[str, Any]] = {
    "Observation": {"status": "final", "code": TEXT},
    "Patient": {"gender": "female"},
    "Practitioner": {"gender": "male"},
    "RelatedPerson": {"patient": REF, "gender": "other"},
    "Condition": {
        "subject": REF,
        "clinicalStatus": concept(HL7 + "condition-clinical", "active"),
        "verificationStatus": concept(HL7 + "condition-ver-status", "confirmed"),
    },
    "Immunization": {
        "status": "completed",
        "vaccineCode": TEXT,
        "patient": REF,
        "occurrenceDateTime": "2021-03-04",
    },
    "AllergyIntolerance": {
        "patient": REF,
        "clinicalStatus": concept(HL7 + "allergyintolerance-clinical", "active"),
        "verificationStatus": concept(HL7 + "allergyintolerance-verification", "confirmed"),
        "category": ["food", "medication"],
        "criticality": "high",
    },
    "DiagnosticReport": {"status": "final", "code": TEXT},
    "MedicationRequest": {
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": TEXT,
        "subject": REF,
    },
    "MedicationStatement": {"status": "active", "medicationCodeableConcept": TEXT, "subject": REF},
    "Procedure": {"status": "completed", "subject": REF},
    "Encounter": {"status": "finished", "class": {"system": HL7 + "v3-ActCode", "code": "AMB"}},
    "Bundle": {"type": "collection"},
    "Claim": {
        "status": "active",
        "type": TEXT,
        "use": "claim",
        "patient": REF,
        "created": "2021-03-04",
        "provider": ORG,
        "priority": TEXT,
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
    },
    "Coverage": {"status": "active", "beneficiary": REF, "payor": [ORG]},
    "Appointment": {"status": "booked", "participant": [{"status": "accepted"}]},
    "CarePlan": {"status": "active", "intent": "plan", "subject": REF},
    "Goal": {"lifecycleStatus": "active", "description": TEXT, "subject": REF},
    "AdverseEvent": {"actuality": "actual", "subject": REF},
    "QuestionnaireResponse": {"status": "completed"},
    "DocumentReference": {
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain"}}],
    },
}
# R4 elements with cardinality 1..1 among REQUIRED_CODES: the models must reject them missing.
MANDATORY = sorted(
    set(REQUIRED_CODES)
    - {
        ("Patient", "gender"),
        ("Practitioner", "gender"),
        ("RelatedPerson", "gender"),
        ("Condition", "clinicalStatus"),
        ("Condition", "verificationStatus"),
        ("AllergyIntolerance", "clinicalStatus"),
        ("AllergyIntolerance", "verificationStatus"),
        ("AllergyIntolerance", "category"),
        ("AllergyIntolerance", "criticality"),
    }
)
TABLE = sorted(REQUIRED_CODES)


def minimal(resource_type: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": "x1", **copy.deepcopy(MINIMAL[resource_type])}


def rejected(obj: object, source: str = "test.json") -> InvalidRecord:
    with pytest.raises(InvalidRecord) as caught:
        validate_resource(obj, source)
    return caught.value


def observation(**fields: Any) -> dict[str, Any]:
    return {**minimal("Observation"), **fields}


# --- the HL7 R4 examples -------------------------------------------------------------


def test_examples_are_present() -> None:
    assert len(EXAMPLE_FILES) == 66, f"expected the 66 HL7 R4 examples in {EXAMPLES}"
    assert set(INVALID_EXAMPLES) <= set(EXAMPLE_FILES)


@pytest.mark.parametrize("name", VALID_EXAMPLES)
def test_valid_example_validates(name: str) -> None:
    items = list(load_sources([EXAMPLES / name]))
    assert items
    for item in items:
        assert not isinstance(item, InvalidRecord), str(item)
        source, obj = item
        before = copy.deepcopy(obj)
        resource = validate_resource(obj, source)
        assert resource.source.startswith(name)
        assert resource.body is obj
        assert obj == before, "validation must not modify the record"
        assert resource.category in CATEGORIES


@pytest.mark.parametrize("name", sorted(INVALID_EXAMPLES))
def test_invalid_example_is_rejected_naming_file_and_field(name: str) -> None:
    [item] = load_sources([EXAMPLES / name])
    assert isinstance(item, tuple)
    error = rejected(item[1], item[0])
    resource, field = INVALID_EXAMPLES[name]
    assert (error.source, error.resource, error.field) == (name, resource, field)
    assert str(error) == f"{name}: {resource}.{field}: unknown resource type"
    # The named element really is the STU3 type.
    index = int(field.removeprefix("contained[").split("]")[0])
    assert item[1]["contained"][index]["resourceType"] == "ProcedureRequest"  # type: ignore[index]


def test_whole_folder_keeps_going_past_rejections() -> None:
    good: list[Resource] = []
    bad: list[InvalidRecord] = []
    for item in load_sources([EXAMPLES]):
        assert not isinstance(item, InvalidRecord), str(item)
        try:
            good.append(validate_resource(item[1], item[0]))
        except InvalidRecord as error:
            bad.append(error)
    assert len(good) == EXPECTED_GOOD_RESOURCES
    assert sorted(error.source for error in bad) == sorted(INVALID_EXAMPLES)
    assert good[-1].source == "researchStudy-example1.json"


# --- bundles -------------------------------------------------------------------------


def test_bundle_entries_are_named_by_index() -> None:
    bundle = json.loads((EXAMPLES / "bundle-example2.json").read_text())
    items = expand(bundle, "bundle-example2.json")
    assert [source for source, _ in items] == [
        f"bundle-example2.json#entry[{i}]" for i in range(len(bundle["entry"]))
    ]
    assert [obj for _, obj in items] == [entry["resource"] for entry in bundle["entry"]]


def test_nested_bundles_are_expanded() -> None:
    inner = {**minimal("Bundle"), "entry": [{"resource": minimal("Patient")}]}
    outer = {
        **minimal("Bundle"),
        "entry": [{"resource": minimal("Observation")}, {"resource": inner}],
    }
    assert [s for s, _ in expand(outer, "b.json")] == [
        "b.json#entry[0]",
        "b.json#entry[1]#entry[0]",
    ]


def test_other_resources_are_not_expanded() -> None:
    patient = minimal("Patient")
    assert expand(patient, "p.json") == [("p.json", patient)]
    assert expand([1], "p.json") == [("p.json", [1])]


def test_bundle_entry_without_resource_is_rejected() -> None:
    bundle = {**minimal("Bundle"), "entry": [{"resource": minimal("Patient")}, {"fullUrl": "x"}]}
    with pytest.raises(InvalidRecord) as caught:
        expand(bundle, "b.json")
    assert (caught.value.source, caught.value.resource) == ("b.json", "Bundle/x1")
    assert caught.value.field == "entry[1].resource"


@pytest.mark.parametrize("bundle_type", [SECRET, None, 7])
def test_bad_bundle_type_is_rejected(bundle_type: object) -> None:
    bundle = {**minimal("Bundle"), "type": bundle_type}
    with pytest.raises(InvalidRecord) as caught:
        expand(bundle, "b.json")
    assert caught.value.field == "type"
    assert SECRET not in str(caught.value)


def test_bad_bundle_shell_is_one_rejection_and_the_batch_goes_on(tmp_path: Path) -> None:
    bad = {**minimal("Bundle"), "entry": [{"request": {"method": "DELETE", "url": "Patient/1"}}]}
    (tmp_path / "a.json").write_text(json.dumps(bad))
    (tmp_path / "b.json").write_text(json.dumps(minimal("Patient")))
    first, second = load_sources([tmp_path])
    assert isinstance(first, InvalidRecord)
    assert (first.source, first.field) == ("a.json", "entry[0].resource")
    assert second == ("b.json", minimal("Patient"))


def test_codes_are_checked_inside_bundles_and_contained_resources() -> None:
    bad_patient = {**minimal("Patient"), "gender": SECRET}
    bundle = {
        **minimal("Bundle"),
        "entry": [{"resource": minimal("Observation")}, {"resource": bad_patient}],
    }
    assert rejected(bundle).field == "entry[1].resource.gender"
    assert rejected(observation(contained=[bad_patient])).field == "contained[0].gender"


@pytest.mark.parametrize(
    ("contained", "problem"),
    [({"id": "a"}, "required"), ({"resourceType": "DomainResource"}, "unknown resource type")],
)
def test_contained_resource_needs_a_concrete_type(contained: dict[str, Any], problem: str) -> None:
    error = rejected(observation(contained=[contained]))
    assert (error.field, error.problem) == ("contained[0].resourceType", problem)


# --- required codes ------------------------------------------------------------------


def test_minimal_resources_cover_the_whole_table() -> None:
    for resource_type, field in REQUIRED_CODES:
        assert field in MINIMAL[resource_type], (resource_type, field)


@pytest.mark.parametrize("resource_type", sorted(MINIMAL))
def test_minimal_resource_validates(resource_type: str) -> None:
    resource = validate_resource(minimal(resource_type), "m.json")
    assert (resource.resource_type, resource.fhir_id) == (resource_type, "x1")


def shaped(good: object, binding: CodeBinding, code: str) -> tuple[object, str]:
    """``code`` in the shape of ``good``, and the path suffix an error names for it."""
    if isinstance(good, list):
        return [code], "[0]"
    if isinstance(good, dict):
        assert binding.system is not None
        return concept(binding.system, code), ".coding[0].code"
    return code, ""


@pytest.mark.parametrize(("resource_type", "field"), TABLE)
def test_bad_required_code_is_rejected(resource_type: str, field: str) -> None:
    binding = REQUIRED_CODES[resource_type, field]
    obj = minimal(resource_type)
    obj[field], suffix = shaped(obj[field], binding, SECRET)
    error = rejected(obj, "m.json")
    assert (error.source, error.resource) == ("m.json", f"{resource_type}/x1")
    assert error.field == field + suffix
    assert error.problem == "not one of " + ", ".join(binding.codes)
    assert SECRET not in str(error)


@pytest.mark.parametrize(("resource_type", "field"), TABLE)
def test_every_allowed_code_passes(resource_type: str, field: str) -> None:
    binding = REQUIRED_CODES[resource_type, field]
    for code in binding.codes:
        obj = minimal(resource_type)
        obj[field], _ = shaped(obj[field], binding, code)
        validate_resource(obj, "m.json")


@pytest.mark.parametrize(("resource_type", "field"), MANDATORY)
def test_models_enforce_mandatory_elements(resource_type: str, field: str) -> None:
    obj = minimal(resource_type)
    del obj[field]
    assert rejected(obj).field == field


def test_codings_of_other_systems_are_free() -> None:
    obj = minimal("Condition")
    obj["clinicalStatus"] = concept("http://snomed.info/sct", "55561003")
    assert validate_resource(obj, "c.json").resource_type == "Condition"


def test_primitive_extension_may_stand_in_for_a_code() -> None:
    obj = observation(_status={"extension": [{"url": "http://x", "valueString": "y"}]})
    del obj["status"]
    assert validate_resource(obj, "o.json").resource_type == "Observation"


# --- cardinality gaps the models leave ----------------------------------------------

CLAIM_WITHOUT_INSURANCE = {k: v for k, v in MINIMAL["Claim"].items() if k != "insurance"}


@pytest.mark.parametrize(
    ("obj", "field", "problem"),
    [
        (observation(code=None), "code", "required"),
        (observation(code={}), "code", "must not be empty"),
        (
            observation(component=[{"code": None, "valueString": "x"}]),
            "component[0].code",
            "required",
        ),
        (
            observation(component=[{"code": TEXT, "valueQuantity": {}}]),
            "component[0].valueQuantity",
            "must not be empty",
        ),
        (observation(_status={}), "_status", ""),
        ({**minimal("Claim"), "insurance": []}, "insurance", "required"),
        ({**minimal("DocumentReference"), "content": []}, "content", "required"),
        ({**minimal("Patient"), "name": [{}]}, "name[0]", "must not be empty"),
        (
            observation(contained=[{"resourceType": "Patient", "link": [{"type": "seealso"}]}]),
            "contained[0].link[0].other",
            "required",
        ),
    ],
)
def test_null_or_empty_required_elements_are_rejected(
    obj: dict[str, Any], field: str, problem: str
) -> None:
    error = rejected(obj)
    assert error.field == field
    assert problem in error.problem


@pytest.mark.parametrize(
    ("obj", "field", "problem"),
    [
        (observation(subject=None), "subject", "must not be null"),
        (observation(code='{"text": "x"}'), "code", "is not a JSON object"),
        (observation(category=['{"text": "x"}']), "category[0]", "is not a JSON object"),
        (observation(resource_type="Observation"), "resource_type", "unknown element"),
        (
            observation(code={"text": "x", "fhir_comments": ["x"]}),
            "code.fhir_comments",
            "unknown element",
        ),
        (
            observation(status__ext={"extension": [{"url": "http://x", "valueString": "y"}]}),
            "status__ext",
            "unknown element",
        ),
        (
            {"resourceType": "Encounter", "status": "finished", "class_fhir": {"code": "AMB"}},
            "class_fhir",
            "unknown element",
        ),
    ],
)
def test_what_the_models_parse_leniently_is_rejected(
    obj: dict[str, Any], field: str, problem: str
) -> None:
    # The body is stored exactly as given, so it must be R4 JSON, not just parseable.
    error = rejected(obj)
    assert (error.field, error.problem) == (field, problem)


def test_a_crash_inside_the_models_is_a_rejection() -> None:
    # fhir_core raises AttributeError for a url that is not a string.
    content = [{"attachment": {"contentType": "text/plain", "url": True}}]
    error = rejected({**minimal("DocumentReference"), "content": content}, "d.json")
    assert (error.source, error.field, error.problem) == ("d.json", "", "could not be validated")


def test_empty_optional_array_is_tolerated() -> None:
    # medicationKnowledge-example2.json has "meta": {"security": []}: harmless, so accepted.
    assert validate_resource(observation(meta={"security": []}), "o.json").fhir_id == "x1"


# --- errors name where, never what ---------------------------------------------------


def test_patient_gender_value_is_not_in_the_error() -> None:
    error = rejected({**minimal("Patient"), "gender": SECRET}, "p.json")
    assert (error.resource, error.field) == ("Patient/x1", "gender")
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    ("fields", "field", "kind"),
    [
        ({"valueQuantity": {"value": SECRET}}, "valueQuantity.value", "(value_error)"),
        ({"effectiveDateTime": SECRET}, "effectiveDateTime", "(value_error)"),
        ({"code": {"coding": [{"system": 5}]}}, "code.coding[0].system", "(string_type)"),
        ({"issued": SECRET}, "issued", "(value_error)"),
        ({"subject": SECRET}, "subject", ""),
        ({"valueQuantity": {"value": "e"}}, "valueQuantity.value", "invalid value (value_error)"),
    ],
)
def test_pydantic_errors_become_dotted_paths_without_values(
    fields: dict[str, Any], field: str, kind: str
) -> None:
    error = rejected(observation(**fields), "o.json")
    assert (error.source, error.resource, error.field) == ("o.json", "Observation/x1", field)
    assert kind in error.problem
    assert SECRET not in str(error)
    assert "input_value" not in str(error)


def test_unknown_element_names_are_shown_only_when_they_look_like_names() -> None:
    assert rejected(observation(valueQuantiy={})).field == "valueQuantiy"
    error = rejected(observation(**{SECRET: 1}))
    assert (error.field, SECRET in str(error)) == ("<invalid name>", False)


def test_invalid_id_is_not_named() -> None:
    # A valid id is named (ids are not health data); an invalid one may be anything.
    error = rejected(observation(id=SECRET + " ?"))
    assert (error.resource, error.field) == ("Observation", "id")
    assert SECRET not in str(error)


def test_unknown_nested_type_is_not_named() -> None:
    error = rejected(observation(contained=[{"resourceType": SECRET}]))
    assert (error.field, error.problem) == ("contained[0].resourceType", "unknown resource type")
    assert SECRET not in str(error)


@pytest.mark.parametrize("obj", [[1, 2], "Patient", None, 3])
def test_non_object_is_rejected(obj: object) -> None:
    error = rejected(obj, "n.json")
    assert (error.source, error.resource, error.field) == ("n.json", "Resource", "")
    assert str(error) == "n.json: Resource: is not a JSON object"


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"id": "a"}, "required"),
        ({"resourceType": SECRET}, "unknown resource type"),
        ({"resourceType": 5}, "unknown resource type"),
        ({"resourceType": "Quantity", "value": 1}, "unknown resource type"),
        ({"resourceType": "Resource"}, "unknown resource type"),
        ({"resourceType": "DomainResource"}, "unknown resource type"),
    ],
)
def test_missing_or_unknown_resource_type(obj: dict[str, Any], problem: str) -> None:
    error = rejected(obj, "r.json")
    assert (error.source, error.field, error.problem) == ("r.json", "resourceType", problem)
    assert SECRET not in str(error)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"resourceType": "Patient", ', "not valid JSON (line 1, column 29)"),
        (b'{"resourceType": "Patient", "x": NaN}', "not valid JSON"),
        (b"\xff\xfe\xfd", "not valid JSON"),
    ],
)
def test_non_json_file_is_rejected(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    [error] = load_sources([path])
    assert isinstance(error, InvalidRecord)
    assert (error.source, error.resource, error.problem) == ("broken.json", "file", problem)


def test_unreadable_path_is_rejected_and_the_batch_goes_on(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(minimal("Patient")))
    missing, after = load_sources([tmp_path / "missing.json", good])
    assert isinstance(missing, InvalidRecord)
    assert (missing.source, missing.problem) == (
        "missing.json",
        "not readable (No such file or directory)",
    )
    assert after == ("good.json", minimal("Patient"))


def test_folder_sources_are_relative_and_sorted(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text(json.dumps(minimal("Patient")))
    (tmp_path / "b.json").write_text(json.dumps(minimal("Observation")))
    (tmp_path / "notes.txt").write_text("ignored")
    assert [item[0] for item in load_sources([tmp_path]) if isinstance(item, tuple)] == [
        "b.json",
        "sub/a.json",
    ]


# --- categories ----------------------------------------------------------------------

V2_0074 = HL7 + "v2-0074"
LOINC = "http://loinc.org"


def category(*codes: str) -> list[dict[str, Any]]:
    return [concept(HL7 + "observation-category", code) for code in codes]


def sections(*codes: str, system: str = V2_0074) -> list[dict[str, Any]]:
    return [concept(system, code) for code in codes]


def loinc(code: str, system: str = LOINC) -> dict[str, Any]:
    return concept(system, code)


SPECIMEN = {"reference": "Specimen/s1"}


@pytest.mark.parametrize(
    ("resource_type", "body", "expected"),
    [
        ("Observation", {"category": category("laboratory")}, categories.LABS),
        ("Observation", {"category": category("vital-signs")}, categories.VITAL_SIGNS),
        ("Observation", {"category": category("imaging")}, categories.IMAGING),
        ("Observation", {}, categories.CLINICAL),
        ("Observation", {"category": category("survey")}, categories.CLINICAL),
        ("Observation", {"category": category("mental-health")}, categories.MENTAL_HEALTH),
        (
            "Observation",
            {"category": category("laboratory", "psychiatry")},
            categories.MENTAL_HEALTH,
        ),
        ("Observation", {"category": "laboratory"}, categories.CLINICAL),
        # The words of observation-category count under any system, or none.
        ("Observation", {"category": [{"coding": [{"code": "laboratory"}]}]}, categories.LABS),
        # A lab test named by its LOINC code, with no category: HbA1c, glucose, a CBC panel.
        ("Observation", {"code": loinc("4548-4")}, categories.LABS),
        ("Observation", {"code": loinc("2339-0")}, categories.LABS),
        ("Observation", {"code": loinc("58410-2")}, categories.LABS),
        ("Observation", {"specimen": SPECIMEN}, categories.LABS),
        # The author's own category comes before what the code or a specimen suggests, and
        # mental health before everything.
        ("Observation", {"category": category("vital-signs"), "code": loinc("2339-0")},
         categories.VITAL_SIGNS),
        ("Observation", {"category": category("psychiatry"), "code": loinc("4548-4"),
                         "specimen": SPECIMEN}, categories.MENTAL_HEALTH),
        # Not a lab test: heart rate and body weight in LOINC; a lab code of another system;
        # a specimen that names nothing.
        ("Observation", {"code": loinc("8867-4")}, categories.CLINICAL),
        ("Observation", {"code": loinc("29463-7"), "category": category("vital-signs")},
         categories.VITAL_SIGNS),
        ("Observation", {"code": loinc("4548-4", "http://example.org/codes")},
         categories.CLINICAL),
        ("Observation", {"code": {"coding": [{"code": "4548-4"}]}}, categories.CLINICAL),
        ("Observation", {"code": {"text": "4548-4"}}, categories.CLINICAL),
        ("Observation", {"specimen": "Specimen/s1"}, categories.CLINICAL),
        ("Observation", {"specimen": None}, categories.CLINICAL),
        ("DiagnosticReport", {"category": sections("LAB")}, categories.LABS),
        ("DiagnosticReport", {"category": sections("RAD")}, categories.IMAGING),
        # Laboratory sections of table 0074 (HM: the HL7 CBC example's), under its R4 and
        # its STU3 URL and its OID.
        *[("DiagnosticReport", {"category": sections(code)}, categories.LABS)
          for code in ("HM", "CH", "MB", "BG", "BLB", "CP", "GE", "IMM", "MCB", "MYC", "OSL",
                       "SP", "SR", "TX", "VR", "CG", "PAR", "PAT", "URN")],
        ("DiagnosticReport", {"category": sections("HM", system="http://hl7.org/fhir/v2/0074")},
         categories.LABS),
        ("DiagnosticReport",
         {"category": sections("MB", system="urn:oid:2.16.840.1.113883.18.29")}, categories.LABS),
        *[("DiagnosticReport", {"category": sections(code)}, categories.IMAGING)
          for code in ("CT", "CUS", "NMR", "NMS", "OUS", "RX", "VUS", "XRC", "RUS", "IMG")],
        # The rest of the table is no lab and no imaging: ECG, audiology, pharmacy, other.
        *[("DiagnosticReport", {"category": sections(code)}, categories.CLINICAL)
          for code in ("EC", "AU", "PHR", "OTH", "RT", "CTH")],
        # A table 0074 code means nothing under another system, or none: RX is a
        # prescription elsewhere, CT a clinic.
        ("DiagnosticReport", {"category": sections("HM", system="http://example.org/sections")},
         categories.CLINICAL),
        ("DiagnosticReport", {"category": sections("RX", system=LOINC)}, categories.CLINICAL),
        ("DiagnosticReport", {"category": [{"coding": [{"code": "CT"}]}]}, categories.CLINICAL),
        ("DiagnosticReport", {"category": sections("hm")}, categories.CLINICAL),
        # A lone CodeableConcept where R4 has a list (STU3 wrote it so) counts alike.
        ("DiagnosticReport", {"category": concept(V2_0074, "HM")}, categories.LABS),
        ("DiagnosticReport", {"category": [concept(V2_0074, "EC"), concept(V2_0074, "HM")]},
         categories.LABS),
        ("DiagnosticReport", {"category": sections("RAD", "LAB")}, categories.LABS),
        ("DiagnosticReport", {"category": [concept(LOINC, "LP7839-6")]}, categories.LABS),
        ("DiagnosticReport", {"category": [concept(LOINC, "LP29684-5")]}, categories.IMAGING),
        ("DiagnosticReport", {"category": [concept(LOINC, "LP29708-2")]}, categories.CLINICAL),
        ("DiagnosticReport", {"code": loinc("58410-2")}, categories.LABS),
        ("DiagnosticReport", {"specimen": [SPECIMEN]}, categories.LABS),
        ("DiagnosticReport", {"category": sections("RAD"), "specimen": [SPECIMEN]},
         categories.IMAGING),
        ("Condition", {}, categories.CONDITIONS),
        ("Condition", {"category": category("behavioral-health")}, categories.MENTAL_HEALTH),
        ("Condition", {"code": loinc("4548-4"), "specimen": SPECIMEN}, categories.CONDITIONS),
        ("Specimen", {}, categories.LABS),
        ("ImagingStudy", {}, categories.IMAGING),
        ("MedicationRequest", {}, categories.MEDICATIONS),
        ("MedicationKnowledge", {}, categories.MEDICATIONS),
        ("Immunization", {}, categories.IMMUNIZATIONS),
        ("ImmunizationRecommendation", {}, categories.IMMUNIZATIONS),
        ("AllergyIntolerance", {}, categories.ALLERGIES),
        ("Procedure", {}, categories.PROCEDURES),
        ("Encounter", {}, categories.ENCOUNTERS),
        ("EpisodeOfCare", {}, categories.ENCOUNTERS),
        ("CareTeam", {}, categories.CARE_PLANS),
        ("QuestionnaireResponse", {}, categories.DOCUMENTS),
        ("List", {}, categories.DOCUMENTS),
        ("ExplanationOfBenefit", {}, categories.FINANCIAL),
        ("Invoice", {}, categories.FINANCIAL),
        ("Patient", {}, categories.ADMINISTRATIVE),
        ("Person", {}, categories.ADMINISTRATIVE),
        ("ResearchStudy", {}, categories.ADMINISTRATIVE),
        ("AdverseEvent", {}, categories.CLINICAL),
        ("Bundle", {}, categories.CLINICAL),
    ],
)  # fmt: skip
def test_category_of(resource_type: str, body: dict[str, Any], expected: str) -> None:
    assert category_of(resource_type, body) == expected
    assert expected in CATEGORIES


# The HL7 examples that are lab results: the glucose Observation (LOINC 15074-8, no
# category), the CBC report (table 0074 HM) and the MRSA culture report (MB). Both
# reports are STU3 (a lone category; the v2 system's old URL), refused by validation,
# but a browser labels before anything validates them.
LAB_EXAMPLES = {
    "observation-example2.json", "diagnosticReport-example1.json",
    "diagnosticReport-example2.json",
}  # fmt: skip


def test_the_hl7_lab_results_are_labs_and_nothing_else_is() -> None:
    labelled = {}
    for name in EXAMPLE_FILES:
        for source, obj in expand(json.loads((EXAMPLES / name).read_text()), name):
            assert isinstance(obj, dict)
            labelled[source] = category_of(obj["resourceType"], obj)
    assert {source for source, c in labelled.items() if c == categories.LABS} == LAB_EXAMPLES
    assert labelled["observation-example1.json"] == categories.VITAL_SIGNS  # body weight


def _applying(rule: categories.Refinement) -> list[dict[str, Any]]:
    """Bodies that hold only what ``rule`` looks for: its codes under each of its systems
    (under none where it takes any), or a reference where it asks for one."""
    if rule.codes is None:
        return [{rule.element: {"reference": "x"}}]
    systems: list[dict[str, str]] = [{}] if rule.systems is None else [
        {"system": system} for system in sorted(rule.systems)
    ]  # fmt: skip
    return [{rule.element: [{"coding": [{**system, "code": code}]} for code in sorted(rule.codes)]}
            for system in systems]  # fmt: skip


@pytest.mark.parametrize("resource_type", ["Observation", "DiagnosticReport", "Condition"])
def test_each_refinement_alone_decides_and_an_author_may_sign_its_category(
    resource_type: str,
) -> None:
    """No refinement is shadowed by an earlier one, and care.py's categories_for lets an
    author sign every category the table can give."""
    _, refinements = categories.category_table()[resource_type]
    assert refinements
    for rule in refinements:
        for body in _applying(rule):
            assert category_of(resource_type, body) == rule.category, rule
        assert rule.category in categories.categories_for(resource_type)


def test_validated_resource_carries_its_category() -> None:
    obj = observation(category=category("vital-signs"))
    assert validate_resource(obj, "o.json") == Resource(
        "o.json", "Observation", "x1", categories.VITAL_SIGNS, obj
    )
