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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

__all__ = ["HISTORY_YEARS", "MEASURES", "MRN_SYSTEM", "REFERENCE_TIME", "SMOKING_STATUS",
           "CheckupResults", "Measure", "SyntheticPatient", "checkup_observations",
           "generate_patients", "generate_records"]  # fmt: skip

REFERENCE_TIME = datetime(2025, 1, 1, tzinfo=UTC)  # "now" for every generated history
HISTORY_YEARS = 10
MRN_SYSTEM = "urn:medledger:synthetic:mrn"
_TERM = "http://terminology.hl7.org/CodeSystem/"
_LOINC, _UCUM = "http://loinc.org", "http://unitsofmeasure.org"
_VITALS, _LAB = "vital-signs", "laboratory"


class Measure(NamedTuple):
    """A LOINC-coded quantity, its UCUM unit and how its values are drawn."""

    code: str
    display: str
    unit: str
    ucum: str
    low: float  # plausible range: values are clamped to it
    high: float
    decimals: int
    # Values are log-normal, which keeps them positive and skews labs the way real ones
    # are: these are the spreads (as fractions) of personal baselines around the
    # population mean, and of one person's measurements around their baseline.
    person_cv: float
    visit_cv: float
    # Adult reference range, either end open; None: no range, or one by sex below.
    normal: tuple[float | None, float | None] | None


_L = "[Mass/volume] in Serum or Plasma"
_C = "[#/volume] in Blood by Automated count"
# BMI is weight / height**2 of the visit, and LDL follows the rest of the lipid panel:
# neither has a spread of its own where it is computed.
MEASURES: dict[str, Measure] = {m.code: m for m in [
    # code, display, unit, UCUM unit, plausible low/high, decimals, CVs, adult normal range
    Measure("8867-4", "Heart rate", "beats/minute", "/min", 30, 220, 0, 0.1, 0.07, (60, 100)),
    Measure("9279-1", "Respiratory rate", "breaths/minute", "/min", 6, 70, 0, 0.1, 0.1, (12, 20)),
    Measure("8310-5", "Body temperature", "C", "Cel", 34, 42, 1, 0.004, 0.006, (36.1, 37.2)),
    Measure("29463-7", "Body weight", "kg", "kg", 0.5, 300, 1, 0.1, 0.015, None),
    Measure("8302-2", "Body height", "cm", "cm", 30, 230, 1, 0.04, 0.003, None),
    Measure("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "kg/m2", 8, 80, 1, 0.17, 0,
            (18.5, 25)),
    Measure("8480-6", "Systolic blood pressure", "mmHg", "mm[Hg]", 60, 250, 0, 0.08, 0.06,
            (90, 120)),
    Measure("8462-4", "Diastolic blood pressure", "mmHg", "mm[Hg]", 30, 150, 0, 0.09, 0.07,
            (60, 80)),
    Measure("2708-6", "Oxygen saturation in Arterial blood", "%", "%", 70, 100, 0, 0.01, 0.01,
            (95, 100)),
    Measure("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 3.5, 18, 1, 0.05,
            0.03, (4.0, 5.6)),
    Measure("2345-7", f"Glucose {_L}", "mg/dL", "mg/dL", 20, 600, 0, 0.09, 0.08, (70, 99)),
    Measure("2093-3", f"Cholesterol {_L}", "mg/dL", "mg/dL", 70, 500, 0, 0.15, 0.06, (None, 200)),
    Measure("2085-9", f"Cholesterol in HDL {_L}", "mg/dL", "mg/dL", 10, 150, 0, 0.2, 0.07, None),
    Measure("18262-6", f"Cholesterol in LDL {_L} by Direct assay", "mg/dL", "mg/dL", 20, 400, 0,
            0, 0.05, (None, 100)),
    Measure("2571-8", f"Triglyceride {_L}", "mg/dL", "mg/dL", 20, 2000, 0, 0.35, 0.2, (None, 150)),
    Measure("2160-0", f"Creatinine {_L}", "mg/dL", "mg/dL", 0.1, 15, 2, 0.15, 0.07, None),
    Measure("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 4, 22, 1, 0.06, 0.03,
            None),
    Measure("6690-2", f"Leukocytes {_C}", "10^3/uL", "10*3/uL", 0.5, 50, 1, 0.2, 0.15, (4.5, 11)),
    Measure("777-3", f"Platelets {_C}", "10^3/uL", "10*3/uL", 10, 1000, 0, 0.18, 0.08, (150, 450)),
]}  # fmt: skip
_NORMAL_BY_SEX: dict[str, dict[str, tuple[float | None, float | None]]] = {
    # Patients of other or unknown gender get no range for these.
    "2085-9": {"male": (40, None), "female": (50, None)},
    "2160-0": {"male": (0.74, 1.35), "female": (0.59, 1.04)},
    "718-7": {"male": (13.2, 16.6), "female": (11.6, 15.0)},
}
_FLAGS = {"H": "High", "L": "Low", "N": "Normal"}
_BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
_VITAL_CODES = ("8867-4", "9279-1", "8310-5", "2708-6", "29463-7", "8302-2")
_LAB_PANELS = (  # what an adult's lab visit orders, and how often
    (("2093-3", "2085-9", "2571-8", "18262-6"), 0.5),
    (("718-7", "6690-2", "777-3"), 0.5),
    (("2345-7", "2160-0"), 0.6),
    (("4548-4",), 0.25),
)

