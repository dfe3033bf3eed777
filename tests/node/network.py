"""A consortium of real node servers on loopback, for the node's tests.

Each institution's node runs uvicorn in a thread of its own, with its own event
loop, on a socket bound to 127.0.0.1 and a free port; the nodes share one
embedded sequencer file, as nodes on one machine do. Tests talk to them over
HTTP with signed requests, from their own event loop.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from medledger.access import care
from medledger.crypto.keys import PrivateKey
from medledger.ledger.contracts import identity
from medledger.ledger.genesis import Founder, build_genesis, save_genesis
from medledger.ledger.tx import SignedTransaction
from medledger.node.app import create_app
from medledger.node.client import NodeClient
from medledger.node.config import NodeSettings
from medledger.node.home import founding_genesis
from medledger.node.identities import custodian_public_key, patient_public_key
from medledger.node.service import NodeKeys, NodeService
from medledger.protocol import contract_set
from tests.ledger.consortium import Consortium, key

NETWORK_ID = 3131
INSTITUTIONS = ["hospital-a", "hospital-b", "insurer"]


@dataclass
class RunningNode:
    name: str
    url: str
    service: NodeService
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def member(self) -> PrivateKey:
        return self.service.keys.member


@dataclass
class Network:
    root: Path
    #: Signs transactions with the next nonce of each sender.
    signer: Consortium
    nodes: dict[str, RunningNode] = field(default_factory=dict)

    def client(self, name: str, signer: PrivateKey) -> NodeClient:
        return NodeClient(self.nodes[name].url, signer)

    async def submit(
        self, node: str, signer: PrivateKey, tx_type: str, payload: dict[str, Any]
    ) -> Any:
        """Have ``signer`` submit a transaction through ``node``'s API, with the next nonce
        the node knows of (members' keys also sign what their nodes do on their own)."""
        async with self.client(node, signer) as client:
            transaction = await client.transaction(tx_type, payload)
            # Transactions the test signs itself (``tx``) follow on from this one.
            self.signer.nonces[signer.address] = int(transaction["nonce"]) + 1
            return await client.post("/v1/ledger/transactions", {"transaction": transaction})

    async def checkpoint(self, node: str = "hospital-a") -> dict[str, Any]:
        """Have ``node`` propose its head now; the checkpoint once the others cosigned."""
        async with self.client(node, self.nodes[node].member) as client:
            checkpoint: dict[str, Any] = await client.post("/v1/ledger/checkpoint", {})
            return checkpoint

    async def register_staff(self, node: str, person: PrivateKey, role: str) -> None:
        """``node``'s institution registers ``person`` in ``role``."""
        payload = {"address": person.address, "role": role}
        await self.submit(node, self.nodes[node].member, identity.REGISTER_PARTICIPANT, payload)

    async def register_patient(self, patient: PrivateKey, node: str = "hospital-a") -> None:
        """Register ``patient`` and enrol them at ``node``'s institution."""
        payload = {"encryption_key": patient_public(patient)}
        await self.submit(node, patient, identity.REGISTER_SUBJECT, payload)
        enrolled = {"institution": self.nodes[node].member.address}
        await self.submit(node, patient, care.ENROL, enrolled)

    def tx(
        self,
        signer: PrivateKey,
        tx_type: str,
        payload: dict[str, Any],
        *,
        advance: bool = True,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        """A signed transaction in wire form; ``advance=False`` for one that will be refused,
        ``nonce`` for a signer whose node also submits for it."""
        stx = self.signer.tx(
            signer, tx_type, payload, network_id=NETWORK_ID, advance=advance, nonce=nonce
        )
        return dict(json.loads(stx.encode()))


def solo_genesis(network_id: int, member: PrivateKey, custodian: PrivateKey) -> SignedTransaction:
    """A network of one institution, which alone votes and cosigns."""
    founder = Founder("solo", "Solo", member.address, custodian_public_key(custodian))
    return build_genesis(
        network_id=network_id, name="one institution", founders=[founder], signer=member,
        vote_threshold=1, checkpoint_threshold=1, roles=["doctor"],
        protocol=contract_set().protocol(),
    )  # fmt: skip


def member_key(name: str) -> PrivateKey:
    return key("node-member:" + name)


def custodian_key(name: str) -> PrivateKey:
    return key("node-custodian:" + name)


def patient_public(patient: PrivateKey) -> str:
    return "0x" + patient_public_key(patient).hex()


def _serve(service: NodeService, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(create_app(service), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"node {service.settings.name} did not start")
        time.sleep(0.02)
    return server, thread


@contextmanager
def running_network(
    root: Path, names: list[str] = INSTITUTIONS, **overrides: Any
) -> Iterator[Network]:
    """The nodes of ``names``, each with NodeSettings defaults but for ``overrides``.

    By default the state committer runs in a thread and nobody proposes checkpoints on a
    schedule: tests sign with the members' keys themselves and cosign when they mean to.
    """
    overrides = {"state_committer": "thread", "checkpoint_interval_s": 3600,
                 "checkpoint_every_entries": 10**9, **overrides}  # fmt: skip
    founders = [(n, n.replace("-", " ").title(), member_key(n), custodian_key(n)) for n in names]
    genesis = founding_genesis(NETWORK_ID, "node test consortium", founders)
    save_genesis(genesis, root / "genesis.tx")
    network = Network(root, Consortium([], genesis, {member_key(names[0]).address: 1}))
    # Every socket first: each node is told the others' URLs (its FHIR peers).
    sockets = {}
    for name in names:
        sockets[name] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets[name].bind(("127.0.0.1", 0))
    urls = {name: f"http://127.0.0.1:{sock.getsockname()[1]}" for name, sock in sockets.items()}
    try:
        for name in names:
            sock = sockets[name]
            port = sock.getsockname()[1]
            settings = NodeSettings(
                name=name,
                data_dir=root / name,
                genesis=root / "genesis.tx",
                member_key=root / "unused",
                custodian_key=root / "unused",
                ordering_path=root / "ordering.db",
                port=port,
                # Named by health cards as their issuer; never contacted.
                issuer_url=f"https://{name}.invalid",
                peers=[url for other, url in urls.items() if other != name],
                **overrides,
            )
            service = NodeService(settings, NodeKeys(member_key(name), custodian_key(name)))
            server, thread = _serve(service, sock)
            network.nodes[name] = RunningNode(name, urls[name], service, server, thread)
        yield network
    finally:
        for node in network.nodes.values():
            node.server.should_exit = True
        for node in network.nodes.values():
            node.thread.join(timeout=30)
