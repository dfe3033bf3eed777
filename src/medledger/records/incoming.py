"""Records sealed by their author's own client, checked before they join the vault.

A clinician's client validates, encrypts, splits the key and signs on its own
machine; the institution's node never sees plaintext or a data key. What the
node can check without them, it checks here before a record joins a batch: the
network, that the signed resource type is a FHIR one, the author's signature over
ciphertext and wrapped keys, that the author is a participant of this institution
who may write this record for this patient (the authoring rule comes from above:
access/care.py), that the patient is registered, that the key is split for the
consortium's current custodians, and that a new version follows the one the vault
holds. The shares themselves are sealed to the custodians and cannot be checked
here; a custodian that cannot open its share refuses to release it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from medledger.crypto.keys import Address
from medledger.errors import MedledgerError
from medledger.ledger.contracts.base import StateView
from medledger.ledger.contracts.identity import participant_institution
from medledger.ledger.node import LedgerNode
from medledger.records.errors import RejectedRecord, UnknownRecord
from medledger.records.fhir import is_resource_type
from medledger.records.header import FIRST_VERSION
from medledger.records.pipeline import Incoming, Sealed
from medledger.records.recipients import UnknownPatient, custodians_of, patient_key
from medledger.records.sealed import SealedRecord
from medledger.records.store import VaultStore


class AuthorCheck(Protocol):
    """Raises unless ``author`` may write this record for ``patient`` as of log entry
    ``index`` and orderer time ``timestamp_ns``."""

    def __call__(
        self, view: StateView, *, author: Address, patient: Address, category: str,
        resource_type: str, index: int, timestamp_ns: int,
    ) -> None: ...  # fmt: skip


def authoring_refusal(
    authoring: AuthorCheck, view: StateView, sealed: SealedRecord, author: Address, *,
    index: int, timestamp_ns: int,
) -> str | None:  # fmt: skip
    """Why ``authoring`` refuses ``author``'s record as of log entry ``index`` and orderer
    time ``timestamp_ns``, or None if it may join the vault."""
    h = sealed.header
    try:
        authoring(
            view, author=author, patient=h.patient, category=h.category,
            resource_type=h.resource_type, index=index, timestamp_ns=timestamp_ns,
        )  # fmt: skip
    except MedledgerError as exc:
        return str(exc)
    return None


def check_incoming(
    node: LedgerNode, store: VaultStore, institution: Address, batch: Sequence[Incoming],
    authoring: AuthorCheck | None = None,
) -> list[Sealed]:  # fmt: skip
    """Check every record of a batch; the first failure refuses the whole batch."""
    custodians = custodians_of(node)
    holders = tuple(address for address, _ in custodians.holders)
    seen: set[bytes] = set()
    accepted = []
    # The whole batch is committed at one log entry: judge its records as of one moment.
    index, now_ns = node.size, time.time_ns()
    for item in batch:
        sealed, header = item.sealed, item.sealed.header
        label = header.label
        if header.network_id != node.network_id:
            raise RejectedRecord(label, "network", f"sealed for network {header.network_id}")
        # The node cannot see the resource, but its signed type must be one that every
        # client's validation knows: a browser checks less than records/fhir.py does, and
        # the type is shown to every reader of the chart as its author wrote it.
        if not is_resource_type(header.resource_type):
            raise RejectedRecord(label, "resourceType", "not a FHIR resource type")
        author = sealed.check()
        # A vault keeps what its own staff wrote, and a patient's own account.
        if author != header.patient and participant_institution(node.store, author) != institution:
            raise RejectedRecord(label, "author", f"{author} is not a participant here")
        try:
            patient_key(node, header.patient)
        except UnknownPatient as exc:
            raise RejectedRecord(label, "patient", str(exc)) from None
        if authoring is not None:
            refusal = authoring_refusal(authoring, node.store, sealed, author, index=index,
                                        timestamp_ns=now_ns)  # fmt: skip
            if refusal is not None:
                raise RejectedRecord(label, "author", refusal)
        if sealed.keys.threshold != custodians.threshold or sealed.keys.custodians != holders:
            raise RejectedRecord(
                label, "keys", f"not split {custodians.threshold} of {len(holders)} "
                "for the consortium's current custodians"
            )  # fmt: skip
        if header.record_id in seen:
            raise RejectedRecord(label, "duplicate", "two versions of one record in one batch")
        seen.add(header.record_id)
        check_version(store, sealed, author)
        accepted.append(Sealed(label, sealed, author, item.fhir_id))
    return accepted


def check_version(store: VaultStore, sealed: SealedRecord, author: Address) -> None:
    """That a record version follows the vault's latest of that record, keeps its patient
    and type, and keeps a patient's own account apart from the clinicians' record."""
    header = sealed.header
    try:
        stored = store.get(header.record_id)
        latest = stored.sealed.header
    except UnknownRecord:
        if header.version != FIRST_VERSION:
            raise RejectedRecord(
                header.label, "version", "amends a record this vault does not hold"
            ) from None
        return
    if header.version != latest.version + 1 or header.previous != latest.digest:
        raise RejectedRecord(
            header.label, "version", f"does not follow version {latest.version} in this vault"
        )
    if header.patient != latest.patient or header.resource_type != latest.resource_type:
        raise RejectedRecord(
            header.label, "version", "changes the patient or resource type of the record"
        )
    if (stored.author == header.patient) != (author == header.patient):
        # A patient's own account and the clinicians' record of them stay apart: neither
        # supersedes the other.
        raise RejectedRecord(
            header.label, "version", "a patient and a clinician do not amend each other's records"
        )
