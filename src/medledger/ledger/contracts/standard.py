"""The registry of the ledger's own contracts."""

from __future__ import annotations

from medledger.ledger.contracts import checkpoint, identity, membership
from medledger.ledger.contracts.base import ContractRegistry


def ledger_contracts() -> ContractRegistry:
    """A registry with the ledger's governance contracts; domain layers add theirs."""
    registry = ContractRegistry()
    for module in (membership, identity, checkpoint):
        registry.register_all(module.HANDLERS)
    return registry
