"""Blocks stay under a byte bound: NATS refuses a message over its max_payload, and a
refused block would fail every submission in it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from medledger.ledger.config import LedgerLimits
from medledger.ledger.contracts import identity
from medledger.ledger.ordering.base import LENGTH_PREFIX
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.tx import Transaction
from tests.ledger.consortium import key, make_consortium, start_node

LIMIT = 4096


def test_a_burst_of_large_transactions_is_cut_into_blocks_under_the_bound(
    tmp_path: Path,
) -> None:
    async def main() -> dict[int, int]:
        consortium = make_consortium()
        orderer = EmbeddedOrderer(tmp_path / "ordering.db")
        limits = LedgerLimits(max_block_bytes=LIMIT, block_linger_s=0.05)
        node = await start_node(consortium, str(tmp_path / "ledger.db"), orderer, 0,
                                limits=limits)  # fmt: skip
        try:
            hospital = consortium.keys[0]
            first = node.next_nonce(hospital.address)
            # ~500 bytes each, submitted together: one block would hold ~20 KiB.
            txs = [
                Transaction(node.network_id, hospital.address, first + n,
                            identity.REGISTER_PARTICIPANT,
                            {"address": key(f"p{n}").address, "role": "nurse",
                             "name": "N" * 80}).sign(hospital)
                for n in range(40)
            ]  # fmt: skip
            outcomes = await asyncio.gather(*(node.submit(tx) for tx in txs))
            assert len(outcomes) == 40
            sizes: dict[int, int] = defaultdict(int)
            for logged in node.store.iter_txs():
                sizes[logged.seq] += len(logged.raw) + LENGTH_PREFIX
            return sizes
        finally:
            await node.stop()
            node.store.close()
            await orderer.close()

    sizes = asyncio.run(main())
    assert max(sizes.values()) <= LIMIT
    assert len(sizes) >= 4  # the burst was cut, not refused
