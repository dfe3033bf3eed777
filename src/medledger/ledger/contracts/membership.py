"""Consortium membership: genesis, and admitting or removing members by k-of-n votes.

Members are institutions. Each has a signing address (its ledger key) and a
custodian encryption key (X25519). Genesis names the founders, the vote threshold
k for membership changes, the checkpoint threshold for cosigned tree heads, and
the custodian threshold: how many custodian shares it takes to rebuild a key that
domain contracts split across the members (a majority unless genesis says otherwise).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.errors import Conflict, DoubleVote, InvalidPayload, Unauthorized
from medledger.ledger.machine import CONFIG_KEY, NETWORK_NS
from medledger.ledger.timestamps import NS_PER_S

GENESIS = "membership.genesis"
PROPOSE = "membership.propose"
VOTE = "membership.vote"

MEMBER_NS = "member"
PROPOSAL_NS = "proposal"
MEMBERS_KEY = "members"
DEFAULT_PROPOSAL_TTL_S = 7 * 24 * 3600


def network_config(view: StateView) -> Mapping[str, Any]:
    config = view.get(NETWORK_NS, CONFIG_KEY)
    if config is None:
        raise Unauthorized("the network has no genesis yet")
    return config  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Member:
    """A member institution as the state holds it."""

    id: str
    name: str
    address: Address
    custodian_key: str
    active: bool
    since: int
    #: Every stretch of log entries it was a member, ``[since, until)`` (until None: now).
    spans: tuple[tuple[int, int | None], ...]

    @classmethod
    def from_state(cls, entry: Mapping[str, Any]) -> Member:
        spans = tuple((int(a), None if b is None else int(b)) for a, b in entry["spans"])
        return cls(entry["id"], entry["name"], Address(entry["address"]), entry["custodian_key"],
                   entry["status"] == "active", int(entry["since"]), spans)  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "address": self.address,
                "custodian_key": self.custodian_key,
                "status": "active" if self.active else "removed", "since": self.since,
                "spans": [list(span) for span in self.spans]}  # fmt: skip

    def member_at(self, index: int) -> bool:
        """Whether it was a member when log entry ``index`` was ordered."""
        return any(a <= index and (b is None or index < b) for a, b in self.spans)


def proposal_status(view: StateView, proposal_id: str) -> tuple[str, int] | None:
    """A membership proposal's status (open, executed) and its votes so far, if any."""
    proposal = view.get(PROPOSAL_NS, proposal_id)
    return None if proposal is None else (str(proposal["status"]), len(proposal["votes"]))


def member_of(view: StateView, address: Address) -> Member | None:
    """A member institution, current or past, by its ledger address."""
    entry = view.get(MEMBER_NS, address)
    return None if entry is None else Member.from_state(entry)


def member_list(view: StateView) -> list[Member]:
    """The current members, by address."""
    members = []
    for address in active_members(view):
        member = member_of(view, address)
        assert member is not None, f"member {address} is listed but has no entry"
        members.append(member)
    return members


def active_members(view: StateView) -> list[Address]:
    return list(view.get(NETWORK_NS, MEMBERS_KEY) or [])


def member_at(view: StateView, address: Address, index: int) -> bool:
    """Whether ``address`` was a member when log entry ``index`` was ordered."""
    member = member_of(view, address)
    return member is not None and member.member_at(index)


def is_member(view: StateView, address: Address) -> bool:
    """Whether ``address`` is a member now: admitted and not voted out since."""
    member = member_of(view, address)
    return member is not None and member.active


def require_member(view: StateView, sender: Address) -> None:
    if not is_member(view, sender):
        raise Unauthorized(f"{sender} is not a member of the consortium")


def _member_record(entry: Mapping[str, Any], since: int) -> Member:
    return Member(
        p.identifier(entry, "id"), p.text(entry, "name"), p.address(entry, "address"),
        "0x" + p.hex_bytes(entry, "custodian_key", 32).hex(), True, since, ((since, None),),
    )  # fmt: skip


def _check_unique(records: list[Member], view: StateView) -> None:
    ids = {r.id for r in records}
    addresses = {r.address for r in records}
    if len(ids) != len(records) or len(addresses) != len(records):
        raise InvalidPayload("members: duplicate id or address")
    for member in active_members(view):
        existing = member_of(view, member)
        if existing is not None and existing.id in ids:
            raise Conflict(f"member id {existing.id!r} is taken")


