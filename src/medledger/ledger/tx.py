"""Signed transactions: the only way anything enters the ledger.

A transaction is EIP-712 typed data, so a standard Ethereum wallet can sign it:

    Transaction(uint256 network, address sender, uint64 nonce, string txType, bytes32 payloadHash)

under the domain ``{name: "medledger", version: "1", chainId: network}``. The
payload itself is a JSON object; ``payloadHash`` is the Keccak-256 of its RFC 8785
canonical form. The EIP-712 digest is the transaction id: it covers everything
but the signature, so one transaction has one id whoever relays it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from medledger.crypto import eip712
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    keccak256,
    recover_address,
    to_checksum_address,
)
from medledger.errors import InvalidInput
from medledger.ledger.config import LedgerLimits
from medledger.ledger.errors import BadSignature, MalformedTransaction

DOMAIN_NAME = "medledger"
DOMAIN_VERSION = "1"
MAX_NONCE = 2**64 - 1

TX_TYPES: dict[str, list[dict[str, str]]] = {
    "Transaction": [
        {"name": "network", "type": "uint256"},
        {"name": "sender", "type": "address"},
        {"name": "nonce", "type": "uint64"},
        {"name": "txType", "type": "string"},
        {"name": "payloadHash", "type": "bytes32"},
    ]
}

_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
_WIRE_FIELDS = frozenset({"network", "sender", "nonce", "type", "payload", "signature"})
_ENCODER = eip712.TypedDataEncoder(TX_TYPES)
_DEFAULT_LIMITS = LedgerLimits()


@lru_cache(maxsize=16)
def domain_separator(network_id: int) -> bytes:
    """The EIP-712 domain separator of a network (cached: it is on every hot path)."""
    return eip712.domain_separator(
        {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": network_id}
    )


def typed_data(network_id: int) -> dict[str, Any]:
    """The EIP-712 ``types`` and ``domain`` a wallet needs to sign a transaction."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            **TX_TYPES,
        },
        "primaryType": "Transaction",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": network_id},
    }


@dataclass(frozen=True)
class Transaction:
    """An unsigned transaction. ``payload`` must be a JSON object."""

    network_id: int
    sender: Address
    nonce: int
    tx_type: str
    payload: Mapping[str, Any]

    @cached_property
    def payload_bytes(self) -> bytes:
        return canonical_json(self.payload)

    @cached_property
    def digest(self) -> bytes:
        """The EIP-712 digest, which is also the transaction id."""
        struct_hash = _ENCODER.hash_struct(
            "Transaction",
            {
                "network": self.network_id,
                "sender": self.sender,
                "nonce": self.nonce,
                "txType": self.tx_type,
                "payloadHash": keccak256(self.payload_bytes),
            },
        )
        return eip712.digest(domain_separator(self.network_id), struct_hash)

    def adopt_digest(self, digest: bytes) -> None:
        """Take a digest computed by this same code in a worker process.

        Saves hashing every payload twice; only for digests from our own workers.
        """
        self.__dict__["digest"] = digest

    def sign(self, key: PrivateKey) -> SignedTransaction:
        if key.address != self.sender:
            raise InvalidInput(f"key of {key.address} cannot sign for sender {self.sender}")
        return SignedTransaction(self, key.sign_digest(self.digest))


@dataclass(frozen=True)
class SignedTransaction:
    tx: Transaction
    signature: bytes

    @property
    def tx_id(self) -> bytes:
        return self.tx.digest

    def encode(self) -> bytes:
        """The wire form: RFC 8785 canonical JSON."""
        return canonical_json(
            {
                "network": self.tx.network_id,
                "sender": self.tx.sender,
                "nonce": self.tx.nonce,
                "type": self.tx.tx_type,
                "payload": self.tx.payload,
                "signature": "0x" + self.signature.hex(),
            }
        )

    def verify(self) -> None:
        """Raise :class:`BadSignature` unless the sender signed exactly this transaction."""
        try:
            tx_id = self.tx_id
        except InvalidInput as exc:
            raise MalformedTransaction(f"payload: {exc}") from exc
        try:
            signer = recover_address(tx_id, self.signature)
        except InvalidSignature as exc:
            raise BadSignature(f"transaction from {self.tx.sender}: {exc}") from exc
        if signer != self.tx.sender:
            raise BadSignature(f"transaction from {self.tx.sender} is signed by {signer}")

    @classmethod
    def decode(cls, raw: bytes, limits: LedgerLimits = _DEFAULT_LIMITS) -> SignedTransaction:
        """Parse the wire form; raise :class:`MalformedTransaction` naming the bad field."""
        if len(raw) > limits.max_tx_bytes:
            raise MalformedTransaction(
                f"transaction of {len(raw)} bytes exceeds the limit of {limits.max_tx_bytes}"
            )
        try:
            obj = json.loads(raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedTransaction(f"not a JSON transaction: {exc}") from exc
        if not isinstance(obj, dict):
            raise MalformedTransaction("a transaction must be a JSON object")
        if set(obj) != _WIRE_FIELDS:
            missing = sorted(_WIRE_FIELDS - set(obj))
            extra = sorted(set(obj) - _WIRE_FIELDS)
            raise MalformedTransaction(f"transaction fields: missing {missing}, unexpected {extra}")
        network = _uint(obj["network"], "network", 2**256 - 1)
        nonce = _uint(obj["nonce"], "nonce", MAX_NONCE)
        tx_type = obj["type"]
        if (
            not isinstance(tx_type, str)
            or len(tx_type) > limits.max_type_length
            or not _TYPE_PATTERN.fullmatch(tx_type)
        ):
            raise MalformedTransaction(f"type: {tx_type!r} is not a transaction type name")
        payload = obj["payload"]
        if not isinstance(payload, dict):
            raise MalformedTransaction("payload: must be a JSON object")
        try:
            sender = to_checksum_address(obj["sender"])
        except (InvalidInput, TypeError) as exc:
            raise MalformedTransaction(f"sender: {exc}") from exc
        signature = _signature(obj["signature"])
        return cls(Transaction(network, sender, nonce, tx_type, payload), signature)


def _uint(value: object, field: str, maximum: int) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise MalformedTransaction(f"{field}: {value!r} is not an integer in [0, {maximum}]")
    return value


def _signature(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 132:
        raise MalformedTransaction("signature: must be 65 bytes as 0x-prefixed hex")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise MalformedTransaction("signature: not hex") from exc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers must never disagree on what a signed transaction says.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
