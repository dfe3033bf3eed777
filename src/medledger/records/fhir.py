"""FHIR R4 validation: the gate every health record passes before it is stored.

``fhir.resources`` has no R4 package; its R4B models (a compatible revision of R4)
check structure, data types and most cardinality, but not the spec's *required* code
bindings (fhir_codes.py adds them: a wrong status changes what a record
means), and they are lenient where JSON is concerned: null, empty, stringified or
Python-named elements pass. The body is stored as given, so those are closed here.
Errors name the file, resource, field path and problem, never a value: a rejected
record still holds health data, and errors end up in logs. :func:`validate_resource`
is on the ingest hot path: one pydantic pass (elements seen before are not validated
again, see fhir_memo.py), one walk over what it built.
"""

from __future__ import annotations

import decimal
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, NamedTuple

from fhir.resources.R4B import fhirtypes, get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from medledger.crypto.json_numbers import JsonDecimal
from medledger.records import fhir_memo
from medledger.records.categories import category_of
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_codes import check_codes

__all__ = ["Resource", "is_resource_type", "resource_label", "resource_types", "validate_resource"]

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# JSON keys are shown in field paths; a key that is no plausible element name is masked.
_ELEMENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ABSTRACT = frozenset({"Resource", "DomainResource"})
_PYTHON_ONLY_KEYS = ("resource_type", "fhir_comments")  # fhir.resources accepts them


@dataclass(frozen=True)
class Resource:
    """A validated resource: where it came from, what it is, and its JSON as given."""

    source: str
    resource_type: str
    fhir_id: str | None
    category: str
    body: dict[str, Any]


@lru_cache(maxsize=1024)  # bounded: resourceType values come from untrusted input
def _model(resource_type: str) -> type[FHIRAbstractModel] | None:
    """The R4B model of a concrete resource type, or None (datatypes are models too)."""
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        return None
    if resource_type in _ABSTRACT or not model.has_resource_base():
        return None
    return model


def validate_resource(obj: object, source: str) -> Resource:
    """Validate one resource; raise :class:`InvalidRecord` naming the first problem."""
    if not isinstance(obj, dict):
        raise InvalidRecord(source, "Resource", "", "is not a JSON object")
    resource_type = obj.get("resourceType")
    if not isinstance(resource_type, str) or (model := _model(resource_type)) is None:
        problem = "required" if resource_type is None else "unknown resource type"
        raise InvalidRecord(source, "Resource", "resourceType", problem)
    label = resource_label(resource_type, obj)
    try:
        validated = fhir_memo.validate(model, obj)
    except ValidationError as exc:
        raise _from_pydantic(exc, source, label) from None
    except Exception:  # untrusted input must never crash a batch
        # fhir_core crashes on some invalid input instead of reporting it: KeyError for
        # a nested resource of unknown type (the STU3 ProcedureRequest in ``contained``),
        # AttributeError for a url that is not a string. Find the first kind ourselves.
        field = _unknown_nested_type(obj)
        problem = "unknown resource type" if field else "could not be validated"
        raise InvalidRecord(source, label, field, problem) from None
    _check_structure(validated.instance, obj, source, label, validated.served)
    check_codes(obj, resource_type, "", source, label)
    fhir_memo.remember(validated)
    category = category_of(resource_type, obj)
    return Resource(source, resource_type, obj.get("id"), category, obj)


def resource_label(resource_type: str, obj: Mapping[str, Any]) -> str:
    """How errors name a resource: ``Type/id``, or the type alone if the id is not valid."""
    fhir_id = obj.get("id")
    valid_id = isinstance(fhir_id, str) and _FHIR_ID.fullmatch(fhir_id)
    return f"{resource_type}/{fhir_id}" if valid_id else resource_type


