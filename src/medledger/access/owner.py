"""Owner reads: a patient, or a guardian she named, reading her own records through the
custodians.

A patient holds no grant to her own records (the portal opens them with her own key),
but a FHIR app she uses talks to a node, which must open them without ever holding her
key. So a release may name :data:`~medledger.access.release.OWNER_READ` for its grant;
custodians and every node then check, where they would check the grant, that whoever
asks speaks for the records' patient (``speaks_for``: the patient or a registered
guardian), asking themself or through the node they delegated to for one app and its
resource types (access/delegation.py). Every other check is a grant's: these records,
each the patient's, committed, by an author who could write it; the release unexpired;
the delegation in force, to the release's signer, a member. A node's own signature
speaks for nobody, so no node, staff member or institution can ask for an owner read.
The receipt names no grant, the patient (or the guardian) as reader, and the node and
app it went through.
"""

from __future__ import annotations

from dataclasses import dataclass

from medledger.access.delegation import SignedDelegation, check_reader
from medledger.access.release import OWNER_READ
from medledger.access.state import Grant, require_patient_or_guardian
from medledger.crypto.keys import Address
from medledger.ledger.contracts.base import StateView

#: HL7 v3 ActReason PATRQT, "patient requested": why an owner read happened.
PURPOSE = "PATRQT"


@dataclass(frozen=True)
class OwnerRead:
    """A patient's right to her own records, standing where a grant would: it covers every
    record of hers and nobody else's."""

    patient: Address
    grant: str = "0x" + OWNER_READ.hex()

    def covers(self, category: str, record: str) -> bool:
        return True


def reader_of(
    view: StateView, grant: Grant | None, patient: Address, release_signer: Address,
    delegation: SignedDelegation | None, *, now_ns: int,
) -> Address:  # fmt: skip
    """Who reads under a release, as its receipt names them: the grant's holder; or, for
    an owner read (``grant`` None), the patient or a guardian (NotPatient otherwise);
    asking themself or through the node their ``delegation`` names (BadApproval or
    ApprovalExpired when it does not hold)."""
    if grant is not None:
        check_reader(view, release_signer, delegation, holder=grant.requester, now_ns=now_ns)
        return grant.requester
    principal = release_signer if delegation is None else delegation.principal()
    require_patient_or_guardian(view, patient, principal)
    check_reader(view, release_signer, delegation, holder=principal, now_ns=now_ns)
    return principal
