"""Validating FHIR elements once: a memo of valid top-level elements, by their exact JSON.

Health records repeat themselves: the same LOINC coding, observation category,
interpretation, reference range and patient reference appear in thousands of
resources. fhir.resources validates every nested element in Python, which makes
it the costliest step of writing a record. Validation of an element depends only
on its model and its JSON, so a top-level element whose exact JSON was validated
before is handed to the parent's validation as the model instance already built;
pydantic accepts an instance of the right class as it is. Elements are keyed by
``repr``, which is exact for parsed JSON (two values with one repr are equal) and
three times cheaper than sorted JSON; the same element with its keys in another
order is merely a miss.

Only elements of a resource that passed every check are remembered (the caller
says so with :func:`remember`), so an invalid element is always validated afresh
and reported exactly as before; the caller may skip its own checks of elements
served from the memo, which passed them when first seen. The memo is bounded; it
is emptied when full.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any, NamedTuple

from fhir_core.fhirabstractmodel import FHIRAbstractModel

MAX_ENTRIES = 16_384

_Key = tuple[type[FHIRAbstractModel], str]
_memo: dict[_Key, FHIRAbstractModel] = {}


@cache  # one entry per model class: bounded
def _element_fields(
    model: type[FHIRAbstractModel],
) -> dict[str, tuple[str, type[FHIRAbstractModel], bool]]:
    """JSON name -> ``(attribute, element model, is a list)`` of each complex element.

    Resources nested in resources (contained, Bundle entries) are left out: their
    model depends on their own resourceType, not on the field.
    """
    found = {}
    for name, field in model.model_fields.items():
        element, is_list = _element_model(field.annotation)
        if element is not None and not element.has_resource_base():
            found[field.alias or name] = (name, element, is_list)
    return found


def _element_model(annotation: Any) -> tuple[type[FHIRAbstractModel] | None, bool]:
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is types.UnionType:
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return None, False
            annotation = options[0]
        elif origin is list:
            is_list = True
            (annotation,) = typing.get_args(annotation)
        else:
            break
    get_model = getattr(annotation, "get_model_klass", None)
    if get_model is None:
        return None, False
    element = get_model()
    if not (isinstance(element, type) and issubclass(element, FHIRAbstractModel)):
        return None, False
    return element, is_list


class Validated(NamedTuple):
    instance: FHIRAbstractModel
    #: ``id()`` of each element taken from the memo (alive as long as ``instance``).
    served: frozenset[int]
    unseen: list[tuple[_Key, str, int | None]]


def validate(model: type[FHIRAbstractModel], obj: dict[str, Any]) -> Validated:
    """``model.model_validate(obj)``, reusing elements validated before."""
    given = dict(obj)
    served: list[int] = []
    unseen: list[tuple[_Key, str, int | None]] = []

    def known_or_given(
        element: type[FHIRAbstractModel], value: Any, at: tuple[str, int | None]
    ) -> Any:
        """The instance validated before for ``value``, or ``value`` noted as unseen."""
        key = (element, repr(value))
        known = _memo.get(key)
        if known is None:
            unseen.append((key, *at))
            return value
        served.append(id(known))
        return known

    fields = _element_fields(model)
    # A resource gives a handful of the dozens of elements its model has: walk the JSON.
    for json_name, value in obj.items():
        spec = fields.get(json_name)
        if spec is None:
            continue
        attribute, element, is_list = spec
        if is_list and isinstance(value, list):
            given[json_name] = [
                known_or_given(element, item, (attribute, i)) if isinstance(item, dict) else item
                for i, item in enumerate(value)
            ]
        elif not is_list and isinstance(value, dict):
            given[json_name] = known_or_given(element, value, (attribute, None))
    return Validated(model.model_validate(given), frozenset(served), unseen)


def remember(validated: Validated) -> None:
    """Keep the new elements of a resource that passed every check."""
    if len(_memo) + len(validated.unseen) > MAX_ENTRIES:
        _memo.clear()
    for key, attribute, index in validated.unseen:
        value = getattr(validated.instance, attribute)
        if index is not None:
            value = value[index]
        if isinstance(value, key[0]):
            _memo[key] = value


def clear() -> None:
    _memo.clear()