def _path(parts: Sequence[str | int]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part if _ELEMENT_NAME.fullmatch(part) else "<invalid name>"
            path += f".{name}" if path else name
    return path


def _from_pydantic(exc: ValidationError, source: str, label: str) -> InvalidRecord:
    # errors() messages, unlike str(exc), carry no input_value; should one still quote
    # the input, it is dropped. "root" is fhir_core's name for a whole resource.
    error = exc.errors()[0]
    parts = [part for part in error["loc"] if part != "root"]
    message, value = error["msg"], error.get("input")
    if isinstance(value, str) and value and value in message:
        message = "invalid value"
    return InvalidRecord(source, label, _path(parts), f"{message} ({error['type']})")


def _unknown_nested_type(obj: object) -> str:
    """Path of the first nested resourceType that names no resource (iterative: input
    nesting depth is untrusted)."""
    stack: list[tuple[list[str | int], object]] = [([], obj)]
    while stack:
        parts, node = stack.pop()
        if isinstance(node, dict):
            nested_type = node.get("resourceType")
            if (
                parts
                and "resourceType" in node
                and not (isinstance(nested_type, str) and _model(nested_type))
            ):
                return _path([*parts, "resourceType"])
            stack.extend(([*parts, key], value) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(([*parts, i], item) for i, item in reversed(list(enumerate(node))))
    return ""


class _Fields(NamedTuple):
    required: tuple[str, ...]
    aliases: dict[str, str]  # field name -> JSON name
    is_resource: bool
    kinds: dict[str, _JsonKind]  # primitive field name -> the JSON type its value must have


@cache  # one entry per model class: bounded
def _fields(model: type[FHIRAbstractModel]) -> _Fields:
    aliases = {name: field.alias or name for name, field in model.model_fields.items()}
    required = tuple(name for name, field in model.model_fields.items() if field.is_required())
    kinds = {
        name: kind
        for name, field in model.model_fields.items()
        if (kind := _json_kind(field.annotation)) is not None
    }
    return _Fields(required, aliases, model.has_resource_base(), kinds)


class _JsonKind(NamedTuple):
    name: str
    types: frozenset[type]


_BOOLEAN = _JsonKind("boolean", frozenset({bool}))
_INTEGER = _JsonKind("integer", frozenset({int}))
# Python callers may build bodies with floats; parsed JSON holds JsonDecimal.
_NUMBER = _JsonKind("number", frozenset({int, float, JsonDecimal}))
_STRING = _JsonKind("string", frozenset({str}))


def _json_kind(annotation: Any) -> _JsonKind | None:
    """The JSON type of a primitive element (None for complex ones). The models coerce
    ("true" into True, "7.2" into a Decimal), FHIR JSON does not: R4 writes booleans and
    numbers as JSON booleans and numbers, every other primitive as a string."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return None  # fhir_comments: str or list, never a FHIR element
            annotation = options[0]
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            break
    if annotation is bool:
        return _BOOLEAN
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    base = typing.get_args(annotation)[0]
    if base is int:
        return _INTEGER
    return _NUMBER if base is decimal.Decimal else _STRING


def _check_kind(
    kind: _JsonKind, given: object, source: str, label: str, parts: tuple[str | int, ...]
) -> None:
    if isinstance(given, list):
        for i, item in enumerate(given):
            if type(item) not in kind.types and item is not None:  # nulls: see the caller
                raise InvalidRecord(
                    source, label, _path((*parts, i)), f"must be a JSON {kind.name}"
                )
    elif type(given) not in kind.types:
        raise InvalidRecord(source, label, _path(parts), f"must be a JSON {kind.name}")


def _check_structure(
    instance: FHIRAbstractModel,
    body: object,
    source: str,
    label: str,
    checked: frozenset[int] = frozenset(),
) -> None:
    """Walk the validated model alongside its JSON to close the models' gaps: a 1..1 or
    1..* element given as null, {} or []; null or empty elements anywhere (R4 JSON
    rules, ele-1); JSON *text* where an object belongs (they parse it); Python names
    as keys (class_fhir, status__ext). Elements whose ``id()`` is in ``checked`` passed
    this walk before (they come from the validation memo)."""
    stack: list[tuple[FHIRAbstractModel, object, tuple[str | int, ...]]] = [(instance, body, ())]
    while stack:
        node, json_node, parts = stack.pop()
        if not isinstance(json_node, dict):
            raise InvalidRecord(source, label, _path(parts), "is not a JSON object")
        required, aliases, is_resource, kinds = _fields(type(node))
        fields_set = node.model_fields_set
        if not fields_set and not is_resource:
            raise InvalidRecord(source, label, _path(parts), "must not be empty")
        if is_resource and type(node).__name__ in _ABSTRACT:  # contained: [{"id": "a"}]
            problem = "unknown resource type" if "resourceType" in json_node else "required"
            raise InvalidRecord(source, label, _path((*parts, "resourceType")), problem)
        for name in required:
            if getattr(node, name) in (None, []):
                raise InvalidRecord(source, label, _path((*parts, aliases[name])), "required")
        for key in _PYTHON_ONLY_KEYS:
            if key in json_node:
                raise InvalidRecord(source, label, _path((*parts, key)), "unknown element")
        values = node.__dict__
        for name in fields_set:  # only what the JSON gave: most fields are None
            value, alias = values[name], aliases[name]
            if alias not in json_node:  # given under its Python name
                raise InvalidRecord(source, label, _path((*parts, name)), "unknown element")
            if value is None:
                raise InvalidRecord(source, label, _path((*parts, alias)), "must not be null")
            if (kind := kinds.get(name)) is not None:
                _check_kind(kind, json_node[alias], source, label, (*parts, alias))
            if isinstance(value, list):
                items = json_node[alias]
                stack.extend(
                    (item, items[i], (*parts, alias, i))
                    for i, item in enumerate(value)
                    if isinstance(item, FHIRAbstractModel) and id(item) not in checked
                )
            elif isinstance(value, FHIRAbstractModel) and id(value) not in checked:
                stack.append((value, json_node[alias], (*parts, alias)))


@cache
def resource_types() -> frozenset[str]:
    """Every resource type :func:`validate_resource` knows. Slow once: it builds every model."""
    names = (name.removesuffix("Type") for name in dir(fhirtypes) if name.endswith("Type"))
    return frozenset(name for name in names if is_resource_type(name))


def is_resource_type(name: str) -> bool:
    """Whether :func:`validate_resource` knows resources of this type: one of
    :func:`resource_types`, found without building the others' models."""
    return _model(name) is not None
