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
from typing import Any, ClassVar

from medledger.access.approval import DOMAIN_NAME, DOMAIN_VERSION
from medledger.crypto.typed_message import Fields, TypedMessage

SHARE_LABEL = b"medledger/released-share/v1"


@dataclass(frozen=True)
class Release(TypedMessage):
    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    DOMAIN_VERSION: ClassVar[str] = DOMAIN_VERSION
    PRIMARY_TYPE: ClassVar[str] = "Release"
    FIELDS: ClassVar[Fields] = [
        {"name": "grant", "type": "bytes32"},
        {"name": "record", "type": "bytes32"},
        {"name": "readerKey", "type": "bytes32"},
        {"name": "notAfter", "type": "uint64"},
    ]

    network_id: int
    grant: bytes
    record: bytes
    reader_key: bytes
    not_after_ms: int

    def message(self) -> dict[str, Any]:
        return {
            "grant": self.grant,
            "record": self.record,
            "readerKey": self.reader_key,
            "notAfter": self.not_after_ms,
        }

    def share_binding(self, custodian: str) -> bytes:
        """Associated data of a released share: this release, this custodian."""
        return SHARE_LABEL + self.grant + self.record + bytes.fromhex(custodian[2:])
