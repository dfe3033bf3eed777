"""Property: any ordered log, valid or not, leads every node to the same state and log."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts import identity
from medledger.ledger.contracts.standard import ledger_contracts
from medledger.ledger.executor import BlockExecutor
from medledger.ledger.machine import StateMachine
from medledger.ledger.ordering.base import Block
from medledger.ledger.store import LedgerStore
from medledger.ledger.verify import decode_all
from tests.ledger.consortium import (
    NETWORK_ID,
    committed_state_root,
    custodian_public,
    key,
    make_consortium,
)

CONSORTIUM = make_consortium()
SENDERS = [key(f"sender-{i}") for i in range(3)]

# Each step: (sender, nonce, garbage?). Nonces are drawn small so that replays,
# gaps and valid transactions all occur.
steps = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.booleans()), min_size=1, max_size=25
)
cuts = st.lists(st.integers(1, 5), min_size=1, max_size=10)


def replay(
    blocks: list[tuple[bytes, ...]], directory: Path
) -> tuple[bytes, bytes, int, dict[str, int]]:
    store = LedgerStore.open(str(directory / "state.db"))
    executor = BlockExecutor(
        store, StateMachine(ledger_contracts(), NETWORK_ID, CONSORTIUM.genesis.tx_id)
    )
    for seq, raws in enumerate(blocks, start=1):
        executor.apply(Block(seq, seq * 1000, raws), decode_all(raws, LedgerLimits()))
    nonces = {s.address: store.get("nonce", s.address) or 0 for s in SENDERS}
    result = (executor.root(), committed_state_root(store, executor.size), executor.size, nonces)
    store.close()
    return result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, cuts)
def test_two_nodes_replaying_one_log_agree(
    plan: list[tuple[int, int, bool]], sizes: list[int]
) -> None:
    raws = [CONSORTIUM.genesis.encode()]
    for sender, nonce, garbage in plan:
        if garbage:
            raws.append(b'{"network": 1}')
            continue
        payload = {"encryption_key": "0x" + custodian_public(f"{sender}-{nonce}").hex()}
        tx = CONSORTIUM.tx(SENDERS[sender], identity.REGISTER_SUBJECT, payload, nonce=nonce)
        raws.append(tx.encode())
    blocks: list[tuple[bytes, ...]] = []
    position = 0
    for size in sizes * (len(raws) // max(1, sum(sizes)) + 1):
        if position >= len(raws):
            break
        blocks.append(tuple(raws[position : position + size]))
        position += size
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as two:
        first = replay(blocks, Path(one))
        second = replay([tuple(raws)], Path(two))
    assert first == second
    # A sender's nonce only ever counts its accepted transactions, one by one.
    accepted = first[2] - 1
    assert sum(first[3].values()) == accepted
