"""One base for what people sign as EIP-712 typed data: approvals, release requests,
presentation requests.

A message class names its domain (name and version; the chain id is the network's),
its struct type and that type's fields, and says how its own fields spell the struct's
message. The base gives its digest (computed once), signs it, recovers who signed,
and gives the typed data a wallet shows, so each message is written once and every
digest is the one ``eth_signTypedData_v4`` computes. Record headers encode their one
fixed type by hand instead (records/header.py), for the speed of ingest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property, lru_cache
from typing import Any, ClassVar

from medledger.crypto import eip712
from medledger.crypto.keys import Address, PrivateKey, recover_address

Fields = list[dict[str, str]]

_DOMAIN_TYPE: Fields = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]


@lru_cache(maxsize=64)
def domain_separator(name: str, version: str, network_id: int) -> bytes:
    return eip712.domain_separator({"name": name, "version": version, "chainId": network_id})


@lru_cache(maxsize=16)
def _encoder(primary: str, fields: tuple[tuple[str, str], ...]) -> eip712.TypedDataEncoder:
    return eip712.TypedDataEncoder({primary: [{"name": n, "type": t} for n, t in fields]})


class TypedMessage(ABC):
    """Subclasses are frozen dataclasses with a ``network_id`` field."""

    DOMAIN_NAME: ClassVar[str]
    DOMAIN_VERSION: ClassVar[str]
    PRIMARY_TYPE: ClassVar[str]
    FIELDS: ClassVar[Fields]
    network_id: int

    @abstractmethod
    def message(self) -> dict[str, Any]:
        """The struct's fields, by their EIP-712 names."""

    @classmethod
    def types(cls) -> dict[str, Fields]:
        return {cls.PRIMARY_TYPE: cls.FIELDS}

    @cached_property
    def digest(self) -> bytes:
        fields = tuple((f["name"], f["type"]) for f in self.FIELDS)
        struct_hash = _encoder(self.PRIMARY_TYPE, fields).hash_struct(
            self.PRIMARY_TYPE, self.message()
        )
        separator = domain_separator(self.DOMAIN_NAME, self.DOMAIN_VERSION, self.network_id)
        return eip712.digest(separator, struct_hash)

    def sign(self, key: PrivateKey) -> bytes:
        return key.sign_digest(self.digest)

    def signer(self, signature: bytes) -> Address:
        """Who signed; raises InvalidSignature if no one can have."""
        return recover_address(self.digest, signature)

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 typed data a wallet signs for this message (bytes as 0x hex)."""
        message = {
            k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in self.message().items()
        }
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, **self.types()},
            "primaryType": self.PRIMARY_TYPE,
            "domain": {"name": self.DOMAIN_NAME, "version": self.DOMAIN_VERSION,
                       "chainId": self.network_id},
            "message": message,
        }  # fmt: skip
