"""The demo's cast, the checks every step makes, and what its steps share.

Demo identities are derived from labels so that every run tells the same story.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.custodian import Custodian
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.errors import MedledgerError
from medledger.institution import Institution
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.node import LedgerNode
from medledger.ledger.timestamps import NS_PER_MS
from medledger.ledger.tx import SignedTransaction
from medledger.records.proof import CommittedRecord, committed_record
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter, Written

NETWORK_ID = 2026
INSTITUTIONS = [
    ("hospital-a", "Hospital A"),
    ("hospital-b", "Hospital B"),
    ("checkup", "Checkup centre"),
]


class DemoFailed(MedledgerError):
    """A step of the demo did not turn out as it must."""


def labelled_key(label: str) -> PrivateKey:
    return PrivateKey.from_bytes(hashlib.sha256(b"medledger-demo/" + label.encode()).digest())


def labelled_x25519_private(label: str) -> X25519PrivateKey:
    secret = hashlib.sha256(b"medledger-demo-x25519/" + label.encode()).digest()
    return ecies.private_from_bytes(secret)


def labelled_x25519_public(label: str) -> bytes:
    return ecies.public_bytes(labelled_x25519_private(label))


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


async def expect_error(error: type[Exception], attempt: Callable[[], object]) -> str:
    try:
        attempt()
    except error as exc:
        return str(exc)
    raise DemoFailed(f"expected {error.__name__}, but it succeeded")


async def expect_refusal(error: type[Exception], attempt: Awaitable[object]) -> str:
    try:
        await attempt
    except error as exc:
        return str(exc)
    raise DemoFailed(f"expected {error.__name__}, but the transaction was accepted")


class Scene:
    """The network, the people and the records the steps act on, and the moves several
    steps make: a grant, the custodians, a record as committed, a cosigned checkpoint."""

    nodes: list[LedgerNode]
    genesis: SignedTransaction
    a: LedgerNode
    b: LedgerNode
    hospital_a: PrivateKey
    hospital_b: PrivateKey
    checkup: PrivateKey
    doctor_a: PrivateKey
    nurse_a: PrivateKey
    doctor_b: PrivateKey
    patient: PrivateKey
    insurer: PrivateKey
    officer_b: PrivateKey
    synthetic_id: str
    resources: list[dict[str, Any]]
    grant: bytes

    def __init__(self, console: Console, workdir: Path) -> None:
        self.console = console
        self.workdir = workdir
        self.step = 0
        self.patient_entry = 0
        self.pkey = labelled_x25519_public("patient-p")
        self.institutions: list[Institution] = []
        self.written: list[Written] = []

    async def say(self, title: str, action: Callable[[], Awaitable[str]]) -> None:
        self.step += 1
        started = time.perf_counter()
        detail = await action()
        elapsed = (time.perf_counter() - started) * 1000
        self.console.print(
            f"[green]✓[/green] [bold]{self.step:>2}. {title}[/bold] [dim]({elapsed:.0f} ms)[/dim]"
        )
        if detail:
            self.console.print(f"      {detail}")

    def _vault(self) -> VaultStore:
        return self.institutions[0].vault

    def _writer(self) -> RecordWriter:
        writer = self.institutions[0].writer
        assert writer is not None, "hospital A holds its ledger key"
        return writer

    def _custodians(self) -> list[Custodian]:
        return [i.custodian for i in self.institutions if i.custodian is not None]

    def _committed(self, resource_type: str, category: str) -> CommittedRecord:
        written = next(
            w for w in self.written
            if w.resource_type == resource_type
            and self._vault().get(w.record_id).sealed.header.category == category
        )  # fmt: skip
        stored = self._vault().get(written.record_id)
        return committed_record(stored, "0x" + self._vault().vault_id.hex(), self.a)

    async def _grant(self, requester: PrivateKey, approvers: list[PrivateKey],
                     **terms: object) -> bytes:  # fmt: skip
        request = await self.b.submit_payload(
            requester, access.REQUEST, {"patient": self.patient.address, **terms}
        )
        not_after = time.time_ns() // NS_PER_MS + 600_000
        signed = [
            Approval(NETWORK_ID, request.tx_id, self.patient.address, requester.address,
                     not_after).signed_by(k)
            for k in approvers
        ]  # fmt: skip
        await self.b.submit_payload(
            self.hospital_b, access.APPROVE, {"request": "0x" + request.tx_id.hex(),
                                              "approvals": signed}
        )  # fmt: skip
        # Every custodian knows the grant before anyone asks it for a share.
        for node in self.nodes:
            await node.wait_for_size(self.b.size)
        return request.tx_id

    async def _cosigned(self) -> Checkpoint:
        """Hospital A proposes its head; the other founders' nodes cosign it on their own."""
        # What other nodes ordered (a custodian's receipt, say) must be in A's head too.
        await self.a.wait_for_size(max(node.size for node in self.nodes))
        size = self.a.size
        await self.a.cosign_head(size)
        deadline = time.monotonic() + 10
        while True:
            cp = self.a.checkpoint(size)
            if cp is not None and len(cp.cosignatures) >= 3:
                return cp
            check(time.monotonic() < deadline, "the other members cosign within 10 s")
            await asyncio.sleep(0.02)
