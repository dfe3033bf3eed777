"""Health claims from FHIR: what is taken, what is ignored, and what is never guessed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.credentials.claims import CLAIMS, derive_claims
from medledger.credentials.errors import ClaimUnavailable
from medledger.credentials.request import Predicate
from medledger.records.synthetic import generate_patients
from medledger.records.synthetic_checkup import (
    SMOKING_STATUS,
    CheckupResults,
    checkup_observations,
)

LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
ICD10, CVX = "http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/cvx"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
UCUM = "http://unitsofmeasure.org"

# Hand-written so the birthdate is known without reading it back from the input;
# 29 February catches a date parser that only accepts common years.
PATIENT: dict[str, Any] = {"resourceType": "Patient", "id": "pat-1", "gender": "female",
                           "birthDate": "1980-02-29"}  # fmt: skip
CHECKUP = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
HEALTHY = CheckupResults(hba1c_percent=5.8, bmi=24.3, systolic_mmhg=121, diastolic_mmhg=78,
                         smoking="never")  # fmt: skip
EXPECTED = {
    "hba1c_x10": 58, "bmi_x10": 243, "systolic_mmhg": 121, "diastolic_mmhg": 78,
    "non_smoker": 1, "no_diabetes": 1, "covid19_vaccinated": 0,
    "birthdate": 19800229, "checkup_date": 20261120,
}  # fmt: skip


def checkup(results: CheckupResults = HEALTHY, when: datetime = CHECKUP) -> list[dict[str, Any]]:
    return checkup_observations(PATIENT["id"], when, results, seed=3)


def coded(resource: dict[str, Any]) -> str:
    concept: Any = resource.get("code") or resource.get("vaccineCode")
    return str(concept["coding"][0]["code"])


def without(resources: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    kept = [r for r in resources if coded(r) != code]
    assert len(kept) < len(resources), f"nothing coded {code} to remove"
    return kept


def observation(code: str, value: float, when: str, *, unit: str = "%",
                status: str = "final") -> dict[str, Any]:  # fmt: skip
    return {
        "resourceType": "Observation", "id": f"obs-{code}-{when}-{status}", "status": status,
        "subject": {"reference": "Patient/pat-1"}, "effectiveDateTime": when,
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }  # fmt: skip


def condition(system: str, code: str, clinical: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": f"cond-{code}-{clinical}",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]},
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/pat-1"}, "onsetDateTime": "2015-06-01T10:00:00Z",
    }  # fmt: skip


def immunization(cvx: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Immunization", "id": f"imm-{cvx}-{status}", "status": status,
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]},
        "patient": {"reference": "Patient/pat-1"}, "occurrenceDateTime": "2021-05-03T10:00:00Z",
    }  # fmt: skip


def test_a_checkup_gives_every_claim_as_an_integer_in_schema_order() -> None:
    claims = derive_claims([PATIENT, *checkup()])

    assert dict(claims.values) == EXPECTED
    # AnonCreds encodes attributes in schema order: another order is another credential.
    assert list(claims.values) == list(CLAIMS)
    assert list(claims.as_strings().items()) == [(k, str(v)) for k, v in EXPECTED.items()]


@pytest.mark.parametrize(("smoking", "flag"), [("never", 1), ("former", 1), ("current", 0)])
def test_non_smoker_follows_the_smoking_status(smoking: str, flag: int) -> None:
    results = CheckupResults(5.8, 24.3, 121, 78, smoking)
    assert derive_claims([PATIENT, *checkup(results)]).values["non_smoker"] == flag


def test_a_synthetic_history_loses_to_the_later_checkup() -> None:
    # Seed 9 has older HbA1c results, an active type 2 diabetes and COVID-19 doses:
    # the realistic mix the checkup's values must win over.
    history = next(generate_patients(1, seed=9, records_per_patient=60))
    codes = {coded(r) for r in history.resources}
    assert {"4548-4", "44054006"} <= codes and codes & {"207", "208", "212"}

    later = checkup_observations(history.patient["id"], CHECKUP, HEALTHY)
    claims = derive_claims([history.patient, *history.resources, *later])

    assert claims.values["hba1c_x10"] == 58
    assert claims.values["no_diabetes"] == 0
    assert claims.values["covid19_vaccinated"] == 1
    assert claims.values["birthdate"] == int(history.patient["birthDate"].replace("-", ""))
    assert claims.values["checkup_date"] == 20261120


def test_checkup_date_is_the_latest_measurement_used_not_the_latest_resource() -> None:
    later_lab = observation("4548-4", 6.1, "2026-11-27T08:00:00Z")
    heart_rate = observation("8867-4", 72, "2026-12-30T08:00:00Z", unit="/min")
    claims = derive_claims([PATIENT, *checkup(), later_lab, heart_rate])
    assert claims.values["hba1c_x10"] == 61
    assert claims.values["checkup_date"] == 20261127


@pytest.mark.parametrize("newer_first", [True, False])
def test_the_most_recent_observation_of_a_code_wins_in_any_order(newer_first: bool) -> None:
    older = observation("4548-4", 7.4, "2024-03-02T08:00:00Z")
    newer = observation("4548-4", 6.2, "2026-12-01T08:00:00Z")
    pair = [newer, older] if newer_first else [older, newer]
    assert derive_claims([PATIENT, *checkup(), *pair]).values["hba1c_x10"] == 62
    # The checkup's own result beats an older one listed after it.
    assert derive_claims([PATIENT, *checkup(), older]).values["hba1c_x10"] == 58


def test_the_later_of_two_results_on_the_same_day_wins() -> None:
    # A same-day retest supersedes the first result: time decides, not list position.
    morning = observation("4548-4", 7.0, "2026-12-01T08:00:00Z")
    evening = observation("4548-4", 5.9, "2026-12-01T17:00:00Z")
    assert derive_claims([PATIENT, *checkup(), evening, morning]).values["hba1c_x10"] == 59


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "registered", "cancelled"])
def test_non_final_observations_are_ignored(status: str) -> None:
    newer = observation("4548-4", 9.9, "2026-12-01T08:00:00Z", status=status)
    claims = derive_claims([PATIENT, *checkup(), newer])
    assert claims.values["hba1c_x10"] == 58
    assert claims.values["checkup_date"] == 20261120


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_results_count_as_final(status: str) -> None:
    newer = observation("4548-4", 6.3, "2026-12-01T08:00:00Z", status=status)
    assert derive_claims([PATIENT, *checkup(), newer]).values["hba1c_x10"] == 63


def test_a_quantity_in_another_unit_is_ignored_not_misread() -> None:
    # 42 mmol/mol is 6.0 %; read as % it would become hba1c_x10 = 420.
    ifcc = observation("4548-4", 42, "2026-12-01T08:00:00Z", unit="mmol/mol")
    assert derive_claims([PATIENT, *checkup(), ifcc]).values["hba1c_x10"] == 58
    with pytest.raises(ClaimUnavailable, match="hba1c_x10"):
        derive_claims([PATIENT, *without(checkup(), "4548-4"), ifcc])


def test_blood_pressure_comes_from_a_panel_or_from_standalone_observations() -> None:
    from_panel = derive_claims([PATIENT, *checkup()])
    assert (from_panel.values["systolic_mmhg"], from_panel.values["diastolic_mmhg"]) == (121, 78)

    standalone = [observation("8480-6", 134, "2026-11-20T09:35:00Z", unit="mm[Hg]"),
                  observation("8462-4", 86, "2026-11-20T09:35:00Z", unit="mm[Hg]")]  # fmt: skip
    alone = derive_claims([PATIENT, *without(checkup(), "85354-9"), *standalone])
    assert (alone.values["systolic_mmhg"], alone.values["diastolic_mmhg"]) == (134, 86)

    later = [observation("8480-6", 140, "2026-12-02T09:35:00Z", unit="mm[Hg]")]
    mixed = derive_claims([PATIENT, *checkup(), *later])
    assert (mixed.values["systolic_mmhg"], mixed.values["diastolic_mmhg"]) == (140, 78)


def _unknown_smoking() -> list[dict[str, Any]]:
    return [PATIENT, *checkup(CheckupResults(5.8, 24.3, 121, 78, "unknown"))]


MISSING = {
    "hba1c_x10": lambda: [PATIENT, *without(checkup(), "4548-4")],
    "birthdate": checkup,
    "non_smoker": _unknown_smoking,
}


@pytest.mark.parametrize("claim", list(MISSING))
def test_a_claim_without_evidence_is_unavailable_and_named(claim: str) -> None:
    with pytest.raises(ClaimUnavailable, match=claim) as caught:
        derive_claims(MISSING[claim]())
    others = [name for name in CLAIMS if name != claim]
    assert not [name for name in others if name in str(caught.value)]


def test_unknown_smoking_status_is_not_read_as_either_answer() -> None:
    assert SMOKING_STATUS["unknown"][0] == "266927001"
    with pytest.raises(ClaimUnavailable, match="non_smoker"):
        derive_claims(_unknown_smoking())


@pytest.mark.parametrize("claim", list(MISSING))
def test_no_claim_value_appears_in_an_unavailable_message(claim: str) -> None:
    with pytest.raises(ClaimUnavailable) as caught:
        derive_claims(MISSING[claim]())
    message = str(caught.value)
    shown = ["5.8", "58", "24.3", "243", "121", "78", "1980", "19800229", "2026", "20261120"]
    assert [value for value in shown if value in message] == []


@pytest.mark.parametrize(
    ("resource", "no_diabetes"),
    [
        (condition(SNOMED, "44054006", "active"), 0),
        (condition(SNOMED, "44054006", "recurrence"), 0),
        (condition(ICD10, "E11.9", "active"), 0),
        (condition(ICD10, "E10", "relapse"), 0),
        (condition(SNOMED, "44054006", "remission"), 1),
        (condition(SNOMED, "44054006", "resolved"), 1),
        (condition(ICD10, "E11.9", "inactive"), 1),
        (condition(SNOMED, "195967001", "active"), 1),  # asthma
        (condition(ICD10, "I10", "active"), 1),  # hypertension
    ],
    ids=["snomed-active", "snomed-recurrence", "icd10-active", "icd10-relapse",
         "snomed-remission", "snomed-resolved", "icd10-inactive", "asthma", "hypertension"],
)  # fmt: skip
def test_no_diabetes_is_0_only_for_an_active_diabetes_condition(
    resource: dict[str, Any], no_diabetes: int
) -> None:
    assert derive_claims([PATIENT, *checkup(), resource]).values["no_diabetes"] == no_diabetes


def test_one_active_diabetes_condition_outweighs_a_resolved_one() -> None:
    resolved = condition(SNOMED, "44054006", "resolved")
    active = condition(ICD10, "E11.9", "active")
    for order in ([resolved, active], [active, resolved]):
        assert derive_claims([PATIENT, *checkup(), *order]).values["no_diabetes"] == 0


@pytest.mark.parametrize(
    ("resource", "vaccinated"),
    [
        (immunization("208", "completed"), 1),
        (immunization("207", "completed"), 1),
        (immunization("208", "not-done"), 0),
        (immunization("208", "entered-in-error"), 0),
        (immunization("140", "completed"), 0),  # seasonal influenza
    ],
    ids=["cvx208", "cvx207", "not-done", "entered-in-error", "influenza"],
)
def test_covid19_vaccinated_needs_a_completed_covid_dose(
    resource: dict[str, Any], vaccinated: int
) -> None:
    assert derive_claims([PATIENT, *checkup(), resource]).values["covid19_vaccinated"] == vaccinated


@settings(max_examples=60, deadline=None)
@given(tenths=st.integers(min_value=40, max_value=140))
def test_hba1c_is_scaled_exactly_and_the_predicate_agrees_with_the_percent(tenths: int) -> None:
    # Drawn as tenths then divided, so the input is the float a lab report would carry.
    percent = tenths / 10
    claims = derive_claims([PATIENT, *checkup(CheckupResults(percent, 24.3, 121, 78, "never"))])
    assert claims.values["hba1c_x10"] == round(percent * 10) == tenths
    assert Predicate.parse("hba1c_x10 < 65").holds(claims.values["hba1c_x10"]) is (percent < 6.5)
