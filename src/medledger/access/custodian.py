"""A custodian: releases its shares of records' keys, only under a grant or to their
patient, only after a receipt.

Every member institution runs one. Asked for the shares of a release's records, it
checks in its own ledger state that the grant holds and its holder still stands, that
the request is signed by the grant's holder and names exactly these records, and that
each record is the patient's, of a category the grant covers (as its author signed
it), committed in its log, and written by an author who could write it
(access/care.py); then it appends one ``access.receipt`` for them all and waits until
the log has it; only then does it open its shares and seal each to the reader's
one-time key. An owner read (access/owner.py) names no grant: the request must then
come from the records' patient or a guardian, or a node one of them delegated to.
Any refusal raises its specific error, and no share leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medledger.access.care import check_author
from medledger.access.custody import reseal_share
from medledger.access.delegation import SignedDelegation, digest_of
from medledger.access.errors import ApprovalExpired, BadApproval, OutOfScope
from medledger.access.owner import OwnerRead, reader_of
from medledger.access.receipts import RECEIPT, receipt_payload
from medledger.access.release import MAX_RELEASE_RECORDS, OWNER_READ, Release
from medledger.access.state import Grant, holding_grant
from medledger.crypto import ecies
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address, PrivateKey
from medledger.ledger.node import LedgerNode
from medledger.ledger.store import LoggedTx
from medledger.ledger.timestamps import NS_PER_MS
from medledger.records.proof import CommittedRecord


@dataclass(frozen=True)
class ReleaseAsk:
    """A reader's request to one custodian: the signed release and its records, in order;
    with the holder's delegation when a node asks for them (access/delegation.py)."""

    release: Release
    signature: bytes
    records: tuple[CommittedRecord, ...]
    delegation: SignedDelegation | None = None


@dataclass(frozen=True)
class ReleasedShares:
    """One custodian's answer: its receipt, and its share of each record's key, in order."""

    custodian: Address
    receipt: bytes
    sealed: tuple[bytes, ...]


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

    async def release(self, ask: ReleaseAsk) -> ReleasedShares:
        release, records = ask.release, ask.records
        if not 1 <= len(records) <= MAX_RELEASE_RECORDS:
            raise OutOfScope(f"a release covers 1 to {MAX_RELEASE_RECORDS} records")
        scope = self._scope(ask)
        if release.delegation != digest_of(ask.delegation):
            raise BadApproval("the release request names another delegation")
        if release.not_after_ms * NS_PER_MS < self._clock_ns():
            raise ApprovalExpired("release request expired")
        if not release.covers([record.commitment for record in records]):
            raise OutOfScope("the release request names other records")
        commits: dict[int, LoggedTx] = {}  # a query's records share a few batches
        for record in records:
            self._check(scope, record, commits)
            if ask.delegation is not None:
                ask.delegation.require_type(record.sealed.header.resource_type,
                                            record.sealed.header.label)  # fmt: skip
        payload = receipt_payload(release.grant, records=[r.sealed for r in records],
                                  release=release, asked=ask.signature,
                                  delegation=ask.delegation)  # fmt: skip
        # The receipt is ordered and executed (grant or owner re-checked by every node)
        # before a share is opened: no read without a receipt.
        outcome = await self.node.submit_payload(self.member, RECEIPT, payload)
        to_reader = ecies.Sealer(release.reader_key)
        sealed = tuple(
            reseal_share(
                record.sealed,
                record.commitment,
                self.address,
                self.key,
                release=release,
                to_reader=to_reader,
            )
            for record in records
        )
        return ReleasedShares(self.address, outcome.tx_id, sealed)

    def _scope(self, ask: ReleaseAsk) -> Grant | OwnerRead:
        """What the release is asked under, once its reader is checked: a grant, asked for
        by its holder; or the records' patient, by herself or a guardian (access/owner.py);
        either directly or through a node they delegated to."""
        store, now_ns = self.node.store, self._clock_ns()
        grant = None
        if ask.release.grant != OWNER_READ:
            grant = holding_grant(store, "0x" + ask.release.grant.hex(), now_ns)
        try:
            reader = ask.release.signer(ask.signature)
        except InvalidSignature as exc:
            raise BadApproval(f"release request: {exc}") from None
        patient = ask.records[0].sealed.header.patient if grant is None else grant.patient
        reader_of(store, grant, patient, reader, ask.delegation, now_ns=now_ns)
        return OwnerRead(patient) if grant is None else grant

    def _check(
        self, scope: Grant | OwnerRead, record: CommittedRecord, commits: dict[int, LoggedTx]
    ) -> None:
        header = record.sealed.header
        if header.patient != scope.patient or not scope.covers(
            header.category, "0x" + record.commitment.hex()
        ):
            owner = isinstance(scope, OwnerRead)
            whose = "the patient's own records" if owner else "the grant's scope"
            raise OutOfScope(f"record {header.label} is not in {whose}")
        logged = commits.get(record.log_index)
        if logged is None:
            logged = commits[record.log_index] = self.node.store.tx_by_index(record.log_index)
        author = record.check(logged.raw)
        check_author(
            self.node.store, author=author, patient=header.patient, category=header.category,
            resource_type=header.resource_type, index=logged.index,
            timestamp_ns=logged.timestamp_ns,
        )  # fmt: skip
