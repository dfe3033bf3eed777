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
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.custodian import Custodian
from medledger.access.reader import read_record
from medledger.bench.ledger import signature_floor
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.ledger.genesis import Founder, build_genesis
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction, Transaction
from medledger.records.pipeline import SealingPool
from medledger.records.proof import committed_record
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter, plan_new, sealing_context

NETWORK_ID = 31339
RECORD_BYTES = 1 << 20
Progress = Callable[[str], None]


def _key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(b"bench-access/" + label.encode()).digest())


def _x25519(label: str) -> Any:
    return ecies.private_from_bytes(hashlib.sha256(b"bench-access-x/" + label.encode()).digest())


def _big_document(patient: str) -> bytes:
    """A DocumentReference carrying a 1 MiB attachment (a scanned report, say)."""
    raw = os.urandom(RECORD_BYTES * 3 // 4)
    return json.dumps(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "subject": {"reference": f"Patient/{patient}"},
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "data": base64.b64encode(raw).decode(),
                    }
                }
            ],
        }
    ).encode()


class Bench:
    def __init__(self, node: LedgerNode, founders: list[PrivateKey]) -> None:
        self.node = node
        self.founders = founders
        self.doctor_a, self.doctor_b, self.patient = _key("dr-a"), _key("dr-b"), _key("patient")
        self.custodians = [
            Custodian(node, founder, _x25519(f"custodian-{i}"))
            for i, founder in enumerate(founders)
        ]

    async def setup(self, store: VaultStore) -> Any:
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
        writer = RecordWriter(store, node, a)
        pool = SealingPool(sealing_context(node, self.doctor_a), workers=1)
        job = plan_new("scan.json", _big_document("p"), self.patient.address, public)
        report = await writer.write([job], pool)
        pool.close()
        stored = store.get(report.written[0].record_id)
        return committed_record(stored, "0x" + store.vault_id.hex(), node)

    async def grant(self) -> bytes:
        payload = {
            "patient": self.patient.address,
            "categories": ["documents"],
            "purpose": "TREAT",
            "duration_s": 3600,
        }
        asked = await self.node.submit_payload(self.doctor_b, access.REQUEST, payload)
        not_after = time.time_ns() // 1_000_000 + 600_000
        approval = Approval(
            NETWORK_ID, asked.tx_id, self.patient.address, self.doctor_b.address, not_after
        )
        approvals = [
            {
                "signer": signer.address,
                "not_after_ms": not_after,
                "signature": "0x" + approval.sign(signer).hex(),
            }
            for signer in (self.patient, self.doctor_a)
        ]
        request = "0x" + asked.tx_id.hex()
        await self.node.submit_payload(
            self.patient, access.APPROVE, {"request": request, "approvals": approvals}
        )
        if self.node.store.get(access.GRANT_NS, request) is None:
            raise RuntimeError("the approvals did not produce a grant")
        return asked.tx_id

    def signed_ahead(self, count: int) -> tuple[list[SignedTransaction], list[SignedTransaction]]:
        """Requests from Dr B and the approvals that grant them, signed before the clock."""
        first = self.node.next_nonce(self.doctor_b.address)
        relay = self.node.next_nonce(self.patient.address)
        not_after = time.time_ns() // 1_000_000 + 600_000
        payload = {
            "patient": self.patient.address,
            "categories": ["documents"],
            "purpose": "TREAT",
            "duration_s": 3600,
        }
        requests, approves = [], []
        for i in range(count):
            request = Transaction(
                NETWORK_ID, self.doctor_b.address, first + i, access.REQUEST, payload
            ).sign(self.doctor_b)
            approval = Approval(
                NETWORK_ID, request.tx_id, self.patient.address, self.doctor_b.address, not_after
            )
            body = {
                "request": "0x" + request.tx_id.hex(),
                "approvals": [
                    {
                        "signer": s.address,
                        "not_after_ms": not_after,
                        "signature": "0x" + approval.sign(s).hex(),
                    }
                    for s in (self.patient, self.doctor_a)
                ],
            }
            approves.append(
                Transaction(NETWORK_ID, self.patient.address, relay + i, access.APPROVE, body).sign(
                    self.patient
                )
            )
            requests.append(request)
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
    *, reads: int = 100, grants: int = 2000, progress: Progress | None = None
) -> dict[str, Any]:
    say = progress or (lambda _msg: None)
    say("measuring the signature floor")
    floor = signature_floor()
    founders = [_key(f"founder-{i}") for i in range(3)]
    genesis = build_genesis(
        network_id=NETWORK_ID,
        name="bench",
        founders=[
            Founder(
                f"inst-{i}",
                f"Institution {i}",
                k.address,
                ecies.public_bytes(_x25519(f"custodian-{i}")),
            )
            for i, k in enumerate(founders)
        ],
        signer=founders[0],
        vote_threshold=2,
        checkpoint_threshold=2,
        roles=["doctor", "nurse"],
    )
    with tempfile.TemporaryDirectory(prefix="medledger-bench-") as tmp:
        work = Path(tmp)

        async def main() -> dict[str, Any]:
            orderer = EmbeddedOrderer(work / "ordering.db")
            node = LedgerNode(
                genesis=genesis,
                store=LedgerStore.open(str(work / "ledger.db")),
                orderer=orderer,
                registry=access.access_contracts(),
                key=founders[0],
            )
            await node.start()
            store = VaultStore.open(str(work / "vault.db"), network_id=NETWORK_ID)
            try:
                bench = Bench(node, founders)
                say("writing a 1 MiB record")
                record = await bench.setup(store)
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
                say(f"signing {grants} requests and their approvals")
                requests, approvals = bench.signed_ahead(grants)
                say(f"{grants} grants in flight at once")
                start = time.perf_counter()
                await bench.submit_all(requests)
                await bench.submit_all(approvals)
                elapsed = time.perf_counter() - start
                bench.check_granted(requests)
            finally:
                store.close()
                await node.stop()
                node.store.close()
                await orderer.close()
            ordered = sorted(latencies)
            return {
                "benchmark": "access",
                "reads": reads,
                "record_bytes": RECORD_BYTES,
                "p50_ms": round(statistics.median(ordered), 2),
                "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
                "grants": grants,
                "grants_per_s": round(grants / elapsed, 1),
                "sig_verify_per_s": round(floor, 1),
                "custodians": 3,
                "threshold": 2,
                "cores": os.cpu_count(),
            }

        return asyncio.run(main())