_DIABETES, _HYPERTENSION, _HYPERLIPIDEMIA = "44054006", "59621000", "55822004"
_DEPRESSION = "370143000"
# SNOMED CT code: display, youngest onset age, prevalence at 0-17/18-39/40-64/65+, P(active)
_CONDITIONS = {
    _DIABETES: ("Diabetes mellitus type 2", 10, (0.003, 0.04, 0.14, 0.25), 1.0),
    _HYPERTENSION: ("Essential hypertension", 12, (0.01, 0.08, 0.33, 0.6), 1.0),
    "195967001": ("Asthma", 2, (0.09, 0.08, 0.08, 0.08), 0.8),
    _HYPERLIPIDEMIA: ("Hyperlipidemia", 12, (0.01, 0.1, 0.3, 0.45), 1.0),
    _DEPRESSION: ("Major depressive disorder", 10, (0.03, 0.1, 0.08, 0.06), 0.6),
}

_CVX = {
    "03": "MMR", "08": "Hep B, adolescent or pediatric", "33": "pneumococcal polysaccharide PPV23",
    "62": "HPV, quadrivalent", "115": "Tdap", "133": "Pneumococcal conjugate PCV 13",
    "140": "Influenza, seasonal, injectable, preservative free",
    "141": "Influenza, seasonal, injectable", "165": "HPV9",
    "207": "COVID-19, mRNA, LNP-S, PF, 100 mcg/0.5mL dose or 50 mcg/0.25mL dose",
    "208": "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose",
    "212": "COVID-19 vaccine, vector-nr, rS-Ad26, PF, 0.5 mL",
}  # fmt: skip
# CVX code and age in months of each dose; "HPV" picks its CVX code by date.
_CHILDHOOD = (("08", (0, 2, 6)), ("133", (2, 4, 6, 12)), ("03", (12, 54)), ("115", (132,)),
              ("HPV", (132, 138)))  # fmt: skip
_COVID_DOSE_DAYS = {"208": (0, 21, 240), "207": (0, 28, 240), "212": (0,)}

