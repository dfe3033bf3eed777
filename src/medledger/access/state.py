"""Where the access contracts keep their state, and the reads every one of them needs.

Pure functions over a :class:`StateView`: handlers, custodians and routes call the
same ones, so a check means the same thing wherever it is made.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from medledger.access.errors import (
    GrantExpired,
    GrantRevoked,
    HolderWithoutStanding,
    NoGrant,
    NotPatient,
    UnknownRequest,
)
from medledger.access.policy import Policy, default_policy
from medledger.access.rules import Signer
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import StateView, Write
from medledger.ledger.contracts.identity import is_subject, standing_participant
from medledger.ledger.contracts.membership import is_member
from medledger.ledger.errors import InvalidPayload

POLICY_NS = "access.policy"
GUARDIAN_NS = "access.guardians"
REQUEST_NS = "access.request"
GRANT_NS = "access.grant"
RECEIPT_NS = "access.receipt"
AUDIT_NS = "access.audit"
AUDIT_COUNT_NS = "access.audit_count"
NOTICE_NS = "access.notice"
NOTICE_COUNT_NS = "access.notice_count"
#: Every request made of a patient's data, in log order, so the patient can find them.
ASKED_NS = "access.asked"
ASKED_COUNT_NS = "access.asked_count"
#: How many requests wait for each patient's approval, in all and by requester.
OPEN_NS = "access.open"
#: Care relationships: ``patient/institution`` -> the spans the patient was enrolled.
CARE_NS = "access.care"


def policy_key(patient: Address, category: str) -> str:
    return f"{patient}/{category}"


def audit_key(patient: Address, n: int) -> str:
    # Zero-padded so that keys sort in the order the reads happened.
    return f"{patient}/{n:012d}"


def care_key(patient: Address, institution: Address) -> str:
    return f"{patient}/{institution}"


def append(view: StateView, ns: str, count_ns: str, owner: str, entry: Any) -> list[Write]:
    """Add ``entry`` to one of an owner's lists (a patient's audit, notices, requests)."""
    count = int(view.get(count_ns, owner) or 0)
    return [Write(ns, audit_key(Address(owner), count), entry), Write(count_ns, owner, count + 1)]


def patient_list(view: StateView, ns: str, count_ns: str, patient: Address) -> list[Any]:
    """One of a patient's lists, oldest first."""
    count = int(view.get(count_ns, patient) or 0)
    return [view.get(ns, audit_key(patient, n)) for n in range(count)]


def current_policy(view: StateView, patient: Address, category: str) -> tuple[Policy, int]:
    """The patient's policy for a category and its version (0: the default policy)."""
    entry = view.get(POLICY_NS, policy_key(patient, category))
    if entry is None:
        return _DEFAULT_POLICY, 0
    return _parsed(json.dumps(entry["policy"], sort_keys=True)), int(entry["version"])


_DEFAULT_POLICY = default_policy()


@lru_cache(maxsize=4096)
def _parsed(policy: str) -> Policy:
    # Policies are immutable values and a patient's policy is read on every request and
    # approval: parse (and compile the condition of) each distinct one once.
    return Policy.from_json(json.loads(policy))


def named_patient(payload: Mapping[str, Any], sender: Address) -> Address:
    """The patient a transaction is about: the one it names, or else its sender acting
    for themself."""
    return p.address(payload, "patient") if "patient" in payload else sender


def require_patient(view: StateView, address: Address) -> None:
    if not is_subject(view, address):
        raise InvalidPayload(f"{address} is not a registered patient")


def speaks_for(view: StateView, patient: Address, sender: Address) -> bool:
    """Whether ``sender`` is the patient or one of the guardians they named."""
    return sender == patient or sender in (view.get(GUARDIAN_NS, patient) or [])


def require_patient_or_guardian(view: StateView, patient: Address, sender: Address) -> None:
    if not speaks_for(view, patient, sender):
        raise NotPatient(f"{sender} is neither patient {patient} nor one of their guardians")


