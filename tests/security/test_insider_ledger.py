"""Attack table, in process: one staff member, one institution, one removed member, trying
to read without the policy's signatures or to write where they may not.

Each row is an attack that worked before this table was written and the refusal it
meets now, with its stable code. The same attacks run against real nodes in
test_insider_network.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from medledger.access import care, glass
from medledger.access import contract as access
from medledger.access.errors import NoCareRelationship, NotAnAuthor, WrongCategory
from medledger.access.visibility import may_read_state, may_read_transaction
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity, membership
from medledger.ledger.contracts.base import ContractRegistry
from medledger.ledger.errors import ProtocolMismatch
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import Transaction
from tests.access.chain import (
    DR_A,
    DR_B,
    GUARDIAN,
    HOUR_NS,
    LAB,
    NURSE_A,
    PATIENT,
    PHARMACIST_A,
    STRANGER,
    Ledger,
    written,
)
from tests.ledger.consortium import key

MENTAL = written("mental-health", 2)
MENTAL_RECORD, LAB_RECORD = MENTAL.hex, LAB.hex
VERIFIER_B = key("verifier-b")
ANY_NURSE = {"approvers": {"role": "nurse"}, "purposes": ["TREAT"], "max_duration_s": 86400}
DAY_NS = 24 * HOUR_NS


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path)
    ledger.ok(PATIENT, access.SET_POLICY, {"category": "labs", "policy": ANY_NURSE})
    ledger.ok(ledger.consortium.keys[1], identity.REGISTER_PARTICIPANT,
              {"address": VERIFIER_B.address, "role": "verifier"})  # fmt: skip
    yield ledger
    ledger.store.close()


def _granted(ledger: Ledger, requester: PrivateKey, approvers: list[PrivateKey],
             **changes: Any) -> bytes:  # fmt: skip
    code, request_id = ledger.request(requester, **changes)
    assert code is None
    approvals = [ledger.approval(request_id, s, requester=requester) for s in approvers]
    assert ledger.send(requester, access.APPROVE, {"request": "0x" + request_id.hex(),
                                                   "approvals": approvals}) is None  # fmt: skip
    assert ledger.grant(request_id) is not None
    return request_id


# -- 1, 2, 3: a request's scope cannot escape the policies of its categories ----------


def no_category_named_records(ledger: Ledger) -> str | None:
    """A nurse asks for one mental-health record by its commitment and no category."""
    code, _ = ledger.request(NURSE_A, categories=[], records=[MENTAL_RECORD])
    return code


def named_record_of_another_category(ledger: Ledger) -> str | None:
    """Labs (any nurse approves) plus a mental-health record named in `records`."""
    grant = _granted(ledger, NURSE_A, [NURSE_A], records=[LAB_RECORD, MENTAL_RECORD])
    return ledger.receipt(grant, category="mental-health", record=MENTAL)


def break_glass_with_no_category(ledger: Ledger) -> str | None:
    """A doctor alone breaks the glass naming only a record."""
    code, _ = ledger.request(DR_A, categories=[], records=[MENTAL_RECORD], emergency=True,
                             purpose="ETREAT")  # fmt: skip
    return code


def break_glass_beyond_the_summary(ledger: Ledger) -> str | None:
    """Break-glass for allergies, plus a mental-health record named in `records`."""
    grant = _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["allergies"],
                     records=[MENTAL_RECORD], emergency=True, purpose="ETREAT")  # fmt: skip
    return ledger.receipt(grant, category="mental-health", record=MENTAL)


def a_category_named_twice(ledger: Ledger) -> str | None:
    code, _ = ledger.request(DR_B, categories=["labs", "labs"])
    return code


# -- 4, 5: standing is checked at every release -----------------------------------


def holder_revoked_after_the_grant(ledger: Ledger) -> str | None:
    grant = _granted(ledger, DR_B, [NURSE_A])
    ledger.ok(ledger.consortium.keys[1], identity.REVOKE_PARTICIPANT, {"address": DR_B.address})
    return ledger.receipt(grant)


def holders_institution_voted_out(ledger: Ledger) -> str | None:
    grant = _granted(ledger, DR_B, [NURSE_A])
    a, b, c = ledger.consortium.keys
    removal = {"action": "remove", "address": b.address}
    proposal = ledger.consortium.tx(a, membership.PROPOSE, removal)
    assert ledger.run(proposal) == [None]
    ledger.ok(c, membership.VOTE, {"proposal": "0x" + proposal.tx_id.hex()})
    return ledger.receipt(grant)


def approval_expired_before_the_grant_formed(ledger: Ledger) -> str | None:
    """The nurse's approval lapses; the grant would form at the next approval."""
    ledger.ok(PATIENT, access.SET_POLICY, {"category": "labs", "policy": {
        "approvers": {"all": [{"role": "nurse"}, {"patient": True}]}, "purposes": ["TREAT"],
        "max_duration_s": 86400}})  # fmt: skip
    code, request_id = ledger.request(DR_B)
    assert code is None
    soon = ledger.approval(request_id, NURSE_A, not_after_ns=ledger.now + 5 * 10**9)
    assert ledger.approve(request_id, soon) is None
    ledger.run(at=ledger.now + 60 * 10**9)
    assert ledger.approve(request_id, ledger.approval(request_id, PATIENT)) is None
    return ledger.receipt(request_id)


