"""The synthetic patient generator: deterministic, valid FHIR R4, clinically plausible."""

from __future__ import annotations

import json
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.records.synthetic import (
    MRN_SYSTEM,
    REFERENCE_TIME,
    SyntheticPatient,
    generate_patients,
    generate_records,
)

# LOINC code: (UCUM code, lowest and highest plausible value, most decimals reported).
# Written out here, not read from the module, so a bad edit to its table shows up.
PLAUSIBLE = {
    "8867-4": ("/min", 30, 220, 0),  # heart rate
    "9279-1": ("/min", 6, 70, 0),  # respiratory rate
    "8310-5": ("Cel", 34, 42, 1),  # body temperature
    "29463-7": ("kg", 0.5, 300, 1),  # body weight
    "8302-2": ("cm", 30, 230, 1),  # body height
    "39156-5": ("kg/m2", 8, 80, 1),  # BMI
    "8480-6": ("mm[Hg]", 60, 250, 0),  # systolic
    "8462-4": ("mm[Hg]", 30, 150, 0),  # diastolic
    "2708-6": ("%", 70, 100, 0),  # SpO2
    "4548-4": ("%", 3.5, 18, 1),  # HbA1c
    "2345-7": ("mg/dL", 20, 600, 0),  # glucose
    "2093-3": ("mg/dL", 70, 500, 0),  # total cholesterol
    "2085-9": ("mg/dL", 10, 150, 0),  # HDL
    "18262-6": ("mg/dL", 20, 400, 0),  # LDL
    "2571-8": ("mg/dL", 20, 2000, 0),  # triglycerides
    "2160-0": ("mg/dL", 0.1, 15, 2),  # creatinine
    "718-7": ("g/dL", 4, 22, 1),  # hemoglobin
    "6690-2": ("10*3/uL", 0.5, 50, 1),  # leukocytes
    "777-3": ("10*3/uL", 10, 1000, 0),  # platelets
}
VITAL_SIGNS = {"8867-4", "9279-1", "8310-5", "29463-7", "8302-2", "39156-5", "85354-9", "2708-6"}
BP_PANEL = "85354-9"
DIABETES, HYPERTENSION = "44054006", "59621000"
CONDITIONS = {DIABETES, HYPERTENSION, "195967001", "55822004", "370143000"}
TIME_FIELDS = {"effectiveDateTime", "occurrenceDateTime", "onsetDateTime"}
CVX = {"03", "08", "33", "62", "115", "133", "140", "141", "165", "207", "208", "212"}


@cache
def sample(count: int, seed: int) -> tuple[SyntheticPatient, ...]:
    return tuple(generate_patients(count, seed=seed))


def resources(patients: tuple[SyntheticPatient, ...]) -> Iterator[dict[str, Any]]:
    for patient in patients:
        yield patient.patient
        yield from patient.resources


