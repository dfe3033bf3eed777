"""The record header: what a record's author signs.

The header names the record and binds everything stored about it by hash, so one
signature covers the content, its encryption and its key wrapping. It is EIP-712
typed data, so a clinician's standard Ethereum wallet can sign it:

    Record(bytes16 recordId, uint32 version, bytes32 previous, address patient,
           string resourceType, string category, bytes32 content, bytes32 ciphertext,
           bytes32 keys)

under the domain ``{name: "medledger records", version: "1", chainId: network}``.
``content`` is a salted hash of the canonical FHIR JSON whose salt travels inside
the ciphertext: a reader can check the plaintext against the author's signature,
while nobody without the key can test a guess of the content against it. The
content commitment also pins the plaintext for every key holder: AES-GCM does not
commit to its key, so without it an author could wrap keys that open one
ciphertext to different records for different readers.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, TypeVar

from medledger.crypto import eip712
from medledger.crypto.canonical import sha256
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import (
    Address,
    PrivateKey,
    keccak256,
    recover_address,
    to_checksum_address,
)
from medledger.errors import InvalidInput, UsageError

DOMAIN_NAME = "medledger records"
DOMAIN_VERSION = "1"
RECORD_ID_SIZE = 16
DIGEST_SIZE = 32
FIRST_VERSION = 1
MAX_VERSION = 2**32 - 1
NO_PREVIOUS = bytes(DIGEST_SIZE)
CONTENT_LABEL = b"medledger/record-content/v1"
T = TypeVar("T")

RECORD_TYPES: dict[str, list[dict[str, str]]] = {
    "Record": [
        {"name": "recordId", "type": "bytes16"},
        {"name": "version", "type": "uint32"},
        {"name": "previous", "type": "bytes32"},
        {"name": "patient", "type": "address"},
        {"name": "resourceType", "type": "string"},
        {"name": "category", "type": "string"},
        {"name": "content", "type": "bytes32"},
        {"name": "ciphertext", "type": "bytes32"},
        {"name": "keys", "type": "bytes32"},
    ]
}
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
]
_TYPE_HASH = eip712.TypedDataEncoder(RECORD_TYPES).type_hash("Record")


def _address_word(address: Address) -> bytes:
    try:
        raw = bytes.fromhex(address[2:])
    except ValueError:
        raw = b""
    if not address.startswith("0x") or len(raw) != 20:
        raise UsageError("patient must be a 20-byte hex address")
    return bytes(12) + raw


@lru_cache(maxsize=16)
def domain_separator(network_id: int) -> bytes:
    return eip712.domain_separator(
        {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": network_id}
    )


def content_commitment(salt: bytes, canonical: bytes) -> bytes:
    """The salted hash of a record's canonical JSON that its author signs."""
    return sha256(CONTENT_LABEL + salt + canonical)


@dataclass(frozen=True)
class RecordHeader:
    network_id: int
    record_id: bytes
    version: int
    previous: bytes
    patient: Address
    resource_type: str
    category: str
    content: bytes
    ciphertext: bytes
    keys: bytes

    def __post_init__(self) -> None:
        if len(self.record_id) != RECORD_ID_SIZE:
            raise UsageError(f"record id must be {RECORD_ID_SIZE} bytes")
        if not FIRST_VERSION <= self.version <= MAX_VERSION:
            raise UsageError(f"version must be 1..{MAX_VERSION}, got {self.version}")
        if (self.version == FIRST_VERSION) != (self.previous == NO_PREVIOUS):
            raise UsageError("a first version has no previous one and an amendment has one")
        _address_word(self.patient)
        for name in ("previous", "content", "ciphertext", "keys"):
            if len(getattr(self, name)) != DIGEST_SIZE:
                raise UsageError(f"{name} must be a {DIGEST_SIZE}-byte digest")

    @cached_property
    def digest(self) -> bytes:
        """The EIP-712 digest the author signs; later versions point to it.

        Encoded by hand for this one fixed type: the generic encoder costs more
        than signing. Tests hold it equal to the generic encoder's result.
        """
        struct_hash = keccak256(
            _TYPE_HASH
            + self.record_id.ljust(32, b"\0")
            + self.version.to_bytes(32, "big")
            + self.previous
            + _address_word(self.patient)
            + keccak256(self.resource_type.encode())
            + keccak256(self.category.encode())
            + self.content
            + self.ciphertext
            + self.keys
        )
        return keccak256(b"\x19\x01" + domain_separator(self.network_id) + struct_hash)

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 typed data a wallet signs for this header."""
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, **RECORD_TYPES},
            "primaryType": "Record",
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.network_id},
            "message": self.message(),
        }

    def message(self) -> dict[str, Any]:
        """The header's fields as the EIP-712 message (JSON: bytes as 0x-hex)."""
        return {
            "recordId": "0x" + self.record_id.hex(),
            "version": self.version,
            "previous": "0x" + self.previous.hex(),
            "patient": self.patient,
            "resourceType": self.resource_type,
            "category": self.category,
            "content": "0x" + self.content.hex(),
            "ciphertext": "0x" + self.ciphertext.hex(),
            "keys": "0x" + self.keys.hex(),
        }

    def to_json(self) -> dict[str, Any]:
        return {"network": self.network_id, **self.message()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecordHeader:
        """Parse :meth:`to_json`'s form; raise InvalidInput naming what is wrong."""
        return parse_json(
            "record header",
            lambda: cls(
                network_id=json_uint(obj["network"]),
                record_id=parse_hex(obj["recordId"]),
                version=json_uint(obj["version"]),
                previous=parse_hex(obj["previous"]),
                patient=to_checksum_address(json_text(obj["patient"])),
                resource_type=json_text(obj["resourceType"]),
                category=json_text(obj["category"]),
                content=parse_hex(obj["content"]),
                ciphertext=parse_hex(obj["ciphertext"]),
                keys=parse_hex(obj["keys"]),
            ),
        )

    def sign(self, key: PrivateKey) -> bytes:
        return key.sign_digest(self.digest)

    def author(self, signature: bytes) -> Address:
        """The address that signed this header; raises InvalidSignature if none can."""
        return recover_address(self.digest, signature)

    @property
    def label(self) -> str:
        """How logs and reports name the record: its id and version, nothing else."""
        return f"{self.record_id.hex()} v{self.version}"


def json_uint(value: object) -> int:
    """A JSON non-negative integer (not a bool); raises ValueError otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def json_text(value: object) -> str:
    """A JSON string; raises ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value


def parse_json(what: str, parse: Callable[[], T]) -> T:
    """Run a parser over untrusted JSON; whatever it trips on becomes InvalidInput
    naming ``what`` (nested documents name each level)."""
    try:
        return parse()
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    except KeyError as exc:
        raise InvalidInput(f"{what}: missing field {exc}") from None
    except (TypeError, ValueError, UsageError, binascii.Error) as exc:
        raise InvalidInput(f"{what}: malformed: {exc}") from None
