"""``medledger bench access``: request, 2-of-3 approval, grant, threshold release, decrypt.

Latency: one read at a time of a 1 MiB record, end to end: Dr B's request, the
patient's and the attending doctor's approvals in one transaction, the grant,
three custodians each checking the grant and appending a receipt before
releasing a share, and the decryption from two shares. Throughput: many requests
and their approvals in flight at once, counted when granted. The floor is
single-thread secp256k1 recovery, measured in the same run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medledger.access import care
from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.custodian import Custodian
from medledger.access.reader import read_record, read_records
from medledger.bench._network import bench_genesis, institution_in
from medledger.bench.ledger import signature_floor
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.institution import Institution
from medledger.ledger.contracts import identity
from medledger.ledger.node import LedgerNode
from medledger.ledger.timestamps import NS_PER_MS
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.records.pipeline import SealingPool
from medledger.records.proof import committed_record
from medledger.records.recipients import sealing_context
from medledger.records.writer import plan_new

NETWORK_ID = 31339
RECORD_BYTES = 1 << 20
Progress = Callable[[str], None]


def _key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(b"bench-access/" + label.encode()).digest())


def _x25519(label: str) -> Any:
    return ecies.private_from_bytes(hashlib.sha256(b"bench-access-x/" + label.encode()).digest())


def _big_document(patient: str) -> dict[str, Any]:
    """A DocumentReference carrying a 1 MiB attachment (a scanned report, say)."""
    raw = os.urandom(RECORD_BYTES * 3 // 4)
    attachment = {"contentType": "application/pdf", "data": base64.b64encode(raw).decode()}
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{patient}"},
        "content": [{"attachment": attachment}],
    }


def _note(n: int) -> dict[str, Any]:
    text = base64.b64encode(f"clinical note {n}".encode()).decode()
    return {
        "resourceType": "DocumentReference",
        "id": f"note-{n}",
        "status": "current",
        "subject": {"reference": "Patient/p"},
        "content": [{"attachment": {"contentType": "text/plain", "data": text}}],
    }


class Bench:
    def __init__(self, node: LedgerNode, founders: list[PrivateKey]) -> None:
        self.node = node
        self.founders = founders
        self.doctor_a, self.doctor_b, self.patient = _key("dr-a"), _key("dr-b"), _key("patient")
        self.custodians = [
            Custodian(node, founder, _x25519(f"custodian-{i}"))
            for i, founder in enumerate(founders)
        ]

    async def setup(self, institution: Institution) -> Any:
        node, a, b = self.node, self.founders[0], self.founders[1]
        await node.submit_payload(
            a, identity.REGISTER_PARTICIPANT, {"address": self.doctor_a.address, "role": "doctor"}
        )
        await node.submit_payload(
            b, identity.REGISTER_PARTICIPANT, {"address": self.doctor_b.address, "role": "doctor"}
        )
        public = ecies.public_bytes(_x25519("patient"))
        await node.submit_payload(
            self.patient, identity.REGISTER_SUBJECT, {"encryption_key": "0x" + public.hex()}
        )
        await node.submit_payload(self.patient, care.ENROL, {"institution": a.address})
        policy = {
            "approvers": {
                "k_of": 2,
                "of": [{"patient": True}, {"person": self.doctor_a.address}, {"role": "nurse"}],
            },
            "purposes": ["TREAT"],
            "max_duration_s": 86400,
        }
        await node.submit_payload(
            self.patient, access.SET_POLICY, {"category": "documents", "policy": policy}
        )
        store, writer = institution.vault, institution.writer
        assert writer is not None
        pool = SealingPool(sealing_context(node, self.doctor_a), workers=1)
        job = plan_new("scan.json", _big_document("p"), self.patient.address, public)
        report = await writer.write([job], pool)
        pool.close()
        stored = store.get(report.written[0].record_id)
        return committed_record(stored, "0x" + store.vault_id.hex(), node)

    async def chart(self, institution: Institution, count: int) -> list[Any]:
        """``count`` small records of the patient, for one query to read at once."""
        store, writer = institution.vault, institution.writer
        assert writer is not None
        public = ecies.public_bytes(_x25519("patient"))
        pool = SealingPool(sealing_context(self.node, self.doctor_a), workers=1)
        jobs = [plan_new(f"note-{n}.json", _note(n), self.patient.address, public)
                for n in range(count)]  # fmt: skip
        report = await writer.write(jobs, pool)
        pool.close()
        vault = "0x" + store.vault_id.hex()
        return [committed_record(store.get(w.record_id), vault, self.node) for w in report.written]

    def receipts(self) -> int:
        return sum(1 for tx in self.node.store.iter_txs() if tx.tx_type == access.RECEIPT)

    def _request(self) -> dict[str, Any]:
        return {
            "patient": self.patient.address,
            "categories": ["documents"],
            "purpose": "TREAT",
            "duration_s": 3600,
        }

    def _approve(self, request_id: bytes, not_after_ms: int) -> dict[str, Any]:
        """The patient's and the attending doctor's approvals of one request."""
        approval = Approval(
            NETWORK_ID, request_id, self.patient.address, self.doctor_b.address, not_after_ms
        )
        return {
            "request": "0x" + request_id.hex(),
            "approvals": [approval.signed_by(s) for s in (self.patient, self.doctor_a)],
        }

    async def grant(self) -> bytes:
        asked = await self.node.submit_payload(self.doctor_b, access.REQUEST, self._request())
        body = self._approve(asked.tx_id, time.time_ns() // NS_PER_MS + 600_000)
        await self.node.submit_payload(self.patient, access.APPROVE, body)
        if self.node.store.get(access.GRANT_NS, body["request"]) is None:
            raise RuntimeError("the approvals did not produce a grant")
        return asked.tx_id

    def signed_ahead(self, count: int) -> tuple[list[SignedTransaction], list[SignedTransaction]]:
        """Requests from Dr B and the approvals that grant them, signed before the clock."""
        first = self.node.next_nonce(self.doctor_b.address)
        relay = self.node.next_nonce(self.patient.address)
        not_after = time.time_ns() // NS_PER_MS + 600_000
        requests, approves = [], []
        for i in range(count):
            request = Transaction(
                NETWORK_ID, self.doctor_b.address, first + i, access.REQUEST, self._request()
            ).sign(self.doctor_b)
            approve = Transaction(
                NETWORK_ID,
                self.patient.address,
                relay + i,
                access.APPROVE,
                self._approve(request.tx_id, not_after),
            )
            requests.append(request)
            approves.append(approve.sign(self.patient))
        return requests, approves

    async def submit_all(self, txs: list[SignedTransaction]) -> None:
        outcomes = await self.node.submit_raw_many([tx.encode() for tx in txs])
        refused = [o for o in outcomes if not o.accepted]
        if refused:
            raise RuntimeError(f"{len(refused)} refused, first: {refused[0].message}")

    def check_granted(self, requests: list[SignedTransaction]) -> None:
        for request in requests:
            if self.node.store.get(access.GRANT_NS, "0x" + request.tx_id.hex()) is None:
                raise RuntimeError("a request was not granted")


def run(
    *, reads: int = 100, grants: int = 2000, query: int = 500, progress: Progress | None = None
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    say("measuring the signature floor")
    floor = signature_floor()
    founders = [_key(f"founder-{i}") for i in range(3)]
    custodians = [ecies.public_bytes(_x25519(f"custodian-{i}")) for i in range(len(founders))]
    genesis = bench_genesis(NETWORK_ID, founders, custodians)
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        work = Path(tmp)

        async def main() -> dict[str, Any]:
            async with institution_in(work, genesis, founders[0]) as institution:
                node = institution.node
                bench = Bench(node, founders)
                say("writing a 1 MiB record")
                record = await bench.setup(institution)
                say(f"{reads} reads, one at a time")
                latencies = []
                for _ in range(reads):
                    start = time.perf_counter()
                    grant = await bench.grant()
                    text = await read_record(
                        bench.doctor_b, grant, record, custodians=bench.custodians, threshold=2
                    )
                    latencies.append((time.perf_counter() - start) * 1000)
                    if len(text) < RECORD_BYTES:
                        raise RuntimeError("the record did not decrypt whole")
                say(f"one query over {query} records")
                chart = await bench.chart(institution, query)
                grant = await bench.grant()
                before = bench.receipts()
                start = time.perf_counter()
                opened = await read_records(
                    bench.doctor_b, grant, chart, custodians=bench.custodians, threshold=2
                )
                query_ms = (time.perf_counter() - start) * 1000
                if len(opened) != query:
                    raise RuntimeError("the query did not open every record")
                query_receipts = bench.receipts() - before
                say(f"signing {grants} requests and their approvals")
                requests, approvals = bench.signed_ahead(grants)
                say(f"{grants} grants in flight at once")
                start = time.perf_counter()
                await bench.submit_all(requests)
                await bench.submit_all(approvals)
                elapsed = time.perf_counter() - start
                bench.check_granted(requests)
            ordered = sorted(latencies)
            return {
                "benchmark": "access",
                "reads": reads,
                "record_bytes": RECORD_BYTES,
                "p50_ms": round(statistics.median(ordered), 2),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
                "query_records": query,
                "query_ms": round(query_ms, 1),
                # Each custodian logs one receipt per release of up to MAX_RELEASE_RECORDS.
                "query_receipt_txs": query_receipts,
                "grants": grants,
                "grants_per_s": round(grants / elapsed, 1),
                "sig_verify_per_s": round(floor, 1),
                "custodians": 3,
                "threshold": 2,
                "cores": os.cpu_count(),
            }

        return asyncio.run(main())
