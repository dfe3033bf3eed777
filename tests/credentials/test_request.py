"""Presentation requests: predicates, validation, and a signature over every field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from medledger.credentials import zk
from medledger.credentials.errors import BadPresentationRequest, RequestExpired
from medledger.credentials.request import (
    MAX_ISSUERS,
    Predicate,
    PresentationRequest,
    SignedRequest,
)
from medledger.errors import InvalidInput
from tests.ledger.consortium import NETWORK_ID, key

VERIFIER = key("verifier")
ISSUER_A, ISSUER_B = key("issuer-a").address, key("issuer-b").address
NOT_AFTER_MS = 1_800_000_000_000
NONCE = bytes(range(32))


def make(**overrides: Any) -> PresentationRequest:
    terms: dict[str, Any] = {
        "network_id": NETWORK_ID, "verifier": VERIFIER.address, "purpose": "COVERAGE",
        "nonce": NONCE, "format": "anoncreds",
        "predicates": (Predicate.parse("hba1c_x10 < 65"), Predicate.parse("non_smoker >= 1")),
        "disclose": ("checkup_date",), "issuers": (ISSUER_A,), "not_after_ms": NOT_AFTER_MS,
    }  # fmt: skip
    terms.update(overrides)
    return PresentationRequest(**terms)


# -- predicates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hba1c_x10<65", Predicate("hba1c_x10", "<", 65)),
        ("  bmi_x10 >= 185 ", Predicate("bmi_x10", ">=", 185)),
        ("birthdate<=20081120", Predicate("birthdate", "<=", 20081120)),
        ("systolic_mmhg > -5", Predicate("systolic_mmhg", ">", -5)),
        ("hba1c_x10 < 2147483647", Predicate("hba1c_x10", "<", 2**31 - 1)),
        ("hba1c_x10 > -2147483648", Predicate("hba1c_x10", ">", -(2**31))),
    ],
)
def test_a_predicate_parses_and_prints_back(text: str, expected: Predicate) -> None:
    parsed = Predicate.parse(text)
    assert parsed == expected
    # to_json carries predicates as str(p): printing must parse back to the same predicate.
    assert Predicate.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("age >= 18", "unknown claim 'age'"),
        ("hba1c_x10 == 1", "is not a predicate"),
        ("hba1c_x10 != 1", "is not a predicate"),
        ("hba1c_x10 < 6.5", "is not a predicate"),
        ("HbA1c_x10 < 65", "is not a predicate"),
        ("hba1c_x10 < 65 and bmi_x10 < 300", "is not a predicate"),
        ("hba1c_x10 < 99999999999", "is not a predicate"),  # 11 digits: the regex stops it
        ("hba1c_x10 < 9999999999", "32-bit"),  # 10 digits parse, then overflow int32
        ("hba1c_x10 < 2147483648", "32-bit"),
        ("hba1c_x10 > -2147483649", "32-bit"),
        ("", "is not a predicate"),
    ],
)
def test_a_predicate_outside_the_grammar_is_a_bad_request(text: str, match: str) -> None:
    with pytest.raises(BadPresentationRequest, match=match):
        Predicate.parse(text)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("hba1c_x10", "==", 65), "operator"),
        (("hba1c_x10", "<", 6.5), "32-bit"),
        (("hba1c_x10", "<", True), "32-bit"),  # a bool is an int to isinstance
        (("weight_kg", "<", 90), "unknown claim"),
    ],
)
def test_a_predicate_built_directly_is_checked_too(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(BadPresentationRequest, match=match):
        Predicate(*args)


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [
        ("<", 64, True), ("<", 65, False),
        ("<=", 65, True), ("<=", 66, False),
        (">=", 65, True), (">=", 64, False),
        (">", 66, True), (">", 65, False),
    ],
)  # fmt: skip
def test_holds_at_the_boundary_of_each_operator(op: str, value: int, holds: bool) -> None:
    assert Predicate("hba1c_x10", op, 65).holds(value) is holds


# -- request validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"purpose": "MARKETING"}, "PurposeOfUse"),
        ({"purpose": "coverage"}, "PurposeOfUse"),
        ({"format": "jwt-vc"}, "format 'jwt-vc'"),
        ({"nonce": bytes(31)}, "32 bytes"),
        ({"nonce": bytes(33)}, "32 bytes"),
        ({"predicates": (), "disclose": ()}, "at least one"),
        ({"format": "sd-jwt"}, "SD-JWT cannot prove predicates"),
        ({"disclose": ("age",)}, "unknown or repeated"),
        ({"disclose": ("bmi_x10", "bmi_x10")}, "unknown or repeated"),
        ({"issuers": tuple(key(f"i{n}").address for n in range(MAX_ISSUERS + 1))}, "at most 16"),
    ],
    ids=["purpose", "purpose-case", "format", "nonce-31", "nonce-33", "empty",
         "sd-jwt-predicates", "unknown-claim", "repeated-claim", "issuers"],
)  # fmt: skip
def test_a_malformed_request_cannot_be_built(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(BadPresentationRequest, match=match):
        make(**overrides)


def test_the_limits_themselves_are_accepted() -> None:
    make(issuers=tuple(key(f"i{n}").address for n in range(MAX_ISSUERS)))
    make(format="sd-jwt", predicates=(), disclose=("hba1c_x10", "non_smoker"))
    make(predicates=(), disclose=("birthdate",))
    make(disclose=())


# -- signing ---------------------------------------------------------------------


def test_a_signed_request_survives_a_json_round_trip() -> None:
    signed = make().signed_by(VERIFIER)
    back = SignedRequest.from_json(json.loads(signed.dumps()))
    assert back == signed
    assert back.request.digest == signed.request.digest
    assert back.request.id == "0x" + signed.request.digest.hex()
    assert PresentationRequest.from_json(signed.request.to_json()).digest == signed.request.digest


def test_address_case_in_the_json_does_not_change_the_request() -> None:
    signed = make().signed_by(VERIFIER)
    obj = signed.to_json()
    obj["request"]["verifier"] = obj["request"]["verifier"].lower()
    obj["request"]["issuers"] = [a.lower() for a in obj["request"]["issuers"]]
    assert SignedRequest.from_json(obj).request.digest == signed.request.digest


TAMPERED: dict[str, Any] = {
    "purpose": "TREAT",
    "nonce": "0x" + "ff" * 32,
    "format": "sd-jwt",
    "predicates": ["hba1c_x10 < 70", "non_smoker >= 1"],
    "disclose": ["checkup_date", "birthdate"],
    "issuers": [ISSUER_A, ISSUER_B],
    "not_after_ms": NOT_AFTER_MS + 1,
    "verifier": key("someone else").address,
    "network_id": NETWORK_ID + 1,
}


@pytest.mark.parametrize("field", list(TAMPERED))
def test_changing_any_field_breaks_the_signature(field: str) -> None:
    base = make(predicates=()) if field == "format" else make()
    signed = base.signed_by(VERIFIER)
    obj = copy.deepcopy(signed.to_json())
    obj["request"][field] = TAMPERED[field]
    assert obj["request"] != signed.to_json()["request"]
    changed = PresentationRequest.from_json(obj["request"])
    assert changed.digest != signed.request.digest
    with pytest.raises(BadPresentationRequest, match="signed by"):
        SignedRequest.from_json(obj)


@pytest.mark.parametrize(
    ("signature", "match"),
    [
        ("", "request signature"),
        ("0xzz", "request signature"),
        ("0x" + "00" * 65, "request signature"),
        (None, "request signature"),
    ],
)
def test_a_missing_or_malformed_signature_is_a_bad_request(signature: Any, match: str) -> None:
    obj = make().signed_by(VERIFIER).to_json()
    if signature is None:
        del obj["signature"]
    else:
        obj["signature"] = signature
    with pytest.raises(BadPresentationRequest, match=match):
        SignedRequest.from_json(obj)


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([], "expected {request, signature}"),
        ({"signature": "0x00"}, "expected {request, signature}"),
        ({"request": "not an object", "signature": "0x"}, "expected {request, signature}"),
    ],
)
def test_a_signed_request_must_be_an_object_with_a_request(obj: Any, match: str) -> None:
    with pytest.raises(BadPresentationRequest, match=match):
        SignedRequest.from_json(obj)


@pytest.mark.parametrize("field", ["nonce", "verifier", "network_id", "predicates"])
def test_a_request_missing_a_field_is_malformed(field: str) -> None:
    obj = make().signed_by(VERIFIER).to_json()
    del obj["request"][field]
    with pytest.raises(BadPresentationRequest, match="malformed presentation request"):
        SignedRequest.from_json(obj)


@pytest.mark.parametrize(
    ("field", "value"), [("not_after_ms", 2**64), ("not_after_ms", -1), ("network_id", -1)]
)
def test_an_out_of_range_number_is_a_bad_request(field: str, value: int) -> None:
    obj = make().signed_by(VERIFIER).to_json()
    obj["request"][field] = value
    with pytest.raises(BadPresentationRequest):
        SignedRequest.from_json(obj)


@pytest.mark.parametrize("field", ["not_after_ms", "network_id"])
@pytest.mark.parametrize("spelling", [float, str, lambda n: n + 0.5, lambda n: True])
def test_a_number_that_is_not_a_json_integer_is_a_bad_request(
    field: str, spelling: Callable[[int], Any]
) -> None:
    # int() would take each of these, and the signature over the number it makes verifies.
    signed = make().signed_by(VERIFIER)
    obj = signed.to_json()
    obj["request"][field] = spelling(obj["request"][field])
    with pytest.raises(BadPresentationRequest, match=f"{field}: expected an integer"):
        SignedRequest.from_json(obj)
    with pytest.raises(BadPresentationRequest, match=f"{field}: expected an integer"):
        make(**{field: spelling(signed.to_json()["request"][field])})


def test_the_largest_numbers_are_accepted() -> None:
    request = make(not_after_ms=2**64 - 1, network_id=2**256 - 1)
    signed = request.signed_by(VERIFIER)
    assert SignedRequest.from_json(json.loads(signed.dumps())).request.digest == request.digest
    make(not_after_ms=0, network_id=0).signed_by(VERIFIER)


def test_only_the_named_verifier_can_sign() -> None:
    with pytest.raises(InvalidInput, match="signed by the verifier it names") as caught:
        make().signed_by(key("impostor"))
    # A caller's mistake, not a bad request received from someone else.
    assert not isinstance(caught.value, BadPresentationRequest)


def test_check_fresh_allows_the_last_millisecond_and_not_the_next() -> None:
    request = make()
    request.check_fresh(NOT_AFTER_MS - 60_000)
    request.check_fresh(NOT_AFTER_MS)
    with pytest.raises(RequestExpired, match=f"{request.id} expired at {NOT_AFTER_MS}"):
        request.check_fresh(NOT_AFTER_MS + 1)


def test_requests_differing_only_in_nonce_have_different_ids_and_anoncreds_nonces() -> None:
    first, second = make(), make(nonce=bytes(31) + b"\x01")
    assert first.digest != second.digest
    assert zk.nonce_of(first) != zk.nonce_of(second)
    # The same request always yields the same nonce: the proof is checked against it later.
    assert zk.nonce_of(first) == zk.nonce_of(make())
    assert 0 <= int(zk.nonce_of(first)) < 2**80
    assert zk.presentation_request(first, [])["nonce"] == zk.nonce_of(first)
