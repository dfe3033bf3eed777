"""Access policies: who must approve a request for a data category, and on what terms.

A patient sets one policy per data category (:data:`medledger.records.fhir.CATEGORIES`):
an approver rule (:mod:`medledger.access.rules`); the HL7 PurposeOfUse codes a request
may state; the longest grant it may ask for; and an optional CEL condition over the
request (:mod:`medledger.access.condition`). Pure model: the time comes in through
the request context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medledger.access.condition import Condition
from medledger.access.errors import (
    DurationTooLong,
    InvalidPolicy,
    PolicyNotSatisfied,
    PurposeNotAllowed,
)
from medledger.access.rules import (
    Patient,
    Rule,
    RuleResult,
    Signer,
    check_rule,
    evaluate,
    parse_rule,
    rule_to_json,
    show_value,
)
from medledger.crypto.keys import Address
from medledger.errors import InvalidInput, UsageError

__all__ = [
    "MAX_DURATION_S", "MIN_DURATION_S", "PURPOSES", "PURPOSE_SYSTEM", "Policy", "default_policy",
]  # fmt: skip

MIN_DURATION_S = 60
MAX_DURATION_S = 366 * 24 * 3600

PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
#: The PurposeOfUse codes (of :data:`PURPOSE_SYSTEM`) a policy may allow: those that
#: make sense for reading a person's record, each with its HL7 display name.
PURPOSES = frozenset({
    "TREAT", "ETREAT", "BTG",  # treatment, emergency treatment, break the glass
    "CAREMGT", "COC", "POPHLTH",  # care management, coordination of care, population health
    "CLINTRL", "CLINTRCH", "HRESCH",  # clinical trial, clinical trial research, research
    "HOPERAT", "HPAYMT", "COVERAGE",  # healthcare operations, payment, coverage
    "PATRQT", "FAMRQT", "PWATRNY", "SUPNWK",  # requested by the patient, family, attorney,
    # support network
    "PUBHLTH", "HLEGAL",  # public health, legal
})  # fmt: skip

_POLICY_KEYS = ("approvers", "purposes", "max_duration_s", "condition")


@dataclass(frozen=True)
class Policy:
    """A patient's terms for one data category; constructing one validates it."""

    approvers: Rule
    purposes: frozenset[str]
    max_duration_s: int
    condition: str | None = None
    _condition: Condition | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        # Policies built in code pass the same checks as policies read from JSON.
        object.__setattr__(self, "approvers", check_rule(self.approvers, "approvers"))
        if not self.purposes or not self.purposes <= PURPOSES:
            got = ", ".join(sorted(self.purposes)) or "none"
            raise InvalidPolicy(f"purposes: expected supported PurposeOfUse codes, got {got}")
        duration = self.max_duration_s
        if type(duration) is not int or not MIN_DURATION_S <= duration <= MAX_DURATION_S:
            raise InvalidPolicy(
                f"max_duration_s: expected an integer in [{MIN_DURATION_S}, {MAX_DURATION_S}],"
                f" got {show_value(duration)}"
            )
        if self.condition is not None:
            object.__setattr__(self, "_condition", Condition(self.condition))

    @classmethod
    def from_json(cls, obj: object) -> Policy:
        if not isinstance(obj, dict):
            raise InvalidPolicy(f"policy: expected an object, got {type(obj).__name__}")
        for key in obj:
            if key not in _POLICY_KEYS:
                raise InvalidPolicy(f"{key}: unknown key")
        for key in _POLICY_KEYS[:3]:
            if key not in obj:
                raise InvalidPolicy(f"{key}: missing")
        approvers = parse_rule(obj["approvers"], "approvers")
        purposes = obj["purposes"]
        if not isinstance(purposes, list) or not purposes:
            raise InvalidPolicy("purposes: expected a non-empty list of PurposeOfUse codes")
        for i, code in enumerate(purposes):
            if not isinstance(code, str) or code not in PURPOSES:
                raise InvalidPolicy(f"purposes[{i}]: {show_value(code)} is not a supported code")
            if code in purposes[:i]:
                raise InvalidPolicy(f"purposes[{i}]: {code!r} given twice")
        condition = obj.get("condition")
        if condition is not None and not isinstance(condition, str):
            raise InvalidPolicy(
                f"condition: expected a string or null, got {show_value(condition)}"
            )
        return cls(approvers, frozenset(purposes), obj["max_duration_s"], condition)

    def to_json(self) -> dict[str, Any]:
        return {
            "approvers": rule_to_json(self.approvers),
            "purposes": sorted(self.purposes),
            "max_duration_s": self.max_duration_s,
            "condition": self.condition,
        }

    def check_request(self, *, purpose: str, duration_s: int, context: Mapping[str, Any]) -> None:
        """Raise unless a request for ``purpose`` lasting ``duration_s`` meets these terms.

        The condition sees ``request``: ``context`` with ``purpose`` and ``duration_s``.
        """
        if not isinstance(purpose, str) or purpose not in self.purposes:
            allowed = ", ".join(sorted(self.purposes))
            raise PurposeNotAllowed(
                f"purpose {show_value(purpose)} is not allowed; allowed: {allowed}"
            )
        if type(duration_s) is not int or duration_s <= 0:
            raise InvalidInput(
                f"duration_s: expected a positive integer, got {show_value(duration_s)}"
            )
        if duration_s > self.max_duration_s:
            raise DurationTooLong(
                f"duration {duration_s} s exceeds the maximum of {self.max_duration_s} s"
            )
        if self._condition is None:
            return
        for key, value in (("purpose", purpose), ("duration_s", duration_s)):
            if context.get(key, value) != value:
                raise UsageError(
                    f"context {key} {context[key]!r} contradicts the request's {value!r}"
                )
        self._condition.check({**context, "purpose": purpose, "duration_s": duration_s})

    def check_approvals(self, patient: Address, signers: Sequence[Signer]) -> RuleResult:
        """Raise :class:`PolicyNotSatisfied` unless ``signers`` meet the approver rule."""
        result = evaluate(self.approvers, patient, signers)
        if not result.satisfied:
            raise PolicyNotSatisfied(result.describe())
        return result


def default_policy() -> Policy:
    """The policy of a category the patient has set none for.

    The patient alone approves, for treatment or emergency treatment, for a week at
    most. Nobody else can approve, so nothing is shared without consent; and the
    patient can approve, so no category is ever locked beyond their own consent.
    """
    return Policy(Patient(), frozenset({"TREAT", "ETREAT"}), 7 * 24 * 3600)
