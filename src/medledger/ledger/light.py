"""What a client away from every node may believe: cosigned checkpoints and state proofs.

A wallet, a verifier's office, the CLI and the patient's page read ledger state
through some institution's node, which could answer anything. They trust instead
the consortium as genesis founded it: its members and checkpoint threshold. A
checkpoint counts only when that many of the members the client trusts cosigned it;
an entry counts only with a proof against such a checkpoint's state root. When
membership changes, the client learns the new members from the entries proven at a
checkpoint the old members cosigned, so no single node can make it trust a
consortium of its own invention.

A proven entry is as of the checkpoint: what changed after it shows once the next
checkpoint covers it (nodes propose one every few seconds while there is traffic).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.crypto.keys import Address
from medledger.errors import InvalidInput
from medledger.ledger.checkpoints import Checkpoint, Quorum
from medledger.ledger.contracts.membership import GENESIS, MEMBERS_KEY
from medledger.ledger.errors import CheckpointError
from medledger.ledger.machine import CONFIG_KEY, NETWORK_NS
from medledger.ledger.state_proofs import StateProof
from medledger.ledger.tx import SignedTransaction


@dataclass
class TrustedConsortium:
    """The members and threshold a client trusts, and the network it trusts them for."""

    network_id: int
    genesis_id: bytes
    members: frozenset[Address]
    threshold: int
    #: The newest checkpoint accepted so far: older ones are not taken back to.
    latest: Checkpoint | None = None

    @classmethod
    def from_genesis(cls, genesis: SignedTransaction) -> TrustedConsortium:
        """The consortium as its genesis (obtained out of band, or pinned) founded it."""
        genesis.verify()
        tx = genesis.tx
        if tx.tx_type != GENESIS:
            raise InvalidInput(f"a {tx.tx_type} transaction is not a genesis")
        members = frozenset(Address(m["address"]) for m in tx.payload["members"])
        return cls(tx.network_id, genesis.tx_id, members, int(tx.payload["checkpoint_threshold"]))

    def accept(self, checkpoint: Checkpoint) -> Quorum:
        """Check a checkpoint against the members trusted now; keep it if it is newer."""
        if checkpoint.head.network_id != self.network_id:
            raise CheckpointError(f"checkpoint of network {checkpoint.head.network_id}")
        quorum = checkpoint.verify(self.members, self.threshold)
        if self.latest is None or checkpoint.head.size >= self.latest.head.size:
            self.latest = checkpoint
        return quorum

    def proven(self, proof: StateProof, checkpoint: Checkpoint) -> Any | None:
        """The entry a proof shows (its JSON value, None if absent), if it is proven
        against ``checkpoint`` (which :meth:`accept` must have accepted)."""
        head = checkpoint.head
        if proof.size != head.size:
            raise CheckpointError(f"a proof at size {proof.size} for a checkpoint at {head.size}")
        proof.verify(head.state_root)
        return proof.value_json()

    def learn_members(self, members: StateProof, config: StateProof) -> None:
        """Trust the members and threshold proven at the latest accepted checkpoint."""
        if self.latest is None:
            raise CheckpointError("no checkpoint accepted yet")
        if (members.ns, members.key, config.ns, config.key) != (
            NETWORK_NS, MEMBERS_KEY, NETWORK_NS, CONFIG_KEY
        ):
            raise CheckpointError("these proofs are not of the member list and the config")
        listed = self.proven(members, self.latest)
        settings = self.proven(config, self.latest)
        if not isinstance(listed, list) or not isinstance(settings, Mapping):
            raise CheckpointError("the proven member list or config is malformed")
        if settings.get("genesis") != "0x" + self.genesis_id.hex():
            raise CheckpointError("the proven config is of another network's genesis")
        self.members = frozenset(Address(m) for m in listed)
        self.threshold = int(settings["checkpoint_threshold"])
