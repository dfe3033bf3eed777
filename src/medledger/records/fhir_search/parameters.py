"""What the search supports, as a CapabilityStatement declares it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medledger.records.fhir_search.dates import _DATE_ELEMENTS
from medledger.records.fhir_search.found import DATA_CATEGORY_SYSTEM
from medledger.records.fhir_search.paths import _Element
from medledger.records.fhir_search.tokens import _CODE_ELEMENTS


@dataclass(frozen=True)
class Parameter:
    """A search parameter as a CapabilityStatement declares it."""

    name: str
    type: Literal["token", "date", "reference"]
    documentation: str


_EVERY_TYPE = (
    Parameter("_id", "token", "The logical id"),
    Parameter("_lastUpdated", "date", "When this version was stored"),
    Parameter(
        "category",
        "token",
        "The codes of the resource's category, and its medledger data category "
        f"(system {DATA_CATEGORY_SYSTEM}, or no system)",
    ),
    Parameter("identifier", "token", "The resource's identifier"),
    Parameter("patient", "reference", "The patient whose chart holds the record"),
    Parameter("subject", "reference", "The patient whose chart holds the record (Patient only)"),
)


def _label(resource_type: str, element: _Element) -> str:
    return ".".join((resource_type, *element.path, element.label))


def parameters_for(resource_type: str | None) -> tuple[Parameter, ...]:
    """The search parameters :func:`parse_query` takes for a search of one type, or
    (None) those it takes on every type, which a search across types declares."""
    if resource_type is None:
        return _EVERY_TYPE
    found = list(_EVERY_TYPE)
    for name, by_type in _DATE_ELEMENTS.items():
        if resource_type in by_type:
            where = ", ".join(_label(resource_type, e) for e in by_type[resource_type])
            found.append(Parameter(name, "date", where))
    if resource_type in _CODE_ELEMENTS:
        where = ", ".join(_label(resource_type, e) for e in _CODE_ELEMENTS[resource_type])
        found.append(Parameter("code", "token", f"{where} (and :text on their text)"))
    if resource_type == "AuditEvent":
        found.append(Parameter("subtype", "token", "AuditEvent.subtype"))
    return tuple(found)
