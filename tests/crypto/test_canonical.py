import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.crypto.canonical import canonical_json, sha256
from medledger.crypto.errors import NotCanonicalizable
from medledger.errors import InvalidInput
from tests.crypto._vectors import load

VECTORS = Path(__file__).parent / "vectors"
NUMBERS = load("rfc8785_numbers.json")


def from_bits(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


@pytest.mark.parametrize(
    "name",
    [
        "rfc8785_values",  # RFC 8785 section 3.2.2 (literals, numbers, string escapes)
        "rfc8785_sorting",  # RFC 8785 section 3.2.3 (keys sorted by UTF-16 code units)
    ],
)
def test_rfc8785_examples(name: str) -> None:
    parsed = json.loads((VECTORS / f"{name}.input.json").read_bytes())
    expected = (VECTORS / f"{name}.canonical.json").read_bytes()
    assert canonical_json(parsed) == expected


def test_sorting_example_puts_the_emoji_before_u_fb33() -> None:
    # Sorting by code point instead of UTF-16 code unit would swap these two.
    output = (VECTORS / "rfc8785_sorting.canonical.json").read_bytes().decode()
    assert output.index("\U0001f600") < output.index("\ufb33")


@pytest.mark.parametrize(("bits", "expected"), NUMBERS["serialised"])
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    assert canonical_json(from_bits(bits)) == expected.encode()


@pytest.mark.parametrize("bits", NUMBERS["rejected"])
def test_rfc8785_appendix_b_non_finite_numbers(bits: str) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_json(from_bits(bits))


@pytest.mark.parametrize(
    "value",
    [
        -math.inf,
        {1: "non-string key"},
        {"set": {1, 2}},
        b"bytes",
        2**53,
        -(2**53),
        "\ud800",
        {"\udfff": 1},
        object(),
    ],
)
def test_values_outside_i_json_are_rejected(value: Any) -> None:
    with pytest.raises(NotCanonicalizable):
        canonical_json(value)


def test_deep_nesting_is_rejected_not_crashed() -> None:
    value: Any = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(NotCanonicalizable, match="nested too deeply"):
        canonical_json(value)


def test_not_canonicalizable_is_invalid_input() -> None:
    assert issubclass(NotCanonicalizable, InvalidInput)


def test_safe_integer_bounds_are_accepted() -> None:
    assert canonical_json([2**53 - 1, -(2**53) + 1]) == b"[9007199254740991,-9007199254740991]"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_canonical_form_is_a_fixed_point(value: Any) -> None:
    once = canonical_json(value)
    # JCS numbers are IEEE doubles: read them back as floats, as JCS does.
    assert canonical_json(json.loads(once, parse_int=float)) == once


@given(st.dictionaries(st.text(), st.integers(0, 9), max_size=6))
def test_key_order_does_not_matter(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)


def test_sha256_known_answers() -> None:
    assert sha256(b"").hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@given(st.binary())
def test_sha256_matches_hashlib(data: bytes) -> None:
    assert sha256(data) == hashlib.sha256(data).digest()
