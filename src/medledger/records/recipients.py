"""Who a new record is sealed to: the consortium's custodians and the patient, as the
ledger says now, and what a sealing worker needs to know of them."""

from __future__ import annotations

from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput, UsageError
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import participant_role, subject_of
from medledger.ledger.contracts.membership import active_members, member_of, network_config
from medledger.ledger.node import LedgerNode
from medledger.records.pipeline import SealingContext
from medledger.records.sealed import Custodians


class UnknownPatient(InvalidInput):
    """The patient is not registered on the ledger."""


def custodians_of(node: LedgerNode) -> Custodians:
    """The consortium's custodians now: every active member's key, and the threshold."""
    return custodians_in(node.store)


def custodians_in(view: StateView) -> Custodians:
    """The custodians as ``view`` holds them: a node's own state, or state a client
    believes only as proven (node/proven_state.py), which a node may leave unanswered."""
    holders = []
    for address in active_members(view):
        member = member_of(view, address)
        if member is None:
            raise InvalidInput(f"member {address} is listed but its entry is not shown")
        holders.append((address, bytes.fromhex(member.custodian_key[2:])))
    return Custodians(int(network_config(view)["custodian_threshold"]), tuple(holders))


def patient_key(node: LedgerNode, patient: Address) -> bytes:
    """The X25519 key a registered patient published on the ledger."""
    return patient_key_in(node.store, patient)


def patient_key_in(view: StateView, patient: Address) -> bytes:
    """The X25519 key a registered patient published, as ``view`` holds it."""
    subject = subject_of(view, patient)
    if subject is None:
        raise UnknownPatient(f"{patient} is not a registered patient")
    return subject.encryption_key


def sealing_context(node: LedgerNode, author: PrivateKey) -> SealingContext:
    """Check that ``author`` may write records and gather what sealing needs."""
    if participant_role(node.store, author.address) is None:
        raise UsageError(f"{author.address} is not a registered participant and cannot author")
    return SealingContext(node.network_id, author.to_bytes(), custodians_of(node))
