"""The documented data categories are the ones the code applies: docs/policies.md's table
of categories, and the table of refinements in docs/architecture.md's records/ section,
row for row in the order they are tried."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medledger.records.categories import (
    CATEGORIES,
    LOINC_SYSTEMS,
    V2_0074_SYSTEMS,
    categories_for,
    category_of,
    category_table,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"
REFINED = ("Observation", "DiagnosticReport", "Condition")
# How the architecture's table names the systems a refinement reads codes under.
SYSTEMS = {"any": None, "—": None, "v2-0074": V2_0074_SYSTEMS, "LOINC": LOINC_SYSTEMS}


def _table() -> dict[str, str]:
    text = (DOCS / "policies.md").read_text().split("## Data categories", 1)[1]
    return dict(re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", text, re.MULTILINE))


def _coded(resource_type: str, code: str) -> dict[str, Any]:
    """A body coded ``code``, under the system the table reads it in (none if any)."""
    _, refinements = category_table()[resource_type]
    rule = next(r for r in refinements if r.element == "category" and code in (r.codes or ()))
    system = {} if rule.systems is None else {"system": min(rule.systems)}
    return {"category": [{"coding": [{**system, "code": code}]}]}


def test_the_documented_categories_are_exactly_the_code_s() -> None:
    assert set(_table()) == set(CATEGORIES)


def test_each_resource_type_documented_alone_lands_in_its_category() -> None:
    for category, resources in _table().items():
        first = resources.split(";")[0]
        if " coded " in first or first.startswith("any other"):
            continue
        for resource_type in re.findall(r"[A-Z][A-Za-z]+", first):
            assert category_of(resource_type, {}) == category, resource_type


def test_refined_types_can_land_in_each_category_documented_for_them() -> None:
    for category, resources in _table().items():
        for part in resources.split(";"):
            if " coded " not in part:
                continue
            for resource_type in re.findall(r"\b(Observation|DiagnosticReport|Condition)\b", part):
                assert category in categories_for(resource_type), (resource_type, category)
            code = re.findall(r"`([A-Za-z-]+)`", part)[0]
            resource_type = re.findall(r"\b(Observation|DiagnosticReport|Condition)\b", part)[-1]
            body = _coded(resource_type, code)
            assert category_of(resource_type, body) == category, (resource_type, code)


def _refinement_rows() -> list[list[str]]:
    records = (DOCS / "architecture.md").read_text().split("### records/", 1)[1]
    records = records.split("\n### ", 1)[0]
    table = records.split("| type | element | system | codes | category |", 1)[1]
    rows = re.findall(r"^ *\|(?!-)(.+)\|$", table.split("\n\n", 1)[0], re.MULTILINE)
    return [[cell.strip() for cell in row.split("|")] for row in rows]


def test_the_architecture_documents_every_refinement_in_the_order_it_is_tried() -> None:
    documented: dict[str, list[list[str]]] = {}
    for row in _refinement_rows():
        for resource_type in re.findall(r"[A-Z][A-Za-z]+", row[0]):
            documented.setdefault(resource_type, []).append(row)
    assert set(documented) == {t for t, (_, rules) in category_table().items() if rules}
    assert set(documented) == set(REFINED)
    for resource_type, rows in documented.items():
        _, refinements = category_table()[resource_type]
        assert len(rows) == len(refinements), resource_type
        for (_, element, system, codes, category), rule in zip(rows, refinements, strict=True):
            where = (resource_type, element, codes)
            assert (element, category) == (f"`{rule.element}`", f"`{rule.category}`"), where
            assert SYSTEMS[system] == rule.systems, where
            named = set(re.findall(r"`([A-Za-z0-9-]+)`", codes))
            if rule.codes is None:
                assert not named, where
            elif "e.g." in codes:  # the curated LOINC list, by example
                assert named - {"LAB_LOINC_CODES"} <= rule.codes, where
            else:
                assert named == rule.codes, where