# -- 14: limits -------------------------------------------------------------------


def flooding_a_patient_with_requests(ledger: Ledger) -> str | None:
    for _ in range(8):
        assert ledger.request(DR_B)[0] is None
    return ledger.request(DR_B)[0]


def breaking_the_glass_again_and_again(ledger: Ledger) -> str | None:
    for _ in range(3):
        assert ledger.request(DR_A, categories=["allergies"], emergency=True,
                              purpose="ETREAT")[0] is None  # fmt: skip
    return ledger.request(DR_A, categories=["allergies"], emergency=True, purpose="ETREAT")[0]


def reviewing_ones_own_break_glass(ledger: Ledger) -> str | None:
    grant = _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["allergies"],
                     emergency=True, purpose="ETREAT")  # fmt: skip
    return ledger.send(PHARMACIST_A, glass.REVIEW, {"grant": "0x" + grant.hex(),
                                                    "finding": "justified"})  # fmt: skip


def flagging_a_review_before_it_is_due(ledger: Ledger) -> str | None:
    grant = _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["allergies"],
                     emergency=True, purpose="ETREAT")  # fmt: skip
    return ledger.send(ledger.consortium.keys[2], glass.FLAG_OVERDUE, {"grant": "0x" + grant.hex()})


# -- 8: the audit shows what was read, as its author signed it, and only reads asked for -


def a_custodian_logging_a_read_nobody_asked_for(ledger: Ledger) -> str | None:
    """A custodian writes a receipt under Dr B's grant, signed by someone else as reader."""
    grant = _granted(ledger, DR_B, [NURSE_A])
    return ledger.receipt(grant, reader=DR_A)


def a_custodian_relabelling_what_was_read(ledger: Ledger) -> str | None:
    """A custodian logs a mental-health record's read as a lab result's."""
    grant = _granted(ledger, DR_B, [NURSE_A])
    relabelled = replace(MENTAL, header=replace(MENTAL.header, category="labs"))
    return ledger.receipt(grant, record=relabelled)


def a_custodian_logging_one_read_twice(ledger: Ledger) -> str | None:
    """A custodian pads a read's audit row with a second receipt of its own."""
    grant = _granted(ledger, DR_B, [NURSE_A])
    until = ledger.now + 5 * 60 * 10**9
    assert ledger.receipt(grant, not_after_ns=until) is None
    return ledger.receipt(grant, not_after_ns=until)


