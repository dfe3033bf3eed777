"""A search's URL parameters parsed into a :class:`Query`, within
:class:`SearchLimits`. What is not supported is refused rather than ignored, since a
search that drops a criterion returns records nobody asked for."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from medledger.records.categories import CATEGORIES
from medledger.records.fhir import is_resource_type
from medledger.records.fhir_search.clauses import (
    _CategoryClause,
    _Clause,
    _CodeClause,
    _CodeTextClause,
    _DateClause,
    _IdClause,
    _IdentifierClause,
    _PatientClause,
    _SubtypeClause,
)
from medledger.records.fhir_search.dates import _DATE_ELEMENTS, _date_value
from medledger.records.fhir_search.errors import InvalidSearch, UnsupportedSearch
from medledger.records.fhir_search.found import _FHIR_ID, DATA_CATEGORY_SYSTEM
from medledger.records.fhir_search.tokens import (
    _CODE_ELEMENTS,
    _normal_text,
    _split,
    _token,
    _unescape,
)

_ELEMENT = re.compile(r"[a-z][A-Za-z0-9]{0,63}")


@dataclass(frozen=True)
class SearchLimits:
    """Bounds on one query: its page size, and how much of it a URL may ask for."""

    default_count: int = 50
    max_count: int = 500
    max_parameters: int = 50
    max_values: int = 100  # comma-separated values of one parameter


DEFAULT_LIMITS = SearchLimits()


@dataclass(frozen=True)
class SortKey:
    parameter: Literal["_lastUpdated", "date"]
    descending: bool


@dataclass(frozen=True)
class Query:
    """A parsed search: criteria (all must hold), the types searched (None: any) and how
    to present the result. Build it with :func:`parse_query`."""

    clauses: tuple[_Clause, ...]
    resource_type: str | None  # a search of one type, or None: across types
    types: frozenset[str] | None
    count: int
    sort: tuple[SortKey, ...] = ()
    summary_count: bool = False
    elements: tuple[str, ...] | None = None

    @property
    def patients(self) -> frozenset[str] | None:
        """The Patient ids the records must belong to (None: any), from ``patient`` and
        ``subject``. The caller applies it: :func:`matches` does not."""
        allowed: frozenset[str] | None = None
        for clause in self.clauses:
            if isinstance(clause, _PatientClause):
                allowed = clause.ids if allowed is None else allowed & clause.ids
        return allowed

    def params(self) -> list[tuple[str, str]]:
        """The query as URL parameters, as the server applies it (``_count`` within its
        bound), for a Bundle's links."""
        pairs = [(clause.name, clause.text) for clause in self.clauses]
        if self.resource_type is None and self.types is not None:
            pairs.append(("_type", ",".join(sorted(self.types))))
        if self.sort:
            keys = ",".join(("-" if k.descending else "") + k.parameter for k in self.sort)
            pairs.append(("_sort", keys))
        if self.elements is not None:
            pairs.append(("_elements", ",".join(self.elements)))
        if self.summary_count:
            pairs.append(("_summary", "count"))
        pairs.append(("_count", str(self.count)))
        return pairs


_RESULT_PARAMETERS = frozenset({"_type", "_count", "_sort", "_summary", "_elements"})
_SORTS = {
    "_lastUpdated": SortKey("_lastUpdated", False),
    "-_lastUpdated": SortKey("_lastUpdated", True),
    "date": SortKey("date", False),
    "-date": SortKey("date", True),
}
_TOKEN_CLAUSES: Mapping[
    str, type[_CodeClause | _CategoryClause | _IdentifierClause | _SubtypeClause]
] = {
    "code": _CodeClause,
    "category": _CategoryClause,
    "identifier": _IdentifierClause,
    "subtype": _SubtypeClause,
}


def _applies_to(name: str) -> Collection[str] | None:
    """The resource types a parameter is defined on (None: every type)."""
    if name in _DATE_ELEMENTS:
        return _DATE_ELEMENTS[name].keys()
    if name in ("code", "code:text"):
        return _CODE_ELEMENTS.keys()
    if name == "subtype":
        return ("AuditEvent",)
    return None


def _values(name: str, text: str, limits: SearchLimits) -> list[str]:
    try:
        values = _split(text, ",")
    except ValueError:
        raise InvalidSearch(name, "a value ends in a lone backslash") from None
    if len(values) > limits.max_values:
        raise InvalidSearch(name, f"more than {limits.max_values} values")
    if not all(values):
        raise InvalidSearch(name, "an empty value in a list")
    return values


def _reference_id(name: str, text: str) -> str:
    parts = _unescape(text).split("/")
    if len(parts) > 2:
        raise UnsupportedSearch(name, "only [id] or Patient/[id]: no URL, no version")
    if len(parts) == 2 and parts[0] != "Patient":
        raise UnsupportedSearch(name, "only Patient references are supported")
    fhir_id = parts[-1]
    if not _FHIR_ID.fullmatch(fhir_id):
        raise InvalidSearch(name, "not a Patient id or Patient/[id] reference")
    return fhir_id


