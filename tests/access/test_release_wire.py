"""The wire forms a reader's client and a custodian's route share: a released share
round-trips, and malformed input is refused with what is wrong."""

from __future__ import annotations

import pytest

from medledger.access.custodian import ReleasedShares
from medledger.access.release_wire import ask_from_json, share_from_json, share_to_json
from medledger.errors import InvalidInput

CUSTODIAN = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_released_shares_round_trip() -> None:
    shares = ReleasedShares(CUSTODIAN, bytes(range(32)), (b"\x01sealed share", b"\x02another"))
    assert share_from_json(share_to_json(shares)) == shares


@pytest.mark.parametrize(
    ("change", "why"),
    [({"sealed": ["not base64!"]}, "malformed"), ({"sealed": "eA=="}, "expected a list"),
     ({"receipt": "0x12"}, "32"), ({"custodian": CUSTODIAN.lower()[:-1]}, "address")],
)  # fmt: skip
def test_malformed_shares_are_refused(change: dict[str, object], why: str) -> None:
    wire = {**share_to_json(ReleasedShares(CUSTODIAN, bytes(32), (b"x",))), **change}
    with pytest.raises(InvalidInput, match=why):
        share_from_json(wire)


def test_a_release_request_missing_its_terms_is_refused() -> None:
    release = {"grant": "0x" + "11" * 32, "records": "0x" + "22" * 32, "count": 1,
               "not_after_ms": 1, "signature": "0x" + "33" * 65}  # fmt: skip
    with pytest.raises(InvalidInput, match="reader_key"):
        ask_from_json({"release": release, "committed": [{}]}, 7)


@pytest.mark.parametrize(
    ("committed", "count", "why"),
    [([], 1, "a list of 1 to"), ({}, 1, "a list of 1 to"), ([{}] * 151, 151, "a list of 1 to"),
     ([{}], -1, "non-negative"), ([{}], True, "non-negative")],
)  # fmt: skip
def test_a_release_request_for_no_or_too_many_records_is_refused(
    committed: object, count: object, why: str
) -> None:
    release = {"grant": "0x" + "11" * 32, "records": "0x" + "22" * 32, "count": count,
               "reader_key": "0x" + "44" * 32, "not_after_ms": 1,
               "signature": "0x" + "33" * 65}  # fmt: skip
    with pytest.raises(InvalidInput, match=why):
        ask_from_json({"release": release, "committed": committed}, 7)
