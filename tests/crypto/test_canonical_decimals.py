"""Decimals kept as written: the one extension of the canonical form to RFC 8785."""

import pickle
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import NotCanonicalizable
from medledger.crypto.json_numbers import JsonDecimal, parse_json

# Numbers with a fraction or an exponent: the parser makes integers ints, which JCS
# writes as their digits (an integer has no precision to keep; "-0" reads as 0).
FRACTION, EXPONENT = r"\.[0-9]{1,6}", r"[eE][+-]?[0-9]{1,3}"
JSON_DECIMAL = rf"-?(0|[1-9][0-9]{{0,8}})({FRACTION}|{EXPONENT}|{FRACTION}{EXPONENT})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"value":100.0}', b'{"value":100.0}'),  # a ClaimResponse amount: precision kept
        ('{"value": 7.20}', b'{"value":7.20}'),
        ('{"value":1e2}', b'{"value":1e2}'),
        ('{"value":1.50E+3}', b'{"value":1.50E+3}'),
        ('{"value":-0.0}', b'{"value":-0.0}'),
        ('{"value":0.0000001}', b'{"value":0.0000001}'),
        ('{"b":1,"a":[2, 3.000]}', b'{"a":[2,3.000],"b":1}'),  # integers and order as JCS
    ],
)
def test_a_number_is_written_as_it_was_read(text: str, expected: bytes) -> None:
    assert canonical_json(parse_json(text)) == expected


def test_a_value_without_decimals_is_exactly_jcs() -> None:
    value = {"b": [1, 2.5, 1e21, "\u2028"], "a": None}
    assert canonical_json(value) == rfc8785.dumps(value)


def test_decimals_survive_the_reference_writer() -> None:
    # A supplementary-plane key sends the value off the fast path.
    value = parse_json('{"\U0001f600":1.10,"\ufb33":[2.0],"a":1e-7}')
    assert canonical_json(value) == '{"a":1e-7,"\U0001f600":1.10,"\ufb33":[2.0]}'.encode()


def test_nesting_beyond_the_fast_writer_is_still_canonical() -> None:
    value: Any = 1.5
    for _ in range(300):
        value = [value]
    assert canonical_json(value) == rfc8785.dumps(value)
    deep = parse_json("[" * 300 + "1.50" + "]" * 300)
    assert canonical_json(deep) == b"[" * 300 + b"1.50" + b"]" * 300


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", " 1.0", "1.", ".5", "01.0", "1e", "+1.0", "0x1"]
)
def test_a_decimal_must_be_a_json_number(text: str) -> None:
    with pytest.raises(NotCanonicalizable, match="no JSON number"):
        JsonDecimal(text)


@pytest.mark.parametrize("text", ["[NaN]", "[Infinity]", "[-Infinity]"])
def test_parse_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(ValueError, match="is not JSON"):
        parse_json(text)


def test_a_decimal_is_its_value_for_arithmetic_and_its_text_for_writing() -> None:
    number = parse_json("[100.0]")[0]
    assert type(number) is JsonDecimal
    assert number == 100 and number + 1 == 101
    assert (str(number), repr(number)) == ("100.0", "JsonDecimal('100.0')")
    assert repr(JsonDecimal("100")) != repr(number)  # the validation memo tells them apart
    copy = pickle.loads(pickle.dumps(number))
    assert type(copy) is JsonDecimal and copy.text == "100.0"


@given(st.from_regex(JSON_DECIMAL, fullmatch=True), st.from_regex(JSON_DECIMAL, fullmatch=True))
def test_any_spelling_round_trips(first: str, second: str) -> None:
    text = f'{{"a":{first},"b":[{second}]}}'
    once = canonical_json(parse_json(text))
    assert once == text.encode()
    assert canonical_json(parse_json(once)) == once


def test_json_nested_too_deeply_is_refused_whatever_the_recursion_limit() -> None:
    import sys

    from medledger.crypto.json_numbers import MAX_DEPTH

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10**6)  # what a program may have done: no longer our guard
    try:
        with pytest.raises(ValueError, match="nested deeper"):
            parse_json("[" * 100_000 + "]" * 100_000)
    finally:
        sys.setrecursionlimit(limit)
    # Many brackets, little nesting: parsed, decimals kept.
    wide = "[" + ",".join(["[[1.0]]"] * MAX_DEPTH) + "]"
    assert parse_json(wide)[0][0][0].text == "1.0"
