"""Applying a parsed :class:`Query` to opened resources: which match, in what order,
and the elements ``_elements`` keeps of each."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from medledger.records.fhir_search.dates import _date_spans
from medledger.records.fhir_search.found import Found
from medledger.records.fhir_search.query import Query, SortKey

#: The tag FHIR puts on a resource returned with only some of its elements (``_elements``).
SUBSETTED: Mapping[str, str] = MappingProxyType(
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
)


def matches(query: Query, found: Found) -> bool:
    """Whether a resource meets every criterion of the query except ``patient`` and
    ``subject``, which the caller applies (:attr:`Query.patients`)."""
    if query.types is not None and found.resource_type not in query.types:
        return False
    return all(clause.matches(found) for clause in query.clauses)


def _sort_key(keys: Sequence[SortKey]) -> Callable[[Found], tuple[Any, ...]]:
    def key(found: Found) -> tuple[Any, ...]:
        parts: list[tuple[int, int]] = []
        for sort in keys:
            spans = _date_spans(found, sort.parameter)
            if not spans:
                parts.append((1, 0))  # no value: last, either way
            elif sort.descending:
                parts.append((0, -max(span.high for span in spans)))
            else:
                parts.append((0, min(span.low for span in spans)))
        # Pages are cut from this order, so it must be total whatever order items came in.
        return (*parts, found.resource_type, found.logical_id, found.version_id)

    return key


def search(query: Query, items: Iterable[Found]) -> list[Found]:
    """The items that match, in the query's order: by its ``_sort`` keys (an ascending
    date sorts by a value's first instant, a descending one by its last; resources with
    no value come last), then by type, id and version."""
    return sorted((f for f in items if matches(query, f)), key=_sort_key(query.sort))


@lru_cache(maxsize=256)  # bounded: keyed by the types of stored, validated records
def _mandatory(resource_type: str) -> frozenset[str]:
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return frozenset()
    names = set()
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if info.is_required() or extra.get("element_required") or extra.get("one_of_many_required"):
            names.add(info.alias or name)
    return frozenset(names)


def _kept(key: str, names: Collection[str]) -> bool:
    element = key.removeprefix("_")  # "_status" holds the extensions of "status"
    # "effective" asks for whichever of effectiveDateTime, effectivePeriod, ... is there.
    return any(element == n or (element.startswith(n) and element[len(n)].isupper()) for n in names)


def subset(resource: Mapping[str, Any], elements: Collection[str]) -> dict[str, Any]:
    """The resource with only the named top-level elements, its mandatory ones (which
    the specification says a server should keep) and its id and meta, tagged
    :data:`SUBSETTED` as ``_elements`` requires."""
    mandatory = _mandatory(str(resource.get("resourceType")))
    names = {"id", "meta", *elements, *mandatory}
    kept = {k: v for k, v in resource.items() if k == "resourceType" or _kept(k, names)}
    meta = dict(kept.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if SUBSETTED not in tags:
        tags.append(dict(SUBSETTED))
    kept["meta"] = {**meta, "tag": tags}
    return kept
