"""``access.approve`` and ``access.revoke``: the grant an approved request becomes, and its end.

Anyone relays EIP-712 approvals (access/approval.py) for an open request; the grant
exists once every category's approver rule holds, with distinct signers resolved to
their roles at this point in the log and only approvals still unexpired at that
point counted. The patient (or a guardian) ends a grant at once.
"""

from __future__ import annotations

import dataclasses

from medledger.access import care, glass
from medledger.access.approval import Approval
from medledger.access.errors import (
    ApprovalExpired,
    BadApproval,
    HolderWithoutStanding,
    NoGrant,
    PolicyNotSatisfied,
    UnknownRequest,
)
from medledger.access.open_requests import closed
from medledger.access.requests import check_terms, open_request
from medledger.access.state import (
    GRANT_NS,
    NOTICE_COUNT_NS,
    NOTICE_NS,
    REQUEST_NS,
    AccessRequest,
    Grant,
    append,
    current_policy,
    grant_of,
    require_patient_or_guardian,
    signer_of,
)
from medledger.crypto.errors import InvalidSignature
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import StateView, TxContext, Write
from medledger.ledger.timestamps import NS_PER_MS, NS_PER_S

MAX_APPROVALS = 16


def _approvals(ctx: TxContext, request_id: bytes, entry: AccessRequest) -> dict[Address, int]:
    """The request's approvals so far with those relayed now: signer -> notAfter (ms)."""
    found = dict(entry.approvals)
    approvals = p.object_list(ctx.payload, "approvals", max_items=MAX_APPROVALS)
    for i, item in enumerate(approvals):
        claimed = p.address(item, "signer")
        not_after = p.integer(item, "not_after_ms", maximum=2**64 - 1)
        signature = p.hex_bytes(item, "signature", 65)
        if not_after * NS_PER_MS < ctx.timestamp_ns:
            raise ApprovalExpired(f"approvals[{i}]: by {claimed}, expired at {not_after} ms")
        approval = Approval(ctx.network_id, request_id, entry.patient, entry.requester, not_after)
        try:
            signer = approval.signer(signature)
        except InvalidSignature as exc:
            raise BadApproval(f"approvals[{i}]: {exc}") from None
        if signer != claimed:
            raise BadApproval(
                f"approvals[{i}]: not {claimed}'s approval of this request (signed by {signer})"
            )
        found[signer] = max(found.get(signer, 0), not_after)
    return found


def approve(ctx: TxContext, view: StateView) -> list[Write]:
    request_key = "0x" + p.hex_bytes(ctx.payload, "request", 32).hex()
    entry = open_request(view, request_key)
    if entry.lapsed(ctx.timestamp_ns):
        raise UnknownRequest(f"request {request_key} lapsed before it was approved")
    approvals = _approvals(ctx, bytes.fromhex(request_key[2:]), entry)
    # An approval counts only while it is unexpired: one given long ago and left to
    # lapse does not help form a grant now.
    live = {a: ms for a, ms in approvals.items() if ms * NS_PER_MS >= ctx.timestamp_ns}
    resolved = [signer_of(view, address) for address in sorted(live)]
    updated = dataclasses.replace(entry, approvals=approvals, signers=tuple(sorted(approvals)))
    emergency = entry.emergency
    waiting = []
    for category in entry.categories:
        if emergency:
            policy = glass.emergency_rule(entry.requester)
        else:
            policy, _ = current_policy(view, entry.patient, category)
        try:
            policy.check_approvals(entry.patient, resolved)
        except PolicyNotSatisfied as exc:
            waiting.append(f"{category}: {exc}")
    if waiting:
        return [Write(REQUEST_NS, request_key, updated.to_state())]
    if signer_of(view, entry.requester).role is None:
        raise HolderWithoutStanding(
            f"{entry.requester} is no longer registered at a member institution"
        )
    versions = {} if emergency else check_terms(view, entry, ctx.timestamp_ns)
    grant = Grant(
        request_key, entry.requester, entry.patient, entry.categories, entry.records,
        entry.purpose, tuple(sorted(live)), ctx.timestamp_ns,
        ctx.timestamp_ns + entry.duration_s * NS_PER_S, emergency, live, versions, ctx.index,
    )  # fmt: skip
    patient, holder = entry.patient, entry.requester
    held = list(view.get(care.HELD_NS, care.held_key(patient, holder)) or [])
    granted = dataclasses.replace(updated, status="granted")
    writes = [
        Write(REQUEST_NS, request_key, granted.to_state()),
        Write(GRANT_NS, request_key, grant.to_state()),
        *closed(view, entry, ctx.timestamp_ns),
        Write(care.HELD_NS, care.held_key(patient, holder), [*held, request_key][-care.MAX_HELD :]),
    ]
    if emergency:
        writes.append(glass.await_review(view, request_key))
        notice = {"grant": request_key, **grant.to_state()}
        writes += append(view, NOTICE_NS, NOTICE_COUNT_NS, patient, notice)
    return writes


def revoke(ctx: TxContext, view: StateView) -> list[Write]:
    grant_key = "0x" + p.hex_bytes(ctx.payload, "grant", 32).hex()
    grant = grant_of(view, grant_key)
    if grant is None:
        raise NoGrant(f"no grant {grant_key}")
    require_patient_or_guardian(view, grant.patient, ctx.sender)
    grant.require_unended(ctx.timestamp_ns)
    ended = dataclasses.replace(grant, revoked_index=ctx.index)
    return [Write(GRANT_NS, grant_key, ended.to_state())]