def signer_of(view: StateView, address: Address) -> Signer:
    """A requester or approver as the log knows them now: a participant with its role at
    its institution, a member, or a bare address (a patient, a guardian)."""
    participant = standing_participant(view, address)
    if participant is not None:
        return Signer(address, participant.role, participant.institution)
    if is_member(view, address):
        return Signer(address, "member", address)
    return Signer(address)


@dataclass(frozen=True)
class AccessRequest:
    """An access request as the state holds it: who asks what of whom, and how far it got."""

    request: str
    requester: Address
    patient: Address
    categories: tuple[str, ...]
    records: tuple[str, ...]
    purpose: str
    duration_s: int
    emergency: bool
    #: pending, granted or denied
    status: str
    signers: tuple[Address, ...]
    #: The log entry that made it, and when it lapses unanswered.
    index: int
    expires_ns: int
    #: Each approver's latest approval of it, and until when (ms) that approval holds.
    approvals: Mapping[Address, int]
    denied_index: int | None = None

    @classmethod
    def from_state(cls, request_id: str, entry: Mapping[str, Any]) -> AccessRequest:
        denied = entry.get("denied_index")
        return cls(
            request_id, Address(entry["requester"]), Address(entry["patient"]),
            tuple(entry["categories"]), tuple(entry["records"]), str(entry["purpose"]),
            int(entry["duration_s"]), bool(entry["emergency"]), str(entry["status"]),
            tuple(Address(a) for a in entry["signers"]), int(entry["index"]),
            int(entry["expires_ns"]), {Address(a): int(ms) for a, ms in entry["approvals"].items()},
            None if denied is None else int(denied),
        )  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        state = {
            "requester": self.requester, "patient": self.patient, "emergency": self.emergency,
            "categories": list(self.categories), "records": list(self.records),
            "purpose": self.purpose, "duration_s": self.duration_s, "index": self.index,
            "expires_ns": self.expires_ns, "approvals": dict(self.approvals),
            "signers": list(self.signers), "status": self.status,
        }  # fmt: skip
        if self.denied_index is not None:
            state["denied_index"] = self.denied_index
        return state

    def lapsed(self, now_ns: int) -> bool:
        return self.expires_ns <= now_ns


@dataclass(frozen=True)
class Review:
    """A reviewer's finding on a break-glass grant."""

    by: Address
    finding: str
    index: int


