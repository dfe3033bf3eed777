"""The access contracts: policies, requests, approvals, grants, revocations, receipts.

- ``access.set_policy``: the patient (or a guardian they named) sets the policy of
  one data category; each change is a new version.
- ``access.request``: a participant or member asks for categories (or records) of a
  patient, for a purpose and a duration; refused at once if a policy forbids it.
- ``access.approve``: anyone relays EIP-712 approvals (access/approval.py) for an
  open request; the grant exists once every category's approver rule holds, with
  distinct signers resolved to their roles at this point in the log. Approvals
  may come all at once or one by one.
- ``access.revoke``: the patient (or a guardian) ends a grant at once.
- ``access.deny``: the patient (or a guardian) turns an open request down.
- Break-glass: a request marked ``emergency`` skips the patient's policies for a
  fixed rule (the asking doctor and one on-call officer), reaches only the
  International Patient Summary categories, for at most 24 hours; the grant leaves
  a notice for the patient and every read under it is flagged for review.
- ``access.receipt``: a custodian records, before it releases a key share, that a
  grant's holder reads a record: checked against the grant at this point in the
  log, then indexed for the patient's audit.

Everything a grant depends on is decided here, by every node alike; custodians
only release after their receipt is in the log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from medledger.access.approval import Approval
from medledger.access.errors import (
    ApprovalExpired,
    BadApproval,
    DurationTooLong,
    GrantExpired,
    GrantRevoked,
    NoGrant,
    NotPatient,
    OutOfScope,
    PolicyNotSatisfied,
    PurposeNotAllowed,
    UnknownRequest,
)
from medledger.access.policy import Policy, default_policy
from medledger.access.rules import KOf, Person, Role, Signer
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import (
    ContractRegistry,
    Handler,
    StateView,
    TxContext,
    Write,
)
from medledger.ledger.contracts.identity import PARTICIPANT_NS, SUBJECT_NS, participant_role
from medledger.ledger.contracts.membership import MEMBER_NS, require_member
from medledger.ledger.errors import InvalidPayload, Unauthorized
from medledger.records.contract import records_contracts
from medledger.records.fhir import CATEGORIES

SET_POLICY = "access.set_policy"
SET_GUARDIANS = "access.set_guardians"
REQUEST = "access.request"
APPROVE = "access.approve"
REVOKE = "access.revoke"
DENY = "access.deny"
RECEIPT = "access.receipt"

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

#: Break-glass reaches only the International Patient Summary's categories.
EMERGENCY_CATEGORIES = frozenset({"allergies", "medications", "conditions", "immunizations"})
EMERGENCY_PURPOSES = frozenset({"ETREAT", "BTG"})
EMERGENCY_MAX_S = 24 * 3600
EMERGENCY_REQUESTER_ROLE = "doctor"
EMERGENCY_APPROVER_ROLE = "officer"

MAX_GUARDIANS = 4
MAX_CATEGORIES = 16
MAX_RECORDS = 256
MAX_APPROVALS = 16
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


def policy_key(patient: Address, category: str) -> str:
    return f"{patient}/{category}"


def audit_key(patient: Address, n: int) -> str:
    # Zero-padded so that keys sort in the order the reads happened.
    return f"{patient}/{n:012d}"


def _append(view: StateView, ns: str, count_ns: str, patient: Address, entry: Any) -> list[Write]:
    """Add ``entry`` to one of a patient's lists (audit, notices, requests)."""
    count = int(view.get(count_ns, patient) or 0)
    return [Write(ns, audit_key(patient, count), entry), Write(count_ns, patient, count + 1)]


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


def _require_patient(view: StateView, address: Address) -> None:
    if view.get(SUBJECT_NS, address) is None:
        raise InvalidPayload(f"{address} is not a registered patient")


def speaks_for(view: StateView, patient: Address, sender: Address) -> bool:
    """Whether ``sender`` is the patient or one of the guardians they named."""
    return sender == patient or sender in (view.get(GUARDIAN_NS, patient) or [])


