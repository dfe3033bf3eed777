"""``access.request`` and ``access.deny``: asking for a patient's data, and being turned down.

A participant or member asks for one or more categories of a patient (optionally
narrowed to named records), for a purpose and a duration; the request is refused at
once if a policy forbids it. The patient (or a guardian) may deny an open request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medledger.access import glass
from medledger.access.errors import (
    EmptyScope,
    InconsistentScope,
    TooManyOpenRequests,
    UnknownRequest,
)
from medledger.access.open_requests import closed, counted, open_counts, over_limit, recount
from medledger.access.rules import Signer
from medledger.access.settings import access_settings
from medledger.access.state import (
    ASKED_COUNT_NS,
    ASKED_NS,
    OPEN_NS,
    REQUEST_NS,
    AccessRequest,
    append,
    current_policy,
    require_patient,
    require_patient_or_guardian,
    signer_of,
)
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import StateView, TxContext, Write
from medledger.ledger.errors import InvalidPayload, Unauthorized
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S
from medledger.records.categories import CATEGORIES

MAX_CATEGORIES = 16
MAX_RECORDS = 256


def _scope(payload: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The categories a request names (at least one) and the records it narrows to."""
    categories = p.field(payload, "categories")
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        raise InvalidPayload(f"categories: expected a list of at most {MAX_CATEGORIES} names")
    if not categories:
        raise EmptyScope("a request names at least one data category")
    for i, category in enumerate(categories):
        if not isinstance(category, str) or category not in CATEGORIES:
            raise InvalidPayload(f"categories[{i}]: {category!r} is not a data category")
    if len(set(categories)) != len(categories):
        raise InconsistentScope("categories: a category is named twice")
    records = payload.get("records", [])
    if not isinstance(records, list) or len(records) > MAX_RECORDS:
        raise InvalidPayload(f"records: expected a list of at most {MAX_RECORDS} commitments")
    commitments = ["0x" + p.hex_bytes({"r": r}, "r", 32).hex() for r in records]
    if len(set(commitments)) != len(commitments):
        raise InconsistentScope("records: a record is named twice")
    return tuple(categories), tuple(commitments)


def _context(request: AccessRequest, requester: Signer, now_ns: int) -> dict[str, Any]:
    """What a policy's CEL condition sees as ``request``."""
    return {
        "purpose": request.purpose,
        "duration_s": request.duration_s,
        "categories": list(request.categories),
        "requester": requester.address,
        "requester_role": requester.role or "",
        "requester_institution": requester.institution or "",
        "now_ms": now_ns // NS_PER_MS,
    }


def check_terms(view: StateView, request: AccessRequest, now_ns: int) -> dict[str, int]:
    """Check purpose, duration and condition against every category's policy."""
    requester = signer_of(view, request.requester)
    versions = {}
    for category in request.categories:
        policy, versions[category] = current_policy(view, request.patient, category)
        policy.check_request(
            purpose=request.purpose,
            duration_s=request.duration_s,
            context=_context(request, requester, now_ns),
        )
    return versions


def request(ctx: TxContext, view: StateView) -> list[Write]:
    requester = signer_of(view, ctx.sender)
    if requester.role is None:
        raise Unauthorized(f"{ctx.sender} is neither a participant nor a member")
    patient = p.address(ctx.payload, "patient")
    require_patient(view, patient)
    categories, records = _scope(ctx.payload)
    emergency = ctx.payload.get("emergency", False)
    if not isinstance(emergency, bool):
        raise InvalidPayload("emergency: expected true or false")
    settings = access_settings(view)
    request_id = "0x" + ctx.tx_id.hex()
    entry = AccessRequest(
        request_id, ctx.sender, patient, categories, records,
        p.text(ctx.payload, "purpose", max_length=16),
        p.integer(ctx.payload, "duration_s", minimum=1), emergency, "pending", (), ctx.index,
        ctx.timestamp_ns + settings.request_ttl_s * NS_PER_S, {},
    )  # fmt: skip
    writes = [
        Write(REQUEST_NS, request_id, entry.to_state()),
        *append(view, ASKED_NS, ASKED_COUNT_NS, patient, request_id),
    ]
    if emergency:
        return [*writes, *glass.check_emergency(view, entry, requester, ctx.timestamp_ns, settings)]
    check_terms(view, entry, ctx.timestamp_ns)
    counts = open_counts(view, patient)
    if over_limit(counts, ctx.sender, settings):
        counts = recount(view, patient, ctx.timestamp_ns)
        if over_limit(counts, ctx.sender, settings):
            raise TooManyOpenRequests(
                f"{counts['']} requests wait for this patient, {counts.get(ctx.sender, 0)} of "
                f"them by {ctx.sender}"
            )
    return [*writes, Write(OPEN_NS, patient, counted(counts, ctx.sender, +1))]


def deny(ctx: TxContext, view: StateView) -> list[Write]:
    """The patient (or a guardian) turns an open request down; it can no longer be granted."""
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = open_request(view, request_key)
    require_patient_or_guardian(view, entry.patient, ctx.sender)
    denied = dataclasses.replace(entry, status="denied", denied_index=ctx.index)
    return [Write(REQUEST_NS, request_key, denied.to_state()),
            *closed(view, entry, ctx.timestamp_ns)]  # fmt: skip


def open_request(view: StateView, request_key: str) -> AccessRequest:
    """A request still waiting for its answer; any other is refused as unknown."""
    entry = view.get(REQUEST_NS, request_key)
    if entry is None or entry["status"] != "pending":
        raise UnknownRequest(f"no open request {request_key}")
    return AccessRequest.from_state(request_key, entry)
