"""A custodian: releases its share of a record's key, only under a grant, only after a receipt.

Every member institution runs one. Asked for a share, it checks in its own ledger
state that the grant holds and its holder still stands, that the request is signed
by the grant's holder, that the record is the patient's, of a category the grant
covers (as its author signed it), committed in its log, and written by an author
who could write it (access/care.py); then it appends an ``access.receipt`` and
waits until the log has it; only then does it open its share and seal it to the
reader's one-time key. Any refusal raises its specific error, and no share leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.access.care import check_author
from medledger.access.custody import reseal_share
from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.access.receipts import RECEIPT, receipt_payload
from medledger.access.release import Release
from medledger.access.state import holding_grant
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address, PrivateKey
from medledger.ledger.node import LedgerNode
from medledger.ledger.timestamps import NS_PER_MS
from medledger.records.proof import CommittedRecord


@dataclass(frozen=True)
class ReleaseAsk:
    """A reader's request to one custodian."""

    release: Release
    signature: bytes
    record: CommittedRecord


@dataclass(frozen=True)
class ReleasedShare:
    custodian: Address
    receipt: bytes
    sealed: bytes


class Custodian:
    def __init__(
        self,
        node: LedgerNode,
        member: PrivateKey,
        key: X25519PrivateKey,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.node = node
        self.member = member
        self.key = key
        self._clock_ns = clock_ns

    @property
    def address(self) -> Address:
        return self.member.address

    async def release(self, ask: ReleaseAsk) -> ReleasedShare:
        release, record = ask.release, ask.record
        grant_key = "0x" + release.grant.hex()
        grant = holding_grant(self.node.store, grant_key, self._clock_ns())
        try:
            reader = release.signer(ask.signature)
        except InvalidSignature as exc:
            raise BadApproval(f"release request: {exc}") from None
        if reader != grant.requester:
            raise BadApproval(f"release request signed by {reader}, not the grant's holder")
        if release.not_after_ms * NS_PER_MS < self._clock_ns():
            raise ApprovalExpired("release request expired")
        header = record.sealed.header
        commitment = record.commitment
        if release.record != commitment:
            raise OutOfScope("the release request names another record")
        if header.patient != grant.patient:
            raise OutOfScope(f"record {header.label} is not in the grant's scope")
        commitment_hex = "0x" + commitment.hex()
        if not grant.covers(header.category, commitment_hex):
            raise OutOfScope(f"record {header.label} is not in the grant's scope")
        logged = self.node.store.tx_by_index(record.log_index)
        author = record.check(logged.raw)
        check_author(
            self.node.store, author=author, patient=header.patient, category=header.category,
            resource_type=header.resource_type, index=logged.index,
            timestamp_ns=logged.timestamp_ns,
        )  # fmt: skip
        payload = receipt_payload(
            release.grant, header=header, signature=record.sealed.signature,
            salt=record.sealed.salt, release=release, asked=ask.signature,
        )  # fmt: skip
        # The receipt is ordered and executed (the grant re-checked by every node)
        # before the share is opened: no read without a receipt.
        outcome = await self.node.submit_payload(self.member, RECEIPT, payload)
        sealed = reseal_share(record.sealed, self.address, self.key, release)
        return ReleasedShare(self.address, outcome.tx_id, sealed)
