"""One institution, assembled in one place: its ledger node, vault, record writer and custodian.

The node service, the sandbox home and the benchmarks open an :class:`Institution`
rather than wiring the parts by hand, so every institution runs the one contract set
(protocol.py), refuses malformed access settings in its genesis before it serves,
finishes batches a crash left pending, and writes records only by authors who may
write them. What differs between them is given: where the state and vault live, the
orderer (the caller makes it; the institution closes it), and which keys it holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.access import care
from medledger.access.custodian import Custodian
from medledger.access.settings import access_settings
from medledger.crypto.keys import PrivateKey
from medledger.errors import UsageError
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Orderer
from medledger.ledger.selfcheck import check_store
from medledger.ledger.store import LedgerStore
from medledger.ledger.tx import SignedTransaction
from medledger.protocol import contract_set
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parts:
    """Where an institution keeps its state and what it signs with."""

    genesis: SignedTransaction
    state_url: str
    vault_url: str
    name: str = "node"
    #: The institution's ledger key: it commits batches and writes receipts. None: it
    #: reads and relays only.
    member: PrivateKey | None = None
    #: Its custodian's X25519 key; with ``member``, it releases key shares.
    custodian_key: X25519PrivateKey | None = None
    committer: Literal["thread", "process"] = "thread"
    witness: Path | None = None
    #: Replay the log against the store before serving (ledger/selfcheck.py).
    check_store: bool = False


class Institution:
    def __init__(self, parts: Parts, orderer: Orderer) -> None:
        self.parts = parts
        self.registry = contract_set()
        self.node = LedgerNode(
            genesis=parts.genesis, store=LedgerStore.open(parts.state_url), orderer=orderer,
            registry=self.registry, key=parts.member, name=parts.name,
            committer=parts.committer, witness=parts.witness,
        )  # fmt: skip
        self._orderer = orderer
        self._vault: VaultStore | None = None
        self.writer: RecordWriter | None = None
        self.custodian: Custodian | None = None

    @property
    def vault(self) -> VaultStore:
        if self._vault is None:
            raise UsageError(f"institution {self.parts.name} is not started")
        return self._vault

    async def start(self) -> None:
        parts, node = self.parts, self.node
        await node.start()
        # Refuses a genesis whose access settings are malformed before anything is served.
        access_settings(node.store)
        if parts.check_store:
            log.info("checking the store against a replay of %d log entries", node.size)
            report = await asyncio.to_thread(check_store, node.store, parts.genesis, self.registry)
            if not report.ok:
                raise UsageError(
                    "the node's store does not match a replay of its log; it will not serve: "
                    + "; ".join(report.problems)
                )
        self._vault = VaultStore.open(parts.vault_url, network_id=node.network_id)
        if parts.member is not None:
            self.writer = RecordWriter(
                self._vault, node, parts.member, authoring=care.check_author
            )
            recovered = await self.writer.recover()
            if recovered:
                log.info("finished %d batches left pending by a crash", len(recovered))
            if parts.custodian_key is not None:
                self.custodian = Custodian(node, parts.member, parts.custodian_key)

    async def stop(self) -> None:
        """Close everything it opened, started or not, the orderer last."""
        if self._vault is not None:
            self._vault.close()
            self._vault = None
        await self.node.stop()
        self.node.store.close()
        await self._orderer.close()


@asynccontextmanager
async def running(parts: Parts, orderer: Orderer) -> AsyncIterator[Institution]:
    """An institution started for the length of a ``with`` block, stopped after."""
    institution = Institution(parts, orderer)
    try:
        await institution.start()
        yield institution
    finally:
        await institution.stop()