def _clause(name: str, text: str, limits: SearchLimits) -> _Clause:
    values = _values(name, text, limits)
    if name == "_id":
        if not all(_FHIR_ID.fullmatch(v) for v in values):
            raise InvalidSearch(name, "not a FHIR id")
        return _IdClause(name, text, frozenset(values))
    if name == "_lastUpdated" or name in _DATE_ELEMENTS:
        return _DateClause(name, text, name, tuple(_date_value(name, v) for v in values))
    if name in _TOKEN_CLAUSES:
        tokens = tuple(_token(name, v) for v in values)
        if name == "category":
            for token in tokens:
                if token.system == DATA_CATEGORY_SYSTEM and token.code not in (None, *CATEGORIES):
                    raise InvalidSearch(name, "unknown data category")
        return _TOKEN_CLAUSES[name](name, text, tokens)
    if name == "code:text":
        return _CodeTextClause(name, text, tuple(_normal_text(_unescape(v)) for v in values))
    return _PatientClause(name, text, frozenset(_reference_id(name, v) for v in values))


_CRITERIA = frozenset(
    {"_id", "_lastUpdated", "code:text", "patient", "subject", *_DATE_ELEMENTS, *_TOKEN_CLAUSES}
)


def _check_name(name: str) -> None:
    if name in _CRITERIA:
        return
    base, _, modifier = name.partition(":")
    if modifier and base in _CRITERIA:
        raise UnsupportedSearch(name, "modifier not supported")
    raise UnsupportedSearch(name, "unknown or unsupported parameter")


def _types(text: str, limits: SearchLimits) -> frozenset[str]:
    names = _values("_type", text, limits)
    if not all(is_resource_type(n) for n in names):
        raise InvalidSearch("_type", "unknown resource type")
    return frozenset(names)


def _count(text: str, limits: SearchLimits) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise InvalidSearch("_count", "not a non-negative integer")
    # The specification lets a server return fewer than asked: larger pages are cut.
    return min(int(text), limits.max_count)


def parse_query(
    params: Iterable[tuple[str, str]],
    *,
    resource_type: str | None = None,
    skip: Collection[str] = (),
    limits: SearchLimits = DEFAULT_LIMITS,
) -> Query:
    """Parse a search's URL parameters, in order; ``resource_type`` for a search of one
    type (``GET [base]/Observation?...``), None for one across types. Names in ``skip``
    (the response format, a page token) are handled elsewhere and left out.

    Raises :class:`InvalidSearch` or :class:`UnsupportedSearch`.
    """
    pairs = [(name, value) for name, value in params if name not in skip]
    if len(pairs) > limits.max_parameters:
        raise InvalidSearch("", f"more than {limits.max_parameters} search parameters")
    if resource_type is not None and not is_resource_type(resource_type):
        raise InvalidSearch("", "unknown resource type")
    clauses: list[_Clause] = []
    results: dict[str, str] = {}
    for name, value in pairs:
        if name in _RESULT_PARAMETERS:
            if name in results:
                raise InvalidSearch(name, "given more than once")
            results[name] = value
        else:
            _check_name(name)
            if value:  # an empty parameter is ignored, not an error (R4 search)
                clauses.append(_clause(name, value, limits))
    types = _result_types(results.get("_type"), resource_type, limits)
    if types is not None:
        for clause in clauses:
            defined = _applies_to(clause.name)
            if defined is not None and not types <= set(defined):
                raise UnsupportedSearch(clause.name, "not defined on every type searched")
    return Query(
        clauses=tuple(clauses),
        resource_type=resource_type,
        types=types,
        count=_count(results["_count"], limits) if results.get("_count") else limits.default_count,
        sort=_sort(results.get("_sort"), limits),
        summary_count=_summary(results.get("_summary")),
        elements=_elements(results.get("_elements"), limits),
    )


def _result_types(
    text: str | None, resource_type: str | None, limits: SearchLimits
) -> frozenset[str] | None:
    if resource_type is not None:
        if text:
            raise UnsupportedSearch("_type", "only in a search across types")
        return frozenset({resource_type})
    return _types(text, limits) if text else None


def _sort(text: str | None, limits: SearchLimits) -> tuple[SortKey, ...]:
    if not text:
        return ()
    keys = _values("_sort", text, limits)
    if not all(k in _SORTS for k in keys):
        raise UnsupportedSearch("_sort", "only _lastUpdated and date, ascending or descending")
    return tuple(_SORTS[k] for k in keys)


def _summary(text: str | None) -> bool:
    if text in (None, "", "false"):
        return False
    if text == "count":
        return True
    raise UnsupportedSearch("_summary", "only count and false are supported")


def _elements(text: str | None, limits: SearchLimits) -> tuple[str, ...] | None:
    if not text:
        return None
    names = _values("_elements", text, limits)
    if not all(_ELEMENT.fullmatch(n) for n in names):
        raise InvalidSearch("_elements", "not a top-level element name")
    return tuple(dict.fromkeys(names))
