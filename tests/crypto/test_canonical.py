import enum
import hashlib
import json
import math
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from medledger.crypto import canonical
from medledger.crypto.canonical import _fast_path_ok, canonical_json, sha256
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


@pytest.mark.parametrize("value", [123456789012345678901, -(2**60) - 7])
def test_a_refusal_never_quotes_the_number_refused(value: int) -> None:
    """A record's number (a lab value, an identifier) must not reach a log through the
    refusal, as the page's refusal does not either."""
    with pytest.raises(NotCanonicalizable) as refused:
        canonical_json({"valueQuantity": {"value": value}})
    assert str(refused.value) == "not canonicalizable: an integer beyond 2^53"


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


# --- the stdlib fast path must give rfc8785's bytes, and be taken for records ---

FHIR_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "3f2b8c1e-6d4a-4e8b-9c1a-2b3c4d5e6f70",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}], "text": "Temp"},
    "subject": {"reference": "Patient/9a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"},
    "effectiveDateTime": "2024-03-14T09:26:53Z",
    "valueQuantity": {"value": 37.2, "unit": "°C", "code": "Cel"},
    "referenceRange": [{"low": {"value": 36}, "high": {"value": 37.5}}],
    "note": [{"text": 'Patient nüchtern, "febrile"\n\u2028ok'}],
    "extension": [{"url": "x", "valueBoolean": True}, {"url": "y", "valueString": None}],
}


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "fast"),
    [
        # floats: Python repr and ECMAScript agree on non-integral 1e-4 <= |x| < 1e16
        (1e-4, True),
        (-1e-4, True),
        (math.nextafter(1e-4, 0), False),  # Python 9.99...e-05, JCS 0.0000999...
        (1e-7, False),  # Python 1e-07, JCS 1e-7
        (5e-324, False),
        (4503599627370495.5, True),  # the largest non-integral floats
        (0.1 + 0.2, True),
        # integral floats are written as the integer they equal, up to 2**53
        (37.0, True),
        (0.0, True),
        (-0.0, True),  # JCS writes 0
        (float(2**53 - 1), True),
        (-float(2**53 - 1), True),
        (float(2**53), False),
        (1e16, False),  # Python 1e+16, JCS 10000000000000000
        (1e21, False),
        (math.inf, False),
        (math.nan, False),
        # ints: the I-JSON safe range only
        (2**53 - 1, True),
        (-(2**53) + 1, True),
        (2**53, False),
        (True, True),
        (None, True),
        (Level.HIGH, False),  # subclasses are left to rfc8785
        # keys: code-point order equals UTF-16 order unless supplementary chars meet U+E000..
        ({"b": 1, "a": 2}, True),
        ({"é": 1, "\uffff": 2, "z": 3}, True),
        ({"\U0001f600": 1, "\ufb33": 2}, False),  # the orders disagree here
        ({"\U0001f600": 1}, False),  # the simple rule does not look at the other keys
        ({1: "a"}, False),
        ({Text("a"): 1}, False),
        (OrderedDict(a=1), False),
        # strings and containers
        ('\x00\x1f\x7f\u2028\u2029"\\', True),
        ("\ud800", True),  # found by the UTF-8 encode, not the scan
        (("a", [1, 2.5], {"t": ()}), True),
        ({1, 2}, False),
        (b"bytes", False),
        (FHIR_OBSERVATION, True),
    ],
    ids=repr,
)
def test_fast_path_boundaries(value: Any, fast: bool) -> None:
    assert _fast_path_ok(value) is fast
    assert_same_as_rfc8785(value)


def test_typical_record_never_reaches_rfc8785(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: Any) -> bytes:
        raise AssertionError("slow path taken")

    expected = rfc8785.dumps(FHIR_OBSERVATION)
    monkeypatch.setattr(canonical.rfc8785, "dumps", refuse)
    assert canonical_json(FHIR_OBSERVATION) == expected
    with pytest.raises(AssertionError, match="slow path"):
        canonical_json({"emoji": {"\U0001f600": 1}})


def test_integral_floats_are_not_rewritten_in_the_callers_value() -> None:
    value = {"a": [1.0, {"b": -0.0}], "c": 2.5}
    assert canonical_json(value) == b'{"a":[1,{"b":0}],"c":2.5}'
    assert value == {"a": [1.0, {"b": -0.0}], "c": 2.5}
    assert type(value["a"][0]) is float


def test_circular_value_is_rejected_as_too_deep() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(NotCanonicalizable, match="nested too deeply"):
        canonical_json(value)


def assert_same_as_rfc8785(value: Any) -> None:
    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, RecursionError):
        with pytest.raises(NotCanonicalizable):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


TRICKY_FLOATS = [
    0.0, -0.0, 1.0, -1.0, 37.0, 1e15, 2.0**52, 2.0**53 - 1, 2.0**53, 1e16, 1e21, 1e22, 1e23,
    1e-4, 9.999999999999999e-05, 1e-6, 1e-7, 1e-9, 1e-10, 5e-324, 2.2250738585072014e-308,
    1.7976931348623157e308, 0.1, 0.30000000000000004, 123456789.123, 4503599627370495.5,
    math.inf, -math.inf, math.nan,
]  # fmt: skip
TRICKY_CHARS = '\x00\x08\x1f "\\/\x7f\x80\u2028\u2029\ud7ff\ue000\ufb33\uffff\U00010000\U0001f600'

tricky_text = st.text(st.sampled_from(TRICKY_CHARS) | st.characters(), max_size=8)
# Surrogates are drawn only sometimes: one anywhere makes the whole value rejected.
any_text = tricky_text | st.text(st.characters(codec=None, categories=["Cs"]), max_size=2)
tricky_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.integers(-(2**60), 2**60)
    | st.floats()
    | st.integers(-(2**54), 2**54).map(float)
    | st.sampled_from(TRICKY_FLOATS)
    | any_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(tricky_text, inner, max_size=5)
    ),
    max_leaves=25,
)


@given(tricky_values)
@example({"\U0001f600": 1, "\ufb33": 2, "a": 1.0})
@example([1e-4, 1e16, -0.0, 2.0**53, "\x7f\u2028"])
def test_matches_rfc8785_or_both_reject(value: Any) -> None:
    assert_same_as_rfc8785(value)


def test_sha256_known_answers() -> None:
    assert sha256(b"").hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@given(st.binary())
def test_sha256_matches_hashlib(data: bytes) -> None:
    assert sha256(data) == hashlib.sha256(data).digest()
