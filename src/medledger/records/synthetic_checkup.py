"""A checkup centre's Observations of given results: HbA1c, BMI, blood pressure and
smoking status, the values a health credential is derived from (for demos and tests)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medledger.records.synthetic_fhir import (
    BP_PANEL,
    LAB,
    LOINC,
    MEASURES,
    TERM,
    VITALS,
    concept,
    fhir_instant,
    quantity,
    random_uuid,
)

__all__ = ["SMOKING_STATUS", "CheckupResults", "checkup_observations"]

# SNOMED CT tobacco smoking status answers (LOINC 72166-2's answer list).
SMOKING_STATUS = {
    "never": ("266919005", "Never smoked tobacco"),
    "former": ("8517006", "Ex-smoker"),
    "current": ("449868002", "Smokes tobacco daily"),
    "unknown": ("266927001", "Tobacco smoking consumption unknown"),
}


@dataclass(frozen=True)
class CheckupResults:
    """What a checkup measured: the values a health credential is derived from."""

    hba1c_percent: float
    bmi: float
    systolic_mmhg: int
    diastolic_mmhg: int
    smoking: str  # a key of SMOKING_STATUS


def checkup_observations(
    patient_id: str, when: datetime, results: CheckupResults, *, seed: int = 0
) -> list[dict[str, Any]]:
    """The Observations a checkup centre records: HbA1c, BMI, blood pressure, smoking status."""
    rng, stamp = random.Random(seed), fhir_instant(when)  # noqa: S311 - test data, not secrets
    base = {"status": "final", "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": stamp}  # fmt: skip

    def observation(category: str, display: str, body: dict[str, Any]) -> dict[str, Any]:
        coded = concept(TERM + "observation-category", category, display)
        return {"resourceType": "Observation", "id": random_uuid(rng), **base,
                "category": [coded], **body}  # fmt: skip

    def measured(code: str, value: float) -> dict[str, Any]:
        measure = MEASURES[code]
        return {"code": concept(LOINC, code, measure.display, text=True),
                "valueQuantity": quantity(measure, value)}  # fmt: skip

    components = [
        {"code": concept(LOINC, code, MEASURES[code].display),
         "valueQuantity": quantity(MEASURES[code], value)}
        for code, value in (("8480-6", results.systolic_mmhg), ("8462-4", results.diastolic_mmhg))
    ]  # fmt: skip
    smoking_code, smoking_display = SMOKING_STATUS[results.smoking]
    return [
        observation(LAB, "Laboratory", measured("4548-4", results.hba1c_percent)),
        observation(VITALS, "Vital Signs", measured("39156-5", results.bmi)),
        observation(VITALS, "Vital Signs",
                    {"code": concept(LOINC, *BP_PANEL, text=True), "component": components}),
        observation("social-history", "Social History", {
            "code": concept(LOINC, "72166-2", "Tobacco smoking status", text=True),
            "valueCodeableConcept": concept("http://snomed.info/sct", smoking_code,
                                             smoking_display, text=True),
        }),
    ]  # fmt: skip
