"""A node in its own process that submits a write burst and prints each acknowledged id.

The crash test runs it, kills it with SIGKILL mid-burst, and checks that every id
it printed survived.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from medledger.ledger.ordering.embedded import EmbeddedOrderer
from tests.ledger.consortium import make_consortium, start_node
from tests.ledger.test_node import subject_tx


async def main(directory: Path) -> None:
    c = make_consortium()
    node = await start_node(
        c, str(directory / "state.db"), EmbeddedOrderer(directory / "ordering.db"), 0
    )
    print("ready", flush=True)
    for burst in range(1000):
        raws = [subject_tx(c, f"burst-{burst}-{i}").encode() for i in range(50)]
        for outcome in await node.submit_raw_many(raws):
            assert outcome.accepted, outcome
            print(outcome.tx_id.hex(), flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
