"""Token parameters: reading a token, the codings and identifiers it is matched
against, the elements `code` reads, and the escapes FHIR writes in a search value.

Tokens are ``code``, ``system|code``, ``|code`` (no system) or ``system|`` (any code of
the system), with ``\\,``, ``\\|`` and ``\\\\`` escaped as FHIR writes them; codes match
exactly. A `code` written without a system (AllergyIntolerance.category holds such codes)
matches only a token that names no system.

`code` reads the elements of R4's ``clinical-code``: AllergyIntolerance.code and
reaction.substance, Condition.code, DeviceRequest.codeCodeableConcept,
DiagnosticReport.code, FamilyMemberHistory.condition.code, List.code, Medication.code,
the medicationCodeableConcept of MedicationAdministration, MedicationDispense,
MedicationRequest and MedicationStatement, Observation.code, Procedure.code and
ServiceRequest.code.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from medledger.records.fhir_search.errors import InvalidSearch
from medledger.records.fhir_search.found import Found
from medledger.records.fhir_search.paths import _Element, _element_values, _plain

_MEDICATION = (_plain("medicationCodeableConcept"),)
_CODE_ELEMENTS: Mapping[str, tuple[_Element, ...]] = {
    "AllergyIntolerance": (_plain("code"), _plain("reaction.substance")),
    "Condition": (_plain("code"),),
    "DeviceRequest": (_plain("codeCodeableConcept"),),
    "DiagnosticReport": (_plain("code"),),
    "FamilyMemberHistory": (_plain("condition.code"),),
    "List": (_plain("code"),),
    "Medication": (_plain("code"),),
    "MedicationAdministration": _MEDICATION,
    "MedicationDispense": _MEDICATION,
    "MedicationRequest": _MEDICATION,
    "MedicationStatement": _MEDICATION,
    "Observation": (_plain("code"),),
    "Procedure": (_plain("code"),),
    "ServiceRequest": (_plain("code"),),
}


@dataclass(frozen=True)
class Token:
    """``system|code``: ``system`` None matches any system, "" only none; ``code`` None
    matches any code of the system."""

    system: str | None
    code: str | None

    def holds(self, system: Any, code: Any) -> bool:
        if not isinstance(code, str):
            return False
        if self.code is not None and code != self.code:
            return False
        if self.system is None:
            return True
        return (system or "") == self.system


def _split(text: str, separator: str) -> list[str]:
    """Split at separators not escaped with a backslash; escapes are kept for later."""
    parts, current, escaped = [], "", False
    for char in text:
        if escaped:
            current += "\\" + char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append(current)
            current = ""
        else:
            current += char
    if escaped:
        raise ValueError("a value ends in a lone backslash")
    parts.append(current)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _token(parameter: str, text: str) -> Token:
    parts = _split(text, "|")
    if len(parts) == 1:
        if not parts[0]:
            raise InvalidSearch(parameter, "empty token")
        return Token(None, _unescape(parts[0]))
    if len(parts) != 2 or not (parts[0] or parts[1]):
        raise InvalidSearch(parameter, "a token is [system]|[code]")
    system, code = _unescape(parts[0]), _unescape(parts[1])
    return Token(system, code or None)


def _codings(concept: Any) -> Iterator[tuple[Any, Any]]:
    """(system, code) of a CodeableConcept's codings, or of a bare code (no system)."""
    if isinstance(concept, str):
        yield _BARE_CODE, concept
    elif isinstance(concept, Mapping):
        for coding in concept.get("coding") or ():
            if isinstance(coding, Mapping):
                yield coding.get("system"), coding.get("code")


# A code element's system is implied by its binding, not written: such a code never
# equals a token that names a system, or that asks for none.
_BARE_CODE = object()


def _token_holds(token: Token, system: Any, code: Any) -> bool:
    if system is _BARE_CODE:
        return token.system is None and token.holds(None, code)
    return token.holds(system, code)


def _normal_text(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _concept_texts(concept: Any) -> Iterator[str]:
    if isinstance(concept, Mapping):
        if isinstance(concept.get("text"), str):
            yield concept["text"]
        for coding in concept.get("coding") or ():
            if isinstance(coding, Mapping) and isinstance(coding.get("display"), str):
                yield coding["display"]


def _code_concepts(found: Found) -> Iterator[Any]:
    for element in _CODE_ELEMENTS.get(found.resource_type, ()):
        for value, _ in _element_values(found.resource, element):
            yield value
