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

from dataclasses import dataclass
from functools import cached_property, lru_cache

from medledger.crypto import eip712
from medledger.crypto.canonical import sha256
from medledger.crypto.keys import Address, PrivateKey, recover_address
from medledger.errors import UsageError

DOMAIN_NAME = "medledger records"
DOMAIN_VERSION = "1"
RECORD_ID_SIZE = 16
DIGEST_SIZE = 32
FIRST_VERSION = 1
MAX_VERSION = 2**32 - 1
NO_PREVIOUS = bytes(DIGEST_SIZE)
CONTENT_LABEL = b"medledger/record-content/v1"

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
_ENCODER = eip712.TypedDataEncoder(RECORD_TYPES)


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
        for name in ("previous", "content", "ciphertext", "keys"):
            if len(getattr(self, name)) != DIGEST_SIZE:
                raise UsageError(f"{name} must be a {DIGEST_SIZE}-byte digest")

    @cached_property
    def digest(self) -> bytes:
        """The EIP-712 digest the author signs; later versions point to it."""
        struct_hash = _ENCODER.hash_struct(
            "Record",
            {
                "recordId": self.record_id,
                "version": self.version,
                "previous": self.previous,
                "patient": self.patient,
                "resourceType": self.resource_type,
                "category": self.category,
                "content": self.content,
                "ciphertext": self.ciphertext,
                "keys": self.keys,
            },
        )
        return eip712.digest(domain_separator(self.network_id), struct_hash)

    def sign(self, key: PrivateKey) -> bytes:
        return key.sign_digest(self.digest)

    def author(self, signature: bytes) -> Address:
        """The address that signed this header; raises InvalidSignature if none can."""
        return recover_address(self.digest, signature)

    @property
    def label(self) -> str:
        """How logs and reports name the record: its id and version, nothing else."""
        return f"{self.record_id.hex()} v{self.version}"
