"""Data categories: the closed set per-category access policies are written against, and
the one table that puts each FHIR resource in one of them."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "ADMINISTRATIVE", "ALLERGIES", "CARE_PLANS", "CATEGORIES", "CLINICAL", "CONDITIONS",
    "DOCUMENTS", "ENCOUNTERS", "FINANCIAL", "IMAGING", "IMMUNIZATIONS", "LABS",
    "MEDICATIONS", "MENTAL_HEALTH", "PROCEDURES", "VITAL_SIGNS", "CategoryRule",
    "categories_for", "category_of", "category_table",
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

_MENTAL_HEALTH_CODES = frozenset({"mental-health", "behavioral-health", "psychiatry"})
#: A type's category and its refinements: (category codes, category) in order.
CategoryRule = tuple[str, tuple[tuple[frozenset[str], str], ...]]
# The one category table: resource type -> (category, refinements). A refinement is a
# set of category codes (any system); the first that a resource's ``category`` codings
# hit wins, so the most sensitive one (mental health) comes first.
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
    "Condition": (CONDITIONS, ((_MENTAL_HEALTH_CODES, MENTAL_HEALTH),)),
    "Observation": (CLINICAL, (
        (_MENTAL_HEALTH_CODES, MENTAL_HEALTH), (frozenset({"laboratory"}), LABS),
        (frozenset({"vital-signs"}), VITAL_SIGNS), (frozenset({"imaging"}), IMAGING),
    )),
    "DiagnosticReport": (CLINICAL, (
        (frozenset({"LAB", "laboratory"}), LABS), (frozenset({"RAD", "imaging"}), IMAGING),
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
    return frozenset({category, *(rule_category for _, rule_category in rules)})


def category_of(resource_type: str, body: Mapping[str, Any]) -> str:
    """The data category (one of :data:`CATEGORIES`) of a resource."""
    category, rules = _CATEGORY_TABLE.get(resource_type, (CLINICAL, ()))
    if rules:
        codes = _category_codes(body)
        for rule_codes, rule_category in rules:
            if not codes.isdisjoint(rule_codes):
                return rule_category
    return category


def _category_codes(body: Mapping[str, Any]) -> set[str]:
    concepts = body.get("category")
    codes: set[str] = set()
    for concept in concepts if isinstance(concepts, list) else ():
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                codes.add(coding["code"])
    return codes
