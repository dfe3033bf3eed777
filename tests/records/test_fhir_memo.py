"""The validation memo changes speed, never outcomes."""

from __future__ import annotations

import copy
import json

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from medledger.records import fhir_memo
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import validate_resource
from medledger.records.fhir_sources import load_sources
from medledger.records.synthetic import generate_patients
from tests.data import FHIR_EXAMPLES as EXAMPLES

INVALID = {"diagnosticReport-example1.json", "diagnosticReport-example2.json"}


@pytest.fixture(autouse=True)
def empty_memo() -> None:
    fhir_memo.clear()


def _resources() -> list[dict[str, object]]:
    found = [
        obj
        for item in load_sources([EXAMPLES])
        if not isinstance(item, InvalidRecord)
        for source, obj in [item]
        if source not in INVALID and isinstance(obj, dict)
    ]
    for patient in generate_patients(5, seed=3):
        found += [patient.patient, *patient.resources]
    return found


def test_memoised_validation_builds_the_same_models_twice_over() -> None:
    resources = _resources()
    for _ in range(2):  # the second pass is served mostly from the memo
        for obj in resources:
            model = get_fhir_model_class(str(obj["resourceType"]))
            expected = model.model_validate(copy.deepcopy(obj))
            validated = fhir_memo.validate(model, obj)
            fhir_memo.remember(validated)
            got = validated.instance
            assert got.model_dump() == expected.model_dump()
            assert got.model_fields_set == expected.model_fields_set
    assert len(fhir_memo._memo) > 0


def _observation(**changes: object) -> dict[str, object]:
    (patient,) = generate_patients(1, seed=9, records_per_patient=20)
    obs = next(r for r in patient.resources if r["resourceType"] == "Observation")
    return {**copy.deepcopy(obs), **changes}


def test_an_element_of_an_invalid_resource_is_not_remembered() -> None:
    with pytest.raises(InvalidRecord):
        validate_resource(_observation(effectiveDateTime="not a date"), "bad.json")
    with pytest.raises(InvalidRecord):
        validate_resource(_observation(status="SECRET-VALUE-123"), "bad.json")
    assert fhir_memo._memo == {}


def test_an_element_that_fails_our_own_checks_is_never_served_from_the_memo() -> None:
    empty_coding = _observation()
    empty_coding["code"]["coding"].append({})  # type: ignore[index]
    for _ in range(2):
        with pytest.raises(InvalidRecord, match=r"code\.coding\[1\]: must not be empty"):
            validate_resource(copy.deepcopy(empty_coding), "bad.json")


def test_an_invalid_element_is_reported_the_same_after_its_valid_twin_was_seen() -> None:
    model = get_fhir_model_class("Observation")
    valid = _observation()
    validate_resource(valid, "valid.json")
    assert fhir_memo._memo
    broken = copy.deepcopy(valid)
    broken["code"]["coding"][0]["system"] = 42  # type: ignore[index]
    with pytest.raises(ValidationError) as with_memo:
        fhir_memo.validate(model, broken)
    fhir_memo.clear()
    with pytest.raises(ValidationError) as without_memo:
        model.model_validate(broken)
    assert with_memo.value.errors() == without_memo.value.errors()


def test_validate_resource_gives_the_same_errors_with_a_warm_memo() -> None:
    obj = _observation()
    validate_resource(obj, "warm.json")
    bad = {**copy.deepcopy(obj), "status": "SECRET-VALUE-123"}
    with pytest.raises(InvalidRecord) as warm:
        validate_resource(bad, "bad.json")
    fhir_memo.clear()
    with pytest.raises(InvalidRecord) as cold:
        validate_resource(bad, "bad.json")
    assert str(warm.value) == str(cold.value)
    assert "SECRET-VALUE-123" not in str(warm.value)


def test_the_caller_s_resource_is_left_untouched() -> None:
    obj = _observation()
    before = json.dumps(obj, sort_keys=True)
    validate_resource(obj, "a.json")
    validate_resource(obj, "a.json")
    assert json.dumps(obj, sort_keys=True) == before


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fhir_memo, "MAX_ENTRIES", 10)
    for i in range(30):
        validate_resource(_observation(subject={"reference": f"Patient/{i}"}), "a.json")
        assert len(fhir_memo._memo) <= 10
