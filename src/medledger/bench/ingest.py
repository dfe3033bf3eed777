"""``medledger bench ingest``: FHIR records validated, sealed, stored and committed.

Each record is parsed, validated against the FHIR R4 models, canonicalised,
encrypted under a fresh key, its key split for 3 custodians and sealed to them
and to the patient, signed by its author, stored in the vault and committed to
the ledger in batches. The floor is the same per-record work on the same worker
processes, without the vault and the ledger, measured in the same run: the
ratio says what storing and committing cost.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medledger.access import care
from medledger.bench._network import bench_genesis, institution_in
from medledger.crypto import ecies
from medledger.crypto.keys import Address, PrivateKey
from medledger.ledger.contracts import identity
from medledger.records.pipeline import Job, SealingPool
from medledger.records.recipients import sealing_context
from medledger.records.synthetic import generate_patients
from medledger.records.writer import plan_new

NETWORK_ID = 31338
SEED = 2026
Progress = Callable[[str], None]


def _key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(b"bench-ingest/" + label.encode()).digest())


def _x25519_public(label: str) -> bytes:
    secret = hashlib.sha256(b"bench-ingest-x25519/" + label.encode()).digest()
    return ecies.public_bytes(ecies.private_from_bytes(secret))


def _workload(records: int) -> list[tuple[str, dict[str, Any]]]:
    """``records`` synthetic resources, parsed as a file's would be, each with the label of
    its patient."""
    items: list[tuple[str, dict[str, Any]]] = []
    for patient in generate_patients(records, seed=SEED):
        label = f"patient-{patient.index}"
        for resource in [patient.patient, *patient.resources]:
            items.append((label, resource))
            if len(items) == records:
                return items
    return items


def _jobs(
    items: list[tuple[str, dict[str, Any]]], patients: dict[str, tuple[Address, bytes]]
) -> list[Job]:
    return [
        plan_new(f"synthetic-{i}", resource, *patients[label])
        for i, (label, resource) in enumerate(items)
    ]


async def _floor(pool: SealingPool, jobs: list[Job]) -> float:
    start = time.perf_counter()
    async for outcomes in pool.seal(jobs):
        del outcomes
    return time.perf_counter() - start


def run(
    *, records: int = 20_000, workers: int | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    say(f"generating {records} synthetic records")
    items = _workload(records)
    founders = [_key(f"founder-{i}") for i in range(3)]
    custodians = [_x25519_public(f"custodian-{i}") for i in range(len(founders))]
    genesis = bench_genesis(NETWORK_ID, founders, custodians)
    author = _key("author")
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        work = Path(tmp)

        async def main() -> dict[str, Any]:
            async with institution_in(work, genesis, founders[0]) as institution:
                node, writer = institution.node, institution.writer
                assert writer is not None
                participant = {"address": author.address, "role": "doctor"}
                await node.submit_payload(founders[0], identity.REGISTER_PARTICIPANT, participant)
                labels = sorted({label for label, _ in items})
                say(f"registering {len(labels)} patients")
                patients = {}
                for label in labels:
                    key, public = _key(label), _x25519_public(label)
                    payload = {"encryption_key": "0x" + public.hex()}
                    await node.submit_payload(key, identity.REGISTER_SUBJECT, payload)
                    hospital = {"institution": founders[0].address}
                    await node.submit_payload(key, care.ENROL, hospital)
                    patients[label] = (key.address, public)
                pool = SealingPool(sealing_context(node, author), workers=workers)
                try:
                    await pool.warm_up()
                    say(f"floor: sealing {len(items)} records on {pool.workers} workers")
                    floor_s = await _floor(pool, _jobs(items, patients))
                    say(f"writing {len(items)} records to the vault and the ledger")
                    start = time.perf_counter()
                    report = await writer.write(_jobs(items, patients), pool)
                    elapsed = time.perf_counter() - start
                finally:
                    pool.close()
                if report.rejected:
                    raise RuntimeError(
                        f"{len(report.rejected)} records rejected: {report.rejected[0]}"
                    )
                # The ratio is taken from the figures as printed, so a reader recomputes it exactly.
                rate = round(len(items) / elapsed, 1)
                floor_rate = round(len(items) / floor_s, 1)
                return {
                    "benchmark": "ingest",
                    "records": len(report.written),
                    "patients": len(labels),
                    "seconds": round(elapsed, 3),
                    "records_per_s": rate,
                    "floor_records_per_s": floor_rate,
                    "ratio": round(rate / floor_rate, 3),
                    "batches": len(report.batches),
                    "custodians": 3,
                    "workers": pool.workers,
                    "cores": os.cpu_count(),
                    "vault_bytes_per_record": round(
                        sum(f.stat().st_size for f in work.glob("vault.db*")) / len(items)
                    ),
                }

        return asyncio.run(main())
