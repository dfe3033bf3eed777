"""Records a patient shows an issuer so that it can derive claims from them.

An institution's node never holds record keys. To issue a credential from a
checkup it wrote, it asks the patient for the records' plaintext (the salt and
canonical JSON the patient's key opens) and checks each against what its own
vault committed: the record is there, is the patient's, was written by this
institution's staff (not by the patient, nor by another institution's), is its
latest version, and its salted content commitment, signed by the author, matches. Only then does
a resource feed :func:`medledger.credentials.claims.derive_claims`; a patient can
withhold records, not forge or alter them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.credentials.errors import EvidenceRejected
from medledger.crypto.keys import Address
from medledger.records.header import content_commitment
from medledger.records.store import StoredRecord, VaultStore


@dataclass(frozen=True)
class Evidence:
    record_id: bytes
    version: int
    salt: bytes
    canonical: bytes


def checked_resources(
    vault: VaultStore, patient: Address, evidence: Sequence[Evidence],
    written_here: Callable[[StoredRecord], bool],
) -> list[dict[str, Any]]:  # fmt: skip
    """The FHIR resources the evidence proves, in the order given; ``written_here`` says
    whether a stored record's author wrote it as this institution's staff."""
    resources = []
    for item in evidence:
        stored = vault.get(item.record_id, item.version)
        header = stored.sealed.header
        if header.patient != patient:
            raise EvidenceRejected(f"{header.label}: not a record of {patient}")
        if not written_here(stored):
            # A patient's own account, or another institution's record kept here, is not
            # this institution's word.
            raise EvidenceRejected(f"{header.label}: not written by this institution's staff")
        if vault.get(item.record_id).sealed.header.version != header.version:
            raise EvidenceRejected(f"{header.label}: a later version supersedes it")
        if content_commitment(item.salt, item.canonical) != header.content:
            raise EvidenceRejected(f"{header.label}: not what its author signed")
        resources.append(dict(json.loads(item.canonical)))
    return resources
