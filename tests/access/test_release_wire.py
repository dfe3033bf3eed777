"""The wire forms a reader's client and a custodian's route share: a released share
round-trips, and malformed input is refused with what is wrong."""

from __future__ import annotations

import pytest

from medledger.access.custodian import ReleasedShare
from medledger.access.release_wire import ask_from_json, share_from_json, share_to_json
from medledger.errors import InvalidInput

CUSTODIAN = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_a_released_share_round_trips() -> None:
    share = ReleasedShare(CUSTODIAN, bytes(range(32)), b"\x01sealed share")
    assert share_from_json(share_to_json(share)) == share


@pytest.mark.parametrize(
    ("change", "why"),
    [({"sealed": "not base64!"}, "malformed"), ({"receipt": "0x12"}, "32"),
     ({"custodian": CUSTODIAN.lower()[:-1]}, "address")],
)  # fmt: skip
def test_a_malformed_share_is_refused(change: dict[str, str], why: str) -> None:
    wire = {**share_to_json(ReleasedShare(CUSTODIAN, bytes(32), b"x")), **change}
    with pytest.raises(InvalidInput, match=why):
        share_from_json(wire)


def test_a_release_request_missing_its_terms_is_refused() -> None:
    release = {"grant": "0x" + "11" * 32, "record": "0x" + "22" * 32, "not_after_ms": 1,
               "signature": "0x" + "33" * 65}  # fmt: skip
    with pytest.raises(InvalidInput, match="reader_key"):
        ask_from_json({"release": release, "committed": {}}, 7)
