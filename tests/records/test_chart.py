"""The chart rules (records/chart.py): what goes into one patient's chart, what is set
aside as institution-level, and what is refused as another patient's, on the HL7 R4
examples and on one named input per reference form and per rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medledger.errors import UsageError
from medledger.records import chart as rules
from medledger.records.chart import (
    SHARED,
    AmbiguousChart,
    Chart,
    Identifier,
    Sorted,
    identifiers_named,
    sort_chart,
)
from medledger.records.fhir import is_resource_type
from medledger.records.fhir_sources import Entry, Loaded, read_files
from tests.data import FHIR_EXAMPLES as EXAMPLES

MRN = "urn:oid:1.2.36.146.595.217.0.1"
SECRET = "SECRET-4711"  # a value no refusal may repeat


def patient(
    fhir_id: str | None = "me", *identifiers: Identifier, **more: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Patient", **more}
    if fhir_id is not None:
        body["id"] = fhir_id
    if identifiers:
        body["identifier"] = [{"system": s, "value": v} for s, v in identifiers]
    return body


def observation(subject: Any, fhir_id: str = "o1", **more: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": fhir_id, "status": "final",
            "code": {"text": "glucose"}, "subject": subject, **more}  # fmt: skip


def one(obj: object, origin: str = "r.json") -> Loaded:
    return Loaded(origin, (Entry(origin, obj),))


def bundle(*entries: tuple[str | None, object], kind: str = "collection") -> Loaded:
    origin = "b.json"
    held = tuple(Entry(f"{origin}#entry[{i}]", obj, url) for i, (url, obj) in enumerate(entries))
    return Loaded(origin, held, (("Bundle", kind),))


def refusals(result: Sorted) -> list[tuple[str, str, str]]:
    return [(r.source, r.field, r.problem) for r in result.refused]


def kept(result: Sorted) -> list[str]:
    return [source for source, _ in result.records]


# --- the HL7 R4 examples, one chart -----------------------------------------------------

#: What importing the whole folder as Patient/example's chart keeps.
EXAMPLE_CHART = [
    "adverseEvent-example1.json", "allergyIntolerance-example1.json",
    "allergyIntolerance-example2.json", "appointment-example1.json",
    "appointment-example2.json", "carePlan-weightLossPlan.json", "careTeam-example1.json",
    "condition-example1.json", "condition-example2.json", "diagnosticReport-example2.json",
    "encounter-example1.json", "encounter-example2.json", "goal-example1.json",
    "goal-example2.json", "immunization-example1.json", "immunization-example2.json",
    "list-example1.json", "list-example2.json", "observation-example1.json",
    "patient-example1.json", "procedure-example1.json", "procedure-example2.json",
]  # fmt: skip
#: Institution-level: not sealed into anyone's chart.
EXAMPLE_SHARED = {
    "device-example1.json": "Device/example", "device-example2.json": "Device/f001",
    "location-example1.json": "Location/1", "location-example2.json": "Location/amb",
    "medication-example1.json": "Medication/medicationexample1",
    "medication-example2.json": "Medication/medexample015",
    "medicationKnowledge-example1.json": "MedicationKnowledge/example",
    "medicationKnowledge-example2.json":
        "MedicationKnowledge/00EUVZObpL76jmcl0oBMDj6xynsZoYpG7ui7aYx1up",
    "organization-example1.json": "Organization/hl7",
    "organization-example2.json": "Organization/f001",
    "practitioner-example1.json": "Practitioner/example",
    "practitioner-example2.json": "Practitioner/xcda-author",
    "practitionerRole-example1.json": "PractitionerRole/001291b6a2f1cfe68998ba1d5feb81b99db7",
    "practitionerRole-example2.json": "PractitionerRole/003298fcb95f554158f8df32616990ee85e5",
    "questionnaire-example1.json": "Questionnaire/3141",
    "questionnaire-example2.json": "Questionnaire/f201",
    "researchStudy-example1.json": "ResearchStudy/example",
}  # fmt: skip
#: About another patient: (source, field) of each refusal, in file order.
EXAMPLE_OTHERS = [
    *[(f"bundle-example1.json#entry[{i}]", "") for i in range(2)],
    *[(f"bundle-example2.json#entry[{i}]", "") for i in range(6)],
    ("carePlan-pregnancyPlan.json", "subject.reference"),
    ("claim-example1.json", "patient.reference"), ("claim-example2.json", "patient.reference"),
    ("claimResponse-example1.json", "patient.reference"),
    ("claimResponse-example2.json", "patient.reference"),
    ("coverage-example1.json", "beneficiary.reference"),
    ("coverage-example2.json", "beneficiary.reference"),
    ("diagnosticReport-example1.json", "subject.reference"),
    ("documentReference-example1.json", "subject.reference"),
    ("explanationOfBenefit-c4bbExample.json", "patient.reference"),
    ("explanationOfBenefit-eobForClaimWithErrors.json", "patient.reference"),
    ("explanationOfBenefit-personPrimaryCoverage.json", "patient.reference"),
    *[(f"medication{kind}-example{i}.json", "subject.reference")
      for kind in ("Administration", "Dispense", "Request", "Statement") for i in (1, 2)],
    ("observation-example2.json", "subject.reference"),
    ("patient-example2.json", ""),
    ("questionnaireResponse-example1.json", "subject.reference"),
    ("questionnaireResponse-example2.json", "subject.reference"),
    ("relatedPerson-example1.json", "patient.reference"),
]  # fmt: skip


def examples() -> list[Loaded]:
    return [item for item in read_files([EXAMPLES]) if isinstance(item, Loaded)]


def test_the_hl7_examples_are_one_chart_only_under_a_named_patient() -> None:
    with pytest.raises(AmbiguousChart) as caught:
        sort_chart(examples(), Chart())
    # Ten Patient resources: two with an id (named first), eight in the Bundles without.
    assert caught.value.candidates[:3] == (
        "Patient/example",
        "Patient/f001",
        "bundle-example1.json#entry[0]",
    )
    assert len(caught.value.candidates) == 10


def test_the_hl7_examples_sorted_into_patient_example_s_chart() -> None:
    result = sort_chart(examples(), Chart(), "example")
    assert kept(result) == EXAMPLE_CHART
    assert {r.source: r.resource for r in result.shared} == EXAMPLE_SHARED
    assert [(r.source, r.field) for r in result.refused] == EXAMPLE_OTHERS
    problems = {r.problem for r in result.refused}
    assert problems == {
        "is another patient than this chart's",
        rules.ANOTHER,
        rules.NOT_SHOWN,  # questionnaireResponse-example2: a contained Patient, other MRNs
    }
    assert result.identifiers == [(MRN, "12345")]
    # Every file is accounted for, none twice.
    every = kept(result) + list(EXAMPLE_SHARED) + [s for s, _ in EXAMPLE_OTHERS]
    assert len(every) == len(set(every)) == len([e for f in examples() for e in f.entries])


def test_the_hl7_examples_into_a_chart_that_already_holds_patient_f001() -> None:
    result = sort_chart(examples(), Chart(patient_ids=frozenset({"f001"}), has_patient=True))
    assert kept(result) == [
        "appointment-example1.json", "appointment-example2.json",
        "diagnosticReport-example1.json", "list-example2.json", "observation-example2.json",
        "patient-example2.json",
    ]  # fmt: skip


# --- Bundles that are not charts ----------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["searchset", "history", "batch-response", "transaction-response", "message"]
)
def test_a_bundle_that_is_not_a_chart_refuses_its_whole_file(kind: str) -> None:
    answer = bundle((None, patient()), (None, observation({"reference": "Patient/me"})), kind=kind)
    result = sort_chart([answer, one(observation({"reference": "Patient/me"}, "o2"))], Chart())
    assert refusals(result) == [("b.json", "type", f"a {kind} Bundle is not a chart")]
    assert kept(result) == ["r.json"]


@pytest.mark.parametrize("kind", sorted(rules.CHART_BUNDLES))
def test_a_chart_bundle_is_read_entry_by_entry(kind: str) -> None:
    result = sort_chart([bundle((None, patient()), (None, observation({"reference": "Patient/me"})),
                                kind=kind)], Chart())  # fmt: skip
    assert kept(result) == ["b.json#entry[0]", "b.json#entry[1]"] and not result.refused


def test_a_searchset_inside_a_collection_refuses_the_file(tmp_path: Path) -> None:
    inner = {"resourceType": "Bundle", "id": "inner", "type": "searchset", "entry": []}
    outer = {"resourceType": "Bundle", "type": "collection",
             "entry": [{"resource": patient()}, {"resource": inner}]}  # fmt: skip
    (tmp_path / "export.json").write_text(json.dumps(outer))
    files = [i for i in read_files([tmp_path]) if isinstance(i, Loaded)]
    result = sort_chart(files, Chart())
    assert refusals(result) == [("export.json", "type", "a searchset Bundle is not a chart")]
    assert result.refused[0].resource == "Bundle/inner" and not result.records


# --- reference forms ------------------------------------------------------------------------


def _contained(*identifiers: Identifier) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1",
            "identifier": [{"system": s, "value": v} for s, v in identifiers]}  # fmt: skip


ANCHOR = patient("me", (MRN, "1"))
ABOUT_ME = [
    {"reference": "Patient/me"},
    {"reference": "Patient/me/_history/3"},
    {"reference": "https://ehr.example.org/fhir/Patient/me"},
    {"reference": "https://ehr.example.org/fhir/Patient/me/_history/2", "display": SECRET},
    {"identifier": {"system": MRN, "value": "1"}},
    {"type": "Patient", "identifier": {"system": MRN, "value": "1"}},
    {"reference": f"Patient?identifier={MRN}|1"},
    {"reference": "Patient/me", "identifier": {"system": MRN, "value": "1"}},
    # Not a patient: a Group, a Device, a display alone, a typed identifier of a Device.
    {"reference": "Group/g1"},
    {"reference": "https://ehr.example.org/fhir/Device/d1"},
    {"display": SECRET},
    {"type": "Device", "identifier": {"system": "urn:serial", "value": SECRET}},
]
ABOUT_ANOTHER = [
    ({"reference": "Patient/you"}, ".reference", rules.ANOTHER),
    ({"reference": "Patient/you/_history/3"}, ".reference", rules.ANOTHER),
    ({"reference": "https://ehr.example.org/fhir/Patient/you"}, ".reference", rules.ANOTHER),
    ({"identifier": {"system": MRN, "value": SECRET}}, ".identifier", rules.UNKNOWN_IDENTIFIER),
    ({"reference": f"Patient?identifier={MRN}|{SECRET}"}, ".reference", rules.UNKNOWN_IDENTIFIER),
    ({"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}, ".reference",
     rules.NO_ENTRY),
    ({"reference": "#nowhere"}, ".reference", rules.NO_CONTAINED),
    ({"reference": f"not a reference {SECRET}"}, ".reference", rules.UNRESOLVED),
    # The literal reference is this patient's, the identifier another's: refused.
    ({"reference": "Patient/me", "identifier": {"system": MRN, "value": "2"}}, ".identifier",
     rules.ANOTHER),
]  # fmt: skip
THEIRS = frozenset({(MRN, "2")})


@pytest.mark.parametrize("subject", ABOUT_ME)
def test_each_reference_form_of_this_patient_is_kept(subject: dict[str, Any]) -> None:
    result = sort_chart([one(ANCHOR, "p.json"), one(observation(subject))], Chart(theirs=THEIRS))
    assert kept(result) == ["p.json", "r.json"], refusals(result)


@pytest.mark.parametrize(("subject", "where", "problem"), ABOUT_ANOTHER)
def test_each_reference_form_of_another_patient_is_refused(
    subject: dict[str, Any], where: str, problem: str
) -> None:
    result = sort_chart([one(ANCHOR, "p.json"), one(observation(subject))], Chart(theirs=THEIRS))
    assert kept(result) == ["p.json"]
    assert refusals(result) == [("r.json", "subject" + where, problem)]
    assert result.refused[0].resource == "Observation/o1"
    assert SECRET not in str(result.refused[0])


def test_full_urls_resolve_within_their_bundle() -> None:
    me, you = "urn:uuid:0a6f3bc1-26c6-4bb8-a7c5-5a1b4c3c2a01", "urn:uuid:5f7e3c0e-3e4b-4f7e-9c0d"
    files = [bundle((me, patient(None, (MRN, "1"))), (you, patient(None, (MRN, "2"))),
                    (None, observation({"reference": me})),
                    (None, observation({"reference": you}, "o2")),
                    (None, observation({"reference": "urn:uuid:elsewhere"}, "o3")))]  # fmt: skip
    with pytest.raises(AmbiguousChart):
        sort_chart(files, Chart())
    result = sort_chart(files, Chart(), me)
    assert kept(result) == ["b.json#entry[0]", "b.json#entry[2]"]
    assert refusals(result) == [
        ("b.json#entry[1]", "", "is another patient than this chart's"),
        ("b.json#entry[3]", "subject.reference", rules.ANOTHER),
        ("b.json#entry[4]", "subject.reference", rules.NO_ENTRY),
    ]
    # A fullUrl names an entry of its own file only.
    elsewhere = one(observation({"reference": me}, "o4"), "other.json")
    assert refusals(sort_chart([*files, elsewhere], Chart(), me))[-1] == (
        "other.json",
        "subject.reference",
        rules.NO_ENTRY,
    )


@pytest.mark.parametrize(
    ("contained", "theirs", "problem"),
    [
        (_contained((MRN, "1")), frozenset(), None),
        (_contained(("urn:other", "9"), (MRN, "1")), frozenset(), None),
        (_contained((MRN, SECRET)), frozenset(), rules.NOT_SHOWN),
        (_contained(), frozenset(), rules.NOT_SHOWN),
        (_contained((MRN, "2")), THEIRS, rules.ANOTHER),
        ({"resourceType": "Group", "id": "p1"}, frozenset(), None),
    ],
)
def test_a_contained_subject_is_this_patient_only_if_an_identifier_ties_it(
    contained: dict[str, Any], theirs: frozenset[Identifier], problem: str | None
) -> None:
    obs = observation({"reference": "#p1"}, contained=[contained])
    result = sort_chart([one(ANCHOR, "p.json"), one(obs)], Chart(theirs=theirs))
    expected = [] if problem is None else [("r.json", "subject.reference", problem)]
    assert refusals(result) == expected


def test_a_contained_resource_about_another_patient_refuses_its_container() -> None:
    inner = observation({"reference": "Patient/you"}, "inner")
    outer = observation({"reference": "Patient/me"}, contained=[inner])
    result = sort_chart([one(ANCHOR, "p.json"), one(outer)], Chart())
    assert refusals(result) == [("r.json", "contained[0].subject.reference", rules.ANOTHER)]


def test_every_reference_of_a_list_element_is_judged() -> None:
    account = {"resourceType": "Account", "id": "a1", "status": "active",
               "subject": [{"reference": "Patient/me"}, {"reference": "Patient/you"}]}  # fmt: skip
    result = sort_chart([one(ANCHOR, "p.json"), one(account)], Chart())
    assert refusals(result) == [("r.json", "subject[1].reference", rules.ANOTHER)]


def test_a_reference_to_another_patient_entry_of_the_same_person_is_kept() -> None:
    # Two Patient resources of one person (an MRN in common): the second is refused, but a
    # record naming it is about this patient.
    files = [one(ANCHOR, "p.json"), one(patient("alias", (MRN, "1")), "q.json"),
             one(observation({"reference": "Patient/alias"}))]  # fmt: skip
    result = sort_chart(files, Chart(), "me")
    assert kept(result) == ["p.json", "r.json"]
    assert refusals(result) == [("q.json", "", "is a second Patient resource: a chart holds one")]


# --- one Patient per chart --------------------------------------------------------------------


def test_a_second_patient_in_one_import_is_refused() -> None:
    files = [one(patient("me"), "a.json"), one(patient("you"), "b.json")]
    assert refusals(sort_chart(files, Chart(), "me")) == [
        ("b.json", "", "is another patient than this chart's")
    ]
    with pytest.raises(AmbiguousChart) as caught:
        sort_chart(files, Chart())
    assert caught.value.candidates == ("Patient/me", "Patient/you")


def test_versions_of_the_chart_s_patient_are_one_resource() -> None:
    files = [one(patient("me"), "a.json"), one({**patient("me"), "gender": "female"}, "b.json")]
    assert kept(sort_chart(files, Chart())) == ["a.json", "b.json"]


def test_the_chart_s_patient_can_be_amended_and_no_other_added() -> None:
    chart = Chart(patient_ids=frozenset({"me"}), has_patient=True)
    assert kept(sort_chart([one(patient("me"))], chart)) == ["r.json"]
    assert refusals(sort_chart([one(patient("you"))], chart)) == [
        ("r.json", "", "is another patient than this chart's")
    ]
    # Named as this patient (another institution's id for them), still a second resource;
    # what names it is kept.
    mapped = sort_chart([one(patient("you"), "p.json"),
                         one(observation({"reference": "Patient/you"}))], chart, "you")  # fmt: skip
    assert refusals(mapped) == [("p.json", "", "is a second Patient resource: a chart holds one")]
    assert kept(mapped) == ["r.json"]
    both = [one(observation({"reference": "Patient/me"}), "a.json"),
            one(observation({"reference": "Patient/you"}, "o2"), "b.json")]  # fmt: skip
    assert kept(sort_chart(both, chart, "you")) == ["a.json", "b.json"]
    assert kept(sort_chart(both, chart)) == ["a.json"]


def test_a_next_version_of_the_chart_s_patient_ties_its_identifiers_to_the_chart() -> None:
    chart = Chart(patient_ids=frozenset({"me"}), has_patient=True)
    by_mrn = observation({"identifier": {"system": MRN, "value": "1"}})
    assert kept(sort_chart([one(ANCHOR, "p.json"), one(by_mrn)], chart)) == ["p.json", "r.json"]
    assert refusals(sort_chart([one(by_mrn)], chart)) == [
        ("r.json", "subject.identifier", rules.UNKNOWN_IDENTIFIER)
    ]


def test_a_chart_with_a_patient_without_an_id_takes_no_other() -> None:
    chart = Chart(has_patient=True)
    files = [one(patient("me"), "p.json"), one(observation({"reference": "Patient/me"}))]
    result = sort_chart(files, chart)
    assert refusals(result) == [("p.json", "", "is a second Patient resource: a chart holds one")]
    assert kept(result) == ["r.json"]


def test_a_patient_whose_identifier_the_index_holds_for_another_is_refused() -> None:
    result = sort_chart([one(patient("me", ("urn:x", "0"), (MRN, "2")))], Chart(theirs=THEIRS))
    assert refusals(result) == [("r.json", "identifier[1]", rules.TAKEN)]
    assert result.identifiers == []


def test_the_index_ties_an_identifier_to_this_chart() -> None:
    chart = Chart(patient_ids=frozenset({"me"}), has_patient=True, ours=frozenset({(MRN, "1")}))
    obs = observation({"identifier": {"system": MRN, "value": "1"}})
    assert kept(sort_chart([one(obs)], chart)) == ["r.json"]
    assert kept(sort_chart([one(obs)], Chart(patient_ids=frozenset({"me"})))) == []


# --- who the chart's patient is -----------------------------------------------------------


def test_without_a_patient_resource_the_references_must_agree() -> None:
    same = [one(observation({"reference": "Patient/me"}), "a.json"),
            one(observation({"reference": "Patient/me/_history/1"}, "o2"), "b.json")]  # fmt: skip
    assert kept(sort_chart(same, Chart())) == ["a.json", "b.json"]
    split = [*same, one(observation({"reference": "Patient/you"}, "o3"), "c.json")]
    with pytest.raises(AmbiguousChart) as caught:
        sort_chart(split, Chart())
    assert caught.value.candidates == ("Patient/me", "Patient/you")
    assert kept(sort_chart(split, Chart(), "you")) == ["c.json"]


def test_resources_naming_nobody_need_no_patient() -> None:
    appointment = {"resourceType": "Appointment", "id": "a1", "status": "booked"}
    assert kept(sort_chart([one(appointment)], Chart())) == ["r.json"]


def test_a_source_patient_must_be_one_the_files_or_the_chart_name() -> None:
    files = [one(patient("me"), "p.json"), one(observation({"reference": "Patient/me"}))]
    with pytest.raises(UsageError) as caught:
        sort_chart(files, Chart(), "typo")
    assert "typo" not in str(caught.value)
    assert kept(sort_chart([one(observation({"reference": "Patient/old"}))],
                           Chart(patient_ids=frozenset({"old"})), "old")) == ["r.json"]  # fmt: skip


# --- institution-level resources ---------------------------------------------------------


def test_every_shared_type_is_a_fhir_resource_type_and_no_clinical_one_is() -> None:
    assert all(is_resource_type(kind) for kind in SHARED)
    assert not SHARED & {"Patient", "Observation", "Condition", "Device", "Encounter",
                         "MedicationRequest", "Coverage", "Claim", "RelatedPerson"}  # fmt: skip


def test_shared_resources_are_named_not_sealed_and_an_implant_is_the_patient_s() -> None:
    practitioner = {"resourceType": "Practitioner", "id": "dr"}
    equipment = {"resourceType": "Device", "id": "monitor"}
    implant = {"resourceType": "Device", "id": "pacer", "patient": {"reference": "Patient/you"}}
    files = [one(ANCHOR, "p.json"), one(practitioner, "dr.json"), one(equipment, "eq.json"),
             one(implant, "im.json")]  # fmt: skip
    result = sort_chart(files, Chart())
    assert [(r.source, r.resource) for r in result.shared] == [
        ("dr.json", "Practitioner/dr"),
        ("eq.json", "Device/monitor"),
    ]
    assert refusals(result) == [("im.json", "patient.reference", rules.ANOTHER)]
    assert kept(result) == ["p.json"]


# --- what an index is asked about ---------------------------------------------------------


def test_identifiers_named_are_those_of_patients_and_of_references() -> None:
    obs = observation({"identifier": {"system": MRN, "value": "3"}},
                      contained=[_contained(("urn:c", "4"))])  # fmt: skip
    conditional = observation({"reference": "Patient?identifier=|5"}, "o2")
    files = [
        one(patient("me", (MRN, "1"))),
        one(obs),
        one(conditional),
        one({"resourceType": "Practitioner", "identifier": [{"system": "npi", "value": "6"}]}),
    ]
    assert identifiers_named(files) == {(MRN, "1"), (MRN, "3"), ("urn:c", "4"), ("", "5")}


def test_a_chart_of_what_is_listed_and_indexed() -> None:
    chart = Chart.of("0xME", ["me", None], {(MRN, "1"): "0xME", (MRN, "2"): "0xYOU"})
    assert chart == Chart(frozenset({"me"}), True, frozenset({(MRN, "1")}), THEIRS)
    assert Chart.of("0xME", [], {}) == Chart()


def test_refusals_never_repeat_a_value_from_the_record() -> None:
    secret_patient = patient(None, (MRN, SECRET))
    secret_patient["name"] = [{"text": SECRET}]
    files = [one(ANCHOR, "p.json"), one(secret_patient, "q.json"),
             one(observation({"reference": "Patient/you", "display": SECRET}))]  # fmt: skip
    result = sort_chart(files, Chart(), "me")
    assert len(result.refused) == 2
    assert all(SECRET not in str(r) for r in result.refused)


def test_a_reference_with_a_trailing_newline_names_no_one() -> None:
    result = sort_chart([one(ANCHOR, "p.json"), one(observation({"reference": "Patient/me\n"}))],
                        Chart())  # fmt: skip
    assert kept(result) == ["p.json"]
    assert refusals(result) == [("r.json", "subject.reference", rules.UNRESOLVED)]


@pytest.mark.parametrize("kind", [["Practitioner"], {"a": 1}, 7, None])
def test_a_resource_type_that_is_no_string_is_sorted_not_crashed(kind: object) -> None:
    result = sort_chart([one(ANCHOR, "p.json"), one({"resourceType": kind, "id": "x"})], Chart())
    assert kept(result)[0] == "p.json"
