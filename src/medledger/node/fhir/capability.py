"""The CapabilityStatement a node serves at ``/fhir/metadata``.

It describes this server (``kind: instance``): R4 (4.0.1), JSON only, the resources,
interactions and operations the routes implement, as they pass them in, and the SMART on
FHIR endpoints in the ``oauth-uris`` extension of ``rest.security``. Search parameters come
from ``fhir_search.parameters_for``, what the search implements, unless given, so the
statement cannot promise a parameter the server would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from medledger.errors import UsageError
from medledger.records.fhir import is_resource_type
from medledger.records.fhir_search import Parameter, instant_text, parameters_for

__all__ = [
    "FHIR_VERSION",
    "SMART_OAUTH_URIS",
    "Operation",
    "ResourceSupport",
    "SmartEndpoints",
    "Software",
    "capability_statement",
]

FHIR_VERSION = "4.0.1"
SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"

#: R4 TypeRestfulInteraction and SystemRestfulInteraction (required bindings).
_TYPE_INTERACTIONS = frozenset(
    {"read", "vread", "update", "patch", "delete", "history-instance", "history-type"}
    | {"create", "search-type"}
)
_SYSTEM_INTERACTIONS = frozenset({"transaction", "batch", "search-system", "history-system"})


@dataclass(frozen=True)
class Operation:
    """An operation on a resource type: its name without the ``$`` and its definition."""

    name: str
    definition: str


@dataclass(frozen=True)
class ResourceSupport:
    """What the server does with one resource type. ``search_params`` None: those
    ``fhir_search`` implements for the type, when ``search-type`` is among the
    interactions."""

    type: str
    interactions: tuple[str, ...]
    search_params: tuple[Parameter, ...] | None = None
    versioning: Literal["no-version", "versioned", "versioned-update"] = "versioned"

    def __post_init__(self) -> None:
        if not is_resource_type(self.type):
            raise UsageError(f"not an R4 resource type: {self.type}")
        unknown = set(self.interactions) - _TYPE_INTERACTIONS
        if unknown or not self.interactions:
            raise UsageError(f"{self.type}: not R4 type interactions: {sorted(unknown)}")
        if self.search_params and "search-type" not in self.interactions:
            raise UsageError(f"{self.type}: search parameters without search-type")

    def to_json(self) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "type": self.type,
            "interaction": [{"code": code} for code in self.interactions],
            "versioning": self.versioning,
            "readHistory": "vread" in self.interactions,
        }
        params = self.search_params
        if params is None and "search-type" in self.interactions:
            params = parameters_for(self.type)
        if params:
            resource["searchParam"] = _search_params(params)
        return resource


@dataclass(frozen=True)
class SmartEndpoints:
    """Where SMART clients get tokens and, for a server that launches apps, authorise."""

    token: str
    authorize: str | None = None


@dataclass(frozen=True)
class Software:
    name: str
    version: str


def _search_params(params: Sequence[Parameter]) -> list[dict[str, str]]:
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise UsageError("a search parameter is declared twice")
    return [{"name": p.name, "type": p.type, "documentation": p.documentation} for p in params]


def capability_statement(
    *,
    base: str,
    date_ns: int,
    software: Software,
    resources: Sequence[ResourceSupport],
    system_interactions: Sequence[str] = (),
    smart: SmartEndpoints,
    operations: Mapping[str, Sequence[Operation]] | None = None,
) -> dict[str, Any]:
    """The server's CapabilityStatement; ``date_ns`` is when it was last changed (the
    software's release, or the node's start)."""
    types = [r.type for r in resources]
    if len(set(types)) != len(types):
        raise UsageError("a resource type is declared twice")
    unknown = set(system_interactions) - _SYSTEM_INTERACTIONS
    if unknown:
        raise UsageError(f"not R4 system interactions: {sorted(unknown)}")
    operations = operations or {}
    if set(operations) - set(types):
        raise UsageError("an operation is declared on a resource type not served")
    declared = [r.to_json() for r in resources]
    for resource in declared:
        named = operations.get(resource["type"])
        if named:
            resource["operation"] = [{"name": o.name, "definition": o.definition} for o in named]
    rest: dict[str, Any] = {
        "mode": "server",
        "security": _security(smart),
        "resource": declared,
    }
    if system_interactions:
        rest["interaction"] = [{"code": code} for code in system_interactions]
    if "search-system" in system_interactions:
        rest["searchParam"] = _search_params(parameters_for(None))
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant_text(date_ns),
        "kind": "instance",
        "software": {"name": software.name, "version": software.version},
        "implementation": {"description": f"{software.name} FHIR API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [rest],
    }


def _security(smart: SmartEndpoints) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": SMART_OAUTH_URIS,
                "extension": [
                    *(
                        [{"url": "authorize", "valueUri": smart.authorize}]
                        if smart.authorize
                        else []
                    ),
                    {"url": "token", "valueUri": smart.token},
                ],
            }
        ],
        "cors": True,
        "service": [
            {
                "coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                "text": "OAuth2 using the SMART on FHIR profile",
            }
        ],
    }
