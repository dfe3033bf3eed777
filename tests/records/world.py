"""A consortium with a vault for records tests: one node, a clinician and patients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.access import care
from medledger.crypto import ecies
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.ledger.contracts.base import ContractRegistry
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.store import LedgerStore
from medledger.protocol import contract_set
from medledger.records.pipeline import SealingPool
from medledger.records.recipients import sealing_context
from medledger.records.store import VaultStore
from medledger.records.synthetic import generate_patients
from medledger.records.writer import RecordWriter
from tests.ledger.consortium import NETWORK_ID, Consortium, custodian_private, key, make_consortium


def lab_result() -> dict[str, object]:
    """A synthetic laboratory Observation (category laboratory: data category labs)."""
    (patient,) = generate_patients(1, seed=5, records_per_patient=40)
    return next(
        r
        for r in patient.resources
        if r["resourceType"] == "Observation"
        and r["category"][0]["coding"][0]["code"] == "laboratory"
    )


def patient_private(label: str) -> X25519PrivateKey:
    return custodian_private("patient:" + label)


@dataclass
class World:
    consortium: Consortium
    node: LedgerNode
    store: VaultStore
    writer: RecordWriter
    author: PrivateKey

    @property
    def custodians(self) -> list[X25519PrivateKey]:
        return [custodian_private(f"founder-{i}") for i in range(len(self.consortium.keys))]

    async def add_patient(self, label: str, *, enrol: bool = True) -> PrivateKey:
        """A registered patient, enrolled at the hospital unless ``enrol`` is False."""
        patient = key("patient:" + label)
        public = ecies.public_bytes(patient_private(label))
        payload = {"encryption_key": "0x" + public.hex()}
        await self.node.submit_payload(patient, identity.REGISTER_SUBJECT, payload)
        if enrol:
            hospital = {"institution": self.consortium.keys[0].address}
            await self.node.submit_payload(patient, care.ENROL, hospital)
        return patient

    def pool(self, workers: int = 1, chunk: int = 16) -> SealingPool:
        return SealingPool(sealing_context(self.node, self.author), workers=workers, chunk=chunk)

    async def checkpoint(self) -> int:
        """Have two of the three founders cosign the current head."""
        size = self.node.size
        for signer in self.consortium.keys[:2]:
            await self.node.cosign_head(size, key=signer)
        return size


@asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    vault_url: str | None = None,
    batch_records: int = 64,
    registry: ContractRegistry | None = None,
) -> AsyncIterator[World]:
    consortium = make_consortium()
    orderer = EmbeddedOrderer(tmp_path / "ordering.db")
    node = LedgerNode(
        genesis=consortium.genesis,
        store=LedgerStore.open(str(tmp_path / "ledger.db")),
        orderer=orderer,
        registry=registry or contract_set(),
        key=consortium.keys[0],
        name="hospital",
    )
    await node.start()
    store = VaultStore.open(vault_url or str(tmp_path / "vault.db"), network_id=NETWORK_ID)
    author = key("dr-lee")
    try:
        register = {"address": author.address, "role": "doctor"}
        await node.submit_payload(consortium.keys[0], identity.REGISTER_PARTICIPANT, register)
        writer = RecordWriter(store, node, consortium.keys[0], batch_records=batch_records,
                              authoring=care.check_author)  # fmt: skip
        yield World(consortium, node, store, writer, author)
    finally:
        store.close()
        await node.stop()
        node.store.close()
        await orderer.close()
