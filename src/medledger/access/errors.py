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
    "ApprovalExpired",
    "BadApproval",
    "ConditionFailed",
    "DurationTooLong",
    "GrantExpired",
    "GrantRevoked",
    "InvalidPolicy",
    "NoGrant",
    "NotPatient",
    "OutOfScope",
    "PolicyNotSatisfied",
    "PurposeNotAllowed",
    "UnknownRequest",
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
