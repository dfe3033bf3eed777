"""A small deterministic consortium for ledger tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.ledger.committer import StateCommitter
from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts.base import ContractRegistry
from medledger.ledger.executor import BlockExecutor
from medledger.ledger.genesis import Founder, build_genesis
from medledger.ledger.machine import StateMachine
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Block, Orderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.ledger.verify import decode_all
from medledger.protocol import contract_set

NETWORK_ID = 4242
ROLES = ["doctor", "nurse", "officer", "verifier"]


def key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(label.encode()).digest())


def custodian_private(label: str) -> X25519PrivateKey:
    return ecies.private_from_bytes(hashlib.sha256(b"custodian:" + label.encode()).digest())


def custodian_public(label: str) -> bytes:
    return ecies.public_bytes(custodian_private(label))


@dataclass
class Consortium:
    keys: list[PrivateKey]
    genesis: SignedTransaction
    nonces: dict[str, int] = field(default_factory=dict)

    def tx(
        self,
        signer: PrivateKey,
        tx_type: str,
        payload: dict[str, Any],
        *,
        nonce: int | None = None,
        network_id: int = NETWORK_ID,
        advance: bool = True,
    ) -> SignedTransaction:
        """Sign with the next nonce this helper tracks (or an explicit one).

        ``advance=False`` for a transaction the test expects to be refused: a refused
        transaction does not use up its nonce.
        """
        if nonce is None:
            nonce = self.nonces.get(signer.address, 0)
            if advance:
                self.nonces[signer.address] = nonce + 1
        return Transaction(network_id, signer.address, nonce, tx_type, payload).sign(signer)


def make_consortium(
    size: int = 3,
    *,
    vote_threshold: int = 2,
    checkpoint_threshold: int = 2,
    custodian_threshold: int | None = None,
    registry: ContractRegistry | None = None,
) -> Consortium:
    """Founders 0..size-1, the first signing genesis; the genesis pins ``registry``'s
    protocol (the network's whole contract set unless given)."""
    keys = [key(f"founder-{i}") for i in range(size)]
    founders = [
        Founder(f"inst-{i}", f"Institution {i}", k.address, custodian_public(f"founder-{i}"))
        for i, k in enumerate(keys)
    ]
    genesis = build_genesis(
        network_id=NETWORK_ID,
        name="test consortium",
        founders=founders,
        signer=keys[0],
        vote_threshold=vote_threshold,
        checkpoint_threshold=checkpoint_threshold,
        roles=ROLES,
        custodian_threshold=custodian_threshold,
        protocol=(registry or contract_set()).protocol(),
    )
    consortium = Consortium(keys, genesis)
    consortium.nonces[keys[0].address] = 1
    return consortium


class InProcessLedger:
    """A consortium's ledger executed in process, each run one block at a clock the
    test controls (one second on from the last unless told)."""

    def __init__(
        self, url: str, registry: ContractRegistry, consortium: Consortium, *, start_ns: int = 0
    ) -> None:
        self.consortium = consortium
        self.store = LedgerStore.open(url)
        machine = StateMachine(registry, NETWORK_ID, consortium.genesis.tx_id)
        self.executor = BlockExecutor(self.store, machine)
        self.seq = 0
        self.now = start_ns
        assert self.run(consortium.genesis) == [None]

    def run(self, *txs: SignedTransaction, at: int | None = None) -> list[str | None]:
        self.seq += 1
        self.now = at if at is not None else self.now + 10**9
        raws = tuple(t.encode() for t in txs)
        block = Block(self.seq, self.now, raws)
        return [o.code for o in self.executor.apply(block, decode_all(raws, LedgerLimits()))]

    def submit(
        self, signer: PrivateKey, tx_type: str, payload: dict[str, Any], *, at: int | None = None
    ) -> tuple[str | None, bytes]:
        """One transaction in a block of its own; its nonce is used up only if accepted."""
        tx = self.consortium.tx(signer, tx_type, payload, advance=False)
        (code,) = self.run(tx, at=at)
        if code is None:
            nonces = self.consortium.nonces
            nonces[signer.address] = nonces.get(signer.address, 0) + 1
        return code, tx.tx_id


async def start_node(
    consortium: Consortium, url: str, orderer: Orderer, index: int, **kwargs: Any
) -> LedgerNode:
    kwargs.setdefault("registry", contract_set())
    node = LedgerNode(
        genesis=consortium.genesis,
        store=LedgerStore.open(url),
        orderer=orderer,
        key=consortium.keys[index],
        name=f"node-{index}",
        **kwargs,
    )
    await node.start()
    return node


def committed_state_root(store: LedgerStore, size: int) -> bytes:
    """The state root at ``size`` once a committer took the journal that far; checked
    against the root rebuilt from the whole state table."""
    StateCommitter(store.engine, store.tree_engine).catch_up()
    root = store.tree.root_at(size)
    assert root is not None, f"no state root at size {size}"
    assert root == store.scanned_state_root()
    return root
