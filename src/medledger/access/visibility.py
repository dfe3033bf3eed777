"""Who may read which part of the ledger: need to know, not possession of a key pair.

Every node holds the whole log and state, so its operator (a member) sees all of
it; that is the members' lot, and their custodians need it. Through a node's API
everyone else sees only what they are party to:

- health data's neighbours (requests, grants, receipts, policies, audit lists,
  enrolments, notices) to the patient (and guardians), the requester or reader,
  the people who approved or could approve, and the institution concerned;
- a patient's registration (pseudonym and encryption key) to the patient, and to
  the consortium's staff who seal records to it;
- consortium facts (members, staff directory, checkpoints, vault commitments,
  credential issuers' documents) to any registered party;
- nothing to an address the ledger does not know.

Anything else gets the hash of what it asked for (proofs) or the answer a missing
item gets: "not yours" and "no such thing" are told apart by nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medledger.access import care, glass
from medledger.access.errors import NoGrant, UnknownRequest
from medledger.access.policy import Policy
from medledger.access.rules import Signer, could_fill
from medledger.access.settings import access_settings
from medledger.access.state import (
    ASKED_COUNT_NS,
    ASKED_NS,
    AUDIT_COUNT_NS,
    AUDIT_NS,
    CARE_NS,
    GRANT_NS,
    GUARDIAN_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    OPEN_NS,
    POLICY_NS,
    RECEIPT_NS,
    REQUEST_NS,
    AccessRequest,
    Grant,
    current_policy,
    grant_of,
    signer_of,
    speaks_for,
)
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import SUBJECT_NS, is_subject
from medledger.ledger.contracts.membership import is_member
from medledger.ledger.machine import NONCE_NS
from medledger.ledger.tx import Transaction

#: Lists and counters keyed by the patient, first part of the key.
_PATIENT_KEYED = frozenset({
    POLICY_NS, GUARDIAN_NS, AUDIT_NS, AUDIT_COUNT_NS, NOTICE_NS, NOTICE_COUNT_NS, ASKED_NS,
    ASKED_COUNT_NS, OPEN_NS,
})  # fmt: skip
_CONSORTIUM_OVERSIGHT = frozenset({glass.GLASS_NS, glass.REVIEW_DUE_NS, glass.ALERT_NS,
                                   glass.ALERT_COUNT_NS})  # fmt: skip


def is_registered(view: StateView, address: Address) -> bool:
    return signer_of(view, address).role is not None or is_subject(view, address)


def may_read_state(view: StateView, reader: Address, ns: str, key: str) -> bool:
    """Whether ``reader`` may see the state entry ``(ns, key)``."""
    if is_member(view, reader):
        return True
    if not is_registered(view, reader):
        return False
    if ns in _PATIENT_KEYED:
        return speaks_for(view, _first(key), reader)
    if ns in (REQUEST_NS, GRANT_NS):
        entry = view.get(ns, key)
        if entry is None:
            return False
        typed = AccessRequest if ns == REQUEST_NS else Grant
        return party_to_request(view, reader, typed.from_state(key, entry))
    if ns == RECEIPT_NS:
        entry = view.get(ns, key)
        return entry is not None and _party_to_receipt(view, reader, entry)
    if ns == CARE_NS:
        patient, _, institution = key.partition("/")
        return speaks_for(view, Address(patient), reader) or (
            signer_of(view, reader).institution == institution
        )
    if ns == care.HELD_NS:
        patient, _, holder = key.partition("/")
        return reader == holder or speaks_for(view, Address(patient), reader)
    if ns in _CONSORTIUM_OVERSIGHT:
        return signer_of(view, reader).role == access_settings(view).reviewer_role
    if ns == NONCE_NS:
        return key == reader
    if ns == SUBJECT_NS:
        return key == reader or signer_of(view, reader).role is not None
    return not ns.startswith("access.")


def request_for_party(view: StateView, reader: Address, request_id: str) -> AccessRequest:
    """A request the reader is party to; to anyone else it does not exist."""
    entry = view.get(REQUEST_NS, request_id)
    request = None if entry is None else AccessRequest.from_state(request_id, entry)
    if request is None or not party_to_request(view, reader, request):
        raise UnknownRequest(f"no request {request_id}")
    return request


def grant_for_party(view: StateView, reader: Address, grant_id: str) -> Grant:
    """A grant the reader is party to; to anyone else it does not exist."""
    grant = grant_of(view, grant_id)
    if grant is None or not party_to_request(view, reader, grant):
        raise NoGrant(f"no grant {grant_id}")
    return grant


def party_to_request(view: StateView, reader: Address, request: AccessRequest | Grant) -> bool:
    """The requester, the patient or a guardian, whoever approved, and whoever the
    request's policies would count as an approver (so they can be asked)."""
    if reader == request.requester or speaks_for(view, request.patient, reader):
        return True
    if reader in request.approvals:
        return True
    signer = signer_of(view, reader)
    if request.emergency:
        return could_fill(glass.emergency_rule(request.requester).approvers, signer,
                          request.patient)  # fmt: skip
    return any(_could_approve(view, request, c, signer) for c in request.categories)


def _could_approve(
    view: StateView, request: AccessRequest | Grant, category: str, signer: Signer
) -> bool:
    policy: Policy = current_policy(view, request.patient, category)[0]
    return could_fill(policy.approvers, signer, request.patient)


def _party_to_receipt(view: StateView, reader: Address, receipt: Mapping[str, Any]) -> bool:
    if reader in (receipt["reader"], receipt["custodian"]):
        return True
    return speaks_for(view, receipt["patient"], reader)


def may_read_transaction(view: StateView, reader: Address, tx: Transaction) -> bool:
    """Whether ``reader`` may see a logged transaction's body: its sender, whoever may
    see the state entries it is about, and members."""
    if reader == tx.sender or is_member(view, reader):
        return True
    if not is_registered(view, reader):
        return False
    about = _state_touched(tx)
    if about is None:
        return not tx.tx_type.startswith("access.") and tx.tx_type != "identity.register_subject"
    return any(may_read_state(view, reader, ns, key) for ns, key in about)


def _state_touched(tx: Transaction) -> list[tuple[str, str]] | None:
    """The state entries a transaction is about, for judging who may see it; None for a
    transaction about no one in particular."""
    tx_type, payload, sender = tx.tx_type, tx.payload, tx.sender
    try:
        if tx_type in ("access.approve", "access.deny"):
            return [(REQUEST_NS, str(payload["request"]).lower())]
        if tx_type == "access.receipt":
            # An owner read names no grant: its patient's audit is what it is about.
            return [(GRANT_NS, str(payload["grant"]).lower()),
                    (AUDIT_COUNT_NS, Address(str(payload["patient"])))]  # fmt: skip
        if tx_type in ("access.revoke", glass.REVIEW, glass.FLAG_OVERDUE):
            return [(GRANT_NS, str(payload["grant"]).lower())]
        if tx_type == "access.request":
            return [(REQUEST_NS, "0x" + tx.digest.hex())]
        if tx_type in ("access.set_policy", "access.set_guardians", care.ENROL, care.UNENROL):
            return [(ASKED_COUNT_NS, Address(str(payload.get("patient", sender))))]
        if tx_type == "identity.register_subject":
            return [(SUBJECT_NS, sender)]
    except (KeyError, TypeError, InvalidInput):
        return []
    return None


def _first(key: str) -> Address:
    return Address(key.partition("/")[0])