def genesis(ctx: TxContext, view: StateView) -> list[Write]:
    if view.get(NETWORK_NS, CONFIG_KEY) is not None:
        raise Conflict("the network already has its genesis")
    members = [_member_record(m, ctx.index) for m in p.object_list(ctx.payload, "members")]
    _check_unique(members, view)
    if ctx.sender not in {m.address for m in members}:
        raise Unauthorized(f"genesis sender {ctx.sender} is not one of the founding members")
    count = len(members)
    vote_threshold = p.integer(ctx.payload, "vote_threshold", minimum=1, maximum=count)
    checkpoint_threshold = p.integer(ctx.payload, "checkpoint_threshold", minimum=1, maximum=count)
    custodian_threshold = (
        p.integer(ctx.payload, "custodian_threshold", minimum=1, maximum=count)
        if "custodian_threshold" in ctx.payload
        else count // 2 + 1
    )
    protocol = p.field(ctx.payload, "protocol")
    if not isinstance(protocol, dict) or set(protocol) != {"version", "types"}:
        raise InvalidPayload("protocol: expected {version, types}")
    settings = ctx.payload.get("settings", {})
    if not isinstance(settings, dict) or len(settings) > 64:
        raise InvalidPayload("settings: expected an object of at most 64 named values")
    p.string_list({"settings": list(settings)}, "settings")
    config = {
        "name": p.text(ctx.payload, "name"),
        # What domain contracts read from genesis (ledger/genesis.py); they check it.
        "settings": settings,
        "protocol": {"version": p.text(protocol, "version", max_length=64),
                     "types": "0x" + p.hex_bytes(protocol, "types", 32).hex()},
        "vote_threshold": vote_threshold,
        "checkpoint_threshold": checkpoint_threshold,
        "custodian_threshold": custodian_threshold,
        "roles": p.string_list(ctx.payload, "roles"),
        "proposal_ttl_s": ctx.payload.get("proposal_ttl_s", DEFAULT_PROPOSAL_TTL_S),
        "genesis": "0x" + ctx.tx_id.hex(),
    }
    p.integer(config, "proposal_ttl_s", minimum=60)
    writes = [Write(NETWORK_NS, CONFIG_KEY, config)]
    writes += [Write(MEMBER_NS, m.address, m.to_state()) for m in members]
    writes.append(Write(NETWORK_NS, MEMBERS_KEY, sorted(m.address for m in members)))
    return writes


def propose(ctx: TxContext, view: StateView) -> list[Write]:
    """Open a proposal to admit or remove a member; the proposer's vote counts."""
    require_member(view, ctx.sender)
    config = network_config(view)
    action = p.text(ctx.payload, "action")
    if action == "admit":
        entry = p.field(ctx.payload, "member")
        if not isinstance(entry, dict):
            raise InvalidPayload("member: expected an object")
        admitted = _member_record(entry, ctx.index)
        _check_unique([admitted], view)
        if is_member(view, admitted.address):
            raise Conflict(f"{admitted.address} is already a member")
        subject = admitted.to_state()
    elif action == "remove":
        address = p.address(ctx.payload, "address")
        require_member(view, address)
        remaining = len(active_members(view)) - 1
        needed = max(config["vote_threshold"], config["checkpoint_threshold"])
        if remaining < needed:
            raise Conflict(
                f"removing {address} would leave {remaining} members, fewer than {needed}"
            )
        subject = {"address": address}
    else:
        raise InvalidPayload(f"action: expected 'admit' or 'remove', got {action!r}")
    proposal = {
        "action": action,
        "subject": subject,
        "proposer": ctx.sender,
        "votes": [ctx.sender],
        "status": "open",
        "expires_ns": ctx.timestamp_ns + config["proposal_ttl_s"] * NS_PER_S,
    }
    return _maybe_execute("0x" + ctx.tx_id.hex(), proposal, config, view, ctx)


def vote(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    config = network_config(view)
    proposal_id = p.text(ctx.payload, "proposal", max_length=66)
    proposal = view.get(PROPOSAL_NS, proposal_id)
    if proposal is None:
        raise InvalidPayload(f"proposal: no proposal {proposal_id}")
    if proposal["status"] != "open":
        raise Conflict(f"proposal {proposal_id} is {proposal['status']}")
    if ctx.timestamp_ns > proposal["expires_ns"]:
        raise Conflict(f"proposal {proposal_id} expired")
    if ctx.sender in proposal["votes"]:
        raise DoubleVote(f"{ctx.sender} already voted on proposal {proposal_id}")
    proposal = {**proposal, "votes": [*proposal["votes"], ctx.sender]}
    return _maybe_execute(proposal_id, proposal, config, view, ctx)


def _maybe_execute(
    proposal_id: str,
    proposal: dict[str, Any],
    config: Mapping[str, Any],
    view: StateView,
    ctx: TxContext,
) -> list[Write]:
    members = active_members(view)
    # Votes of members removed since they voted no longer count.
    valid_votes = [v for v in proposal["votes"] if v in members]
    if len(valid_votes) < config["vote_threshold"]:
        return [Write(PROPOSAL_NS, proposal_id, proposal)]
    subject = proposal["subject"]
    address = subject["address"]
    writes = [Write(PROPOSAL_NS, proposal_id, {**proposal, "status": "executed"})]
    if proposal["action"] == "admit":
        before = member_of(view, address)
        spans = () if before is None else before.spans
        admitted = dataclasses.replace(Member.from_state(subject), since=ctx.index,
                                       spans=(*spans, (ctx.index, None)))  # fmt: skip
        writes.append(Write(MEMBER_NS, address, admitted.to_state()))
        writes.append(Write(NETWORK_NS, MEMBERS_KEY, sorted({*members, address})))
    else:
        require_member(view, address)
        member = member_of(view, address)
        assert member is not None
        *held, (since, _) = member.spans
        removed = dataclasses.replace(member, active=False, spans=(*held, (since, ctx.index)))
        writes.append(Write(MEMBER_NS, address, removed.to_state()))
        writes.append(Write(NETWORK_NS, MEMBERS_KEY, [m for m in members if m != address]))
    return writes


HANDLERS: dict[str, Handler] = {GENESIS: genesis, PROPOSE: propose, VOTE: vote}
