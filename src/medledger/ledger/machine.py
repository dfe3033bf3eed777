"""The deterministic state machine: checks every transaction has to pass, then its handler.

Signatures are checked before a transaction reaches the machine (in parallel,
outside it); everything else that decides acceptance happens here, against state
only, so that every node reaches the same verdict.
"""

from __future__ import annotations

from medledger.ledger.contracts.base import ContractRegistry, LogView, StateView, TxContext, Write
from medledger.ledger.errors import NonceGap, NotInitialised, ReplayedTransaction, WrongNetwork
from medledger.ledger.tx import SignedTransaction, Transaction

NONCE_NS = "nonce"
NETWORK_NS = "network"
CONFIG_KEY = "config"


def check_network(tx: Transaction, network_id: int) -> None:
    if tx.network_id != network_id:
        raise WrongNetwork(f"transaction for network {tx.network_id}, this is network {network_id}")


def check_nonce(tx: Transaction, expected: int) -> None:
    """The sender's transactions take their nonces one by one, none skipped, none reused."""
    if tx.nonce < expected:
        raise ReplayedTransaction(
            f"nonce {tx.nonce} of {tx.sender} is already used; the next is {expected}"
        )
    if tx.nonce > expected:
        raise NonceGap(f"got nonce {tx.nonce} from {tx.sender}, expected {expected}")


class StateMachine:
    def __init__(self, registry: ContractRegistry, network_id: int, genesis_id: bytes) -> None:
        self.registry = registry
        self.network_id = network_id
        self.genesis_id = genesis_id

    def execute(
        self,
        stx: SignedTransaction,
        view: StateView,
        *,
        index: int,
        timestamp_ns: int,
        log: LogView,
    ) -> list[Write]:
        """Return the writes of a signature-checked transaction, or raise a rejection."""
        tx = stx.tx
        check_network(tx, self.network_id)
        if view.get(NETWORK_NS, CONFIG_KEY) is None and stx.tx_id != self.genesis_id:
            raise NotInitialised(
                f"the network starts with genesis 0x{self.genesis_id.hex()}, "
                f"got 0x{stx.tx_id.hex()}"
            )
        expected = view.get(NONCE_NS, tx.sender) or 0
        check_nonce(tx, expected)
        handler = self.registry.handler(tx.tx_type)
        context = TxContext.of(stx, index=index, timestamp_ns=timestamp_ns, log=log)
        writes = list(handler(context, view))
        writes.append(Write(NONCE_NS, tx.sender, expected + 1))
        return writes
