"""The protocol a medledger network runs: every contract, assembled in one place.

A network's genesis pins :func:`contract_set`'s protocol (its version and the set of
transaction types), and a node whose contracts differ refuses to start, so every
node that replays one log runs the same rules and reaches the same state. The node
service, the sandbox home, the local network, the demo and the benchmarks all take
their contracts from here.
"""

from __future__ import annotations

from medledger.credentials.contract import credentials_contracts
from medledger.ledger.contracts.base import ContractRegistry

#: Bumped whenever a contract's rules change what it accepts.
PROTOCOL_VERSION = "medledger/3"


def contract_set() -> ContractRegistry:
    """The ledger's, records', access and credentials contracts."""
    registry = credentials_contracts()
    registry.version = PROTOCOL_VERSION
    return registry
