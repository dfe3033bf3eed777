"""What a reader hands a custodian to have its key shares released.

The reader signs

    Release(bytes32 grant, bytes32 records, uint32 count, bytes32 readerKey,
            uint64 notAfter, bytes32 delegation)

under the domain ``{name: "medledger access", version: "1", chainId: network}``:
this grant, these records (the RFC 6962 root over their commitments, in the order
asked, and how many), re-encrypted to this one-time X25519 key, until ``notAfter``
(ms), asked by a node under this delegation (its digest; zero when the grant's holder
asks themself, access/delegation.py). A custodian releases only to the grant's holder
(or its delegated node), and a captured request cannot redirect a share to another key,
stretch to another record, or pass under another delegation. A patient reading her own
records names :data:`OWNER_READ` for the grant (access/owner.py).

One release covers every record of one query, up to :data:`MAX_RELEASE_RECORDS`, so
that each custodian logs one receipt per query rather than one per record: a chart of
500 resources is a few transactions, not 1,500. Each record's read stays provable to
the patient: its commitment is a leaf under the root the reader signed.

Along with it go the records as committed (records/proof.py: header, signature,
salt, wrapped keys and the path of each commitment into a batch in the log): the
custodian checks all of it against its own ledger before it writes a receipt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from medledger.access.approval import DOMAIN_NAME, DOMAIN_VERSION
from medledger.crypto import merkle
from medledger.crypto.typed_message import Fields, TypedMessage

SHARE_LABEL = b"medledger/released-share/v2"
#: Records one release (and so one receipt) may cover: as many as fit, with their signed
#: headers, in one ledger transaction (see access/receipts.py).
MAX_RELEASE_RECORDS = 150
#: What a release names as its grant when a patient (or a guardian) reads her own records:
#: she needs none, and no grant is all zeros.
OWNER_READ = bytes(32)


def records_root(commitments: Sequence[bytes]) -> bytes:
    """The RFC 6962 root over record commitments, in the order given."""
    return merkle.root_and_proofs([merkle.leaf_hash(c) for c in commitments])[0]


@dataclass(frozen=True)
class Release(TypedMessage):
    DOMAIN_NAME: ClassVar[str] = DOMAIN_NAME
    DOMAIN_VERSION: ClassVar[str] = DOMAIN_VERSION
    PRIMARY_TYPE: ClassVar[str] = "Release"
    FIELDS: ClassVar[Fields] = [
        {"name": "grant", "type": "bytes32"},
        {"name": "records", "type": "bytes32"},
        {"name": "count", "type": "uint32"},
        {"name": "readerKey", "type": "bytes32"},
        {"name": "notAfter", "type": "uint64"},
        {"name": "delegation", "type": "bytes32"},
    ]

    network_id: int
    grant: bytes
    records: bytes
    count: int
    reader_key: bytes
    not_after_ms: int
    delegation: bytes = bytes(32)

    @classmethod
    def of(
        cls, network_id: int, grant: bytes, commitments: Sequence[bytes], reader_key: bytes,
        not_after_ms: int, *, delegation: bytes = bytes(32),
    ) -> Release:  # fmt: skip
        return cls(network_id, grant, records_root(commitments), len(commitments), reader_key,
                   not_after_ms, delegation)  # fmt: skip

    def message(self) -> dict[str, Any]:
        return {
            "grant": self.grant,
            "records": self.records,
            "count": self.count,
            "readerKey": self.reader_key,
            "notAfter": self.not_after_ms,
            "delegation": self.delegation,
        }

    def covers(self, commitments: Sequence[bytes]) -> bool:
        """Whether these are exactly the records, in order, that the reader asked for."""
        return len(commitments) == self.count and records_root(commitments) == self.records

    def share_binding(self, custodian: str, commitment: bytes) -> bytes:
        """Associated data of a released share: this release, this record, this custodian."""
        return (SHARE_LABEL + self.grant + self.records + commitment
                + bytes.fromhex(custodian[2:]))  # fmt: skip