def a_reader_keeping_a_release_for_later(ledger: Ledger) -> str | None:
    """A reader signs one release good for a day, to fold later reads into one row."""
    grant = _granted(ledger, DR_B, [NURSE_A])
    return ledger.receipt(grant, not_after_ns=ledger.now + DAY_NS)


ATTACKS: list[tuple[Callable[[Ledger], str | None], str]] = [
    (no_category_named_records, "empty_scope"),
    (named_record_of_another_category, "out_of_scope"),
    (break_glass_with_no_category, "empty_scope"),
    (break_glass_beyond_the_summary, "out_of_scope"),
    (a_category_named_twice, "inconsistent_scope"),
    (holder_revoked_after_the_grant, "holder_without_standing"),
    (holders_institution_voted_out, "holder_without_standing"),
    (approval_expired_before_the_grant_formed, "no_grant"),
    (flooding_a_patient_with_requests, "too_many_open_requests"),
    (breaking_the_glass_again_and_again, "break_glass_limit"),
    (reviewing_ones_own_break_glass, "not_reviewer"),
    (flagging_a_review_before_it_is_due, "conflict"),
    (a_custodian_logging_a_read_nobody_asked_for, "bad_approval"),
    (a_custodian_relabelling_what_was_read, "invalid_payload"),
    (a_custodian_logging_one_read_twice, "conflict"),
    (a_reader_keeping_a_release_for_later, "bad_approval"),
]


@pytest.mark.parametrize(("attack", "refusal"), ATTACKS, ids=[a.__name__ for a, _ in ATTACKS])
def test_the_attack_is_refused(
    ledger: Ledger, attack: Callable[[Ledger], str | None], refusal: str
) -> None:
    assert attack(ledger) == refusal


def test_the_honest_neighbours_of_each_attack_still_work(ledger: Ledger) -> None:
    """Records named within a requested category read; a slot frees when a request is
    denied; break-glass returns after a day; an independent reviewer reviews; an overdue
    review is flagged to the patient and the consortium."""
    grant = _granted(ledger, NURSE_A, [NURSE_A], records=[LAB_RECORD])
    assert ledger.receipt(grant, record=LAB) is None
    assert ledger.receipt(grant, record=written("labs", 4)) == "out_of_scope"
    ids = []
    for _ in range(8):
        code, request_id = ledger.request(DR_B)
        assert code is None
        ids.append(request_id)
    assert ledger.request(DR_B)[0] == "too_many_open_requests"
    # Another requester is not crowded out by the first, and a denial frees a slot.
    assert ledger.request(DR_A)[0] is None
    assert ledger.send(PATIENT, access.DENY, {"request": "0x" + ids[0].hex()}) is None
    assert ledger.request(DR_B)[0] is None
    for _ in range(3):
        ledger.request(DR_A, categories=["allergies"], emergency=True, purpose="ETREAT")
    ledger.run(at=ledger.now + DAY_NS)
    glass_grant = _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["allergies"],
                           emergency=True, purpose="ETREAT")  # fmt: skip
    reviewer = key("privacy-officer")
    ledger.ok(ledger.consortium.keys[1], identity.REGISTER_PARTICIPANT,
              {"address": reviewer.address, "role": "officer"})  # fmt: skip
    review = {"grant": "0x" + glass_grant.hex(), "finding": "justified"}
    assert ledger.send(reviewer, glass.REVIEW, review) is None
    assert ledger.grant(glass_grant)["review"]["finding"] == "justified"
    late = _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["medications"],
                    emergency=True, purpose="ETREAT")  # fmt: skip
    ledger.run(at=ledger.now + 3 * DAY_NS + 10**9)
    flag = {"grant": "0x" + late.hex()}
    assert ledger.send(ledger.consortium.keys[2], glass.FLAG_OVERDUE, flag) is None
    assert ledger.grant(late)["overdue_index"] > 0
    alert = ledger.store.get(glass.ALERT_NS, access.audit_key(glass.CONSORTIUM, 0))
    assert alert["grant"] == "0x" + late.hex() and alert["kind"] == "review_overdue"
    assert glass.due_for_review(ledger.store) == []


