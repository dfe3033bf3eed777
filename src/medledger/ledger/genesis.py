"""Building and loading the genesis transaction that founds a network.

The genesis file is shared out of band with every founding institution; each
node refuses a log that starts with any other genesis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import InvalidInput, UsageError
from medledger.ledger.contracts.membership import GENESIS
from medledger.ledger.tx import SignedTransaction, Transaction


@dataclass(frozen=True)
class Founder:
    id: str
    name: str
    address: Address
    custodian_key: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "name": self.name,
            "address": self.address,
            "custodian_key": "0x" + self.custodian_key.hex(),
        }


def build_genesis(
    *,
    network_id: int,
    name: str,
    founders: Sequence[Founder],
    signer: PrivateKey,
    vote_threshold: int,
    checkpoint_threshold: int,
    roles: Sequence[str],
    protocol: Mapping[str, str],
    custodian_threshold: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> SignedTransaction:
    """The signed genesis transaction; ``signer`` must be one of the founders, and
    ``protocol`` is what the network's contract set reports (ContractRegistry.protocol).
    ``settings`` are named values the domain contracts read (who may write records,
    limits on requests); the ledger keeps them without knowing what they mean."""
    if signer.address not in {f.address for f in founders}:
        raise UsageError("the genesis must be signed by one of the founders")
    payload: dict[str, Any] = {
        "name": name,
        "protocol": dict(protocol),
        "members": [f.to_json() for f in founders],
        "vote_threshold": vote_threshold,
        "checkpoint_threshold": checkpoint_threshold,
        "roles": list(roles),
    }
    if custodian_threshold is not None:
        payload["custodian_threshold"] = custodian_threshold
    if settings:
        payload["settings"] = dict(settings)
    return Transaction(network_id, signer.address, 0, GENESIS, payload).sign(signer)


def save_genesis(genesis: SignedTransaction, path: Path) -> None:
    path.write_bytes(genesis.encode())


def load_genesis(path: Path) -> SignedTransaction:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read genesis file {path.name}: {exc.strerror}") from exc
    genesis = SignedTransaction.decode(raw)
    if genesis.tx.tx_type != GENESIS:
        raise InvalidInput(f"{path.name} holds a {genesis.tx.tx_type} transaction, not a genesis")
    genesis.verify()
    return genesis
