"""Ledger state read through a node and believed only when proven, for clients away
from any node: the CLI, a wallet, a verifier's office."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx

from medledger.crypto.errors import InvalidProof
from medledger.crypto.keys import PrivateKey
from medledger.errors import InvalidInput, TransportError, UsageError
from medledger.ledger.checkpoints import Checkpoint
from medledger.ledger.contracts.membership import MEMBERS_KEY
from medledger.ledger.errors import CheckpointError
from medledger.ledger.light import TrustedConsortium
from medledger.ledger.machine import CONFIG_KEY, NETWORK_NS
from medledger.ledger.state_proofs import StateProof
from medledger.ledger.tx import SignedTransaction
from medledger.node.client import NodeClient, answer


class NotShown(InvalidInput):
    """The node answered a state read with no proof, of presence or of absence."""


class ProvenState:
    """Ledger state read through a node and believed only when proven (ledger/light.py):
    each entry's proof is checked against a checkpoint cosigned by members this client
    trusts. For a Registry away from any node (a wallet, a verifier's office) and the
    CLI: blocking, as the Registry's reads are.

    ``genesis`` is the network's genesis as the client got it out of band; without it,
    the client takes the genesis the node serves, the first time (trust on first use).
    """

    def __init__(self, client: NodeClient, genesis: SignedTransaction | None = None) -> None:
        self._client = client
        self._http = httpx.Client(timeout=30.0)
        self._trusted = None if genesis is None else TrustedConsortium.from_genesis(genesis)
        self._fetched_at = 0.0

    def get(self, ns: str, key: str) -> Any | None:
        """The entry's JSON value as of the latest checkpoint, None if it is proven absent.

        A node proves absence as it proves presence; an entry it shows no proof of at all
        (not this client's to see, or withheld) is :class:`NotShown`, never taken for
        absent: a withheld revocation must not read as none."""
        checkpoint = self.checkpoint()
        params = {"key": key, "size": checkpoint.head.size}
        found = self._get(f"/v1/ledger/state/{ns}", params)
        if found is None:
            raise NotShown(f"the node shows no proof of {ns} {key}")
        proof = StateProof.from_json(found)
        # A proof names the entry it proves: a valid proof of another entry (another
        # member's, holding a key the node chose) must not answer for this one.
        if (proof.ns, proof.key) != (ns, key):
            raise InvalidProof(f"asked for an entry of {ns}, the node proved another")
        return self.trusted.proven(proof, checkpoint)

    @property
    def trusted(self) -> TrustedConsortium:
        if self._trusted is None:
            wire = self._get("/v1/ledger/genesis", {})
            if wire is None:
                raise TransportError("the node serves no genesis")
            genesis = SignedTransaction.decode(str(wire["genesis"]).encode())
            self._trusted = TrustedConsortium.from_genesis(genesis)
        return self._trusted

    def checkpoint(self) -> Checkpoint:
        """A checkpoint covering the node's log as it stands, accepted by the members
        trusted: what the client reads is no older than what it asked after, nor than any
        checkpoint it accepted before (a node cannot take it back in time). Asked for
        again after a second."""
        trusted = self.trusted
        previous = trusted.latest
        if previous is not None and time.monotonic() - self._fetched_at < 1.0:
            return previous
        url, body, headers = self._client.signed("POST", "/v1/ledger/checkpoint", body={})
        try:
            response = self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {url.path}: {type(exc).__name__}") from exc
        checkpoint = Checkpoint.from_json(answer(response))
        trusted.accept(checkpoint)
        if previous is None or checkpoint.head.size > previous.head.size:
            size = {"size": checkpoint.head.size}
            members = self._get(f"/v1/ledger/state/{NETWORK_NS}", {"key": MEMBERS_KEY, **size})
            config = self._get(f"/v1/ledger/state/{NETWORK_NS}", {"key": CONFIG_KEY, **size})
            if members is None or config is None:
                raise CheckpointError("the node does not prove the member list")
            trusted.learn_members(StateProof.from_json(members), StateProof.from_json(config))
        self._fetched_at = time.monotonic()
        return trusted.latest or checkpoint

    def _get(self, path: str, params: Mapping[str, Any]) -> Any | None:
        url, _, headers = self._client.signed("GET", path, params)
        try:
            response = self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {url.path}: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        return answer(response)

    def close(self) -> None:
        self._http.close()




class RemoteLedger:
    """A node's ledger as a verifier elsewhere sees it (ledger/port.Ledger): the
    credentials state to read, and transactions signed here to submit."""

    def __init__(self, client: NodeClient, network_id: int) -> None:
        self.client = client
        self.network_id = network_id
        self.store = ProvenState(client)

    async def submit_payload(self, key: PrivateKey, tx_type: str, payload: dict[str, Any]) -> Any:
        if key.address != self.client.address:
            raise UsageError("a remote ledger submits for its client's own key only")
        return await self.client.submit(tx_type, payload)

    def close(self) -> None:
        self.store.close()
