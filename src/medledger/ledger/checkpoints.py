"""Signed tree heads and checkpoints cosigned by k of n members.

A tree head states "the log of network N had ``size`` entries with this RFC 6962
root, the state they lead to has this state root (ledger/state_tree.py), and the
last entry was ordered at ``timestamp_ms``". Members sign heads as EIP-712 typed
data; a checkpoint is a head with member cosignatures and is valid when at least
the checkpoint threshold of current members signed it. Anyone with a record's
inclusion proof, or a state entry's proof, and a valid checkpoint can check it
offline.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from medledger.crypto import eip712
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import Address, PrivateKey, recover_address, to_checksum_address
from medledger.errors import InvalidInput
from medledger.ledger.errors import CheckpointError, InsufficientCosigners
from medledger.ledger.tx import domain_separator

HEAD_TYPES: dict[str, list[dict[str, str]]] = {
    "TreeHead": [
        {"name": "network", "type": "uint256"},
        {"name": "size", "type": "uint64"},
        {"name": "root", "type": "bytes32"},
        {"name": "stateRoot", "type": "bytes32"},
        {"name": "timestamp", "type": "uint64"},
    ]
}
_ENCODER = eip712.TypedDataEncoder(HEAD_TYPES)


@dataclass(frozen=True)
class TreeHead:
    network_id: int
    size: int
    root: bytes
    state_root: bytes
    #: Milliseconds: JSON (RFC 8785) cannot carry nanosecond integers exactly.
    timestamp_ms: int

    @cached_property
    def digest(self) -> bytes:
        struct_hash = _ENCODER.hash_struct(
            "TreeHead",
            {
                "network": self.network_id,
                "size": self.size,
                "root": self.root,
                "stateRoot": self.state_root,
                "timestamp": self.timestamp_ms,
            },
        )
        return eip712.digest(domain_separator(self.network_id), struct_hash)

    def sign(self, key: PrivateKey) -> SignedTreeHead:
        return SignedTreeHead(self, key.address, key.sign_digest(self.digest))

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network_id,
            "size": self.size,
            "root": "0x" + self.root.hex(),
            "state_root": "0x" + self.state_root.hex(),
            "timestamp_ms": self.timestamp_ms,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TreeHead:
        try:
            network, size, timestamp = obj["network"], obj["size"], obj["timestamp_ms"]
            root = parse_hex(obj["root"], 32)
            state_root = parse_hex(obj["state_root"], 32)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"malformed tree head: {exc}") from exc
        for name, value in (("network", network), ("size", size), ("timestamp_ms", timestamp)):
            if type(value) is not int or not 0 <= value < 2**64:
                raise CheckpointError(f"malformed tree head: {name} {value!r}")
        return cls(network, size, root, state_root, timestamp)


@dataclass(frozen=True)
class SignedTreeHead:
    head: TreeHead
    signer: Address
    signature: bytes

    def verify(self) -> None:
        """Raise :class:`CheckpointError` unless ``signer`` signed ``head``."""
        try:
            recovered = recover_address(self.head.digest, self.signature)
        except InvalidSignature as exc:
            raise CheckpointError(f"tree head signature of {self.signer}: {exc}") from exc
        if recovered != self.signer:
            raise CheckpointError(
                f"tree head claims signer {self.signer} but is signed by {recovered}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.head.to_json(),
            "signer": self.signer,
            "signature": "0x" + self.signature.hex(),
        }

    def cosign_payload(self) -> dict[str, Any]:
        """The payload of the ``checkpoint.cosign`` transaction that submits this head."""
        head = self.head.to_json()
        del head["network"]
        return {**head, "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SignedTreeHead:
        try:
            signer = to_checksum_address(obj["signer"])
            signature = parse_hex(obj["signature"], 65)
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise CheckpointError(f"malformed signed tree head: {exc}") from exc
        return cls(TreeHead.from_json(obj), signer, signature)


@dataclass(frozen=True)
class Quorum:
    """Who cosigned, who did not, and how many more are needed."""

    threshold: int
    signed: tuple[Address, ...]
    missing: tuple[Address, ...]
    invalid: tuple[tuple[Address, str], ...] = field(default=())

    @property
    def needed(self) -> int:
        return max(0, self.threshold - len(self.signed))

    @property
    def satisfied(self) -> bool:
        # An empty quorum never passes, whatever the threshold says.
        return self.threshold > 0 and len(self.signed) >= self.threshold

    def describe(self) -> str:
        members = len(self.signed) + len(self.missing)
        text = f"cosigned by {len(self.signed)} of {members} members, {self.threshold} required"
        if self.missing:
            text += "; not signed by " + ", ".join(self.missing)
        if self.invalid:
            text += "; invalid: " + ", ".join(f"{a} ({why})" for a, why in self.invalid)
        return text


@dataclass(frozen=True)
class Checkpoint:
    head: TreeHead
    cosignatures: Mapping[Address, bytes]

    def evaluate(self, members: Collection[Address], threshold: int) -> Quorum:
        signed: list[Address] = []
        invalid: list[tuple[Address, str]] = []
        for signer, signature in sorted(self.cosignatures.items()):
            if signer not in members:
                invalid.append((signer, "not a member"))
                continue
            try:
                SignedTreeHead(self.head, signer, signature).verify()
            except CheckpointError:
                invalid.append((signer, "bad signature"))
                continue
            signed.append(signer)
        missing = tuple(m for m in sorted(members) if m not in signed)
        return Quorum(threshold, tuple(signed), missing, tuple(invalid))

    def verify(self, members: Collection[Address], threshold: int) -> Quorum:
        """Raise :class:`InsufficientCosigners` unless ``threshold`` members cosigned."""
        quorum = self.evaluate(members, threshold)
        if not quorum.satisfied:
            raise InsufficientCosigners(f"checkpoint at size {self.head.size}: {quorum.describe()}")
        return quorum

    def to_json(self) -> dict[str, Any]:
        return {
            **self.head.to_json(),
            "cosignatures": {a: "0x" + s.hex() for a, s in sorted(self.cosignatures.items())},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Checkpoint:
        raw = obj.get("cosignatures")
        if not isinstance(raw, dict):
            raise CheckpointError("malformed checkpoint: cosignatures must be an object")
        try:
            cosignatures = {to_checksum_address(a): parse_hex(s, 65) for a, s in raw.items()}
        except (TypeError, ValueError, InvalidInput) as exc:
            raise CheckpointError(f"malformed checkpoint: {exc}") from exc
        return cls(TreeHead.from_json(obj), cosignatures)


@dataclass(frozen=True)
class Equivocation:
    """Two validly signed heads of one network and size with different log or state roots."""

    first: SignedTreeHead
    second: SignedTreeHead

    def to_json(self) -> dict[str, Any]:
        return {"first": self.first.to_json(), "second": self.second.to_json()}


def find_equivocation(first: SignedTreeHead, second: SignedTreeHead) -> Equivocation | None:
    """Evidence of misbehaviour if both heads verify and contradict each other."""
    a, b = first.head, second.head
    if a.network_id != b.network_id or a.size != b.size:
        return None
    if (a.root, a.state_root) == (b.root, b.state_root):
        return None
    first.verify()
    second.verify()
    return Equivocation(first, second)
