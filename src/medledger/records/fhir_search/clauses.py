"""The criteria of a query, one per URL parameter: each says whether an opened
resource meets it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from medledger.records.fhir_search.dates import DateValue, _date_spans
from medledger.records.fhir_search.found import DATA_CATEGORY_SYSTEM, Found
from medledger.records.fhir_search.tokens import (
    Token,
    _code_concepts,
    _codings,
    _concept_texts,
    _normal_text,
    _token_holds,
)


@dataclass(frozen=True)
class _Clause(ABC):
    """One parameter of the URL, as given (for links), and its values, any of which may
    hold (a comma is an OR)."""

    name: str
    text: str

    @abstractmethod
    def matches(self, found: Found) -> bool: ...


@dataclass(frozen=True)
class _IdClause(_Clause):
    ids: frozenset[str]

    def matches(self, found: Found) -> bool:
        return found.logical_id in self.ids


@dataclass(frozen=True)
class _DateClause(_Clause):
    parameter: str
    values: tuple[DateValue, ...]

    def matches(self, found: Found) -> bool:
        spans = _date_spans(found, self.parameter)
        return any(value.holds(span) for value in self.values for span in spans)


@dataclass(frozen=True)
class _CodeClause(_Clause):
    tokens: tuple[Token, ...]

    def matches(self, found: Found) -> bool:
        pairs = [pair for concept in _code_concepts(found) for pair in _codings(concept)]
        return any(_token_holds(token, *pair) for token in self.tokens for pair in pairs)


@dataclass(frozen=True)
class _CodeTextClause(_Clause):
    prefixes: tuple[str, ...]

    def matches(self, found: Found) -> bool:
        texts = [_normal_text(t) for c in _code_concepts(found) for t in _concept_texts(c)]
        return any(text.startswith(prefix) for prefix in self.prefixes for text in texts)


@dataclass(frozen=True)
class _CategoryClause(_Clause):
    tokens: tuple[Token, ...]

    def matches(self, found: Found) -> bool:
        concepts = found.resource.get("category")
        listed = concepts if isinstance(concepts, list) else [concepts]
        pairs = [pair for concept in listed for pair in _codings(concept)]
        coded = any(_token_holds(token, *pair) for token in self.tokens for pair in pairs)
        return coded or any(self._data_category(token, found.category) for token in self.tokens)

    @staticmethod
    def _data_category(token: Token, category: str) -> bool:
        return token.system in (None, DATA_CATEGORY_SYSTEM) and token.code in (None, category)


@dataclass(frozen=True)
class _SubtypeClause(_Clause):
    tokens: tuple[Token, ...]

    def matches(self, found: Found) -> bool:
        value = found.resource.get("subtype")
        codings = value if isinstance(value, list) else [value]
        return any(
            token.holds(coding.get("system"), coding.get("code"))
            for token in self.tokens
            for coding in codings
            if isinstance(coding, Mapping)
        )


@dataclass(frozen=True)
class _IdentifierClause(_Clause):
    tokens: tuple[Token, ...]

    def matches(self, found: Found) -> bool:
        value = found.resource.get("identifier")
        identifiers = value if isinstance(value, list) else [value]
        return any(
            token.holds(ident.get("system"), ident.get("value"))
            for token in self.tokens
            for ident in identifiers
            if isinstance(ident, Mapping)
        )


@dataclass(frozen=True)
class _PatientClause(_Clause):
    ids: frozenset[str]

    def matches(self, found: Found) -> bool:
        return True  # the caller applies it: see Query.patients
