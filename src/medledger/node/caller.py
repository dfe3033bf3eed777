"""Who is calling: the address that signed the request, and what the ledger says it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medledger.crypto.keys import Address
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import (
    is_subject,
    participant_institution,
    participant_role,
)
from medledger.ledger.contracts.membership import is_member

Kind = Literal["member", "participant", "subject", "unknown"]


@dataclass(frozen=True)
class Caller:
    address: Address
    kind: Kind
    role: str | None = None
    #: The member institution a participant belongs to (a member is its own).
    institution: Address | None = None

    def is_staff_of(self, institution: Address) -> bool:
        return self.kind in ("member", "participant") and self.institution == institution


def resolve_caller(state: StateView, address: Address) -> Caller:
    """The caller's standing in the ledger at this node's current state."""
    if is_member(state, address):
        return Caller(address, "member", None, address)
    institution = participant_institution(state, address)
    if institution is not None:
        return Caller(address, "participant", participant_role(state, address), institution)
    if is_subject(state, address):
        return Caller(address, "subject")
    return Caller(address, "unknown")
