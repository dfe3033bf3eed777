"""Health claims: what a credential says, derived from a patient's FHIR resources.

Every claim is an integer, so that AnonCreds can prove predicates on it
(``hba1c_x10 < 65`` is "HbA1c below 6.5 %") and SD-JWT can disclose it as is.
Measurements take the most recent final Observation of their LOINC code; flags
(``non_smoker``, ``no_diabetes``, ``covid19_vaccinated``) are 1 or 0; dates are
``yyyymmdd`` integers, so "18 or older on D" is ``birthdate <= D - 18 years``.

A claim with no evidence is not guessed: :class:`ClaimUnavailable` names it.
Absence claims (``no_diabetes``) are the exception by nature: they hold when no
active diabetes Condition is among the resources given, which is only as good as
the issuer's view of the patient's record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from medledger.credentials.errors import ClaimUnavailable

__all__ = ["CLAIMS", "HealthClaims", "derive_claims", "yyyymmdd"]

_LOINC, _SNOMED, _CVX = "http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/cvx"
_ICD10 = "http://hl7.org/fhir/sid/icd-10"
_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_FINAL = frozenset({"final", "amended", "corrected"})
_ACTIVE = frozenset({"active", "recurrence", "relapse"})

# Claim name -> what it means; the order is the credential schema's.
CLAIMS: dict[str, str] = {
    "hba1c_x10": "HbA1c in % of total haemoglobin, times 10 (LOINC 4548-4)",
    "bmi_x10": "body mass index in kg/m2, times 10 (LOINC 39156-5)",
    "systolic_mmhg": "systolic blood pressure in mmHg (LOINC 8480-6)",
    "diastolic_mmhg": "diastolic blood pressure in mmHg (LOINC 8462-4)",
    "non_smoker": "1 if a never or former tobacco smoker, 0 if a current one (LOINC 72166-2)",
    "no_diabetes": "1 if no active diabetes mellitus Condition is on record, else 0",
    "covid19_vaccinated": "1 if a completed COVID-19 Immunization is on record, else 0",
    "birthdate": "date of birth as yyyymmdd",
    "checkup_date": "date of the most recent measurement used, as yyyymmdd",
}

_MEASURES = {  # claim -> (LOINC code, UCUM unit, scale)
    "hba1c_x10": ("4548-4", "%", 10),
    "bmi_x10": ("39156-5", "kg/m2", 10),
    "systolic_mmhg": ("8480-6", "mm[Hg]", 1),
    "diastolic_mmhg": ("8462-4", "mm[Hg]", 1),
}
_SMOKING_STATUS = "72166-2"
_NON_SMOKER = {"266919005": 1, "8517006": 1, "449868002": 0, "428041000124106": 0,
               "77176002": 0, "428071000124103": 0, "428061000124105": 0}  # fmt: skip
_DIABETES_SNOMED = frozenset({"73211009", "44054006", "46635009", "190372001", "313436004"})
_DIABETES_ICD10 = ("E10", "E11", "E13", "E14")
# CVX codes of COVID-19 vaccines (CDC's list, mRNA, vector and protein subunit).
_COVID_CVX = frozenset({"207", "208", "210", "211", "212", "213", "217", "218", "219", "221",
                        "225", "226", "227", "228", "229", "230", "300", "301", "302", "309",
                        "310", "311", "312", "313"})  # fmt: skip


def yyyymmdd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


@dataclass(frozen=True)
class HealthClaims:
    """The claims of one patient, all integers, in :data:`CLAIMS` order."""

    values: Mapping[str, int]

    def as_strings(self) -> dict[str, str]:
        """The raw attribute values an AnonCreds credential carries."""
        return {name: str(self.values[name]) for name in CLAIMS}


def _codes(concept: Any, system: str) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [str(c.get("code")) for c in concept.get("coding", ()) if c.get("system") == system]


def _day(value: Any) -> date | None:
    moment = _moment(value)
    return None if moment is None else moment.date()


def _moment(value: Any) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime; a date alone is taken as midnight UTC."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Latest:
    """The most recent value seen per claim, with its time."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[datetime, int]] = {}

    def offer(self, claim: str, when: datetime | None, value: int) -> None:
        if when is not None and (claim not in self.values or when >= self.values[claim][0]):
            self.values[claim] = (when, value)


def _quantity(claim: str, quantity: Any, when: datetime | None, latest: _Latest) -> None:
    _, unit, scale = _MEASURES[claim]
    if not isinstance(quantity, dict) or quantity.get("code") != unit:
        return  # another unit would need a conversion we do not guess at
    value = quantity.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        latest.offer(claim, when, round(value * scale))


def _observation(resource: Mapping[str, Any], latest: _Latest) -> None:
    if resource.get("status") not in _FINAL:
        return
    when = _moment(resource.get("effectiveDateTime"))
    parts = [resource, *resource.get("component", ())]
    for part in parts:
        codes = _codes(part.get("code"), _LOINC)
        for claim, (loinc, _, _) in _MEASURES.items():
            if loinc in codes:
                _quantity(claim, part.get("valueQuantity"), when, latest)
    if _SMOKING_STATUS in _codes(resource.get("code"), _LOINC):
        for code in _codes(resource.get("valueCodeableConcept"), _SNOMED):
            if code in _NON_SMOKER:
                latest.offer("non_smoker", when, _NON_SMOKER[code])


def _has_diabetes(resource: Mapping[str, Any]) -> bool:
    if not _ACTIVE.intersection(_codes(resource.get("clinicalStatus"), _CLINICAL)):
        return False
    concept = resource.get("code")
    return bool(_DIABETES_SNOMED.intersection(_codes(concept, _SNOMED))) or any(
        code.startswith(_DIABETES_ICD10) for code in _codes(concept, _ICD10)
    )


def _covid_dose(resource: Mapping[str, Any]) -> bool:
    return resource.get("status") == "completed" and bool(
        _COVID_CVX.intersection(_codes(resource.get("vaccineCode"), _CVX))
    )


def derive_claims(resources: Iterable[Mapping[str, Any]]) -> HealthClaims:
    """Every claim of :data:`CLAIMS` from one patient's resources, or ClaimUnavailable."""
    latest, birthdate, diabetes, vaccinated = _Latest(), None, False, False
    for resource in resources:
        kind = resource.get("resourceType")
        if kind == "Patient":
            birthdate = _day(resource.get("birthDate"))
        elif kind == "Observation":
            _observation(resource, latest)
        elif kind == "Condition":
            diabetes = diabetes or _has_diabetes(resource)
        elif kind == "Immunization":
            vaccinated = vaccinated or _covid_dose(resource)
    values = {claim: value for claim, (_, value) in latest.values.items()}
    missing = [claim for claim in (*_MEASURES, "non_smoker") if claim not in values]
    if missing:
        raise ClaimUnavailable(f"no final Observation gives {', '.join(missing)}")
    if birthdate is None:
        raise ClaimUnavailable("birthdate: no Patient resource with a birthDate")
    values["no_diabetes"] = 0 if diabetes else 1
    values["covid19_vaccinated"] = 1 if vaccinated else 0
    values["birthdate"] = yyyymmdd(birthdate)
    values["checkup_date"] = yyyymmdd(max(when for when, _ in latest.values.values()).date())
    return HealthClaims({name: values[name] for name in CLAIMS})
