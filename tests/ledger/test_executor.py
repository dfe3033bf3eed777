"""Execution driven block by block with chosen timestamps: time-dependent rules and failures."""

from __future__ import annotations

from pathlib import Path

from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts import membership
from medledger.ledger.contracts.base import StateView, TxContext, Write
from medledger.ledger.contracts.standard import ledger_contracts
from medledger.ledger.executor import BlockExecutor, HandlerFailed
from medledger.ledger.machine import StateMachine
from medledger.ledger.ordering.base import Block
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction
from medledger.ledger.verify import decode_all
from tests.ledger.consortium import (
    NETWORK_ID,
    committed_state_root,
    custodian_public,
    key,
    make_consortium,
)

DAY_NS = 24 * 3600 * 10**9


def execute(
    executor: BlockExecutor, seq: int, timestamp_ns: int, *txs: SignedTransaction
) -> list[str | None]:
    raws = tuple(t.encode() for t in txs)
    block = Block(seq, timestamp_ns, raws)
    return [o.code for o in executor.apply(block, decode_all(raws, LedgerLimits()))]


def test_a_proposal_expires_after_its_time_to_live(tmp_path: Path) -> None:
    c = make_consortium(vote_threshold=3)
    store = LedgerStore.open(str(tmp_path / "s.db"))
    executor = BlockExecutor(store, StateMachine(ledger_contracts(), NETWORK_ID, c.genesis.tx_id))
    assert execute(executor, 1, DAY_NS, c.genesis) == [None]
    member = {
        "id": "lab",
        "name": "Lab",
        "address": key("lab").address,
        "custodian_key": "0x" + custodian_public("lab").hex(),
    }
    proposal = c.tx(c.keys[0], membership.PROPOSE, {"action": "admit", "member": member})
    assert execute(executor, 2, 2 * DAY_NS, proposal) == [None]
    proposal_id = "0x" + proposal.tx_id.hex()
    assert execute(
        executor, 3, 3 * DAY_NS, c.tx(c.keys[1], membership.VOTE, {"proposal": proposal_id})
    ) == [None]
    late = c.tx(c.keys[2], membership.VOTE, {"proposal": proposal_id}, advance=False)
    assert execute(executor, 4, 10 * DAY_NS, late) == ["conflict"]
    assert key("lab").address not in membership.active_members(store)
    store.close()


def test_a_crashing_handler_rejects_the_same_way_everywhere(tmp_path: Path) -> None:
    def broken(ctx: TxContext, view: StateView) -> list[Write]:
        raise KeyError("bug")

    c = make_consortium()
    codes = []
    for name in ("a", "b"):
        registry = ledger_contracts()
        registry.register("test.broken", broken)
        store = LedgerStore.open(str(tmp_path / f"{name}.db"))
        executor = BlockExecutor(store, StateMachine(registry, NETWORK_ID, c.genesis.tx_id))
        execute(executor, 1, DAY_NS, c.genesis)
        tx = c.tx(c.keys[1], "test.broken", {}, nonce=0)
        codes.append(execute(executor, 2, DAY_NS + 1, tx))
        codes.append(committed_state_root(store, executor.size))
        store.close()
    assert codes[0] == codes[2] == [HandlerFailed.code]
    assert codes[1] == codes[3]


def test_genesis_sets_the_custodian_threshold_to_a_majority_unless_given(tmp_path: Path) -> None:
    for given, expected in ((None, 2), (3, 3), (1, 1)):
        c = make_consortium(custodian_threshold=given)
        store = LedgerStore.open(str(tmp_path / f"s{given}.db"))
        executor = BlockExecutor(
            store, StateMachine(ledger_contracts(), NETWORK_ID, c.genesis.tx_id)
        )
        assert execute(executor, 1, DAY_NS, c.genesis) == [None]
        assert membership.network_config(store)["custodian_threshold"] == expected
        store.close()


def test_genesis_refuses_a_custodian_threshold_above_the_member_count(tmp_path: Path) -> None:
    c = make_consortium(custodian_threshold=4)
    store = LedgerStore.open(str(tmp_path / "s.db"))
    executor = BlockExecutor(store, StateMachine(ledger_contracts(), NETWORK_ID, c.genesis.tx_id))
    assert execute(executor, 1, DAY_NS, c.genesis) == ["invalid_payload"]
    store.close()
