"""What synthetic records are made of: the code systems and codes they use (LOINC
measures, SNOMED CT conditions, CVX vaccines), the people and places they name, and
the builders of their codings and quantities."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any, NamedTuple

TERM = "http://terminology.hl7.org/CodeSystem/"
LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"
VITALS, LAB = "vital-signs", "laboratory"


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
NORMAL_BY_SEX: dict[str, dict[str, tuple[float | None, float | None]]] = {
    # Patients of other or unknown gender get no range for these.
    "2085-9": {"male": (40, None), "female": (50, None)},
    "2160-0": {"male": (0.74, 1.35), "female": (0.59, 1.04)},
    "718-7": {"male": (13.2, 16.6), "female": (11.6, 15.0)},
}
FLAGS = {"H": "High", "L": "Low", "N": "Normal"}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
VITAL_CODES = ("8867-4", "9279-1", "8310-5", "2708-6", "29463-7", "8302-2")
LAB_PANELS = (  # what an adult's lab visit orders, and how often
    (("2093-3", "2085-9", "2571-8", "18262-6"), 0.5),
    (("718-7", "6690-2", "777-3"), 0.5),
    (("2345-7", "2160-0"), 0.6),
    (("4548-4",), 0.25),
)

DIABETES, HYPERTENSION, HYPERLIPIDEMIA = "44054006", "59621000", "55822004"
DEPRESSION = "370143000"
# SNOMED CT code: display, youngest onset age, prevalence at 0-17/18-39/40-64/65+, P(active)
CONDITIONS = {
    DIABETES: ("Diabetes mellitus type 2", 10, (0.003, 0.04, 0.14, 0.25), 1.0),
    HYPERTENSION: ("Essential hypertension", 12, (0.01, 0.08, 0.33, 0.6), 1.0),
    "195967001": ("Asthma", 2, (0.09, 0.08, 0.08, 0.08), 0.8),
    HYPERLIPIDEMIA: ("Hyperlipidemia", 12, (0.01, 0.1, 0.3, 0.45), 1.0),
    DEPRESSION: ("Major depressive disorder", 10, (0.03, 0.1, 0.08, 0.06), 0.6),
}

CVX = {
    "03": "MMR", "08": "Hep B, adolescent or pediatric", "33": "pneumococcal polysaccharide PPV23",
    "62": "HPV, quadrivalent", "115": "Tdap", "133": "Pneumococcal conjugate PCV 13",
    "140": "Influenza, seasonal, injectable, preservative free",
    "141": "Influenza, seasonal, injectable", "165": "HPV9",
    "207": "COVID-19, mRNA, LNP-S, PF, 100 mcg/0.5mL dose or 50 mcg/0.25mL dose",
    "208": "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose",
    "212": "COVID-19 vaccine, vector-nr, rS-Ad26, PF, 0.5 mL",
}  # fmt: skip
# CVX code and age in months of each dose; "HPV" picks its CVX code by date.
CHILDHOOD = (("08", (0, 2, 6)), ("133", (2, 4, 6, 12)), ("03", (12, 54)), ("115", (132,)),
              ("HPV", (132, 138)))  # fmt: skip
COVID_DOSE_DAYS = {"208": (0, 21, 240), "207": (0, 28, 240), "212": (0,)}

GENDERS, GENDER_WEIGHTS = ("male", "female", "other", "unknown"), (49, 49, 1, 1)
AGE_WEIGHTS = [1.0 if age < 65 else max(0.1, 1 - (age - 65) / 32) for age in range(96)]
GIVEN = {
    "male": ("James", "Mateo", "Arjun", "Kwame", "Liam", "Noah", "Hiroshi", "Omar", "Lukas"),
    "female": ("Olivia", "Amara", "Sofía", "Mei", "Emma", "Priya", "Zoë", "Fatima", "Ingrid"),
}
FAMILY = ("Okafor", "García", "Nguyen", "Schmidt", "Kowalski", "Haddad", "Tanaka", "Johnson",
           "Müller", "Silva", "Novak", "O'Brien", "Larsen", "Patel", "Moreau")  # fmt: skip
CITIES = ("Lindenport", "Ashford Vale", "Riverbend", "North Kessing", "Millbrook Heights")
STREETS = ("Oak Street", "Harbor Road", "Mill Lane", "Station Avenue", "Juniper Court")
CLINICS = ("Synthetic Family Clinic", "Riverbend Community Health", "Lindenport Medical Group")
LABS = ("Synthetic Reference Laboratory", "Ashford Vale Hospital Laboratory")


def random_uuid(rng: random.Random) -> str:
    """A version 4 UUID drawn from ``rng``."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fhir_instant(when: datetime) -> str:
    """``when`` as a FHIR dateTime, to the second, in UTC."""
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def concept(system: str, code: str, display: str = "", *, text: bool = False) -> dict[str, Any]:
    """A CodeableConcept of one coding, with the display as its text if ``text``."""
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {"coding": [coding], **({"text": display} if text else {})}


def quantity(measure: Measure, value: float) -> dict[str, Any]:
    """A UCUM Quantity of ``measure``."""
    return {"value": value, "unit": measure.unit, "system": UCUM, "code": measure.ucum}
