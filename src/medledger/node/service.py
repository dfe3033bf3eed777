"""One institution's node: its ledger node, vault, custodian and writer, started together.

The HTTP layer (app.py) only translates; everything a route does goes through
here or the library below it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from medledger.access import care
from medledger.access.custodian import Custodian
from medledger.credentials.issuer import Issuer
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import decrypt_keystore
from medledger.errors import UsageError
from medledger.ledger.genesis import load_genesis
from medledger.ledger.node import LedgerNode
from medledger.ledger.ordering.base import Orderer
from medledger.ledger.ordering.embedded import EmbeddedOrderer
from medledger.ledger.ordering.nats import NatsOrderer
from medledger.ledger.ordering.nats_durability import check_sync_always
from medledger.ledger.store import LedgerStore
from medledger.node.config import NodeSettings
from medledger.node.home import CUSTODIAN_LABEL, encryption_key, passphrase, read_keystore
from medledger.node.replay import SeenNonces
from medledger.protocol import contract_set
from medledger.records.store import VaultStore
from medledger.records.writer import RecordWriter

log = logging.getLogger(__name__)


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
        self._orderer: Orderer | None = None
        self._node: LedgerNode | None = None
        self._vault: VaultStore | None = None
        self._nonces: SeenNonces | None = None
        self._issuer: Issuer | None = None
        self.writer: RecordWriter
        self.custodian: Custodian

    @property
    def node(self) -> LedgerNode:
        if self._node is None:
            raise UsageError("the node is not started")
        return self._node

    @property
    def vault(self) -> VaultStore:
        if self._vault is None:
            raise UsageError("the node is not started")
        return self._vault

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
        return self._node is not None

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
            self._orderer = await NatsOrderer.connect(s.nats_urls, network_id=genesis.tx.network_id)
        else:
            self._orderer = EmbeddedOrderer(s.ordering_file)
        self._node = LedgerNode(
            genesis=genesis,
            store=LedgerStore.open(s.state_database),
            orderer=self._orderer,
            registry=contract_set(),
            key=self.keys.member,
            name=s.name,
        )
        await self._node.start()
        self._vault = VaultStore.open(s.vault_database, network_id=genesis.tx.network_id)
        self.writer = RecordWriter(
            self._vault, self._node, self.keys.member, authoring=care.check_author
        )
        recovered = await self.writer.recover()
        if recovered:
            log.info("finished %d batches left pending by a crash", len(recovered))
        self.custodian = Custodian(
            self._node, self.keys.member, encryption_key(self.keys.custodian, CUSTODIAN_LABEL)
        )
        self._nonces = SeenNonces(s.data_dir / "request-nonces.db")
        log.info("node %s serving network %d at log size %d",
                 s.name, self._node.network_id, self._node.size)  # fmt: skip

    async def stop(self) -> None:
        if self._nonces is not None:
            self._nonces.close()
        if self._vault is not None:
            self._vault.close()
        if self._node is not None:
            await self._node.stop()
            self._node.store.close()
        if self._orderer is not None:
            await self._orderer.close()
        self._node = self._vault = self._nonces = self._orderer = self._issuer = None
