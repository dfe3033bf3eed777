"""Custody of a record's data key in one place: how a custodian reseals its share to a
reader, how the reader opens it, and how t shares become the record.

At sealing (records/sealed.py) the data key is split t-of-n and each share wrapped to a
custodian's X25519 key. At a read, a custodian unwraps its share and reseals it to the
reader's one-time key, bound to this release, this record and this custodian, so that a
share cannot be replayed to another reader, moved to another record of the same release,
or passed off as another custodian's. The reader opens
what it got into a :class:`Collected`, which rebuilds the record from any t shares or
says who refused and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.access.release import Release
from medledger.crypto import ecies, shamir
from medledger.crypto.errors import InsufficientShares
from medledger.crypto.keys import Address
from medledger.records.sealed import SealedRecord, open_with_shares, unwrap_share


def reseal_share(
    record: SealedRecord, commitment: bytes, custodian: Address, custodian_key: X25519PrivateKey,
    *, release: Release, to_reader: ecies.Sealer,
) -> bytes:  # fmt: skip
    """The custodian's share of the record's key, sealed to the release's reader key
    (``to_reader``: one sealer serves every record of the release)."""
    share = unwrap_share(record, custodian, custodian_key)
    return to_reader.seal(bytes((share.index,)) + share.value,
                          release.share_binding(custodian, commitment))  # fmt: skip


@dataclass
class Collected:
    """What the custodians asked for one record of a read answered."""

    asked: int
    shares: list[shamir.Share] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def add_share(
        self, one_time: ecies.Opener, release: Release, custodian: Address,
        commitment: bytes, sealed: bytes,
    ) -> None:  # fmt: skip
        """Open a share ``custodian`` released for the record ``commitment`` under
        ``release`` (fails if it was sealed for another release, record or custodian)."""
        opened = one_time.open(sealed, release.share_binding(custodian, commitment))
        self.shares.append(shamir.Share(opened[0], opened[1:]))

    def refused(self, custodian: Address, why: object) -> None:
        self.refusals.append(f"{custodian}: {why}")

    def open_record(self, record: SealedRecord, threshold: int) -> bytes:
        """The record's canonical JSON from ``threshold`` shares; InsufficientShares says
        how many custodians released and why the others did not."""
        if len(self.shares) < threshold:
            raise InsufficientShares(
                f"released by {len(self.shares)} of {self.asked} custodians, "
                f"{threshold} required: {'; '.join(self.refusals)}"
            )
        return open_with_shares(record, self.shares[:threshold])