# -- 6: who may write into a patient's history --------------------------------------


def _author_check(ledger: Ledger, author: PrivateKey, category: str = "conditions",
                  resource_type: str = "Condition") -> None:  # fmt: skip
    care.check_author(ledger.store, author=author.address, patient=PATIENT.address,
                      category=category, resource_type=resource_type,
                      index=ledger.store.size, timestamp_ns=ledger.now)  # fmt: skip


@pytest.mark.parametrize("name", ["\x1b[2J", "Dr \u202eeel", "tab\there"])
def test_a_staff_name_cannot_carry_terminal_escapes_or_bidi_overrides(
    ledger: Ledger, name: str
) -> None:
    payload = {"address": key("named").address, "role": "doctor", "name": name}
    assert ledger.send(ledger.consortium.keys[0], identity.REGISTER_PARTICIPANT, payload) == (
        "invalid_payload"
    )


def test_only_clinical_roles_with_a_care_relationship_write_records(ledger: Ledger) -> None:
    with pytest.raises(NotAnAuthor, match="verifier"):
        _author_check(ledger, VERIFIER_B, "mental-health")
    with pytest.raises(NotAnAuthor, match="no role"):
        _author_check(ledger, STRANGER)
    with pytest.raises(NoCareRelationship):
        _author_check(ledger, DR_B)
    # The patient writes their own account; another patient is nobody's author here.
    _author_check(ledger, PATIENT)
    with pytest.raises(NotAnAuthor, match="no role"):
        _author_check(ledger, GUARDIAN)
    with pytest.raises(WrongCategory, match="never in category labs"):
        _author_check(ledger, DR_A, "labs")
    # A signed type no FHIR library knows is nobody's record, whatever its label.
    with pytest.raises(WrongCategory, match="not a FHIR resource type"):
        _author_check(ledger, DR_A, "clinical", "Spaceship")
    hospital_b = ledger.consortium.keys[1].address
    ledger.ok(PATIENT, care.ENROL, {"institution": hospital_b})
    enrolled_at = ledger.store.size - 1
    _author_check(ledger, DR_B)
    # A verifier stays a verifier, enrolled or not.
    with pytest.raises(NotAnAuthor):
        _author_check(ledger, VERIFIER_B)
    ledger.ok(PATIENT, care.UNENROL, {"institution": hospital_b})
    with pytest.raises(NoCareRelationship):
        _author_check(ledger, DR_B)
    # What was written while the relationship held stays rightly written.
    care.check_author(ledger.store, author=DR_B.address, patient=PATIENT.address,
                      category="conditions", resource_type="Condition", index=enrolled_at,
                      timestamp_ns=ledger.now)  # fmt: skip
    # An institution cannot enrol a patient at itself, nor can a stranger.
    assert ledger.send(hospital_b_key(ledger), care.ENROL, {"patient": PATIENT.address,
                       "institution": hospital_b}) == "not_patient"  # fmt: skip
    # A grant for a category lets its holder write in it while it holds, and only in it.
    _granted(ledger, DR_B, [NURSE_A])
    _author_check(ledger, DR_B, "labs", "Observation")
    with pytest.raises(NoCareRelationship):
        _author_check(ledger, DR_B)


def hospital_b_key(ledger: Ledger) -> PrivateKey:
    return ledger.consortium.keys[1]


# -- 8: need to know ----------------------------------------------------------------


