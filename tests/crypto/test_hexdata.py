"""The one spelling of bytes in the ledger's JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.crypto.hexdata import parse_hex


@given(st.binary(max_size=70))
def test_bytes_round_trip_in_either_case(data: bytes) -> None:
    assert parse_hex("0x" + data.hex()) == data
    assert parse_hex("0x" + data.hex().upper(), len(data)) == data


@pytest.mark.parametrize(
    ("value", "length"),
    [
        ("abcd", None),  # no prefix
        ("0Xabcd", None),
        ("0xabc", None),  # half a byte
        ("0xab cd", None),  # bytes.fromhex alone would skip the space
        ("0x ab", None),
        ("0xabcd\n", None),
        ("0xzz", None),
        ("0xabcd", 3),
        ("0xab cd", 2),  # the right length, one byte short
        (b"0xabcd", None),
        (None, None),
        (1234, None),
    ],
)
def test_anything_else_is_refused(value: object, length: int | None) -> None:
    with pytest.raises(ValueError):
        parse_hex(value, length)