def _require_patient_or_guardian(view: StateView, patient: Address, sender: Address) -> None:
    if not speaks_for(view, patient, sender):
        raise NotPatient(f"{sender} is neither patient {patient} nor one of their guardians")


def _categories(payload: Mapping[str, Any]) -> list[str]:
    categories = p.string_list(payload, "categories", max_items=MAX_CATEGORIES)
    for i, category in enumerate(categories):
        if category not in CATEGORIES:
            raise InvalidPayload(f"categories[{i}]: {category!r} is not a data category")
    return categories


def set_policy(ctx: TxContext, view: StateView) -> list[Write]:
    patient = p.address(ctx.payload, "patient") if "patient" in ctx.payload else ctx.sender
    _require_patient(view, patient)
    _require_patient_or_guardian(view, patient, ctx.sender)
    category = p.text(ctx.payload, "category", max_length=64)
    if category not in CATEGORIES:
        raise InvalidPayload(f"category: {category!r} is not a data category")
    policy = Policy.from_json(p.field(ctx.payload, "policy"))
    previous = view.get(POLICY_NS, policy_key(patient, category))
    entry = {
        "policy": policy.to_json(),
        "version": 1 if previous is None else int(previous["version"]) + 1,
        "index": ctx.index,
        "set_by": ctx.sender,
    }
    return [Write(POLICY_NS, policy_key(patient, category), entry)]


def set_guardians(ctx: TxContext, view: StateView) -> list[Write]:
    _require_patient(view, ctx.sender)
    guardians = p.field(ctx.payload, "guardians")
    if not isinstance(guardians, list) or len(guardians) > MAX_GUARDIANS:
        raise InvalidPayload(f"guardians: expected a list of at most {MAX_GUARDIANS} addresses")
    addresses = sorted({p.address({"g": g}, "g") for g in guardians})
    if ctx.sender in addresses:
        raise InvalidPayload("guardians: a patient is not their own guardian")
    return [Write(GUARDIAN_NS, ctx.sender, addresses)]


def _requester(view: StateView, address: Address) -> Signer:
    """A requester or approver as the log knows them now."""
    role = participant_role(view, address)
    if role is not None:
        participant = view.get(PARTICIPANT_NS, address)
        assert participant is not None
        return Signer(address, role, participant["institution"])
    member = view.get(MEMBER_NS, address)
    if member is not None and member["status"] == "active":
        return Signer(address, "member", address)
    return Signer(address)


def _context(request: Mapping[str, Any], requester: Signer, now_ns: int) -> dict[str, Any]:
    """What a policy's CEL condition sees as ``request``."""
    return {
        "purpose": request["purpose"],
        "duration_s": request["duration_s"],
        "categories": list(request["categories"]),
        "requester": requester.address,
        "requester_role": requester.role or "",
        "requester_institution": requester.institution or "",
        "now_ms": now_ns // NS_PER_MS,
    }


def _check_terms(view: StateView, request: Mapping[str, Any], now_ns: int) -> dict[str, int]:
    """Check purpose, duration and condition against every category's policy."""
    requester = _requester(view, request["requester"])
    versions = {}
    for category in request["categories"]:
        policy, versions[category] = current_policy(view, request["patient"], category)
        policy.check_request(
            purpose=request["purpose"],
            duration_s=request["duration_s"],
            context=_context(request, requester, now_ns),
        )
    return versions


