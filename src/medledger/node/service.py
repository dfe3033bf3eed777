"""One institution's node: its ledger node, vault, custodian and writer, started together.

The HTTP layer (app.py) only translates; everything a route does goes through
here or the library below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from medledger.access import glass
from medledger.access.custodian import Custodian
from medledger.credentials.issuer import Issuer
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import MedledgerError, TransportError, UsageError
from medledger.institution import Institution, Parts
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts.checkpoint import COSIGN
from medledger.ledger.errors import Conflict
from medledger.ledger.genesis import load_genesis
from medledger.ledger.heads import CheckpointScheduler
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Orderer
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.ordering.nats import NatsOrderer
from medledger.ledger.ordering.nats_durability import check_sync_always
from medledger.ledger.timestamps import NS_PER_S
from medledger.node.config import NodeSettings
from medledger.node.identities import CUSTODIAN_LABEL, encryption_key, passphrase, read_keystore
from medledger.node.replay import SeenNonces
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter

log = logging.getLogger(__name__)

#: How often a node looks for break-glass reviews gone overdue.
REVIEW_SWEEP_S = 60


@dataclass(frozen=True)
class NodeKeys:
    member: PrivateKey
    custodian: PrivateKey

    @classmethod
    def load(cls, settings: NodeSettings) -> NodeKeys:
        return cls(_keystore(settings, "member_key"), _keystore(settings, "custodian_key"))


def _keystore(settings: NodeSettings, field: str) -> PrivateKey:
    path = getattr(settings, field)
    try:
        document = read_keystore(path)
    except FileNotFoundError:
        raise UsageError(f"{field}: no keystore at {path}") from None
    return decrypt_keystore(document, passphrase())


class NodeService:
    def __init__(self, settings: NodeSettings, keys: NodeKeys) -> None:
        self.settings = settings
        self.keys = keys
        self._institution: Institution | None = None
        self._nonces: SeenNonces | None = None
        self._issuer: Issuer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._checkpointing = asyncio.Lock()
        self.writer: RecordWriter
        self.custodian: Custodian

    @property
    def node(self) -> LedgerNode:
        return self._started.node

    @property
    def vault(self) -> VaultStore:
        return self._started.vault

    @property
    def _started(self) -> Institution:
        if self._institution is None:
            raise UsageError("the node is not started")
        return self._institution

    @property
    def nonces(self) -> SeenNonces:
        if self._nonces is None:
            raise UsageError("the node is not started")
        return self._nonces

    @property
    def issuer(self) -> Issuer:
        """The institution as a credential issuer; its state is set up on first use."""
        if self._issuer is None:
            data, url = self.settings.data_dir, self.settings.issuer_url
            self._issuer = Issuer(
                self.node, self.keys.member, data / "issuer", tails_dir=data / "tails", url=url
            )
        return self._issuer

    @property
    def running(self) -> bool:
        return self._institution is not None

    @property
    def vault_id(self) -> str:
        return "0x" + self.vault.vault_id.hex()

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        genesis = load_genesis(s.genesis)
        if s.orderer == "nats":
            if not s.nats_urls:
                raise UsageError("orderer nats needs nats_urls")
            if not s.nats_monitor_urls:
                raise UsageError(
                    "orderer nats needs nats_monitor_urls, to check that every server syncs "
                    "each write to disk"
                )
            # Before connecting: a node must not take blocks as ordered that a
            # power failure could still take back.
            await check_sync_always(s.nats_monitor_urls)
            orderer: Orderer = await NatsOrderer.connect(
                s.nats_urls, network_id=genesis.tx.network_id
            )
        else:
            orderer = EmbeddedOrderer(s.ordering_file)
        parts = Parts(
            genesis=genesis, state_url=s.state_database, vault_url=s.vault_database,
            name=s.name, member=self.keys.member,
            custodian_key=encryption_key(self.keys.custodian, CUSTODIAN_LABEL),
            committer=s.state_committer, witness=s.data_dir / "signed-head.json",
            check_store=s.check_store_on_start,
        )  # fmt: skip
        try:
            institution = Institution(parts, orderer)
        except BaseException:
            await orderer.close()
            raise
        try:
            await institution.start()
        except BaseException:
            await institution.stop()
            raise
        self._institution = institution
        assert institution.writer is not None and institution.custodian is not None
        self.writer, self.custodian = institution.writer, institution.custodian
        self._nonces = SeenNonces(s.data_dir / "request-nonces.db")
        scheduler = CheckpointScheduler(
            self.node, interval_s=s.checkpoint_interval_s, every_entries=s.checkpoint_every_entries
        )
        self._tasks = [
            asyncio.create_task(scheduler.run(), name=f"{s.name}-checkpoints"),
            asyncio.create_task(self._flag_overdue_reviews(), name=f"{s.name}-reviews"),
        ]
        log.info("node %s serving network %d at log size %d",
                 s.name, self.node.network_id, self.node.size)  # fmt: skip

    async def covering_checkpoint(self, *, timeout_s: float) -> Checkpoint:
        """A checkpoint covering every entry of the log now but cosignatures: the latest
        if it does, else one this node proposes and the other members cosign."""
        async with self._checkpointing:
            node = self.node
            latest = node.checkpoint()
            covered = 0 if latest is None else latest.head.size
            if latest is not None and not node.store.has_entries_besides(covered, COSIGN):
                return latest
            head = await node.head_at()
            with contextlib.suppress(Conflict):
                # Another member's proposal may have had this node cosign that size already.
                await node.cosign_head(head.size)
            deadline = time.monotonic() + timeout_s
            while (latest := node.checkpoint()) is None or latest.head.size < head.size:
                if time.monotonic() > deadline:
                    raise TransportError(f"no checkpoint at size {head.size} in {timeout_s} s")
                await asyncio.sleep(0.02)
            return latest

    async def _flag_overdue_reviews(self) -> None:
        """Flag break-glass grants whose review is overdue, members taking turns."""
        while True:
            await asyncio.sleep(REVIEW_SWEEP_S)
            node, member = self.node, self.keys.member
            now_ns = time.time_ns()
            delay_ns = glass.flagger_delay_s(member.address, node.members()) * NS_PER_S
            for grant in glass.overdue(node.store, now_ns - delay_ns):
                try:
                    await node.submit_payload(member, glass.FLAG_OVERDUE, {"grant": grant})
                except MedledgerError as exc:
                    log.info("break-glass review flag not sent: %s", type(exc).__name__)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._nonces is not None:
            self._nonces.close()
        if self._institution is not None:
            await self._institution.stop()
        self._institution = self._nonces = self._issuer = None
