"""Data categories: the closed set per-category access policies are written against, and
the one table that puts each FHIR resource in one of them.

A resource is in its type's category unless one of the type's refinements applies; they
are tried in order and the first that applies wins. The most sensitive (mental health)
comes first, then what the author coded in ``category``, then what the test itself is
(``code``, a specimen), so an explicit category is never overridden by an inference.

Codes count under their code system where the code alone is ambiguous: HL7 v2 table 0074
abbreviations (``RX`` is a radiograph there and a prescription elsewhere, ``CT`` a CAT
scan or a local clinic) and LOINC codes. The descriptive words of observation-category
(``laboratory``, ``vital-signs``, ``imaging``) and the mental-health words count under any
system, as they always have: they mean the same wherever they are written, and matching
mental health too widely only guards a record more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "ADMINISTRATIVE", "ALLERGIES", "CARE_PLANS", "CATEGORIES", "CLINICAL", "CONDITIONS",
    "DOCUMENTS", "ENCOUNTERS", "FINANCIAL", "IMAGING", "IMMUNIZATIONS", "LABS",
    "LAB_LOINC_CODES", "LOINC_SYSTEMS", "MEDICATIONS", "MENTAL_HEALTH", "PROCEDURES",
    "V2_0074_SYSTEMS", "VITAL_SIGNS", "CategoryRule", "Refinement", "categories_for",
    "category_of", "category_table",
]  # fmt: skip

LABS = "labs"
VITAL_SIGNS = "vital-signs"
IMAGING = "imaging"
MEDICATIONS = "medications"
IMMUNIZATIONS = "immunizations"
ALLERGIES = "allergies"
CONDITIONS = "conditions"
PROCEDURES = "procedures"
ENCOUNTERS = "encounters"
CARE_PLANS = "care-plans"
DOCUMENTS = "documents"
MENTAL_HEALTH = "mental-health"
FINANCIAL = "financial"
ADMINISTRATIVE = "administrative"
CLINICAL = "clinical"  # any other resource type or Observation/DiagnosticReport category


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: HL7 v2 table 0074 (Diagnostic Service Section ID): its R4 URL, the URL of DSTU2 and
#: STU3 (which the HL7 examples still use) and the code system's OID in HL7 Terminology.
V2_0074_SYSTEMS = frozenset({
    "http://terminology.hl7.org/CodeSystem/v2-0074", "http://hl7.org/fhir/v2/0074",
    "urn:oid:2.16.840.1.113883.18.29",
})  # fmt: skip
LOINC_SYSTEMS = frozenset({"http://loinc.org"})

# The sections of table 0074 that are a laboratory: LAB itself, blood gases, blood bank,
# cytogenetics, chemistry, cytopathology, genetics, hematology, immunology, microbiology,
# mycobacteriology, mycology, outside lab, parasitology, pathology, surgical pathology,
# serology, toxicology, urinalysis, virology. The rest of the table (audiology, cardiac
# catheterization, electrocardiac, therapy, pharmacy, nursing, ...) stays clinical.
_V2_LAB_SECTIONS = _words("LAB BG BLB CG CH CP GE HM IMM MB MCB MYC OSL PAR PAT SP SR TX URN VR")
# Its imaging sections: radiology, CAT scan, cardiac ultrasound (echocardiography),
# diagnostic imaging, nuclear magnetic resonance, nuclear medicine scan, OB ultrasound,
# radiology ultrasound, radiograph, vascular ultrasound, cineradiograph.
_V2_IMAGING_SECTIONS = _words("RAD CT CUS IMG NMR NMS OUS RUS RX VUS XRC")

#: Common laboratory tests and panels in LOINC: not the LOINC table (its licence and size
#: keep it out), but the tests most records carry, so that a lab result its author gave
#: no category still lands in labs. One with a test not listed here lands there by its
#: category code or its specimen, or stays clinical.
LAB_LOINC_CODES = _words(
    # diabetes: HbA1c (two methods), glucose in blood, serum or plasma, fasting, capillary
    "4548-4 17856-6 2339-0 2345-7 15074-8 14749-6 1558-6 41653-7 "
    # kidney and electrolytes: creatinine, eGFR (MDRD, CKD-EPI, CKD-EPI 2021), urea
    # nitrogen, sodium, potassium (serum, blood), chloride, CO2, calcium, urine albumin
    "2160-0 38483-4 14682-9 33914-3 62238-1 98979-8 3094-0 2951-2 2823-3 6298-4 2075-0 "
    "2028-9 17861-6 9318-7 14957-5 "
    # liver and protein: albumin, total protein, bilirubin, ALP, ALT, AST, GGT
    "1751-7 2885-2 1975-2 6768-6 1742-6 1920-8 2324-2 "
    # lipids: cholesterol, HDL, LDL (measured, calculated, direct), triglycerides
    "2093-3 2085-9 2089-1 13457-7 18262-6 2571-8 "
    # thyroid: TSH, free T4
    "3016-3 3024-7 "
    # blood count and coagulation: hemoglobin, hematocrit (two), leukocytes, erythrocytes,
    # platelets, MCV, MCH, MCHC, RDW, INR, prothrombin time, ESR
    "718-7 4544-3 20570-8 6690-2 789-8 777-3 787-2 785-6 786-4 788-0 6301-6 5902-2 4537-7 "
    # inflammation, heart, iron, prostate, blood group, SARS-CoV-2: CRP, hs-CRP, ferritin,
    # troponin I and T, creatine kinase, PSA, ABO, Rh, SARS-CoV-2 RNA
    "1988-5 30522-7 2276-4 10839-9 6598-7 2157-6 2857-1 883-9 10331-7 94500-6 "
    # panels: CBC, CBC with differential, comprehensive and basic metabolic, lipid (two),
    # urinalysis
    "58410-2 57021-8 24323-8 51990-0 24331-1 57698-3 24356-8"
)

_MENTAL_HEALTH_CODES = frozenset({"mental-health", "behavioral-health", "psychiatry"})


@dataclass(frozen=True)
class Refinement:
    """What moves a resource out of its type's category into ``category``.

    ``element`` is a top-level element of the resource: a CodeableConcept, a list of them
    (a lone one where R4 has a list counts too, as STU3 data writes it) or a Reference.
    With ``codes``, the refinement applies when one of its codings has one of them, under
    one of ``systems`` (any system, or none, when ``systems`` is None). With ``codes``
    None it applies when the element names anything (holds a JSON object).
    """

    element: str
    category: str
    codes: frozenset[str] | None = None
    systems: frozenset[str] | None = None

    def applies(self, body: Mapping[str, Any]) -> bool:
        items = _items(body.get(self.element))
        if self.codes is None:
            return any(isinstance(item, dict) for item in items)
        return any(
            _has_code(coding, self.codes, self.systems)
            for concept in items
            for coding in _codings(concept)
        )


def _items(value: object) -> Iterable[object]:
    if isinstance(value, list):
        return value
    return (value,) if isinstance(value, dict) else ()


def _codings(concept: object) -> Iterable[object]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return codings if isinstance(codings, list) else ()


def _has_code(coding: object, codes: frozenset[str], systems: frozenset[str] | None) -> bool:
    if not isinstance(coding, dict):
        return False
    code, system = coding.get("code"), coding.get("system")
    if not (isinstance(code, str) and code in codes):
        return False
    return systems is None or (isinstance(system, str) and system in systems)


def _coded(
    element: str, codes: Iterable[str], category: str, systems: frozenset[str] | None = None
) -> Refinement:
    return Refinement(element, category, frozenset(codes), systems)


#: A type's category and its refinements, in the order they are tried.
CategoryRule = tuple[str, tuple[Refinement, ...]]
_LAB_TEST = _coded("code", LAB_LOINC_CODES, LABS, LOINC_SYSTEMS)
_FROM_SPECIMEN = Refinement("specimen", LABS)
_CATEGORY_TABLE: dict[str, CategoryRule] = {
    **{t: (category, ()) for category, types in {
        LABS: "Specimen",
        IMAGING: "ImagingStudy",
        MEDICATIONS: "Medication MedicationAdministration MedicationDispense "
                     "MedicationKnowledge MedicationRequest MedicationStatement",
        IMMUNIZATIONS: "Immunization ImmunizationRecommendation",
        ALLERGIES: "AllergyIntolerance",
        PROCEDURES: "Procedure",
        ENCOUNTERS: "Encounter Appointment EpisodeOfCare",
        CARE_PLANS: "CarePlan CareTeam Goal",
        DOCUMENTS: "DocumentReference Composition List Questionnaire QuestionnaireResponse",
        FINANCIAL: "Claim ClaimResponse Coverage ExplanationOfBenefit Account Invoice",
        ADMINISTRATIVE: "Patient Practitioner PractitionerRole Organization Location "
                        "RelatedPerson Device ResearchStudy Person",
    }.items() for t in types.split()},
    "Condition": (CONDITIONS, (_coded("category", _MENTAL_HEALTH_CODES, MENTAL_HEALTH),)),
    "Observation": (CLINICAL, (
        _coded("category", _MENTAL_HEALTH_CODES, MENTAL_HEALTH),
        _coded("category", {"laboratory"}, LABS),
        _coded("category", {"vital-signs"}, VITAL_SIGNS),
        _coded("category", {"imaging"}, IMAGING),
        _LAB_TEST, _FROM_SPECIMEN,
    )),
    # US Core files reports under LOINC parts: LP7839-6 pathology, LP29684-5 radiology.
    "DiagnosticReport": (CLINICAL, (
        _coded("category", _V2_LAB_SECTIONS, LABS, V2_0074_SYSTEMS),
        _coded("category", {"laboratory"}, LABS),
        _coded("category", {"LP7839-6"}, LABS, LOINC_SYSTEMS),
        _coded("category", _V2_IMAGING_SECTIONS, IMAGING, V2_0074_SYSTEMS),
        _coded("category", {"imaging"}, IMAGING),
        _coded("category", {"LP29684-5"}, IMAGING, LOINC_SYSTEMS),
        _LAB_TEST, _FROM_SPECIMEN,
    )),
}  # fmt: skip
CATEGORIES = frozenset({
    LABS, VITAL_SIGNS, IMAGING, MEDICATIONS, IMMUNIZATIONS, ALLERGIES, CONDITIONS, PROCEDURES,
    ENCOUNTERS, CARE_PLANS, DOCUMENTS, MENTAL_HEALTH, FINANCIAL, ADMINISTRATIVE, CLINICAL,
})  # fmt: skip


def category_table() -> Mapping[str, CategoryRule]:
    """The table :func:`category_of` applies (types not in it are :data:`CLINICAL`), for
    clients that must label a resource exactly as it does without running this module:
    the portal seals in the browser."""
    return MappingProxyType(_CATEGORY_TABLE)


def categories_for(resource_type: str) -> frozenset[str]:
    """Every category a resource of this type can be in: what an author may label it."""
    category, rules = _CATEGORY_TABLE.get(resource_type, (CLINICAL, ()))
    return frozenset({category, *(rule.category for rule in rules)})


def category_of(resource_type: str, body: Mapping[str, Any]) -> str:
    """The data category (one of :data:`CATEGORIES`) of a resource."""
    category, rules = _CATEGORY_TABLE.get(resource_type, (CLINICAL, ()))
    return next((rule.category for rule in rules if rule.applies(body)), category)
