"""Why an access policy, request, approval, grant or release was refused.

Each is a ledger rejection with a stable code, so a refusal inside a contract
reaches the submitter as this same class on every node. Messages name the
offending value (an address, a role, a purpose code, a JSON path) but never
health data: policies, requests and grants carry none.
"""

from __future__ import annotations

from medledger.errors import VerificationError
from medledger.ledger.errors import TransactionRejected

__all__ = [
    "AlreadyEnrolled",
    "ApprovalExpired",
    "BadApproval",
    "BreakGlassLimit",
    "ConditionFailed",
    "DurationTooLong",
    "EmptyScope",
    "GrantExpired",
    "GrantRevoked",
    "HolderWithoutStanding",
    "InconsistentScope",
    "InvalidPolicy",
    "NoCareRelationship",
    "NoGrant",
    "NotAnAuthor",
    "NotPatient",
    "NotReviewer",
    "OutOfScope",
    "PolicyNotSatisfied",
    "PurposeNotAllowed",
    "TooManyOpenRequests",
    "UnknownRequest",
    "WrongCategory",
]


class InvalidPolicy(TransactionRejected):
    """A policy document cannot be parsed or its condition cannot be compiled."""

    code = "invalid_policy"


class PolicyNotSatisfied(TransactionRejected, VerificationError):
    """The approvals given do not meet the policy's approver rule."""

    code = "policy_not_satisfied"


class PurposeNotAllowed(TransactionRejected):
    """The request's purpose of use is not one the policy allows."""

    code = "purpose_not_allowed"


class DurationTooLong(TransactionRejected):
    """The request asks for access longer than the policy's maximum grant."""

    code = "duration_too_long"


class ConditionFailed(TransactionRejected, VerificationError):
    """The policy's CEL condition was false for the request, or failed to evaluate."""

    code = "condition_failed"


class NotPatient(TransactionRejected):
    """Only the patient (or a guardian they named) may do this."""

    code = "not_patient"


class UnknownRequest(TransactionRejected):
    """No access request with that id, or it is no longer open."""

    code = "unknown_request"


class BadApproval(TransactionRejected, VerificationError):
    """An approval's signature is not by the signer it names, for this request."""

    code = "bad_approval"


class ApprovalExpired(TransactionRejected):
    """An approval was used after its notAfter time."""

    code = "approval_expired"


class NoGrant(TransactionRejected):
    """No grant with that id."""

    code = "no_grant"


class GrantExpired(TransactionRejected):
    """The grant's time is over."""

    code = "grant_expired"


class GrantRevoked(TransactionRejected):
    """The patient revoked the grant."""

    code = "grant_revoked"


class OutOfScope(TransactionRejected):
    """The record asked for is not one the grant covers."""

    code = "out_of_scope"


class EmptyScope(TransactionRejected):
    """A request names no data category: every request is judged by the policies of the
    categories it names, so one that names none would be judged by none."""

    code = "empty_scope"


class InconsistentScope(TransactionRejected):
    """A request names a category or a record twice, or records without a category."""

    code = "inconsistent_scope"


class HolderWithoutStanding(TransactionRejected):
    """A grant's holder is no longer a registered participant of a member institution."""

    code = "holder_without_standing"


class NotAnAuthor(TransactionRejected, VerificationError):
    """A record's author did not hold a role that may write records when it was written."""

    code = "not_an_author"


class NoCareRelationship(TransactionRejected, VerificationError):
    """The author's institution had no care relationship with the patient (an enrolment
    or a grant covering the record's category) when the record was written."""

    code = "no_care_relationship"


class TooManyOpenRequests(TransactionRejected):
    """The patient already has as many open requests as the network allows."""

    code = "too_many_open_requests"


class BreakGlassLimit(TransactionRejected):
    """The requester already broke the glass as often as the network allows in a day."""

    code = "break_glass_limit"


class NotReviewer(TransactionRejected):
    """Only a participant in the network's reviewer role who took no part in a
    break-glass grant may review it."""

    code = "not_reviewer"


class WrongCategory(TransactionRejected, VerificationError):
    """A record is labelled with a data category its resource type can never be in, or
    with a resource type that is not FHIR's."""

    code = "wrong_category"


class AlreadyEnrolled(TransactionRejected):
    """The patient is already enrolled at that institution (or was not, to unenrol)."""

    code = "already_enrolled"
