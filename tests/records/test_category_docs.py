"""docs/policies.md's table of data categories is the one the code applies."""

from __future__ import annotations

import re
from pathlib import Path

from medledger.records.categories import CATEGORIES, categories_for, category_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def _table() -> dict[str, str]:
    text = DOC.read_text().split("## Data categories", 1)[1]
    return dict(re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", text, re.MULTILINE))


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
            body = {"category": [{"coding": [{"code": code}]}]}
            assert category_of(resource_type, body) == category, (resource_type, code)
