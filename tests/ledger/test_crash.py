"""kill -9 of an embedded node during a write burst loses no acknowledged transaction."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from medledger.crypto import merkle
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from tests.ledger.consortium import make_consortium, start_node

REPO = Path(__file__).resolve().parents[2]


def test_kill_9_during_a_burst_loses_nothing_acknowledged(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.ledger.burst_writer", str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=env,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged: list[bytes] = []
    try:
        assert writer.stdout.readline().strip() == "ready"
        while len(acknowledged) < 400:
            line = writer.stdout.readline()
            assert line, "the writer exited before the kill"
            acknowledged.append(bytes.fromhex(line.strip()))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    acknowledged += [bytes.fromhex(line.strip()) for line in writer.stdout if line.strip()]

    async def recover() -> None:
        orderer = EmbeddedOrderer(tmp_path / "ordering.db")
        node = await start_node(make_consortium(), str(tmp_path / "state.db"), orderer, 0)
        try:
            while node.store.applied_seq < orderer.last_seq:
                await asyncio.sleep(0.01)
            missing = [tx_id.hex() for tx_id in acknowledged if node.store.tx_by_id(tx_id) is None]
            assert not missing, f"{len(missing)} acknowledged transactions lost"
            assert node.size >= len(acknowledged) + 1
            tree = merkle.MemoryTree()
            for logged in node.store.iter_txs():
                assert logged.leaf == merkle.leaf_hash(logged.raw)
                tree.append(logged.leaf)
            assert tree.size == node.size
            assert tree.root() == node.root() == merkle.root(node.store, node.size)
            for index in (0, node.size // 2, node.size - 1):
                proof = node.inclusion_proof(index)
                merkle.verify_inclusion(
                    tree.perfect(0, index), index, node.size, proof, node.root()
                )
        finally:
            await node.stop()
            node.store.close()
            await orderer.close()

    asyncio.run(recover())
