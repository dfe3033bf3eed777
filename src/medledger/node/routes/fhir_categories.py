"""What a client needs to label a FHIR resource as the records layer does: the resource
types it knows, the data category table, and the Bundle types it expands; and the lists
of the chart rules (records/chart.py): the institution-level resource types and the
Bundle types that are no chart.

The portal seals a patient's own records in the browser, where records/ cannot run; a
record's category decides which policy guards it, and the chart rules whose chart it goes
in, so the page applies these lists rather than copies of them that could drift.
"""

from __future__ import annotations

from fastapi import APIRouter

from medledger.node.api import Categories, Refinement, TypeCategory
from medledger.node.deps import AuthenticatedCaller
from medledger.records.categories import CLINICAL, CategoryRule, category_table
from medledger.records.chart import CHART_BUNDLES, SHARED
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
    bundle_types = REQUIRED_CODES["Bundle", "type"].codes
    return Categories(
        resource_types=sorted(resource_types()),
        default=CLINICAL,
        types={kind: _type_category(rule) for kind, rule in category_table().items()},
        bundle_types=list(bundle_types),
        shared_types=sorted(SHARED),
        non_chart_bundle_types=[kind for kind in bundle_types if kind not in CHART_BUNDLES],
    )


@router.get("/categories", response_model=Categories)
def categories(_: AuthenticatedCaller) -> Categories:
    """The category table of records/categories.py and the chart rules' lists (a plain
    ``def``: the first call builds every FHIR model, which must not hold up the event
    loop)."""
    return _categories()