_GENDERS, _GENDER_WEIGHTS = ("male", "female", "other", "unknown"), (49, 49, 1, 1)
_AGE_WEIGHTS = [1.0 if age < 65 else max(0.1, 1 - (age - 65) / 32) for age in range(96)]
_GIVEN = {
    "male": ("James", "Mateo", "Arjun", "Kwame", "Liam", "Noah", "Hiroshi", "Omar", "Lukas"),
    "female": ("Olivia", "Amara", "Sofía", "Mei", "Emma", "Priya", "Zoë", "Fatima", "Ingrid"),
}
_FAMILY = ("Okafor", "García", "Nguyen", "Schmidt", "Kowalski", "Haddad", "Tanaka", "Johnson",
           "Müller", "Silva", "Novak", "O'Brien", "Larsen", "Patel", "Moreau")  # fmt: skip
_CITIES = ("Lindenport", "Ashford Vale", "Riverbend", "North Kessing", "Millbrook Heights")
_STREETS = ("Oak Street", "Harbor Road", "Mill Lane", "Station Avenue", "Juniper Court")
_CLINICS = ("Synthetic Family Clinic", "Riverbend Community Health", "Lindenport Medical Group")
_LABS = ("Synthetic Reference Laboratory", "Ashford Vale Hospital Laboratory")


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
        self.id = _uuid(rng)
        self.sex = rng.choices(_GENDERS, _GENDER_WEIGHTS)[0]
        self.maleness = {"male": 1.0, "female": 0.0}.get(self.sex, 0.5)  # scales sex effects
        age = rng.choices(range(96), _AGE_WEIGHTS)[0]
        self.birth = date(REFERENCE_TIME.year - age, 1, 1) - timedelta(days=rng.randrange(1, 365))
        self.start = max(self.birth, date(REFERENCE_TIME.year - HISTORY_YEARS, 1, 1))
        self.z = {code: rng.gauss(0, 1) for code in MEASURES}
        self.a1c_if_diabetic = rng.uniform(6.5, 9.5)
        self.onsets: dict[str, datetime] = {}
        for code, (_, youngest, prevalence, _) in _CONDITIONS.items():
            chance = prevalence[(age >= 18) + (age >= 40) + (age >= 65)]
            if code == _DEPRESSION and self.sex == "female":
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
        given = _GIVEN.get(self.sex) or _GIVEN[rng.choice(("male", "female"))]
        line = f"{rng.randrange(1, 999)} {rng.choice(_STREETS)}"
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": self.id,
            # 16 digits keep MRNs unique across millions of patients without bookkeeping.
            "identifier": [{"system": MRN_SYSTEM, "value": f"{rng.randrange(10**16):016d}"}],
            "name": [{"use": "official", "family": rng.choice(_FAMILY),
                      "given": rng.sample(given, rng.choice((1, 1, 2)))}],
            "gender": self.sex, "birthDate": self.birth.isoformat(),
            "address": [{"use": "home", "line": [line], "city": rng.choice(_CITIES),
                         "postalCode": f"{rng.randrange(10**5):05d}", "country": "US"}],
        }  # fmt: skip
        if rng.random() < 0.8:  # 555-0100..0199 numbers are reserved for fiction
            phone = f"+1 {rng.randrange(201, 990)} 555 01{rng.randrange(100):02d}"
            patient["telecom"] = [{"system": "phone", "value": phone, "use": "mobile"}]
        return patient

    def condition(self, code: str, onset: datetime) -> dict[str, Any]:
        display, _, _, p_active = _CONDITIONS[code]
        status = "active" if self.rng.random() < p_active else "remission"
        return {
            "resourceType": "Condition", "id": _uuid(self.rng),
            "clinicalStatus": _concept(_TERM + "condition-clinical", status),
            "verificationStatus": _concept(_TERM + "condition-ver-status", "confirmed"),
            "category": [_concept(_TERM + "condition-category", "problem-list-item",
                                  "Problem List Item")],
            "code": _concept("http://snomed.info/sct", code, display, text=True),
            "subject": {"reference": f"Patient/{self.id}"},
            "onsetDateTime": _iso(onset), "recordedDate": _iso(onset),
        }  # fmt: skip

    def immunizations(self) -> list[dict[str, Any]]:
        rng, doses = self.rng, []
        for cvx, months in _CHILDHOOD:
            if rng.random() < 0.9:
                doses += [(self.at_age(m / 12 + rng.uniform(0, 0.05)), cvx) for m in months]
        for season in range(REFERENCE_TIME.year - HISTORY_YEARS, REFERENCE_TIME.year):
            when = self.on(date(season, 9, 15) + timedelta(days=rng.randrange(75)))
            uptake = 0.7 if self.age(when) >= 65 else 0.45
            if self.age(when) >= 0.5 and rng.random() < uptake:
                doses.append((when, rng.choice(("140", "140", "141"))))
        first = self.on(date(2021, 3, 1) + timedelta(days=rng.randrange(150)))
        if self.age(first) >= 12 and rng.random() < 0.7:
            vaccine = rng.choices(tuple(_COVID_DOSE_DAYS), (55, 38, 7))[0]
            doses += [(first + timedelta(days=d), vaccine) for d in _COVID_DOSE_DAYS[vaccine]]
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
            "resourceType": "Immunization", "id": _uuid(self.rng), "status": "completed",
            "vaccineCode": _concept("http://hl7.org/fhir/sid/cvx", cvx, _CVX[cvx], text=True),
            "patient": {"reference": f"Patient/{self.id}"},
            "occurrenceDateTime": _iso(when), "primarySource": True,
        }  # fmt: skip
        if self.rng.random() < 0.7:
            resource["lotNumber"] = f"{self.rng.choice('EFKLMPRT')}{self.rng.randrange(10**5):05d}"
        return resource

    def typical(self, when: datetime) -> dict[str, float]:
        """Population means of every measure for this patient's age, sex and conditions then."""
        age, male = self.age(when), self.maleness
        child, years = age < 18, max(age - 18, 0)
        diabetic, lipids = self.has(_DIABETES, when), self.has(_HYPERLIPIDEMIA, when)
        pressure = self.has(_HYPERTENSION, when)
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
        if self.has(_DIABETES, when):
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
        rng, levels, age, stamp = self.rng, self.levels(when), self.age(when), _iso(when)
        adult = age >= 18
        vitals = {code: self.draw(code, levels[code]) for code in _VITAL_CODES}
        if age >= 2:
            bmi = vitals["29463-7"] / (vitals["8302-2"] / 100) ** 2
            vitals["39156-5"] = _round(MEASURES["39156-5"], bmi)
        systolic = self.draw("8480-6", levels["8480-6"])
        diastolic = min(self.draw("8462-4", levels["8462-4"]), systolic - 15)
        components = [self.measured(code, value, adult, component=True)
                      for code, value in (("8480-6", systolic), ("8462-4", diastolic))]  # fmt: skip
        labs: dict[str, float] = {}
        if rng.random() < (0.45 if adult else 0.1):
            for codes, chance in _LAB_PANELS:
                monitored = codes == ("4548-4",) and self.has(_DIABETES, when)
                if rng.random() < (0.9 if monitored else chance):
                    labs.update((code, self.draw(code, levels[code])) for code in codes)
            if "18262-6" in labs:  # LDL tracks total - HDL - TG/5 (Friedewald)
                ldl = labs["2093-3"] - labs["2085-9"] - labs["2571-8"] / 5
                labs["18262-6"] = self.draw("18262-6", ldl)
        bp_code = _concept(_LOINC, *_BP_PANEL, text=True)
        return [
            *(
                self.observation(stamp, _VITALS, self.measured(c, v, adult))
                for c, v in vitals.items()
            ),
            self.observation(stamp, _VITALS, {"code": bp_code, "component": components}),
            *(self.observation(stamp, _LAB, self.measured(c, v, adult)) for c, v in labs.items()),
        ]

    def observation(self, stamp: str, category: str, body: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        display = "Vital Signs" if category == _VITALS else "Laboratory"
        resource = {
            "resourceType": "Observation", "id": _uuid(rng),
            "status": "amended" if rng.random() < 0.03 else "final",
            "category": [_concept(_TERM + "observation-category", category, display)],
            "subject": {"reference": f"Patient/{self.id}"}, "effectiveDateTime": stamp,
            **body,  # code and value
        }  # fmt: skip
        if rng.random() < 0.5:
            performer = rng.choice(_CLINICS if category == _VITALS else _LABS)
            resource["performer"] = [{"display": performer}]
        return resource

    def measured(
        self, code: str, value: float, adult: bool, *, component: bool = False
    ) -> dict[str, Any]:
        """Code and value with, for adults, the reference range and interpretation flag."""
        measure = MEASURES[code]
        result: dict[str, Any] = {
            "code": _concept(_LOINC, code, measure.display, text=not component),
            "valueQuantity": _quantity(measure, value),
        }
        normal = _NORMAL_BY_SEX[code].get(self.sex) if code in _NORMAL_BY_SEX else measure.normal
        if normal is None or not adult:  # children's ranges vary by age band
            return result
        low, high = normal
        bounds = {"low": low, "high": high}
        result["referenceRange"] = [
            {end: _quantity(measure, bound) for end, bound in bounds.items() if bound is not None}
        ]
        flag = "H" if high is not None and value > high else "N"
        flag = "L" if low is not None and value < low else flag
        system = _TERM + "v3-ObservationInterpretation"
        result["interpretation"] = [_concept(system, flag, _FLAGS[flag])]
        return result


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _concept(system: str, code: str, display: str = "", *, text: bool = False) -> dict[str, Any]:
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"coding": [coding], **({"text": display} if text else {})}


