"""Synthetic patients: realistic, deterministic FHIR R4 data for benchmarks and tests.

Benchmarks and tests need health records in volume, and real ones must never be
used. Everything here is made up from small built-in tables and a seeded
``random.Random`` (never the global one), against a fixed reference time rather
than the clock, so a seed always gives the same bytes. Realism goes as far as it
is cheap: values follow age, sex and conditions and scatter around a personal
baseline from visit to visit; diabetes raises HbA1c and glucose, hypertension
blood pressure; BMI is computed from the weight and height of the same visit.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from medledger.records.synthetic_fhir import (
    AGE_WEIGHTS,
    BP_PANEL,
    CHILDHOOD,
    CITIES,
    CLINICS,
    CONDITIONS,
    COVID_DOSE_DAYS,
    CVX,
    DEPRESSION,
    DIABETES,
    FAMILY,
    FLAGS,
    GENDER_WEIGHTS,
    GENDERS,
    GIVEN,
    HYPERLIPIDEMIA,
    HYPERTENSION,
    LAB,
    LAB_PANELS,
    LABS,
    LOINC,
    MEASURES,
    NORMAL_BY_SEX,
    STREETS,
    TERM,
    VITAL_CODES,
    VITALS,
    Measure,
    concept,
    fhir_instant,
    quantity,
    random_uuid,
)

__all__ = ["HISTORY_YEARS", "MRN_SYSTEM", "REFERENCE_TIME", "SyntheticPatient",
           "generate_patients", "generate_records"]  # fmt: skip

REFERENCE_TIME = datetime(2025, 1, 1, tzinfo=UTC)  # "now" for every generated history
HISTORY_YEARS = 10
MRN_SYSTEM = "urn:medledger:synthetic:mrn"


@dataclass(frozen=True)
class SyntheticPatient:
    """One made-up patient: the Patient resource and their clinical resources."""

    index: int
    patient: dict[str, Any]
    resources: list[dict[str, Any]]

    def bundle(self) -> dict[str, Any]:
        """A FHIR ``collection`` Bundle of the Patient then the resources (not copies)."""
        entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r}
                   for r in (self.patient, *self.resources)]  # fmt: skip
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def generate_patients(
    count: int, *, seed: int = 0, records_per_patient: int = 40
) -> Iterator[SyntheticPatient]:
    """Yield ``count`` patients, each with exactly ``records_per_patient`` resources.

    Patients are drawn one after another from one stream, so the first ``n`` of a
    seed are the same whatever ``count`` is.
    """
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    for index in range(count):
        yield _Patient(rng).build(index, records_per_patient)


def generate_records(count: int, *, seed: int = 0) -> list[bytes]:
    """Exactly ``count`` compact JSON FHIR resources, Patients included, for ingest benchmarks."""
    records: list[bytes] = []
    for synthetic in generate_patients(count, seed=seed):
        for resource in (synthetic.patient, *synthetic.resources):
            if len(records) == count:
                return records
            records.append(json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode())
    return records


class _Patient:
    """A patient's hidden traits, from which every resource about them is drawn."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.id = random_uuid(rng)
        self.sex = rng.choices(GENDERS, GENDER_WEIGHTS)[0]
        self.maleness = {"male": 1.0, "female": 0.0}.get(self.sex, 0.5)  # scales sex effects
        age = rng.choices(range(96), AGE_WEIGHTS)[0]
        self.birth = date(REFERENCE_TIME.year - age, 1, 1) - timedelta(days=rng.randrange(1, 365))
        self.start = max(self.birth, date(REFERENCE_TIME.year - HISTORY_YEARS, 1, 1))
        self.z = {code: rng.gauss(0, 1) for code in MEASURES}
        self.a1c_if_diabetic = rng.uniform(6.5, 9.5)
        self.onsets: dict[str, datetime] = {}
        for code, (_, youngest, prevalence, _) in CONDITIONS.items():
            chance = prevalence[(age >= 18) + (age >= 40) + (age >= 65)]
            if code == DEPRESSION and self.sex == "female":
                chance *= 1.5
            if age >= youngest and rng.random() < chance:
                self.onsets[code] = self.at_age(rng.uniform(max(youngest, age / 2), age + 1))

    def at_age(self, years: float) -> datetime:
        return min(self.on(self.birth + timedelta(days=int(years * 365.25))), REFERENCE_TIME)

    def on(self, day: date) -> datetime:
        """A moment in opening hours, when clinics see patients."""
        hour, minute = self.rng.randrange(7, 19), self.rng.randrange(60)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)

    def age(self, when: datetime) -> float:
        return (when.date() - self.birth).days / 365.25

    def has(self, condition: str, when: datetime) -> bool:
        onset = self.onsets.get(condition)
        return onset is not None and onset <= when

    def moment(self) -> datetime:
        """A daytime moment in the patient's history window."""
        days = (REFERENCE_TIME.date() - self.start).days
        return self.on(self.start + timedelta(days=self.rng.randrange(days)))

    def build(self, index: int, budget: int) -> SyntheticPatient:
        onsets = sorted(self.onsets.items(), key=lambda item: item[1])
        conditions = [self.condition(code, onset) for code, onset in onsets][:budget]
        # Children's vaccine schedules are long: leave most of the budget to observations.
        immunizations = self.immunizations()[: (budget - len(conditions)) // 3]
        wanted = budget - len(conditions) - len(immunizations)
        observations: list[dict[str, Any]] = []
        while len(observations) < wanted:
            observations += self.visit(self.moment())
        observations = sorted(observations[:wanted], key=lambda r: str(r["effectiveDateTime"]))
        return SyntheticPatient(index, self.resource(), conditions + immunizations + observations)

    def resource(self) -> dict[str, Any]:
        rng = self.rng
        given = GIVEN.get(self.sex) or GIVEN[rng.choice(("male", "female"))]
        line = f"{rng.randrange(1, 999)} {rng.choice(STREETS)}"
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": self.id,
            # 16 digits keep MRNs unique across millions of patients without bookkeeping.
            "identifier": [{"system": MRN_SYSTEM, "value": f"{rng.randrange(10**16):016d}"}],
            "name": [{"use": "official", "family": rng.choice(FAMILY),
                      "given": rng.sample(given, rng.choice((1, 1, 2)))}],
            "gender": self.sex, "birthDate": self.birth.isoformat(),
            "address": [{"use": "home", "line": [line], "city": rng.choice(CITIES),
                         "postalCode": f"{rng.randrange(10**5):05d}", "country": "US"}],
        }  # fmt: skip
        if rng.random() < 0.8:  # 555-0100..0199 numbers are reserved for fiction
            phone = f"+1 {rng.randrange(201, 990)} 555 01{rng.randrange(100):02d}"
            patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
        return patient

    def condition(self, code: str, onset: datetime) -> dict[str, Any]:
        display, _, _, p_active = CONDITIONS[code]
        status = "active" if self.rng.random() < p_active else "remission"
        return {
            "resourceType": "Condition", "id": random_uuid(self.rng),
            "clinicalStatus": concept(TERM + "condition-clinical", status),
            "verificationStatus": concept(TERM + "condition-ver-status", "confirmed"),
            "category": [concept(TERM + "condition-category", "problem-list-item",
                                  "Problem List Item")],
            "code": concept("http://snomed.info/sct", code, display, text=True),
            "subject": {"reference": f"Patient/{self.id}"},
            "onsetDateTime": fhir_instant(onset), "recordedDate": fhir_instant(onset),
        }  # fmt: skip

    def immunizations(self) -> list[dict[str, Any]]:
        rng, doses = self.rng, []
        for cvx, months in CHILDHOOD:
            if rng.random() < 0.9:
                doses += [(self.at_age(m / 12 + rng.uniform(0, 0.05)), cvx) for m in months]
        for season in range(REFERENCE_TIME.year - HISTORY_YEARS, REFERENCE_TIME.year):
            when = self.on(date(season, 9, 15) + timedelta(days=rng.randrange(75)))
            uptake = 0.7 if self.age(when) >= 65 else 0.45
            if self.age(when) >= 0.5 and rng.random() < uptake:
                doses.append((when, rng.choice(("140", "140", "141"))))
        first = self.on(date(2021, 3, 1) + timedelta(days=rng.randrange(150)))
        if self.age(first) >= 12 and rng.random() < 0.7:
            vaccine = rng.choices(tuple(COVID_DOSE_DAYS), (55, 38, 7))[0]
            doses += [(first + timedelta(days=d), vaccine) for d in COVID_DOSE_DAYS[vaccine]]
        booster = self.moment()  # adults are due a Tdap booster every 10 years
        if self.age(booster) >= 19 and rng.random() < 0.5:
            doses.append((booster, "115"))
        if rng.random() < 0.6:
            doses.append((self.at_age(65 + rng.uniform(0, 2)), "33"))
        window = [dose for dose in doses if self.start <= dose[0].date() < REFERENCE_TIME.date()]
        return [self.immunization(when, cvx) for when, cvx in sorted(window)]

    def immunization(self, when: datetime, cvx: str) -> dict[str, Any]:
        if cvx == "HPV":  # the 9-valent vaccine replaced the quadrivalent one in 2017
            cvx = "62" if when.year < 2017 else "165"
        resource = {
            "resourceType": "Immunization", "id": random_uuid(self.rng), "status": "completed",
            "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", cvx, CVX[cvx], text=True),
            "patient": {"reference": f"Patient/{self.id}"},
            "occurrenceDateTime": fhir_instant(when), "primarySource": True,
        }  # fmt: skip
        if self.rng.random() < 0.7:
            resource["lotNumber"] = f"{self.rng.choice('EFKLMPRT')}{self.rng.randrange(10**5):05d}"
        return resource

    def typical(self, when: datetime) -> dict[str, float]:
        """Population means of every measure for this patient's age, sex and conditions then."""
        age, male = self.age(when), self.maleness
        child, years = age < 18, max(age - 18, 0)
        diabetic, lipids = self.has(DIABETES, when), self.has(HYPERLIPIDEMIA, when)
        pressure = self.has(HYPERTENSION, when)
        if age < 2:  # infants: length and weight by month; levels() gives the others a weight
            height = 50 + 25 * age if age < 1 else 75 + 12 * (age - 1)
            weight = 3.4 + 6.6 * age if age < 1 else 10 + 2.5 * (age - 1)
        else:
            height, weight = min(163 + 13 * male, 87 + 6.2 * (age - 2)), 0
        bmi = 16 + 0.25 * (age - 2) if child else 24 + min(0.1 * years, 4)
        return {
            "8867-4": 130 - 4.5 * age if age < 13 else 72, "9279-1": max(15, 35 - 2 * age),
            "8310-5": 36.7, "2708-6": 98, "29463-7": weight, "8302-2": height,
            "39156-5": bmi + 4 * diabetic,
            "8480-6": (95 + age if child else 107 + 0.4 * years) + 15 * pressure,
            "8462-4": (55 + age if child else 68 + 0.15 * years) + 8 * pressure,
            "4548-4": 5.2 + 0.006 * years, "2345-7": 92 + 0.1 * years,
            "2093-3": (160 if child else 170 + min(0.9 * years, 45)) + 45 * lipids,
            "2085-9": 57 - 11 * male, "18262-6": 0,
            "2571-8": 90 + years + 50 * diabetic + 60 * lipids,
            "2160-0": 0.3 + 0.035 * age if child else 0.8 + 0.2 * male,
            "718-7": 12.5 if child else 13.5 + 1.7 * male,
            "6690-2": 9 if age < 6 else 7, "777-3": 270 - 10 * male,
        }  # fmt: skip

    def levels(self, when: datetime) -> dict[str, float]:
        """This patient's own baselines: the population means shifted by personal offsets."""
        levels = {
            code: mean * math.exp(MEASURES[code].person_cv * self.z[code])
            for code, mean in self.typical(when).items()
        }
        if self.has(DIABETES, when):
            levels["4548-4"] = self.a1c_if_diabetic
            levels["2345-7"] = 28.7 * self.a1c_if_diabetic - 46.7  # ADAG average glucose
        if self.age(when) >= 2:
            levels["29463-7"] = levels["39156-5"] * (levels["8302-2"] / 100) ** 2
        return levels

    def draw(self, code: str, level: float) -> float:
        measure = MEASURES[code]
        return _round(measure, level * self.rng.lognormvariate(0, measure.visit_cv))

    def visit(self, when: datetime) -> list[dict[str, Any]]:
        """The observations of one visit: vital signs, and for some visits lab tests."""
        rng, levels, age, stamp = self.rng, self.levels(when), self.age(when), fhir_instant(when)
        adult = age >= 18
        vitals = {code: self.draw(code, levels[code]) for code in VITAL_CODES}
        if age >= 2:
            bmi = vitals["29463-7"] / (vitals["8302-2"] / 100) ** 2
            vitals["39156-5"] = _round(MEASURES["39156-5"], bmi)
        systolic = self.draw("8480-6", levels["8480-6"])
        diastolic = min(self.draw("8462-4", levels["8462-4"]), systolic - 15)
        components = [self.measured(code, value, adult, component=True)
                      for code, value in (("8480-6", systolic), ("8462-4", diastolic))]  # fmt: skip
        labs: dict[str, float] = {}
        if rng.random() < (0.45 if adult else 0.1):
            for codes, chance in LAB_PANELS:
                monitored = codes == ("4548-4",) and self.has(DIABETES, when)
                if rng.random() < (0.9 if monitored else chance):
                    labs.update((code, self.draw(code, levels[code])) for code in codes)
            if "18262-6" in labs:  # LDL tracks total - HDL - TG/5 (Friedewald)
                ldl = labs["2093-3"] - labs["2085-9"] - labs["2571-8"] / 5
                labs["18262-6"] = self.draw("18262-6", ldl)
        bp_code = concept(LOINC, *BP_PANEL, text=True)
        return [
            *(
                self.observation(stamp, VITALS, self.measured(c, v, adult))
                for c, v in vitals.items()
            ),
            self.observation(stamp, VITALS, {"code": bp_code, "component": components}),
            *(self.observation(stamp, LAB, self.measured(c, v, adult)) for c, v in labs.items()),
        ]

    def observation(self, stamp: str, category: str, body: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        display = "Vital Signs" if category == VITALS else "Laboratory"
        resource = {
            "resourceType": "Observation", "id": random_uuid(rng),
            "status": "amended" if rng.random() < 0.03 else "final",
            "category": [concept(TERM + "observation-category", category, display)],
            "subject": {"reference": f"Patient/{self.id}"}, "effectiveDateTime": stamp,
            **body,  # code and value
        }  # fmt: skip
        if rng.random() < 0.5:
            performer = rng.choice(CLINICS if category == VITALS else LABS)
            resource["performer"] = [{"display": performer}]
        return resource

    def measured(
        self, code: str, value: float, adult: bool, *, component: bool = False
    ) -> dict[str, Any]:
        """Code and value with, for adults, the reference range and interpretation flag."""
        measure = MEASURES[code]
        result: dict[str, Any] = {
            "code": concept(LOINC, code, measure.display, text=not component),
            "valueQuantity": quantity(measure, value),
        }
        normal = NORMAL_BY_SEX[code].get(self.sex) if code in NORMAL_BY_SEX else measure.normal
        if normal is None or not adult:  # children's ranges vary by age band
            return result
        low, high = normal
        bounds = {"low": low, "high": high}
        result["referenceRange"] = [
            {end: quantity(measure, bound) for end, bound in bounds.items() if bound is not None}
        ]
        flag = "H" if high is not None and value > high else "N"
        flag = "L" if low is not None and value < low else flag
        system = TERM + "v3-ObservationInterpretation"
        result["interpretation"] = [concept(system, flag, FLAGS[flag])]
        return result


def _round(measure: Measure, value: float) -> float:
    """Clamp to the plausible range, then keep the digits a device or lab would report."""
    clamped = min(max(value, measure.low), measure.high)
    return round(clamped) if measure.decimals == 0 else round(clamped, measure.decimals)
