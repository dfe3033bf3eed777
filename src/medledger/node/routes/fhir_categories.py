"""What a client needs to label a FHIR resource as the records layer does: the resource
types it knows, the data category table, and the Bundle types it expands.

The portal seals a patient's own records in the browser, where records/fhir.py cannot
run; a record's category decides which policy guards it, so the page applies this
table rather than a copy of it that could drift.
"""

from __future__ import annotations

from fastapi import APIRouter

from medledger.node.api import Categories, Refinement, TypeCategory
from medledger.node.deps import AuthenticatedCaller
from medledger.records.categories import CLINICAL, CategoryRule, category_table
from medledger.records.fhir import resource_types
from medledger.records.fhir_codes import REQUIRED_CODES

router = APIRouter(prefix="/v1/fhir", tags=["records"])


def _sorted(values: frozenset[str] | None) -> list[str] | None:
    return None if values is None else sorted(values)


def _type_category(rule: CategoryRule) -> TypeCategory:
    category, refinements = rule
    return TypeCategory(
        category=category,
        refinements=[
            Refinement(
                element=r.element,
                codes=_sorted(r.codes),
                systems=_sorted(r.systems),
                category=r.category,
            )
            for r in refinements
        ],
    )


def _categories() -> Categories:
    return Categories(
        resource_types=sorted(resource_types()),
        default=CLINICAL,
        types={kind: _type_category(rule) for kind, rule in category_table().items()},
        bundle_types=list(REQUIRED_CODES["Bundle", "type"].codes),
    )


@router.get("/categories", response_model=Categories)
def categories(_: AuthenticatedCaller) -> Categories:
    """The category table of records/categories.py (a plain ``def``: the first call builds
    every FHIR model, which must not hold up the event loop)."""
    return _categories()