def quantities(patients: tuple[SyntheticPatient, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(LOINC code, element with a valueQuantity) for every value, panel components too."""
    for resource in resources(patients):
        if resource["resourceType"] == "Observation":
            for element in [resource, *resource.get("component", [])]:
                if "valueQuantity" in element:
                    yield element["code"]["coding"][0]["code"], element


def code_of(resource: dict[str, Any], field: str = "code") -> str:
    code: str = resource[field]["coding"][0]["code"]
    return code


def validate(resource: dict[str, Any]) -> None:
    model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert json.loads(model.model_dump_json(by_alias=True, exclude_none=True)) == resource


def as_json(patients: Iterator[SyntheticPatient] | tuple[SyntheticPatient, ...]) -> str:
    return json.dumps([p.bundle() for p in patients], sort_keys=True)


def test_same_seed_same_output_and_other_seed_other_output() -> None:
    first = as_json(generate_patients(5, seed=11))
    assert as_json(generate_patients(5, seed=11)) == first
    assert as_json(generate_patients(5, seed=12)) != first
    assert generate_records(300, seed=11) == generate_records(300, seed=11)
    assert generate_records(300, seed=11) != generate_records(300, seed=12)


def test_a_longer_run_starts_with_the_shorter_one() -> None:
    longer = [p.bundle() for p in generate_patients(8, seed=3)]
    assert longer[:3] == [p.bundle() for p in generate_patients(3, seed=3)]


def test_the_global_random_generator_is_left_alone() -> None:
    random.seed(1234)
    state = random.getstate()
    list(generate_patients(3))
    assert random.getstate() == state


@pytest.mark.parametrize("per_patient", [0, 1, 2, 7, 40, 120])
def test_counts_are_exact(per_patient: int) -> None:
    patients = list(generate_patients(6, seed=per_patient, records_per_patient=per_patient))
    assert [p.index for p in patients] == list(range(6))
    assert [len(p.resources) for p in patients] == [per_patient] * 6


@pytest.mark.parametrize("count", [0, 1, 2, 41, 42, 1000])
def test_generate_records_returns_exactly_count_resources(count: int) -> None:
    records = generate_records(count, seed=5)
    assert len(records) == count
    parsed = [json.loads(record) for record in records]
    compact = [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() for r in parsed]
    assert compact == records
    if count:
        assert parsed[0]["resourceType"] == "Patient"
    if count > 41:  # 1 Patient + 40 resources each
        assert parsed[41]["resourceType"] == "Patient"


def test_generation_speed_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    records = generate_records(20_000, seed=9)
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nsynthetic: {len(records) / elapsed:,.0f} records/s")


def test_thirty_patients_validate_and_round_trip_through_the_r4b_models() -> None:
    patients = sample(30, 1)
    for resource in resources(patients):
        validate(resource)
    for patient in patients:
        get_fhir_model_class("Bundle").model_validate(patient.bundle())


def test_references_ids_and_bundle_layout() -> None:
    patients = sample(30, 1)
    ids = [resource["id"] for resource in resources(patients)]
    assert len(set(ids)) == len(ids)
    for patient in patients:
        reference = f"Patient/{patient.patient['id']}"
        for resource in patient.resources:
            owner = resource.get("subject") or resource["patient"]
            assert owner == {"reference": reference}
        bundle = patient.bundle()
        assert bundle["type"] == "collection"
        assert bundle["entry"][0]["resource"] is patient.patient
        assert [e["fullUrl"] for e in bundle["entry"]] == [
            f"urn:uuid:{r['id']}" for r in [patient.patient, *patient.resources]
        ]


def test_patients_look_real() -> None:
    patients = sample(300, 2)
    genders = defaultdict(int)
    for patient in patients:
        body = patient.patient
        genders[body["gender"]] += 1
        age = (REFERENCE_TIME.date() - date.fromisoformat(body["birthDate"])).days / 365.25
        assert 0 < age < 96
        assert body["identifier"][0]["system"] == MRN_SYSTEM
        assert body["name"][0]["family"] and body["name"][0]["given"]
        assert body["address"][0]["city"] and len(body["address"][0]["postalCode"]) == 5
    assert set(genders) <= {"male", "female", "other", "unknown"}
    assert genders["male"] > 100 and genders["female"] > 100


def test_times_are_utc_within_the_last_ten_years_and_after_birth() -> None:
    for patient in sample(100, 3):
        birth = date.fromisoformat(patient.patient["birthDate"])
        for resource in patient.resources:
            field = next(k for k in resource if k in TIME_FIELDS)
            stamp = resource[field]
            assert stamp.endswith("Z")
            when = datetime.fromisoformat(stamp)
            assert when <= REFERENCE_TIME
            assert when.date() >= birth
            if field != "onsetDateTime":  # a condition may have begun long ago
                assert when >= REFERENCE_TIME - timedelta(days=3653)


def test_codes_come_from_the_expected_systems() -> None:
    for resource in resources(sample(100, 4)):
        kind = resource["resourceType"]
        if kind == "Observation":
            assert resource["code"]["coding"][0]["system"] == "http://loinc.org"
            category = resource["category"][0]["coding"][0]["code"]
            assert category == ("vital-signs" if code_of(resource) in VITAL_SIGNS else "laboratory")
            assert resource["status"] in {"final", "amended"}
        elif kind == "Condition":
            assert resource["code"]["coding"][0]["system"] == "http://snomed.info/sct"
            assert code_of(resource) in CONDITIONS
            assert code_of(resource, "verificationStatus") == "confirmed"
            assert code_of(resource, "clinicalStatus") in {"active", "remission"}
            assert resource["category"][0]["coding"][0]["code"] == "problem-list-item"
        elif kind == "Immunization":
            assert resource["vaccineCode"]["coding"][0]["system"] == "http://hl7.org/fhir/sid/cvx"
            assert code_of(resource, "vaccineCode") in CVX
            assert resource["status"] == "completed"
        else:
            assert kind == "Patient"


def test_observation_values_are_plausible_per_loinc_code() -> None:
    seen = set()
    for code, element in quantities(sample(300, 5)):
        assert code in PLAUSIBLE, code
        ucum, low, high, decimals = PLAUSIBLE[code]
        quantity = element["valueQuantity"]
        assert quantity["system"] == "http://unitsofmeasure.org"
        assert quantity["code"] == ucum
        assert low <= quantity["value"] <= high, (code, quantity["value"])
        assert round(quantity["value"], decimals) == quantity["value"]
        seen.add(code)
    assert seen == set(PLAUSIBLE)


def test_interpretation_flags_agree_with_the_reference_range() -> None:
    flagged = defaultdict(int)
    for code, element in quantities(sample(300, 5)):
        if "interpretation" not in element:
            continue
        value, limits = element["valueQuantity"]["value"], element["referenceRange"][0]
        flag = element["interpretation"][0]["coding"][0]["code"]
        flagged[flag] += 1
        if "high" in limits and value > limits["high"]["value"]:
            assert flag == "H", code
        elif "low" in limits and value < limits["low"]["value"]:
            assert flag == "L", code
        else:
            assert flag == "N", code
    assert min(flagged["H"], flagged["L"], flagged["N"]) > 10


def test_blood_pressure_panels_have_both_components() -> None:
    panels = [r for r in resources(sample(50, 6)) if "code" in r and code_of(r) == BP_PANEL]
    assert panels
    for panel in panels:
        systolic, diastolic = (c["valueQuantity"]["value"] for c in panel["component"])
        assert [code_of(c) for c in panel["component"]] == ["8480-6", "8462-4"]
        assert diastolic < systolic


def test_bmi_is_weight_over_height_squared_at_the_same_visit() -> None:
    checked = 0
    for patient in sample(100, 7):
        visits: dict[str, dict[str, float]] = defaultdict(dict)
        for code, element in quantities((patient,)):
            if code in {"29463-7", "8302-2", "39156-5"}:  # observations, not components
                visits[element["effectiveDateTime"]][code] = element["valueQuantity"]["value"]
        for values in visits.values():
            if len(values) == 3:
                bmi = values["29463-7"] / (values["8302-2"] / 100) ** 2
                assert values["39156-5"] == pytest.approx(bmi, abs=0.051)
                checked += 1
    assert checked > 100


def per_patient_mean(
    patients: tuple[SyntheticPatient, ...], loinc: str, condition: str
) -> tuple[list[float], list[float]]:
    """Each patient's mean value of ``loinc``, split by whether they have ``condition``."""
    with_condition, without = [], []
    for patient in patients:
        values = [e["valueQuantity"]["value"] for c, e in quantities((patient,)) if c == loinc]
        if values:
            has = any(code_of(r) == condition for r in patient.resources
                      if r["resourceType"] == "Condition")  # fmt: skip
            (with_condition if has else without).append(statistics.mean(values))
    return with_condition, without


def test_diabetes_raises_hba1c() -> None:
    diabetic, others = per_patient_mean(sample(800, 8), "4548-4", DIABETES)
    assert len(diabetic) > 30 and len(others) > 100
    assert statistics.mean(diabetic) > statistics.mean(others) + 1.0
    assert statistics.mean(diabetic) > 6.5 > statistics.mean(others)


def test_hypertension_raises_systolic_pressure() -> None:
    hypertensive, others = per_patient_mean(sample(800, 8), "8480-6", HYPERTENSION)
    assert statistics.mean(hypertensive) > statistics.mean(others) + 10


def test_repeated_measurements_scatter_around_a_personal_baseline() -> None:
    # Adults' heights differ between people far more than between one person's visits.
    means, spreads = [], []
    for patient in sample(300, 9):
        birth = date.fromisoformat(patient.patient["birthDate"])
        if (REFERENCE_TIME.date() - birth).days < 30 * 365:
            continue
        heights = [e["valueQuantity"]["value"] for c, e in quantities((patient,)) if c == "8302-2"]
        if len(heights) >= 3:
            means.append(statistics.mean(heights))
            spreads.append(statistics.stdev(heights))
    assert len(means) > 50
    assert statistics.stdev(means) > 5 * statistics.mean(spreads)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**64))
def test_any_seed_gives_valid_resources(seed: int) -> None:
    for patient in generate_patients(2, seed=seed, records_per_patient=15):
        assert len(patient.resources) == 15
        for resource in [patient.patient, *patient.resources]:
            validate(resource)
