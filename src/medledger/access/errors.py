"""Why an access policy or an access request was refused.

Messages name the offending value (an address, a role, a purpose code, a JSON
path) but never health data: policies and requests carry none.
"""

from __future__ import annotations

from medledger.errors import InvalidInput, VerificationError

__all__ = [
    "ConditionFailed",
    "DurationTooLong",
    "InvalidPolicy",
    "PolicyNotSatisfied",
    "PurposeNotAllowed",
]


class InvalidPolicy(InvalidInput):
    """A policy document cannot be parsed or its condition cannot be compiled."""


class PolicyNotSatisfied(VerificationError):
    """The approvals given do not meet the policy's approver rule."""


class PurposeNotAllowed(InvalidInput):
    """The request's purpose of use is not one the policy allows."""


class DurationTooLong(InvalidInput):
    """The request asks for access longer than the policy's maximum grant."""


class ConditionFailed(VerificationError):
    """The policy's CEL condition was false for the request, or failed to evaluate."""
