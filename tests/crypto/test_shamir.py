"""Shamir secret sharing: field arithmetic, a hand-computed vector, recovery and hiding."""

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto.errors import InsufficientShares, InvalidShare
from medledger.crypto.shamir import Share, combine, gf_inv, gf_mul, split
from medledger.errors import UsageError
from tests.crypto._vectors import load

VECTORS: dict[str, Any] = load("shamir_gf256.json")
elements = st.integers(min_value=0, max_value=255)
nonzero = st.integers(min_value=1, max_value=255)


def slow_mul(a: int, b: int) -> int:
    """Shift-and-add multiplication modulo 0x11B, one bit of b at a time."""
    product = 0
    while b:
        if b & 1:
            product ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11B
        b >>= 1
    return product


def rows(*values: bytes) -> Callable[[int], bytes]:
    """A randbytes stand-in that hands out fixed coefficient rows in order."""
    pending: Iterator[bytes] = iter(values)

    def randbytes(n: int) -> bytes:
        row = next(pending)
        assert len(row) == n
        return row

    return randbytes


# ---- the field ---------------------------------------------------------------


def test_table_multiplication_matches_reference_everywhere() -> None:
    for a in range(256):
        for b in range(256):
            assert gf_mul(a, b) == slow_mul(a, b)


@pytest.mark.parametrize("product", VECTORS["products"])
def test_fips197_products(product: dict[str, str]) -> None:
    a, b = int(product["a"], 16), int(product["b"], 16)
    assert gf_mul(a, b) == int(product["product"], 16)


@given(elements, elements, elements)
def test_multiplication_is_associative_and_commutative(a: int, b: int, c: int) -> None:
    assert gf_mul(gf_mul(a, b), c) == gf_mul(a, gf_mul(b, c))
    assert gf_mul(a, b) == gf_mul(b, a) == slow_mul(b, a)


@given(elements, elements, elements)
def test_multiplication_distributes_over_addition(a: int, b: int, c: int) -> None:
    assert gf_mul(a, b ^ c) == gf_mul(a, b) ^ gf_mul(a, c)


@given(elements)
def test_identities(a: int) -> None:
    assert gf_mul(a, 1) == a
    assert gf_mul(a, 0) == 0


@given(nonzero)
def test_inverse(a: int) -> None:
    assert slow_mul(a, gf_inv(a)) == 1


def test_zero_has_no_inverse() -> None:
    with pytest.raises(ZeroDivisionError):
        gf_inv(0)


# ---- known answer ---------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_split_known_answer(case: dict[str, Any]) -> None:
    coefficients = [bytes.fromhex(row) for row in case["coefficient_rows"]]
    shares = split(
        bytes.fromhex(case["secret"]), case["threshold"], case["count"], rows(*coefficients)
    )
    expected = [Share(s["index"], bytes.fromhex(s["value"])) for s in case["shares"]]
    assert shares == expected


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_combine_known_answer_from_every_subset(case: dict[str, Any]) -> None:
    shares = [Share(s["index"], bytes.fromhex(s["value"])) for s in case["shares"]]
    for subset in itertools.combinations(shares, case["threshold"]):
        assert combine(subset, case["threshold"]).hex() == case["secret"]


# ---- recovery and hiding ---------------------------------------------------------


@st.composite
def schemes(draw: st.DrawFn, max_count: int = 12) -> tuple[int, int]:
    count = draw(st.integers(min_value=1, max_value=max_count))
    threshold = draw(st.integers(min_value=1, max_value=count))
    return threshold, count


@given(secret=st.binary(min_size=1, max_size=40), scheme=schemes(), data=st.data())
def test_any_threshold_shares_recover_the_secret(
    secret: bytes, scheme: tuple[int, int], data: st.DataObject
) -> None:
    threshold, count = scheme
    shares = split(secret, threshold, count)
    assert [s.index for s in shares] == list(range(1, count + 1))
    chosen = data.draw(st.permutations(shares))[:threshold]
    assert combine(chosen, threshold) == secret


@given(secret=st.binary(min_size=1, max_size=40), scheme=schemes(), data=st.data())
def test_fewer_than_threshold_shares_are_refused(
    secret: bytes, scheme: tuple[int, int], data: st.DataObject
) -> None:
    threshold, count = scheme
    chosen = data.draw(st.permutations(split(secret, threshold, count)))[: threshold - 1]
    with pytest.raises(InsufficientShares, match=f"^have {threshold - 1} of {threshold} "):
        combine(chosen, threshold)


def _poly_mul(p: list[int], q: list[int]) -> list[int]:
    product = [0] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            product[i + j] ^= gf_mul(a, b)
    return product


