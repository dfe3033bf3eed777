"""Break-glass: narrow, rate-limited, and reviewed after the fact.

A break-glass request skips the patient's policies for a fixed rule (the asking
doctor and one on-call officer) and reaches only the International Patient Summary
categories for at most a day. Genesis bounds how often one clinician may use it
(``break_glass_per_day``). Every such grant waits for a review by a participant in
the reviewer role who took no part in it (``access.review``: justified or not);
one not reviewed within ``review_within_s`` can be flagged by any member
(``access.flag_overdue``), which tells the patient and the consortium.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medledger.access.errors import (
    BreakGlassLimit,
    DurationTooLong,
    NotReviewer,
    OutOfScope,
    PurposeNotAllowed,
    UnknownRequest,
)
from medledger.access.policy import Policy
from medledger.access.rules import KOf, Person, Role, Signer
from medledger.access.settings import AccessSettings, access_settings
from medledger.access.state import (
    GRANT_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    AccessRequest,
    Grant,
    Review,
    append,
    grant_of,
    signer_of,
)
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.membership import require_member
from medledger.ledger.errors import Conflict, InvalidPayload, Unauthorized
from medledger.ledger.timestamps import NS_PER_S

REVIEW = "access.review"
FLAG_OVERDUE = "access.flag_overdue"

#: Break-glass reaches only the International Patient Summary's categories.
EMERGENCY_CATEGORIES = frozenset({"allergies", "medications", "conditions", "immunizations"})
EMERGENCY_PURPOSES = frozenset({"ETREAT", "BTG"})
EMERGENCY_MAX_S = 24 * 3600
EMERGENCY_REQUESTER_ROLE = "doctor"
EMERGENCY_APPROVER_ROLE = "officer"
FINDINGS = ("justified", "unjustified")

#: Each clinician's break-glass requests of the last 24 hours (orderer timestamps).
GLASS_NS = "access.glass"
#: Break-glass grants not yet reviewed or flagged, oldest first.
REVIEW_DUE_NS = "access.review_due"
REVIEW_DUE_KEY = "pending"
#: What the consortium is told: overdue reviews, in log order.
ALERT_NS = "access.alert"
ALERT_COUNT_NS = "access.alert_count"
CONSORTIUM = "consortium"
_DAY_NS = 24 * 3600 * NS_PER_S


def check_emergency(
    view: StateView, entry: AccessRequest, requester: Signer, now_ns: int,
    settings: AccessSettings,
) -> list[Write]:  # fmt: skip
    """Refuse a break-glass request outside its narrow terms or over the requester's daily
    limit; return the write that counts it."""
    if requester.role != EMERGENCY_REQUESTER_ROLE:
        raise Unauthorized(f"break-glass needs the {EMERGENCY_REQUESTER_ROLE} role")
    outside = sorted(set(entry.categories) - EMERGENCY_CATEGORIES)
    if outside:
        raise OutOfScope(f"break-glass does not reach {', '.join(outside)}")
    if entry.purpose not in EMERGENCY_PURPOSES:
        raise PurposeNotAllowed(f"break-glass purpose must be ETREAT or BTG, not {entry.purpose}")
    if entry.duration_s > EMERGENCY_MAX_S:
        raise DurationTooLong(f"break-glass lasts at most {EMERGENCY_MAX_S} s")
    recent = [t for t in view.get(GLASS_NS, requester.address) or [] if t > now_ns - _DAY_NS]
    limit = settings.break_glass_per_day
    if len(recent) >= limit:
        raise BreakGlassLimit(f"{requester.address} broke the glass {limit} times in 24 hours")
    return [Write(GLASS_NS, requester.address, [*recent, now_ns])]


def emergency_rule(requester: Address) -> Policy:
    # The clinician who asks and one on-call officer: two distinct people.
    approvers = KOf(2, (Person(requester), Role(EMERGENCY_APPROVER_ROLE)))
    return Policy(approvers, EMERGENCY_PURPOSES, EMERGENCY_MAX_S)


def await_review(view: StateView, grant_key: str) -> Write:
    """Put a new break-glass grant on the list of those waiting for review."""
    return Write(REVIEW_DUE_NS, REVIEW_DUE_KEY, [*due_for_review(view), grant_key])


def due_for_review(view: StateView) -> list[str]:
    return list(view.get(REVIEW_DUE_NS, REVIEW_DUE_KEY) or [])


def _emergency_grant(view: StateView, payload: Mapping[str, Any]) -> Grant:
    grant_key = "0x" + p.hex_bytes(payload, "grant", 32).hex()
    grant = grant_of(view, grant_key)
    if grant is None or not grant.emergency:
        raise UnknownRequest(f"no break-glass grant {grant_key}")
    if grant.review is not None or grant.overdue_index is not None:
        raise Conflict(f"break-glass grant {grant_key} was already reviewed or flagged")
    return grant


def _settled(view: StateView, grant_key: str) -> Write:
    due = [g for g in due_for_review(view) if g != grant_key]
    return Write(REVIEW_DUE_NS, REVIEW_DUE_KEY, due)


def review(ctx: TxContext, view: StateView) -> list[Write]:
    grant = _emergency_grant(view, ctx.payload)
    grant_key = grant.grant
    reviewer = signer_of(view, ctx.sender)
    role = access_settings(view).reviewer_role
    if reviewer.role != role:
        raise NotReviewer(f"{ctx.sender} is not a participant in the {role} role")
    if ctx.sender == grant.requester or ctx.sender in grant.approvals:
        raise NotReviewer(f"{ctx.sender} took part in break-glass grant {grant_key}")
    finding = p.text(ctx.payload, "finding", max_length=16)
    if finding not in FINDINGS:
        raise InvalidPayload(f"finding: expected one of {', '.join(FINDINGS)}")
    reviewed = dataclasses.replace(grant, review=Review(ctx.sender, finding, ctx.index))
    state = reviewed.to_state()
    notice = {"grant": grant_key, "review": state["review"], "requester": grant.requester}
    return [
        Write(GRANT_NS, grant_key, state),
        _settled(view, grant_key),
        *append(view, NOTICE_NS, NOTICE_COUNT_NS, grant.patient, notice),
    ]


def flag_overdue(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    grant = _emergency_grant(view, ctx.payload)
    grant_key = grant.grant
    deadline = grant.granted_ns + access_settings(view).review_within_s * NS_PER_S
    if ctx.timestamp_ns <= deadline:
        raise Conflict(f"break-glass grant {grant_key} may be reviewed until {deadline} ns")
    flagged = dataclasses.replace(grant, overdue_index=ctx.index)
    alert = {"grant": grant_key, "requester": grant.requester, "kind": "review_overdue",
             "flagged_by": ctx.sender, "index": ctx.index}  # fmt: skip
    return [
        Write(GRANT_NS, grant_key, flagged.to_state()),
        _settled(view, grant_key),
        *append(view, NOTICE_NS, NOTICE_COUNT_NS, grant.patient, alert),
        *append(view, ALERT_NS, ALERT_COUNT_NS, CONSORTIUM, alert),
    ]


def overdue(view: StateView, now_ns: int) -> list[str]:
    """Break-glass grants whose review is overdue at ``now_ns``, oldest first."""
    within = access_settings(view).review_within_s * NS_PER_S
    late = []
    for grant_key in due_for_review(view):
        grant = grant_of(view, grant_key)
        if grant is not None and now_ns > grant.granted_ns + within:
            late.append(grant_key)
    return late


def flagger_delay_s(member: Address, members: list[Address]) -> int:
    """How long after a deadline ``member`` waits before flagging: members take turns a
    minute apart, so one flag is enough and a member that is down is covered."""
    return 60 * sorted(members).index(member) if member in members else 0


HANDLERS: dict[str, Handler] = {REVIEW: review, FLAG_OVERDUE: flag_overdue}
