"""``medledger bench ledger``: signed transactions verified, applied and committed, end to end.

The floor is single-thread secp256k1 public-key recovery measured in the same
run: the one step every transaction needs that the ledger cannot batch away.

It also builds a state tree of a million entries in memory and measures what a
client holding a checkpoint pays to check one entry: proof size and verifications
per second.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from medledger.bench._network import bench_genesis
from medledger.crypto import ecies, smt
from medledger.crypto.keys import PrivateKey, recover_address
from medledger.ledger.contracts import identity
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Orderer
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.state_proofs import StateProof
from medledger.ledger.state_tree import state_path, value_hash
from medledger.ledger.store import LedgerStore, encode_value
from medledger.ledger.tx import Transaction
from medledger.protocol import contract_set

NETWORK_ID = 31337
STATE_ENTRIES = 1_000_000
Progress = Callable[[str], None]
_STATE_NS = "bench"


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


class _MemoryTree:
    """Tree nodes in one dict keyed ``1 << depth | prefix``: a million entries make about
    2.4 million nodes, and keeping the (depth, prefix) tuples would cost a quarter more."""

    def __init__(self) -> None:
        self.nodes: dict[int, bytes] = {}

    def node(self, depth: int, prefix: int) -> bytes | None:
        return self.nodes.get((1 << depth) | prefix)

    def apply(self, changes: Mapping[smt.Position, bytes | None]) -> None:
        nodes = self.nodes
        for (depth, prefix), node in changes.items():
            if node is None:
                nodes.pop((1 << depth) | prefix, None)
            else:
                nodes[(1 << depth) | prefix] = node


def _state_entry(i: int) -> tuple[str, bytes]:
    return f"entry-{i}", encode_value({"n": i})


def state_proofs(entries: int, samples: int = 20_000, batch: int = 100_000) -> dict[str, Any]:
    """Build a state tree of ``entries`` entries in memory, in batches as a committer
    would, then prove random entries and verify each proof as a client would."""
    tree = _MemoryTree()
    root = smt.EMPTY
    build = 0.0
    for first in range(0, entries, batch):
        writes = {
            state_path(_STATE_NS, key): value_hash(value)
            for key, value in map(_state_entry, range(first, min(entries, first + batch)))
        }
        started = time.perf_counter()
        root, changes = smt.update(tree, writes)
        tree.apply(changes)
        build += time.perf_counter() - started
    proofs = []
    # Paths are hashes: evenly spaced entries sit at random places in the tree.
    for i in range(0, entries, max(1, entries // samples)):
        key, value = _state_entry(i)
        proof = smt.prove(tree, state_path(_STATE_NS, key))
        proofs.append(StateProof(_STATE_NS, key, entries, root, value, proof))
    started = time.perf_counter()
    for state_proof in proofs:
        state_proof.verify(root)
    verify = time.perf_counter() - started
    sizes = sorted(p.proof.size() for p in proofs)
    return {
        "state_entries": entries,
        "state_tree_build_s": round(build, 3),
        "state_tree_nodes": len(tree.nodes),
        # Linux reports kilobytes.
        "state_tree_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "state_proof_verify_per_s": round(len(proofs) / verify, 1),
        "state_proof_bytes_p50": sizes[len(sizes) // 2],
        "state_proof_bytes_max": sizes[-1],
        "state_proof_depth_mean": round(statistics.fmean(len(p.proof.siblings) for p in proofs), 2),
    }


def _state_figures(entries: int) -> dict[str, Any]:
    # A process of its own: its peak memory is the tree's alone, and the bench process
    # does not keep the tree's pages after it.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(state_proofs, entries).result()


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
    *,
    backend: str = "embedded",
    tx: int = 20_000,
    state_entries: int = STATE_ENTRIES,
    progress: Progress | None = None,
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

        result = asyncio.run(main())
    say(f"building a state tree of {state_entries} entries and verifying proofs")
    return result | _state_figures(state_entries)
