"""The access contracts block by block: the seed's case, then every attack refused by name."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.audit import break_glass_notices
from medledger.crypto.keys import PrivateKey
from tests.access.chain import (
    DR_A,
    DR_B,
    GUARDIAN,
    HOUR_NS,
    LAB,
    LAB_RECORD,
    NURSE_A,
    PATIENT,
    PHARMACIST_A,
    STRANGER,
    TWO_OF_THREE,
    Ledger,
    written,
)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path)
    ledger.ok(PATIENT, access.SET_POLICY, {"category": "labs", "policy": TWO_OF_THREE})
    yield ledger
    ledger.store.close()


def test_the_seed_case_two_of_three_approve_and_every_read_is_receipted(ledger: Ledger) -> None:
    code, request_id = ledger.request()
    assert code is None
    assert ledger.grant(request_id) is None
    assert ledger.approve(request_id, ledger.approval(request_id, PATIENT),
                          ledger.approval(request_id, DR_A)) is None  # fmt: skip
    grant = ledger.grant(request_id)
    assert grant["status"] == "active" and grant["requester"] == DR_B.address
    assert grant["policies"] == {"labs": 1}
    assert ledger.receipt(request_id, custodian=0) is None
    assert ledger.receipt(request_id, custodian=1) is None
    audit = [ledger.store.get(access.AUDIT_NS, access.audit_key(PATIENT.address, n))
             for n in range(2)]  # fmt: skip
    assert [(a["reader"], a["records"][0]["record"], a["purpose"]) for a in audit] == [
        (DR_B.address, LAB_RECORD, "TREAT")
    ] * 2
    custodians = {ledger.consortium.keys[0].address, ledger.consortium.keys[1].address}
    assert {a["custodian"] for a in audit} == custodians


def test_approvals_may_arrive_one_by_one(ledger: Ledger) -> None:
    _, request_id = ledger.request()
    assert ledger.approve(request_id, ledger.approval(request_id, NURSE_A)) is None
    assert ledger.grant(request_id) is None
    assert ledger.approve(request_id, ledger.approval(request_id, DR_A)) is None
    assert ledger.grant(request_id)["approvers"] == sorted([NURSE_A.address, DR_A.address])


@pytest.mark.parametrize(
    ("name", "approvers"),
    [
        ("one approval", [PATIENT]),
        ("one signer counted twice", [PATIENT, PATIENT]),
        ("a signer without the role", [PATIENT, PHARMACIST_A]),
        ("a stranger", [PATIENT, STRANGER]),
        ("the requester approving itself", [DR_B, PATIENT]),
    ],
)
def test_approvals_that_do_not_meet_the_policy_grant_nothing(
    ledger: Ledger, name: str, approvers: list[PrivateKey]
) -> None:
    _, request_id = ledger.request()
    approvals = [ledger.approval(request_id, signer) for signer in approvers]
    assert ledger.approve(request_id, *approvals) is None, name
    assert ledger.grant(request_id) is None, name
    assert ledger.receipt(request_id) == "no_grant", name


def test_an_approval_replayed_for_another_request_is_refused(ledger: Ledger) -> None:
    _, first = ledger.request()
    _, second = ledger.request()
    stolen = ledger.approval(first, DR_A)
    assert ledger.approve(second, ledger.approval(second, PATIENT), stolen) == "bad_approval"
    assert ledger.grant(second) is None


def test_an_expired_approval_is_refused(ledger: Ledger) -> None:
    _, request_id = ledger.request()
    late = ledger.approval(request_id, DR_A, not_after_ns=ledger.now - 1)
    assert ledger.approve(request_id, ledger.approval(request_id, PATIENT), late) == (
        "approval_expired"
    )


def test_a_grant_expires_and_a_revoked_grant_ends_at_once(ledger: Ledger) -> None:
    _, request_id = ledger.request()
    ledger.approve(request_id, ledger.approval(request_id, PATIENT),
                   ledger.approval(request_id, DR_A))  # fmt: skip
    granted = ledger.grant(request_id)["granted_ns"]
    assert ledger.receipt(request_id, at=granted + HOUR_NS - 1) is None
    assert ledger.receipt(request_id, at=granted + HOUR_NS) == "grant_expired"
    _, other = ledger.request()
    ledger.approve(other, ledger.approval(other, PATIENT), ledger.approval(other, DR_A))
    assert ledger.send(DR_B, access.REVOKE, {"grant": "0x" + other.hex()}) == "not_patient"
    assert ledger.send(PATIENT, access.REVOKE, {"grant": "0x" + other.hex()}) is None
    assert ledger.receipt(other) == "grant_revoked"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"purpose": "HPAYMT"}, "purpose_not_allowed"),
        ({"duration_s": 8 * 24 * 3600}, "duration_too_long"),
        ({"categories": ["astrology"]}, "invalid_payload"),
        ({"patient": STRANGER.address}, "invalid_payload"),
    ],
)
def test_requests_outside_the_policy_are_refused(
    ledger: Ledger, changes: dict[str, Any], code: str
) -> None:
    assert ledger.request(**changes)[0] == code


def test_only_participants_and_members_may_request(ledger: Ledger) -> None:
    assert ledger.request(STRANGER)[0] == "unauthorized"
    assert ledger.request(PATIENT)[0] == "unauthorized"


def test_a_cel_condition_decides_with_the_request_in_view(ledger: Ledger) -> None:
    policy = {**TWO_OF_THREE, "condition": "request.requester_role == 'nurse'"}
    ledger.ok(PATIENT, access.SET_POLICY, {"category": "labs", "policy": policy})
    assert ledger.request(DR_B)[0] == "condition_failed"
    assert ledger.request(NURSE_A)[0] is None


def test_a_category_without_a_policy_needs_the_patient(ledger: Ledger) -> None:
    _, request_id = ledger.request(categories=["imaging"])
    assert ledger.approve(request_id, ledger.approval(request_id, DR_A)) is None
    assert ledger.grant(request_id) is None
    assert ledger.approve(request_id, ledger.approval(request_id, PATIENT)) is None
    assert ledger.grant(request_id)["policies"] == {"imaging": 0}


def test_receipts_are_checked_against_the_grant(ledger: Ledger) -> None:
    _, request_id = ledger.request()
    ledger.approve(request_id, ledger.approval(request_id, PATIENT),
                   ledger.approval(request_id, DR_A))  # fmt: skip
    assert ledger.receipt(request_id, category="mental-health") == "out_of_scope"
    # Only a member writes receipts; the reader must have asked, unexpired, for this record
    # as its author signed it.
    assert ledger.receipt(request_id, sender=DR_B) == "unauthorized"
    assert ledger.receipt(request_id, reader=DR_A) == "bad_approval"
    assert ledger.receipt(request_id, not_after_ns=ledger.now) == "approval_expired"
    assert ledger.receipt(b"\x01" * 32) == "no_grant"
    another = written("labs", 3, patient=DR_B.address)
    assert ledger.receipt(request_id, record=another) == "out_of_scope"
    relabelled = replace(LAB, header=replace(LAB.header, category="mental-health"))
    assert ledger.receipt(request_id, record=relabelled) == "invalid_payload"
    forged = replace(LAB, signature=LAB.signature[:-1] + b"\x05")
    assert ledger.receipt(request_id, record=forged) == "invalid_payload"
    # Each custodian logs a read once; a release may not outlive one read's round trips.
    until = ledger.now + 5 * 60 * 10**9
    assert ledger.receipt(request_id, not_after_ns=until) is None
    assert ledger.receipt(request_id, not_after_ns=until) == "conflict"
    assert ledger.receipt(request_id, not_after_ns=until, custodian=1) is None
    assert ledger.receipt(request_id, not_after_ns=ledger.now + HOUR_NS) == "bad_approval"
    read, other_custodian = audit_log_of(ledger)
    assert other_custodian["read"] == read["read"]
    assert (read["records"][0]["record_id"], read["records"][0]["author"],
            read["records"][0]["category"]) == (
        LAB.header.record_id.hex(),
        DR_A.address,
        "labs",
    )


def test_policies_are_set_by_the_patient_or_a_guardian_and_versioned(ledger: Ledger) -> None:
    payload = {"patient": PATIENT.address, "category": "labs", "policy": TWO_OF_THREE}
    assert ledger.send(GUARDIAN, access.SET_POLICY, payload) == "not_patient"
    ledger.ok(PATIENT, access.SET_GUARDIANS, {"guardians": [GUARDIAN.address]})
    assert ledger.send(GUARDIAN, access.SET_POLICY, payload) is None
    entry = ledger.store.get(access.POLICY_NS, access.policy_key(PATIENT.address, "labs"))
    assert (entry["version"], entry["set_by"]) == (2, GUARDIAN.address)
    bad = {**TWO_OF_THREE, "approvers": {"k_of": 4, "of": [{"patient": True}]}}
    assert ledger.send(PATIENT, access.SET_POLICY, {"category": "labs", "policy": bad}) == (
        "invalid_policy"
    )


OFFICER = PHARMACIST_A  # registered with the on-call "officer" role


def _emergency(ledger: Ledger, **changes: Any) -> tuple[str | None, bytes]:
    defaults: dict[str, Any] = {
        "emergency": True,
        "categories": ["allergies", "medications"],
        "purpose": "ETREAT",
        "duration_s": 4 * 3600,
    }
    return ledger.request(DR_B, **{**defaults, **changes})


def test_break_glass_takes_the_doctor_and_one_officer_and_notifies_the_patient(
    ledger: Ledger,
) -> None:
    code, request_id = _emergency(ledger)
    assert code is None
    assert ledger.approve(request_id, ledger.approval(request_id, DR_B)) is None
    assert ledger.grant(request_id) is None
    assert ledger.approve(request_id, ledger.approval(request_id, OFFICER)) is None
    grant = ledger.grant(request_id)
    assert grant["emergency"] is True
    (notice,) = break_glass_notices(ledger.store, PATIENT.address)
    assert (notice["grant"], notice["requester"]) == ("0x" + request_id.hex(), DR_B.address)
    assert notice["approvers"] == sorted([DR_B.address, OFFICER.address])
    assert ledger.receipt(request_id, category="allergies") is None
    audit = ledger.store.get(access.AUDIT_NS, access.audit_key(PATIENT.address, 0))
    assert audit["emergency"] is True
    assert ledger.receipt(request_id, category="labs") == "out_of_scope"


@pytest.mark.parametrize(
    ("requester", "changes", "code"),
    [
        (DR_B, {"categories": ["mental-health"]}, "out_of_scope"),
        (DR_B, {"duration_s": 25 * 3600}, "duration_too_long"),
        (DR_B, {"purpose": "TREAT"}, "purpose_not_allowed"),
        (NURSE_A, {}, "unauthorized"),
    ],
)
def test_break_glass_stays_narrow(
    ledger: Ledger, requester: PrivateKey, changes: dict[str, Any], code: str
) -> None:
    defaults: dict[str, Any] = {
        "emergency": True,
        "categories": ["allergies"],
        "purpose": "ETREAT",
        "duration_s": 3600,
    }
    assert ledger.request(requester, **{**defaults, **changes})[0] == code


def test_break_glass_needs_two_distinct_people(ledger: Ledger) -> None:
    _, request_id = _emergency(ledger)
    doctor_twice = [ledger.approval(request_id, DR_B), ledger.approval(request_id, DR_B)]
    assert ledger.approve(request_id, *doctor_twice) is None
    assert ledger.approve(request_id, ledger.approval(request_id, NURSE_A)) is None
    assert ledger.grant(request_id) is None


def test_the_patient_finds_every_request_made_of_their_data_and_can_deny_one(
    ledger: Ledger,
) -> None:
    _, first = ledger.request()
    _, second = ledger.request()
    asked = access.patient_list(ledger.store, access.ASKED_NS, access.ASKED_COUNT_NS,
                                PATIENT.address)  # fmt: skip
    assert asked == ["0x" + first.hex(), "0x" + second.hex()]
    assert access.patient_list(ledger.store, access.ASKED_NS, access.ASKED_COUNT_NS,
                               STRANGER.address) == []  # fmt: skip

    deny = {"request": "0x" + first.hex()}
    assert ledger.send(DR_A, access.DENY, deny) == "not_patient"
    assert ledger.send(PATIENT, access.DENY, deny) is None
    assert ledger.store.get(access.REQUEST_NS, "0x" + first.hex())["status"] == "denied"
    assert ledger.send(PATIENT, access.DENY, deny) == "unknown_request"
    approvals = (ledger.approval(first, PATIENT), ledger.approval(first, DR_A))
    assert ledger.approve(first, *approvals) == "unknown_request"
    assert ledger.grant(first) is None
    assert ledger.approve(second, ledger.approval(second, PATIENT),
                          ledger.approval(second, DR_A)) is None  # fmt: skip
    assert ledger.send(PATIENT, access.DENY, {"request": "0x" + second.hex()}) == "unknown_request"


def test_a_record_the_patient_wrote_is_read_under_a_grant(ledger: Ledger) -> None:
    _, request_id = ledger.request()
    ledger.approve(request_id, ledger.approval(request_id, PATIENT),
                   ledger.approval(request_id, DR_A))  # fmt: skip
    own = written("labs", 5, author=PATIENT)
    assert ledger.receipt(request_id, record=own) is None
    (read,) = audit_log_of(ledger)
    assert read["records"][0]["author"] == PATIENT.address
    # Signed by another patient, the record is nobody's who could write it.
    assert ledger.receipt(request_id, record=written("labs", 6, author=GUARDIAN)) == (
        "invalid_payload"
    )


def audit_log_of(ledger: Ledger) -> list[Any]:
    return [
        ledger.store.get(access.AUDIT_NS, access.audit_key(PATIENT.address, n))
        for n in range(ledger.store.get(access.AUDIT_COUNT_NS, PATIENT.address) or 0)
    ]
