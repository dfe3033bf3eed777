"""The access contracts: policies, requests, approvals, grants, revocations, receipts.

- ``access.set_policy`` (here): the patient (or a guardian they named) sets the
  policy of one data category; each change is a new version.
- ``access.request`` (access/requests.py): a participant or member asks for one or
  more categories of a patient (optionally narrowed to named records), for a purpose
  and a duration; refused at once if a policy forbids it. A request names at least
  one category: every record it can reach is judged by its own category's policy.
  How many requests wait for each patient is counted in access/open_requests.py.
- ``access.approve`` (access/grants.py): anyone relays EIP-712 approvals
  (access/approval.py) for an open request; the grant exists once every category's
  approver rule holds, with distinct signers resolved to their roles at this point
  in the log and only approvals still unexpired at that point counted. Approvals may
  come all at once or one by one.
- ``access.revoke`` (access/grants.py): the patient (or a guardian) ends a grant at
  once.
- ``access.deny`` (access/requests.py): the patient (or a guardian) turns an open
  request down.
- Break-glass (access/glass.py): a request marked ``emergency`` skips the patient's
  policies for a fixed rule, narrowly, rate-limited, reviewed after the fact.
- ``access.enrol`` / ``access.unenrol`` (access/care.py): the care relationships
  that let an institution's clinicians write to a patient's history.
- ``access.receipt`` (access/receipts.py): a custodian records, before it releases
  a key share, that a grant's holder reads a record of a category the grant covers:
  checked against the grant (and its holder's standing) at this point in the log,
  then indexed for the patient's audit.

Everything a grant depends on is decided by these contracts, by every node alike;
custodians only release after their receipt is in the log.
"""

from __future__ import annotations

from medledger.access import care, glass, receipts
from medledger.access.grants import approve, revoke
from medledger.access.policy import Policy
from medledger.access.receipts import RECEIPT
from medledger.access.requests import deny, request
from medledger.access.state import (
    ASKED_COUNT_NS,
    ASKED_NS,
    AUDIT_COUNT_NS,
    AUDIT_NS,
    GRANT_NS,
    GUARDIAN_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    POLICY_NS,
    RECEIPT_NS,
    REQUEST_NS,
    audit_key,
    current_policy,
    holding_grant,
    named_patient,
    patient_list,
    policy_key,
    require_patient,
    require_patient_or_guardian,
    speaks_for,
)
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import (
    ContractRegistry,
    Handler,
    StateView,
    TxContext,
    Write,
)
from medledger.ledger.errors import InvalidPayload
from medledger.records.categories import CATEGORIES
from medledger.records.contract import records_contracts

__all__ = [
    "APPROVE",
    "ASKED_COUNT_NS",
    "ASKED_NS",
    "AUDIT_COUNT_NS",
    "AUDIT_NS",
    "DENY",
    "GRANT_NS",
    "NOTICE_COUNT_NS",
    "NOTICE_NS",
    "POLICY_NS",
    "RECEIPT",
    "RECEIPT_NS",
    "REQUEST",
    "REQUEST_NS",
    "REVOKE",
    "SET_GUARDIANS",
    "SET_POLICY",
    "access_contracts",
    "audit_key",
    "current_policy",
    "holding_grant",
    "patient_list",
    "policy_key",
    "speaks_for",
]  # fmt: skip

SET_POLICY = "access.set_policy"
SET_GUARDIANS = "access.set_guardians"
REQUEST = "access.request"
APPROVE = "access.approve"
REVOKE = "access.revoke"
DENY = "access.deny"

MAX_GUARDIANS = 4


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