def interpolate(points: list[tuple[int, int]]) -> list[int]:
    """Coefficients (lowest degree first) of the polynomial of degree < len(points) through them."""
    coefficients = [0] * len(points)
    for i, (xi, yi) in enumerate(points):
        basis, denominator = [1], 1
        for j, (xj, _) in enumerate(points):
            if j != i:
                basis = _poly_mul(basis, [xj, 1])  # (x - xj) == (x + xj) here
                denominator = gf_mul(denominator, xi ^ xj)
        scale = gf_mul(yi, gf_inv(denominator))
        for degree, value in enumerate(basis):
            coefficients[degree] ^= gf_mul(scale, value)
    return coefficients


@settings(max_examples=30, deadline=None)
@given(secret=st.binary(min_size=1, max_size=1), scheme=schemes(max_count=8), data=st.data())
def test_fewer_than_threshold_shares_fit_every_secret(
    secret: bytes, scheme: tuple[int, int], data: st.DataObject
) -> None:
    threshold, count = scheme
    shares = split(secret, threshold, count)
    seen = data.draw(st.permutations(shares))[: threshold - 1]
    for candidate in range(256):
        # The polynomial through (0, candidate) and the seen points has degree
        # < threshold, so it is one the dealer could have drawn: with these
        # coefficients as its randomness, split hands out exactly the seen shares.
        points = [(0, candidate), *((s.index, s.value[0]) for s in seen)]
        coefficients = interpolate(points)
        assert coefficients[0] == candidate
        randomness = rows(*(bytes([c]) for c in coefficients[1:]))
        replay = split(bytes([candidate]), threshold, count, randomness)
        for share in seen:
            assert replay[share.index - 1] == share


def test_threshold_one_shares_are_the_secret() -> None:
    assert all(s.value == b"key" for s in split(b"key", 1, 5))
    assert combine([Share(4, b"key")], 1) == b"key"


def test_maximum_share_count() -> None:
    shares = split(b"\x01\x02", 255, 255)
    assert combine(shares[::-1], 255) == b"\x01\x02"


# ---- negative cases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "count"), [(0, 3), (-1, 3), (4, 3), (2, 256), (256, 256), (1, 0)]
)
def test_split_rejects_bad_parameters(threshold: int, count: int) -> None:
    with pytest.raises(UsageError):
        split(b"secret", threshold, count)


def test_split_rejects_empty_secret() -> None:
    with pytest.raises(UsageError, match="empty"):
        split(b"", 2, 3)


def test_split_rejects_short_randomness() -> None:
    with pytest.raises(UsageError, match="randbytes"):
        split(b"secret", 2, 3, lambda n: bytes(n - 1))


SHARES = split(b"secret", 2, 3)


def test_duplicate_identical_shares_count_once() -> None:
    with pytest.raises(InsufficientShares, match=r"^have 1 of 2 required shares$"):
        combine([SHARES[0], SHARES[0]], 2)


def test_duplicate_index_with_different_value_is_invalid() -> None:
    forged = Share(SHARES[0].index, bytes(len(SHARES[0].value)))
    with pytest.raises(InvalidShare, match="index 1"):
        combine([SHARES[0], SHARES[1], forged], 2)


@pytest.mark.parametrize("index", [0, -1, 256])
def test_index_out_of_range_is_invalid(index: int) -> None:
    with pytest.raises(InvalidShare, match=f"index {index}"):
        combine([SHARES[0], Share(index, SHARES[1].value)], 2)


@pytest.mark.parametrize("value", [b"", b"secre", b"secrets"])
def test_mismatched_lengths_are_invalid(value: bytes) -> None:
    with pytest.raises(InvalidShare, match="bytes, expected 6"):
        combine([SHARES[0], Share(2, value)], 2)


def test_empty_first_share_is_invalid() -> None:
    with pytest.raises(InvalidShare):
        combine([Share(1, b""), Share(2, b"")], 2)


def test_no_shares_are_insufficient() -> None:
    with pytest.raises(InsufficientShares, match=r"^have 0 of 2 required shares$"):
        combine([], 2)


@pytest.mark.parametrize("threshold", [0, 256])
def test_combine_rejects_bad_threshold(threshold: int) -> None:
    with pytest.raises(UsageError):
        combine(SHARES, threshold)


def test_extra_shares_beyond_threshold_are_not_used() -> None:
    corrupted = Share(SHARES[2].index, bytes(len(SHARES[2].value)))
    assert combine([SHARES[0], SHARES[1], corrupted], 2) == b"secret"


def test_share_repr_does_not_show_the_value() -> None:
    assert repr(Share(3, b"\xde\xad\xbe\xef")) == "Share(index=3)"