def test_the_ledger_tells_each_reader_only_what_they_are_party_to(ledger: Ledger) -> None:
    grant = _granted(ledger, DR_B, [NURSE_A])
    view, grant_key = ledger.store, "0x" + grant.hex()
    request_tx = Transaction(1, DR_B.address, 0, access.REQUEST, {"patient": PATIENT.address})
    outsider, other_patient = key("no-one"), key("another-patient")
    member_c = ledger.consortium.keys[2]
    for reader, sees in ((DR_B, True), (PATIENT, True), (NURSE_A, True), (member_c, True),
                         (DR_A, False), (VERIFIER_B, False), (outsider, False)):  # fmt: skip
        assert may_read_state(view, reader.address, access.GRANT_NS, grant_key) is sees, reader
    assert not may_read_state(view, outsider.address, "member", ledger.consortium.keys[0].address)
    assert may_read_state(view, DR_A.address, "member", ledger.consortium.keys[0].address)
    assert not may_read_state(view, other_patient.address, access.POLICY_NS,
                              f"{PATIENT.address}/labs")  # fmt: skip
    assert not may_read_transaction(view, outsider.address, request_tx)
    assert may_read_transaction(view, DR_B.address, request_tx)


# -- 12: one protocol -----------------------------------------------------------------


def test_a_node_running_other_contracts_than_genesis_pins_refuses_to_start(
    ledger: Ledger, tmp_path: Path
) -> None:
    fewer = ContractRegistry("medledger/2")
    with pytest.raises(ProtocolMismatch, match="the genesis pins"):
        LedgerNode(genesis=ledger.consortium.genesis,
                   store=LedgerStore.open(str(tmp_path / "x.db")),
                   orderer=EmbeddedOrderer(tmp_path / "x-order.db"), registry=fewer)  # fmt: skip


def test_requests_left_to_lapse_free_their_slots(ledger: Ledger) -> None:
    for _ in range(8):
        assert ledger.request(DR_B)[0] is None
    assert ledger.request(DR_B)[0] == "too_many_open_requests"
    ledger.run(at=ledger.now + 7 * DAY_NS)
    assert ledger.request(DR_B)[0] is None
    # Counted afresh: one open now, so seven more fit and the ninth does not.
    for _ in range(7):
        assert ledger.request(DR_B)[0] is None
    assert ledger.request(DR_B)[0] == "too_many_open_requests"


def test_denying_a_lapsed_request_frees_no_slot(ledger: Ledger) -> None:
    """The recount already dropped the lapsed request: counting it down again on its
    denial gave its requester a ninth open request."""
    asked = [ledger.request(DR_B) for _ in range(8)]
    assert [code for code, _ in asked] == [None] * 8
    ledger.run(at=ledger.now + 7 * DAY_NS)
    assert ledger.request(DR_B)[0] is None
    assert ledger.send(PATIENT, access.DENY, {"request": "0x" + asked[0][1].hex()}) is None
    for _ in range(7):
        assert ledger.request(DR_B)[0] is None
    assert ledger.request(DR_B)[0] == "too_many_open_requests"


def test_an_unreviewed_break_glass_grant_comes_due_for_every_member_in_turn(
    ledger: Ledger,
) -> None:
    """What a node's sweep acts on: grants past their review deadline, a member at a time,
    so that one flag is enough and a member that is down is covered by the next."""
    grant = "0x" + _granted(ledger, DR_A, [DR_A, PHARMACIST_A], categories=["allergies"],
                            emergency=True, purpose="ETREAT").hex()  # fmt: skip
    formed = ledger.grant(bytes.fromhex(grant[2:]))["granted_ns"]
    deadline = formed + 3 * DAY_NS
    assert glass.due_for_review(ledger.store) == [grant]
    assert glass.overdue(ledger.store, deadline) == []
    assert glass.overdue(ledger.store, deadline + 1) == [grant]
    members = sorted(k.address for k in ledger.consortium.keys)
    assert [glass.flagger_delay_s(m, members) for m in members] == [0, 60, 120]
    assert glass.flagger_delay_s(STRANGER.address, members) == 0