def _quantity(measure: Measure, value: float) -> dict[str, Any]:
    return {"value": value, "unit": measure.unit, "system": _UCUM, "code": measure.ucum}


def _round(measure: Measure, value: float) -> float:
    """Clamp to the plausible range, then keep the digits a device or lab would report."""
    clamped = min(max(value, measure.low), measure.high)
    return round(clamped) if measure.decimals == 0 else round(clamped, measure.decimals)


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
    rng, stamp = random.Random(seed), _iso(when)  # noqa: S311 - test data, not secrets
    base = {"status": "final", "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": stamp}  # fmt: skip

    def observation(category: str, display: str, body: dict[str, Any]) -> dict[str, Any]:
        concept = _concept(_TERM + "observation-category", category, display)
        return {"resourceType": "Observation", "id": _uuid(rng), **base,
                "category": [concept], **body}  # fmt: skip

    def measured(code: str, value: float) -> dict[str, Any]:
        measure = MEASURES[code]
        return {"code": _concept(_LOINC, code, measure.display, text=True),
                "valueQuantity": _quantity(measure, value)}  # fmt: skip

    components = [
        {"code": _concept(_LOINC, code, MEASURES[code].display),
         "valueQuantity": _quantity(MEASURES[code], value)}
        for code, value in (("8480-6", results.systolic_mmhg), ("8462-4", results.diastolic_mmhg))
    ]  # fmt: skip
    smoking_code, smoking_display = SMOKING_STATUS[results.smoking]
    return [
        observation(_LAB, "Laboratory", measured("4548-4", results.hba1c_percent)),
        observation(_VITALS, "Vital Signs", measured("39156-5", results.bmi)),
        observation(_VITALS, "Vital Signs",
                    {"code": _concept(_LOINC, *_BP_PANEL, text=True), "component": components}),
        observation("social-history", "Social History", {
            "code": _concept(_LOINC, "72166-2", "Tobacco smoking status", text=True),
            "valueCodeableConcept": _concept("http://snomed.info/sct", smoking_code,
                                             smoking_display, text=True),
        }),
    ]  # fmt: skip
