"""Policies travel as FHIR R4 Consent resources and come back unchanged."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from medledger.access.consent import (
    APPROVERS_URL,
    CONDITION_URL,
    MAX_DURATION_URL,
    from_consent,
    to_consent,
)
from medledger.access.errors import InvalidPolicy
from medledger.access.policy import Policy, default_policy
from medledger.access.rules import KOf, Patient, Person, Role
from medledger.crypto.keys import to_checksum_address
from medledger.records.fhir import validate_resource

PATIENT = to_checksum_address(b"\x11" * 20)
DOCTOR = to_checksum_address(b"\x22" * 20)
POLICY = Policy(
    KOf(2, (Patient(), Person(DOCTOR), Role("nurse"))),
    frozenset({"TREAT", "ETREAT"}),
    86400,
    "request.requester_role != 'officer'",
)


@pytest.mark.parametrize("policy", [POLICY, default_policy()], ids=["two of three", "default"])
def test_a_policy_round_trips_through_a_valid_consent(policy: Policy) -> None:
    consent = to_consent(policy, PATIENT, "labs")
    validate_resource(consent, "consent.json")
    assert from_consent(consent) == ("labs", policy)


def _without(url: str) -> dict[str, Any]:
    consent = to_consent(POLICY, PATIENT, "labs")
    extensions = consent["provision"]["extension"]
    consent["provision"]["extension"] = [e for e in extensions if e["url"] != url]
    return consent


def test_a_consent_without_an_approver_rule_means_the_patient_alone() -> None:
    _, policy = from_consent(_without(APPROVERS_URL))
    assert policy.approvers == Patient()


def test_a_consent_without_a_condition_has_none() -> None:
    assert from_consent(_without(CONDITION_URL))[1].condition is None


def _broken(change: str) -> dict[str, Any]:
    consent = copy.deepcopy(to_consent(POLICY, PATIENT, "labs"))
    provision = consent["provision"]
    if change == "deny":
        provision["type"] = "deny"
    elif change == "inactive":
        consent["status"] = "inactive"
    elif change == "unknown category":
        provision["class"][0]["code"] = "astrology"
    elif change == "no duration":
        provision["extension"] = [e for e in provision["extension"] if e["url"] != MAX_DURATION_URL]
    elif change == "bad approvers":
        provision["extension"][0]["valueString"] = '{"k_of": 5, "of": [{"patient": true}]}'
    elif change == "approvers not json":
        provision["extension"][0]["valueString"] = "two of three"
    elif change == "no purpose":
        provision["purpose"] = []
    return consent


@pytest.mark.parametrize(
    "change",
    [
        "deny",
        "inactive",
        "unknown category",
        "no duration",
        "bad approvers",
        "approvers not json",
        "no purpose",
    ],
)
def test_a_consent_we_cannot_honour_exactly_is_refused(change: str) -> None:
    with pytest.raises(InvalidPolicy):
        from_consent(_broken(change))


def test_a_resource_that_is_not_a_consent_is_refused() -> None:
    with pytest.raises(InvalidPolicy, match="not a Consent"):
        from_consent({"resourceType": "Patient", "gender": "female"})
    with pytest.raises(InvalidPolicy, match="status"):
        from_consent({**to_consent(POLICY, PATIENT, "labs"), "status": "not-a-status"})
