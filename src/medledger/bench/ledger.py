"""``medledger bench ledger``: signed transactions verified, applied and committed, end to end.

The floor is single-thread secp256k1 public-key recovery measured in the same
run: the one step every transaction needs that the ledger cannot batch away.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from medledger.bench._network import bench_genesis
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey, recover_address
from medledger.ledger.contracts import identity
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Orderer
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import Transaction
from medledger.protocol import contract_set

NETWORK_ID = 31337
Progress = Callable[[str], None]


def _key(seed: str, i: int) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(f"{seed}/{i}".encode()).digest())


def signature_floor(samples: int = 3000) -> float:
    """Single-thread public-key recoveries per second on this machine, now."""
    key = _key("floor", 0)
    pairs = [
        (d, key.sign_digest(d))
        for d in (hashlib.sha256(str(i).encode()).digest() for i in range(samples))
    ]
    start = time.perf_counter()
    for digest, signature in pairs:
        recover_address(digest, signature)
    return samples / (time.perf_counter() - start)


def _workload(count: int) -> list[bytes]:
    """``count`` subject registrations from distinct keys, signed ahead of the clock."""
    encryption_key = "0x" + ecies.public_bytes(ecies.generate_private_key()).hex()
    return [
        Transaction(
            NETWORK_ID, k.address, 0, identity.REGISTER_SUBJECT, {"encryption_key": encryption_key}
        )
        .sign(k)
        .encode()
        for k in (_key("bench-subject", i) for i in range(count))
    ]


async def _measure(node: LedgerNode, raws: list[bytes], chunk: int) -> float:
    start = time.perf_counter()
    results = await asyncio.gather(
        *(node.submit_raw_many(raws[i : i + chunk]) for i in range(0, len(raws), chunk))
    )
    elapsed = time.perf_counter() - start
    refused = [o for part in results for o in part if not o.accepted]
    if refused:
        raise RuntimeError(
            f"{len(refused)} transactions refused, first: {refused[0].code} {refused[0].message}"
        )
    return elapsed


def run(
    *, backend: str = "embedded", tx: int = 20_000, progress: Progress | None = None
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    say("measuring the signature floor")
    floor = signature_floor()
    founders = [_key("bench-founder", i) for i in range(3)]
    custodians = [ecies.public_bytes(ecies.generate_private_key()) for _ in founders]
    genesis = bench_genesis(NETWORK_ID, founders, custodians)
    say(f"signing {tx} transactions")
    raws = _workload(tx)
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)

        async def main() -> dict[str, Any]:
            orderer: Orderer
            if backend == "embedded":
                orderer = EmbeddedOrderer(work / "ordering.db")
            elif backend == "nats":
                from medledger.ledger.ordering.nats import NatsOrderer
                from medledger.ledger.ordering.nats_servers import LocalNatsCluster

                say("starting 3 nats-server processes on loopback")
                cluster = stack.enter_context(LocalNatsCluster(work / "nats", 3))
                cluster.start()
                orderer = await NatsOrderer.connect(cluster.urls, network_id=NETWORK_ID, replicas=3)
            else:
                raise ValueError(f"unknown backend {backend!r}: expected embedded or nats")
            node = LedgerNode(
                genesis=genesis,
                store=LedgerStore.open(str(work / "state.db")),
                orderer=orderer,
                registry=contract_set(),
                key=founders[0],
                committer="process",
            )
            await node.start()
            try:
                say(f"submitting {tx} transactions")
                started = time.perf_counter()
                elapsed = await _measure(node, raws, chunk=2000)
                await node.state_root_at(node.size, timeout=600)
                with_state = time.perf_counter() - started
                blocks = node.store.applied_seq
                return {
                    "benchmark": "ledger",
                    "backend": backend,
                    "tx": tx,
                    "seconds": round(elapsed, 3),
                    "tx_per_s": round(tx / elapsed, 1),
                    "state_tx_per_s": round(tx / with_state, 1),
                    "sig_verify_per_s": round(floor, 1),
                    "tx_per_sig_verify": round(tx / elapsed / floor, 3),
                    "blocks": blocks,
                    "log_size": node.size,
                    "replicas": 3 if backend == "nats" else 1,
                    "cores": os.cpu_count(),
                    "durable": "fsync per block" if backend == "embedded" else "R3 ack, fsynced",
                }
            finally:
                await node.stop()
                node.store.close()
                await orderer.close()

        return asyncio.run(main())
