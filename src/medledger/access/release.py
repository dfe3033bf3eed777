"""What a reader hands a custodian to have its key share released.

The reader signs

    Release(bytes32 grant, bytes32 record, bytes32 readerKey, uint64 notAfter)

under the domain ``{name: "medledger access", version: "1", chainId: network}``:
this grant, this record (its commitment), re-encrypted to this one-time X25519
key, until ``notAfter`` (ms). A custodian releases only to the grant's holder, and
a captured request cannot redirect the share to another key.

Along with it goes the record as committed (records/proof.py: its header,
signature, salt, wrapped keys and the path of its commitment into a batch in the
log): the custodian checks all of it against its own ledger before it writes a
receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from medledger.access.approval import domain_separator
from medledger.crypto import eip712
from medledger.crypto.keys import Address, PrivateKey, recover_address

RELEASE_TYPES: dict[str, list[dict[str, str]]] = {
    "Release": [
        {"name": "grant", "type": "bytes32"},
        {"name": "record", "type": "bytes32"},
        {"name": "readerKey", "type": "bytes32"},
        {"name": "notAfter", "type": "uint64"},
    ]
}
_ENCODER = eip712.TypedDataEncoder(RELEASE_TYPES)
SHARE_LABEL = b"medledger/released-share/v1"


@dataclass(frozen=True)
class Release:
    network_id: int
    grant: bytes
    record: bytes
    reader_key: bytes
    not_after_ms: int

    @cached_property
    def digest(self) -> bytes:
        struct_hash = _ENCODER.hash_struct(
            "Release",
            {
                "grant": self.grant,
                "record": self.record,
                "readerKey": self.reader_key,
                "notAfter": self.not_after_ms,
            },
        )
        return eip712.digest(domain_separator(self.network_id), struct_hash)

    def sign(self, key: PrivateKey) -> bytes:
        return key.sign_digest(self.digest)

    def signer(self, signature: bytes) -> Address:
        return recover_address(self.digest, signature)

    def share_binding(self, custodian: Address) -> bytes:
        """Associated data of a released share: this release, this custodian."""
        return SHARE_LABEL + self.grant + self.record + bytes.fromhex(custodian[2:])