def request(ctx: TxContext, view: StateView) -> list[Write]:
    requester = _requester(view, ctx.sender)
    if requester.role is None:
        raise Unauthorized(f"{ctx.sender} is neither a participant nor a member")
    patient = p.address(ctx.payload, "patient")
    _require_patient(view, patient)
    records = ctx.payload.get("records", [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise InvalidPayload(f"records: expected a list of at most {MAX_RECORDS} commitments")
    emergency = ctx.payload.get("emergency", False)
    if not isinstance(emergency, bool):
        raise InvalidPayload("emergency: expected true or false")
    entry = {
        "requester": ctx.sender,
        "patient": patient,
        "emergency": emergency,
        "categories": _categories(ctx.payload),
        "records": ["0x" + p.hex_bytes({"r": r}, "r", 32).hex() for r in records],
        "purpose": p.text(ctx.payload, "purpose", max_length=16),
        "duration_s": p.integer(ctx.payload, "duration_s", minimum=1),
        "index": ctx.index,
        "signers": [],
        "status": "pending",
    }
    if emergency:
        _check_emergency(entry, requester)
    else:
        _check_terms(view, entry, ctx.timestamp_ns)
    request_id = "0x" + ctx.tx_id.hex()
    return [
        Write(REQUEST_NS, request_id, entry),
        *_append(view, ASKED_NS, ASKED_COUNT_NS, patient, request_id),
    ]


def _check_emergency(entry: Mapping[str, Any], requester: Signer) -> None:
    """Break-glass: narrow, short, and only for a clinician in the emergency role."""
    if requester.role != EMERGENCY_REQUESTER_ROLE:
        raise Unauthorized(f"break-glass needs the {EMERGENCY_REQUESTER_ROLE} role")
    outside = sorted(set(entry["categories"]) - EMERGENCY_CATEGORIES)
    if outside:
        raise OutOfScope(f"break-glass does not reach {', '.join(outside)}")
    if entry["purpose"] not in EMERGENCY_PURPOSES:
        raise PurposeNotAllowed(
            f"break-glass purpose must be ETREAT or BTG, not {entry['purpose']}"
        )
    if entry["duration_s"] > EMERGENCY_MAX_S:
        raise DurationTooLong(f"break-glass lasts at most {EMERGENCY_MAX_S} s")


def _emergency_rule(entry: Mapping[str, Any]) -> Policy:
    # The clinician who asks and one on-call officer: two distinct people.
    approvers = KOf(2, (Person(entry["requester"]), Role(EMERGENCY_APPROVER_ROLE)))
    return Policy(approvers, EMERGENCY_PURPOSES, EMERGENCY_MAX_S)


def _approvers(ctx: TxContext, request_id: bytes, entry: Mapping[str, Any]) -> set[Address]:
    found = set(entry["signers"])
    approvals = p.object_list(ctx.payload, "approvals", max_items=MAX_APPROVALS)
    for i, item in enumerate(approvals):
        claimed = p.address(item, "signer")
        not_after = p.integer(item, "not_after_ms")
        signature = p.hex_bytes(item, "signature", 65)
        if not_after * NS_PER_MS < ctx.timestamp_ns:
            raise ApprovalExpired(f"approvals[{i}]: by {claimed}, expired at {not_after} ms")
        approval = Approval(
            ctx.network_id, request_id, entry["patient"], entry["requester"], not_after
        )
        try:
            signer = approval.signer(signature)
        except InvalidSignature as exc:
            raise BadApproval(f"approvals[{i}]: {exc}") from None
        if signer != claimed:
            raise BadApproval(
                f"approvals[{i}]: not {claimed}'s approval of this request (signed by {signer})"
            )
        found.add(signer)
    return found


def approve(ctx: TxContext, view: StateView) -> list[Write]:
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = view.get(REQUEST_NS, request_key)
    if entry is None or entry["status"] != "pending":
        raise UnknownRequest(f"no open request {request_key}")
    signers = _approvers(ctx, bytes.fromhex(request_key[2:]), entry)
    resolved = [_requester(view, address) for address in sorted(signers)]
    updated = {**entry, "signers": sorted(signers)}
    emergency = bool(entry.get("emergency"))
    waiting = []
    for category in entry["categories"]:
        if emergency:
            policy = _emergency_rule(entry)
        else:
            policy, _ = current_policy(view, entry["patient"], category)
        try:
            policy.check_approvals(entry["patient"], resolved)
        except PolicyNotSatisfied as exc:
            waiting.append(f"{category}: {exc}")
    if waiting:
        return [Write(REQUEST_NS, request_key, updated)]
    versions = {} if emergency else _check_terms(view, entry, ctx.timestamp_ns)
    grant = {
        "requester": entry["requester"],
        "patient": entry["patient"],
        "categories": entry["categories"],
        "records": entry["records"],
        "purpose": entry["purpose"],
        "approvers": sorted(signers),
        "policies": versions,
        "index": ctx.index,
        "granted_ns": ctx.timestamp_ns,
        "expires_ns": ctx.timestamp_ns + entry["duration_s"] * NS_PER_S,
        "status": "active",
        "emergency": emergency,
    }
    writes = [
        Write(REQUEST_NS, request_key, {**updated, "status": "granted"}),
        Write(GRANT_NS, request_key, grant),
    ]
    if emergency:
        writes += _notify(view, entry["patient"], {"grant": request_key, **grant})
    return writes


def _notify(view: StateView, patient: Address, notice: Mapping[str, Any]) -> list[Write]:
    """A notice the patient sees (break-glass grants)."""
    return _append(view, NOTICE_NS, NOTICE_COUNT_NS, patient, dict(notice))


def active_grant(view: StateView, grant_key: str, now_ns: int) -> Mapping[str, Any]:
    """The grant if it holds at ``now_ns``; else the specific refusal."""
    grant = view.get(GRANT_NS, grant_key)
    if grant is None:
        raise NoGrant(f"no grant {grant_key}")
    if grant["status"] == "revoked":
        raise GrantRevoked(f"grant {grant_key} was revoked at log entry {grant['revoked_index']}")
    if now_ns >= grant["expires_ns"]:
        raise GrantExpired(f"grant {grant_key} expired")
    return grant  # type: ignore[no-any-return]


def deny(ctx: TxContext, view: StateView) -> list[Write]:
    """The patient (or a guardian) turns an open request down; it can no longer be granted."""
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = view.get(REQUEST_NS, request_key)
    if entry is None or entry["status"] != "pending":
        raise UnknownRequest(f"no open request {request_key}")
    _require_patient_or_guardian(view, entry["patient"], ctx.sender)
    denied = {**entry, "status": "denied", "denied_index": ctx.index}
    return [Write(REQUEST_NS, request_key, denied)]


def revoke(ctx: TxContext, view: StateView) -> list[Write]:
    grant_key = "0x" + p.hex_bytes(ctx.payload, "grant", 32).hex()
    grant = active_grant(view, grant_key, ctx.timestamp_ns)
    _require_patient_or_guardian(view, grant["patient"], ctx.sender)
    ended = {**grant, "status": "revoked", "revoked_index": ctx.index}
    return [Write(GRANT_NS, grant_key, ended)]


def receipt(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    grant_key = "0x" + p.hex_bytes(ctx.payload, "grant", 32).hex()
    record = "0x" + p.hex_bytes(ctx.payload, "record", 32).hex()
    category = p.text(ctx.payload, "category", max_length=64)
    grant = active_grant(view, grant_key, ctx.timestamp_ns)
    if category not in grant["categories"] and record not in grant["records"]:
        raise OutOfScope(f"record {record} ({category}) is not covered by grant {grant_key}")
    entry = {
        "receipt": "0x" + ctx.tx_id.hex(),
        "grant": grant_key,
        "reader": grant["requester"],
        "record": record,
        "category": category,
        "purpose": grant["purpose"],
        "custodian": ctx.sender,
        "index": ctx.index,
        "timestamp_ns": ctx.timestamp_ns,
        # Every read under break-glass is flagged for review.
        "emergency": bool(grant.get("emergency")),
    }
    return [
        Write(RECEIPT_NS, entry["receipt"], entry),
        *_append(view, AUDIT_NS, AUDIT_COUNT_NS, grant["patient"], entry),
    ]


HANDLERS: dict[str, Handler] = {
    SET_POLICY: set_policy,
    SET_GUARDIANS: set_guardians,
    REQUEST: request,
    APPROVE: approve,
    REVOKE: revoke,
    DENY: deny,
    RECEIPT: receipt,
}


def access_contracts() -> ContractRegistry:
    """The ledger's own contracts, the records contract and the access contracts."""
    registry = records_contracts()
    registry.register_all(HANDLERS)
    return registry
