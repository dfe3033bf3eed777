"""The access contract's typed state: every request and grant entry the handlers write
reads back into its type and writes out again unchanged, in each state it can reach."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medledger.access import contract as access
from medledger.access import glass
from medledger.access.state import AccessRequest, Grant, Review, grant_of
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from tests.access.chain import DR_A, DR_B, HOUR_NS, PATIENT, PHARMACIST_A, TWO_OF_THREE, Ledger
from tests.ledger.consortium import key

DAY_NS = 24 * HOUR_NS


def _ask(ledger: Ledger, requester: PrivateKey, **changes: Any) -> bytes:
    code, request_id = ledger.request(requester, **changes)
    assert code is None
    return request_id


def _approve(ledger: Ledger, request_id: bytes, requester: PrivateKey,
             *signers: PrivateKey) -> None:  # fmt: skip
    approvals = [ledger.approval(request_id, s, requester=requester) for s in signers]
    payload = {"request": "0x" + request_id.hex(), "approvals": approvals}
    assert ledger.send(requester, access.APPROVE, payload) is None


def test_every_request_and_grant_state_round_trips_through_its_type(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.ok(PATIENT, access.SET_POLICY, {"category": "labs", "policy": TWO_OF_THREE})
    pending = _ask(ledger, DR_B)
    half = _ask(ledger, DR_B)
    _approve(ledger, half, DR_B, PATIENT)
    denied = _ask(ledger, DR_B)
    assert ledger.send(PATIENT, access.DENY, {"request": "0x" + denied.hex()}) is None
    granted = _ask(ledger, DR_B)
    _approve(ledger, granted, DR_B, PATIENT, DR_A)
    revoked = _ask(ledger, DR_B)
    _approve(ledger, revoked, DR_B, PATIENT, DR_A)
    assert ledger.send(PATIENT, access.REVOKE, {"grant": "0x" + revoked.hex()}) is None
    glass_terms = {"categories": ["allergies"], "emergency": True, "purpose": "ETREAT"}
    reviewed = _ask(ledger, DR_A, **glass_terms)
    _approve(ledger, reviewed, DR_A, DR_A, PHARMACIST_A)
    reviewer = key("privacy-officer")
    ledger.ok(ledger.consortium.keys[1], identity.REGISTER_PARTICIPANT,
              {"address": reviewer.address, "role": "officer"})  # fmt: skip
    review = {"grant": "0x" + reviewed.hex(), "finding": "justified"}
    assert ledger.send(reviewer, glass.REVIEW, review) is None
    flagged = _ask(ledger, DR_A, **{**glass_terms, "categories": ["medications"]})
    _approve(ledger, flagged, DR_A, DR_A, PHARMACIST_A)
    ledger.run(at=ledger.now + 3 * DAY_NS + 10**9)
    assert ledger.send(ledger.consortium.keys[2], glass.FLAG_OVERDUE,
                       {"grant": "0x" + flagged.hex()}) is None  # fmt: skip

    statuses = set()
    for request_id in (pending, half, denied, granted, revoked, reviewed, flagged):
        key_ = "0x" + request_id.hex()
        entry = ledger.store.get(access.REQUEST_NS, key_)
        request = AccessRequest.from_state(key_, entry)
        assert request.to_state() == entry
        statuses.add(request.status)
        stored = ledger.store.get(access.GRANT_NS, key_)
        if stored is not None:
            assert Grant.from_state(key_, stored).to_state() == stored
    assert statuses == {"pending", "denied", "granted"}

    assert AccessRequest.from_state("0x" + half.hex(), ledger.store.get(
        access.REQUEST_NS, "0x" + half.hex())).signers == (PATIENT.address,)  # fmt: skip
    ended = grant_of(ledger.store, "0x" + revoked.hex())
    assert ended is not None and ended.revoked_index is not None
    assert ended.status(ledger.store, ledger.now) == "revoked"
    assert not ended.held_at(ended.revoked_index, ended.granted_ns)
    assert ended.held_at(ended.revoked_index - 1, ended.granted_ns)
    looked_at = grant_of(ledger.store, "0x" + reviewed.hex())
    assert looked_at is not None and looked_at.review is not None
    assert looked_at.review == Review(reviewer.address, "justified", looked_at.review.index)
    late = grant_of(ledger.store, "0x" + flagged.hex())
    assert late is not None and late.overdue_index is not None and late.review is None
    # The stored form is what state proofs carry and the portal reads: it keeps its keys.
    assert set(ledger.store.get(access.REQUEST_NS, "0x" + denied.hex())) == {
        "requester", "patient", "emergency", "categories", "records", "purpose", "duration_s",
        "index", "expires_ns", "approvals", "signers", "status", "denied_index",
    }  # fmt: skip
    assert set(ledger.store.get(access.GRANT_NS, "0x" + revoked.hex())) == {
        "requester", "patient", "categories", "records", "purpose", "approvers", "approvals",
        "policies", "index", "granted_ns", "expires_ns", "status", "emergency", "revoked_index",
    }  # fmt: skip
    assert ledger.store.get(access.GRANT_NS, "0x" + revoked.hex())["status"] == "revoked"
    live = grant_of(ledger.store, "0x" + granted.hex())
    assert live is not None and live.status(ledger.store, ledger.now) == "expired"
    assert live.held_at(live.index, live.granted_ns)
    assert not live.held_at(live.index - 1, live.granted_ns)
    assert not live.held_at(live.index, live.expires_ns)
