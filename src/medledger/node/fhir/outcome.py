"""OperationOutcomes, and the HTTP status and FHIR issue type of each refusal.

A FHIR client reads a refusal as an OperationOutcome, so the FHIR routes answer with one
where the rest of the API answers with ``app.ErrorBody``; the statuses are the same as
``app.STATUS`` gives (a test holds them together), plus those only FHIR has: a malformed
search is 400 and a format we do not serve is 406. The diagnostics are the error's own
message, which names fields and ids, never health data (``errors.py``); an error we did
not raise on purpose says nothing of itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from medledger.access.errors import NoGrant, NotPatient, UnknownRequest
from medledger.errors import InvalidInput, MedledgerError, TransportError, UsageError
from medledger.ledger.errors import (
    Conflict,
    NonceGap,
    ReplayedTransaction,
    TransactionRejected,
    Unauthorized,
    UnknownTransaction,
)
from medledger.node.errors import (
    Forbidden,
    NotFound,
    RateLimited,
    ReplayedRequest,
    RequestNotAuthenticated,
)
from medledger.node.fhir.content import NotAcceptable
from medledger.records.errors import InvalidRecord, UnknownRecord
from medledger.records.fhir_search import InvalidSearch, UnsupportedSearch

__all__ = [
    "FHIR_STATUS", "Issue", "IssueType", "PreconditionFailed", "Severity", "operation_outcome",
    "outcome_of",
]  # fmt: skip

Severity = Literal["fatal", "error", "warning", "information"]
#: The R4 IssueType value set (http://hl7.org/fhir/ValueSet/issue-type), a required binding.
IssueType = Literal[
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
    "exception", "timeout", "incomplete", "throttled", "informational",
]  # fmt: skip
_ISSUE_TYPES = frozenset(get_args(IssueType))
_SEVERITIES = frozenset(get_args(Severity))
_MAX_DIAGNOSTICS = 1000


@dataclass(frozen=True)
class Issue:
    """One issue: how bad, what kind, and words for people (never health data)."""

    severity: Severity
    code: IssueType
    diagnostics: str | None = None
    expression: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in _SEVERITIES or self.code not in _ISSUE_TYPES:
            raise UsageError("an issue needs an R4 severity and IssueType code")

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.diagnostics:
            issue["diagnostics"] = self.diagnostics[:_MAX_DIAGNOSTICS]
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """An OperationOutcome of these issues (at least one: R4 requires it)."""
    if not issues:
        raise UsageError("an OperationOutcome has at least one issue")
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


class PreconditionFailed(InvalidInput):
    """A conditional create's search matched more than one resource (HTTP 412)."""


#: Most specific first: the first class an error is an instance of decides.
FHIR_STATUS: list[tuple[type[MedledgerError], int, IssueType]] = [
    (RequestNotAuthenticated, 401, "login"),
    (ReplayedRequest, 401, "security"),
    (Forbidden, 403, "forbidden"),
    (Unauthorized, 403, "forbidden"),
    (NotPatient, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (UnknownRecord, 404, "not-found"),
    (UnknownRequest, 404, "not-found"),
    (NoGrant, 404, "not-found"),
    (UnknownTransaction, 404, "not-found"),
    (ReplayedTransaction, 409, "duplicate"),
    (NonceGap, 409, "conflict"),
    (Conflict, 409, "conflict"),
    (RateLimited, 429, "throttled"),
    (PreconditionFailed, 412, "multiple-matches"),
    (UnsupportedSearch, 400, "not-supported"),
    (InvalidSearch, 400, "invalid"),
    (NotAcceptable, 406, "not-supported"),
    (TransactionRejected, 422, "business-rule"),
    (InvalidRecord, 422, "invalid"),
    (InvalidInput, 422, "invalid"),
    (UsageError, 400, "invalid"),
    (TransportError, 503, "transient"),
]


def outcome_of(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OperationOutcome that answer a refusal; 500 for an error we
    did not raise on purpose, whose message may hold anything and is not shown."""
    for cls, status, code in FHIR_STATUS:
        if isinstance(exc, cls):
            issue = Issue("error", code, str(exc), _expression(exc))
            return status, operation_outcome([issue])
    return 500, operation_outcome([Issue("fatal", "exception", "internal error")])


def _expression(exc: MedledgerError) -> tuple[str, ...]:
    if isinstance(exc, InvalidRecord) and exc.field:
        return (f"{exc.resource.partition('/')[0]}.{exc.field}",)
    return ()