@dataclass(frozen=True)
class Grant:
    """A grant as the state holds it, for the handlers, custodians, routes and clients
    that make, show and apply it."""

    grant: str
    requester: Address
    patient: Address
    categories: tuple[str, ...]
    records: tuple[str, ...]
    purpose: str
    approvers: tuple[Address, ...]
    granted_ns: int
    expires_ns: int
    emergency: bool
    #: The approvals it was granted on, and the version of each category's policy then.
    approvals: Mapping[Address, int]
    policies: Mapping[str, int]
    #: The log entry that granted it, and the one that revoked it.
    index: int
    revoked_index: int | None = None
    #: Break-glass only: the reviewer's finding, or where the log flagged it overdue.
    review: Review | None = None
    overdue_index: int | None = None

    @classmethod
    def from_state(cls, grant_id: str, entry: Mapping[str, Any]) -> Grant:
        revoked, overdue = entry.get("revoked_index"), entry.get("overdue_index")
        review = entry.get("review")
        return cls(
            grant_id, Address(entry["requester"]), Address(entry["patient"]),
            tuple(entry["categories"]), tuple(entry["records"]), str(entry["purpose"]),
            tuple(Address(a) for a in entry["approvers"]), int(entry["granted_ns"]),
            int(entry["expires_ns"]), bool(entry["emergency"]),
            {Address(a): int(ms) for a, ms in entry["approvals"].items()},
            {str(c): int(v) for c, v in entry["policies"].items()}, int(entry["index"]),
            None if revoked is None else int(revoked),
            None if review is None else Review(Address(review["by"]), str(review["finding"]),
                                               int(review["index"])),
            None if overdue is None else int(overdue),
        )  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "requester": self.requester, "patient": self.patient,
            "categories": list(self.categories), "records": list(self.records),
            "purpose": self.purpose, "approvers": list(self.approvers),
            "approvals": dict(self.approvals), "policies": dict(self.policies),
            "index": self.index, "granted_ns": self.granted_ns, "expires_ns": self.expires_ns,
            "status": "active" if self.revoked_index is None else "revoked",
            "emergency": self.emergency,
        }  # fmt: skip
        if self.revoked_index is not None:
            state["revoked_index"] = self.revoked_index
        if self.review is not None:
            state["review"] = dataclasses.asdict(self.review)
        if self.overdue_index is not None:
            state["overdue_index"] = self.overdue_index
        return state

    def covers(self, category: str, record: str) -> bool:
        """Whether the grant reaches a record: its category must be one the grant's
        policies were satisfied for, and a grant that names records reaches only those."""
        return category in self.categories and (not self.records or record in self.records)

    def held_at(self, index: int, timestamp_ns: int) -> bool:
        """Whether it held at log entry ``index``, orderer time ``timestamp_ns``."""
        revoked = self.revoked_index
        return (self.index <= index and (revoked is None or index < revoked)
                and timestamp_ns < self.expires_ns)  # fmt: skip

    def require_unended(self, now_ns: int) -> None:
        """Raise unless it was neither revoked nor expired at ``now_ns``."""
        if self.revoked_index is not None:
            raise GrantRevoked(f"grant {self.grant} was revoked at log entry {self.revoked_index}")
        if now_ns >= self.expires_ns:
            raise GrantExpired(f"grant {self.grant} expired")

    def status(self, view: StateView, now_ns: int) -> str:
        """``active``, ``revoked``, ``expired``, or ``void`` (its holder lost standing)."""
        try:
            self.require_unended(now_ns)
        except GrantRevoked:
            return "revoked"
        except GrantExpired:
            return "expired"
        return "void" if signer_of(view, self.requester).role is None else "active"


def holding_grant(view: StateView, grant_key: str, now_ns: int) -> Grant:
    """The grant if it holds at ``now_ns`` and its holder still stands; else the refusal."""
    grant = grant_of(view, grant_key)
    if grant is None:
        raise NoGrant(f"no grant {grant_key}")
    grant.require_unended(now_ns)
    if signer_of(view, grant.requester).role is None:
        raise HolderWithoutStanding(
            f"grant {grant_key}: its holder is no longer registered at a member institution"
        )
    return grant


def held_grants(view: StateView, holder: Address, patient: Address, now_ns: int) -> list[Grant]:
    """The grants on ``patient``'s data that ``holder`` holds at ``now_ns``, oldest first."""
    held = []
    for request_id in requests_of(view, patient):
        grant = grant_of(view, request_id)
        if grant is None or grant.requester != holder:
            continue
        try:
            held.append(holding_grant(view, request_id, now_ns))
        except (GrantRevoked, GrantExpired, HolderWithoutStanding):
            continue
    return held


def requests_of(view: StateView, patient: Address) -> list[str]:
    """The ids of every request made of the patient's data, oldest first."""
    return [str(r) for r in patient_list(view, ASKED_NS, ASKED_COUNT_NS, patient)]


def access_request(view: StateView, request_id: str) -> AccessRequest:
    entry = view.get(REQUEST_NS, request_id)
    if entry is None:
        raise UnknownRequest(f"no request {request_id}")
    return AccessRequest.from_state(request_id, entry)


def grant_of(view: StateView, grant_id: str) -> Grant | None:
    """The grant as stored, whether or not it still holds."""
    entry = view.get(GRANT_NS, grant_id)
    return None if entry is None else Grant.from_state(grant_id, entry)


def grant_status(view: StateView, grant_key: str, now_ns: int) -> str:
    """``active``, ``revoked``, ``expired``, or ``void`` (its holder lost standing)."""
    grant = grant_of(view, grant_key)
    if grant is None:
        raise NoGrant(f"no grant {grant_key}")
    return grant.status(view, now_ns)
