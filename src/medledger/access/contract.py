"""The access contracts: policies, requests, approvals, grants, revocations, receipts.

- ``access.set_policy``: the patient (or a guardian they named) sets the policy of
  one data category; each change is a new version.
- ``access.request``: a participant or member asks for one or more categories of a
  patient (optionally narrowed to named records), for a purpose and a duration;
  refused at once if a policy forbids it. A request names at least one category:
  every record it can reach is judged by its own category's policy.
- ``access.approve``: anyone relays EIP-712 approvals (access/approval.py) for an
  open request; the grant exists once every category's approver rule holds, with
  distinct signers resolved to their roles at this point in the log and only
  approvals still unexpired at that point counted. Approvals may come all at once
  or one by one.
- ``access.revoke``: the patient (or a guardian) ends a grant at once.
- ``access.deny``: the patient (or a guardian) turns an open request down.
- Break-glass (access/glass.py): a request marked ``emergency`` skips the patient's
  policies for a fixed rule, narrowly, rate-limited, reviewed after the fact.
- ``access.enrol`` / ``access.unenrol`` (access/care.py): the care relationships
  that let an institution's clinicians write to a patient's history.
- ``access.receipt``: a custodian records, before it releases a key share, that a
  grant's holder reads a record of a category the grant covers: checked against the
  grant (and its holder's standing) at this point in the log, then indexed for the
  patient's audit.

Everything a grant depends on is decided here, by every node alike; custodians
only release after their receipt is in the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medledger.access import care, glass, receipts
from medledger.access.approval import Approval
from medledger.access.errors import (
    ApprovalExpired,
    BadApproval,
    EmptyScope,
    HolderWithoutStanding,
    InconsistentScope,
    NoGrant,
    PolicyNotSatisfied,
    TooManyOpenRequests,
    UnknownRequest,
)
from medledger.access.policy import Policy
from medledger.access.receipts import RECEIPT
from medledger.access.rules import Signer
from medledger.access.settings import AccessSettings, access_settings
from medledger.access.state import (
    ASKED_COUNT_NS,
    ASKED_NS,
    AUDIT_COUNT_NS,
    AUDIT_NS,
    GRANT_NS,
    GUARDIAN_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    NS_PER_MS,
    NS_PER_S,
    OPEN_NS,
    POLICY_NS,
    RECEIPT_NS,
    REQUEST_NS,
    active_grant,
    append,
    audit_key,
    current_policy,
    grant_covers,
    named_patient,
    patient_list,
    policy_key,
    require_patient,
    require_patient_or_guardian,
    require_unended,
    signer_of,
    speaks_for,
)
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
from medledger.ledger.errors import InvalidPayload, Unauthorized
from medledger.records.contract import records_contracts
from medledger.records.fhir import CATEGORIES

__all__ = [
    "APPROVE", "ASKED_COUNT_NS", "ASKED_NS", "AUDIT_COUNT_NS", "AUDIT_NS", "DENY", "GRANT_NS",
    "NOTICE_COUNT_NS", "NOTICE_NS", "POLICY_NS", "RECEIPT", "RECEIPT_NS", "REQUEST",
    "REQUEST_NS", "REVOKE", "SET_GUARDIANS", "SET_POLICY", "access_contracts", "active_grant",
    "audit_key",
    "current_policy", "grant_covers", "patient_list", "policy_key", "speaks_for",
]  # fmt: skip

SET_POLICY = "access.set_policy"
SET_GUARDIANS = "access.set_guardians"
REQUEST = "access.request"
APPROVE = "access.approve"
REVOKE = "access.revoke"
DENY = "access.deny"

MAX_GUARDIANS = 4
MAX_CATEGORIES = 16
MAX_RECORDS = 256
MAX_APPROVALS = 16


def set_policy(ctx: TxContext, view: StateView) -> list[Write]:
    patient = named_patient(ctx.payload, ctx.sender)
    require_patient(view, patient)
    require_patient_or_guardian(view, patient, ctx.sender)
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
    require_patient(view, ctx.sender)
    guardians = p.field(ctx.payload, "guardians")
    if not isinstance(guardians, list) or len(guardians) > MAX_GUARDIANS:
        raise InvalidPayload(f"guardians: expected a list of at most {MAX_GUARDIANS} addresses")
    addresses = sorted({p.address({"g": g}, "g") for g in guardians})
    if ctx.sender in addresses:
        raise InvalidPayload("guardians: a patient is not their own guardian")
    return [Write(GUARDIAN_NS, ctx.sender, addresses)]


def _scope(payload: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The categories a request names (at least one) and the records it narrows to."""
    categories = p.field(payload, "categories")
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        raise InvalidPayload(f"categories: expected a list of at most {MAX_CATEGORIES} names")
    if not categories:
        raise EmptyScope("a request names at least one data category")
    for i, category in enumerate(categories):
        if not isinstance(category, str) or category not in CATEGORIES:
            raise InvalidPayload(f"categories[{i}]: {category!r} is not a data category")
    if len(set(categories)) != len(categories):
        raise InconsistentScope("categories: a category is named twice")
    records = payload.get("records", [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise InvalidPayload(f"records: expected a list of at most {MAX_RECORDS} commitments")
    commitments = ["0x" + p.hex_bytes({"r": r}, "r", 32).hex() for r in records]
    if len(set(commitments)) != len(commitments):
        raise InconsistentScope("records: a record is named twice")
    return categories, commitments


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
    requester = signer_of(view, request["requester"])
    versions = {}
    for category in request["categories"]:
        policy, versions[category] = current_policy(view, request["patient"], category)
        policy.check_request(
            purpose=request["purpose"],
            duration_s=request["duration_s"],
            context=_context(request, requester, now_ns),
        )
    return versions


def _open_counts(view: StateView, patient: Address) -> dict[str, int]:
    """How many requests wait for the patient's approval: ``""`` in all, and by requester.

    Kept as counts, raised by a request and lowered when it is granted or denied before
    it lapses, so the bound costs two reads. Requests that lapse unanswered are not
    lowered: when the counts reach a limit they are recounted (:func:`_recount`)."""
    return dict(view.get(OPEN_NS, patient) or {})


def _recount(view: StateView, patient: Address, now_ns: int) -> dict[str, int]:
    """The open requests counted afresh, newest first, back to the first that lapsed: all
    before it lapsed too, since every request lasts as long."""
    counts: dict[str, int] = {}
    for n in range(int(view.get(ASKED_COUNT_NS, patient) or 0) - 1, -1, -1):
        entry = view.get(REQUEST_NS, str(view.get(ASKED_NS, audit_key(patient, n))))
        if entry is None:
            continue
        if _lapsed(entry, now_ns):
            break
        if entry["status"] == "pending" and not entry["emergency"]:
            counts[""] = counts.get("", 0) + 1
            counts[entry["requester"]] = counts.get(entry["requester"], 0) + 1
    return counts


def _lapsed(request: Mapping[str, Any], now_ns: int) -> bool:
    return bool(request["expires_ns"] <= now_ns)


def _over(counts: Mapping[str, int], requester: Address, settings: AccessSettings) -> bool:
    return (
        counts.get("", 0) >= settings.max_open_requests
        or counts.get(requester, 0) >= settings.max_open_per_requester
    )


def request(ctx: TxContext, view: StateView) -> list[Write]:
    requester = signer_of(view, ctx.sender)
    if requester.role is None:
        raise Unauthorized(f"{ctx.sender} is neither a participant nor a member")
    patient = p.address(ctx.payload, "patient")
    require_patient(view, patient)
    categories, records = _scope(ctx.payload)
    emergency = ctx.payload.get("emergency", False)
    if not isinstance(emergency, bool):
        raise InvalidPayload("emergency: expected true or false")
    settings = access_settings(view)
    entry = {
        "requester": ctx.sender,
        "patient": patient,
        "emergency": emergency,
        "categories": categories,
        "records": records,
        "purpose": p.text(ctx.payload, "purpose", max_length=16),
        "duration_s": p.integer(ctx.payload, "duration_s", minimum=1),
        "index": ctx.index,
        "expires_ns": ctx.timestamp_ns + settings.request_ttl_s * NS_PER_S,
        "approvals": {},
        "signers": [],
        "status": "pending",
    }
    request_id = "0x" + ctx.tx_id.hex()
    writes = [
        Write(REQUEST_NS, request_id, entry),
        *append(view, ASKED_NS, ASKED_COUNT_NS, patient, request_id),
    ]
    if emergency:
        return [*writes, *glass.check_emergency(view, entry, requester, ctx.timestamp_ns, settings)]
    _check_terms(view, entry, ctx.timestamp_ns)
    counts = _open_counts(view, patient)
    if _over(counts, ctx.sender, settings):
        counts = _recount(view, patient, ctx.timestamp_ns)
        if _over(counts, ctx.sender, settings):
            raise TooManyOpenRequests(
                f"{counts['']} requests wait for this patient, {counts.get(ctx.sender, 0)} of "
                f"them by {ctx.sender}"
            )
    return [*writes, Write(OPEN_NS, patient, _counted(counts, ctx.sender, +1))]


def _approvals(
    ctx: TxContext, request_id: bytes, entry: Mapping[str, Any]
) -> dict[Address, int]:
    """The request's approvals so far with those relayed now: signer -> notAfter (ms)."""
    found = {Address(a): int(ms) for a, ms in entry["approvals"].items()}
    approvals = p.object_list(ctx.payload, "approvals", max_items=MAX_APPROVALS)
    for i, item in enumerate(approvals):
        claimed = p.address(item, "signer")
        not_after = p.integer(item, "not_after_ms", maximum=2**64 - 1)
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
        found[signer] = max(found.get(signer, 0), not_after)
    return found


def approve(ctx: TxContext, view: StateView) -> list[Write]:
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = view.get(REQUEST_NS, request_key)
    if entry is None or entry["status"] != "pending":
        raise UnknownRequest(f"no open request {request_key}")
    if _lapsed(entry, ctx.timestamp_ns):
        raise UnknownRequest(f"request {request_key} lapsed before it was approved")
    approvals = _approvals(ctx, bytes.fromhex(request_key[2:]), entry)
    # An approval counts only while it is unexpired: one given long ago and left to
    # lapse does not help form a grant now.
    live = {a: ms for a, ms in approvals.items() if ms * NS_PER_MS >= ctx.timestamp_ns}
    resolved = [signer_of(view, address) for address in sorted(live)]
    updated = {**entry, "approvals": approvals, "signers": sorted(approvals)}
    emergency = bool(entry["emergency"])
    waiting = []
    for category in entry["categories"]:
        if emergency:
            policy = glass.emergency_rule(entry)
        else:
            policy, _ = current_policy(view, entry["patient"], category)
        try:
            policy.check_approvals(entry["patient"], resolved)
        except PolicyNotSatisfied as exc:
            waiting.append(f"{category}: {exc}")
    if waiting:
        return [Write(REQUEST_NS, request_key, updated)]
    if signer_of(view, entry["requester"]).role is None:
        raise HolderWithoutStanding(
            f"{entry['requester']} is no longer registered at a member institution"
        )
    versions = {} if emergency else _check_terms(view, entry, ctx.timestamp_ns)
    grant = {
        "requester": entry["requester"],
        "patient": entry["patient"],
        "categories": entry["categories"],
        "records": entry["records"],
        "purpose": entry["purpose"],
        "approvers": sorted(live),
        "approvals": live,
        "policies": versions,
        "index": ctx.index,
        "granted_ns": ctx.timestamp_ns,
        "expires_ns": ctx.timestamp_ns + entry["duration_s"] * NS_PER_S,
        "status": "active",
        "emergency": emergency,
    }
    patient, holder = entry["patient"], entry["requester"]
    held = list(view.get(care.HELD_NS, care.held_key(patient, holder)) or [])
    writes = [
        Write(REQUEST_NS, request_key, {**updated, "status": "granted"}),
        Write(GRANT_NS, request_key, grant),
        *_closed(view, entry, ctx.timestamp_ns),
        Write(care.HELD_NS, care.held_key(patient, holder), [*held, request_key][-care.MAX_HELD:]),
    ]
    if emergency:
        writes.append(glass.await_review(view, request_key))
        writes += append(view, NOTICE_NS, NOTICE_COUNT_NS, patient, {"grant": request_key, **grant})
    return writes


def _closed(view: StateView, entry: Mapping[str, Any], now_ns: int) -> list[Write]:
    """One open request fewer, once granted or denied. A break-glass one was never counted,
    and one that lapsed may have been recounted away already (:func:`_recount`): denying it
    frees no slot, or its requester would get one more than the limit."""
    if entry["emergency"] or _lapsed(entry, now_ns):
        return []
    patient = entry["patient"]
    return [Write(OPEN_NS, patient, _counted(_open_counts(view, patient), entry["requester"], -1))]


def _counted(counts: Mapping[str, int], requester: str, change: int) -> dict[str, int]:
    changed = dict(counts)
    for key in ("", requester):
        changed[key] = max(0, changed.get(key, 0) + change)
        if not changed[key]:
            del changed[key]
    return changed


def deny(ctx: TxContext, view: StateView) -> list[Write]:
    """The patient (or a guardian) turns an open request down; it can no longer be granted."""
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = view.get(REQUEST_NS, request_key)
    if entry is None or entry["status"] != "pending":
        raise UnknownRequest(f"no open request {request_key}")
    require_patient_or_guardian(view, entry["patient"], ctx.sender)
    denied = {**entry, "status": "denied", "denied_index": ctx.index}
    return [Write(REQUEST_NS, request_key, denied), *_closed(view, entry, ctx.timestamp_ns)]


def revoke(ctx: TxContext, view: StateView) -> list[Write]:
    grant_key = "0x" + p.hex_bytes(ctx.payload, "grant", 32).hex()
    grant = view.get(GRANT_NS, grant_key)
    if grant is None:
        raise NoGrant(f"no grant {grant_key}")
    require_patient_or_guardian(view, grant["patient"], ctx.sender)
    require_unended(grant_key, grant, ctx.timestamp_ns)
    ended = {**grant, "status": "revoked", "revoked_index": ctx.index}
    return [Write(GRANT_NS, grant_key, ended)]


HANDLERS: dict[str, Handler] = {
    SET_POLICY: set_policy,
    SET_GUARDIANS: set_guardians,
    REQUEST: request,
    APPROVE: approve,
    REVOKE: revoke,
    DENY: deny,
}


def access_contracts() -> ContractRegistry:
    """The ledger's own contracts, the records contract and the access contracts."""
    registry = records_contracts()
    registry.register_all(HANDLERS)
    registry.register_all(care.HANDLERS)
    registry.register_all(glass.HANDLERS)
    registry.register_all(receipts.HANDLERS)
    return registry
