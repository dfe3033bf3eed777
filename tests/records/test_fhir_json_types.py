"""FHIR JSON's types are strict: a boolean or a number written as a string is refused.

The models coerce ("true" into True, "7.2" into a Decimal), but the body is stored as
given, and an EHR reading it back would get invalid FHIR. Every boolean and number in
every valid HL7 example is turned into a string in turn; each must be refused, naming
its path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from medledger.crypto.json_numbers import JsonDecimal, parse_json
from medledger.records.errors import InvalidRecord
from medledger.records.fhir import validate_resource
from medledger.records.fhir_sources import expand
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.records.test_fhir import VALID_EXAMPLES, minimal

Path = tuple[str | int, ...]


def _leaves(node: object, path: Path = ()) -> Iterator[Path]:
    """The path of every boolean and number."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    elif isinstance(node, bool | int | JsonDecimal):
        yield path


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _stringified(resource: dict[str, Any], path: Path) -> dict[str, Any]:
    mutated = copy.deepcopy(resource)
    node: Any = mutated
    for part in path[:-1]:
        node = node[part]
    value = node[path[-1]]
    node[path[-1]] = str(value).lower() if isinstance(value, bool) else str(value)
    return mutated


def _mutations() -> Iterator[Any]:
    for name in VALID_EXAMPLES:
        for source, resource in expand(parse_json((EXAMPLES / name).read_bytes()), name):
            assert isinstance(resource, dict)
            for path in _leaves(resource):
                yield pytest.param(source, resource, path, id=f"{source}:{_dotted(path)}")


MUTATIONS = list(_mutations())


def test_the_examples_hold_booleans_integers_and_decimals() -> None:
    kinds = {type(_value(p.values[1], p.values[2])) for p in MUTATIONS}
    assert {bool, int, JsonDecimal} <= kinds
    assert len(MUTATIONS) > 100


def _value(resource: dict[str, Any], path: Path) -> object:
    node: Any = resource
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize(("source", "resource", "path"), MUTATIONS)
def test_a_primitive_written_as_a_string_is_refused(
    source: str, resource: dict[str, Any], path: Path
) -> None:
    validate_resource(resource, source)  # as written, it passes
    with pytest.raises(InvalidRecord) as caught:
        validate_resource(_stringified(resource, path), source)
    # Inside a Bundle the refusal names the nested resource's element.
    assert caught.value.field.endswith(_dotted(path).split(".resource.")[-1])
    assert caught.value.problem.startswith("must be a JSON ")


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"active": "true"}, "active", "must be a JSON boolean"),
        ({"active": 1}, "active", "must be a JSON boolean"),
        ({"multipleBirthInteger": 2.0}, "multipleBirthInteger", "must be a JSON integer"),
        ({"multipleBirthInteger": JsonDecimal("2.0")}, "multipleBirthInteger",
         "must be a JSON integer"),
        ({"multipleBirthInteger": True}, "multipleBirthInteger", "must be a JSON integer"),
        ({"birthDate": 0}, "birthDate", "must be a JSON string"),
        # The models refuse what is not a string where a string belongs.
        ({"name": [{"given": ["Ann", True]}]}, "name[0].given[1]",
         "Input should be a valid string (string_type)"),
    ],
)  # fmt: skip
def test_wrong_json_types_are_refused(body: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_resource({**minimal("Patient"), **body}, "p.json")
    assert (caught.value.field, caught.value.problem) == (field, problem)


@pytest.mark.parametrize("value", [7, 7.2, JsonDecimal("7.20"), JsonDecimal("1e2")])
def test_any_json_number_is_a_decimal(value: object) -> None:
    quantity = {"valueQuantity": {"value": value, "unit": "mmol/L"}}
    observation = {**minimal("Observation"), **quantity}
    assert validate_resource(observation, "o.json").body["valueQuantity"]["value"] is value


def test_null_items_paired_with_extensions_stay_valid() -> None:
    name = {"given": ["Ann", None], "_given": [None, {"extension": [
        {"url": "http://example.org/x", "valueString": "y"}]}]}  # fmt: skip
    validate_resource({**minimal("Patient"), "name": [name]}, "p.json")
