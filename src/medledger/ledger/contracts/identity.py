"""Who acts on the ledger besides members: participants with a role, and subjects.

A member institution registers its staff as participants with one of the roles
genesis allows (the ledger does not know what the roles mean), optionally under a
display name, and lists everyone it ever registered, so that its staff can be shown
without scanning the state. Subjects register
themselves under a pseudonymous key and publish an X25519 encryption key; the
ledger stores nothing else about them.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import Handler, StateView, TxContext, Write
from medledger.ledger.contracts.membership import (
    MEMBER_NS,
    is_member,
    member_at,
    network_config,
    require_member,
)
from medledger.ledger.errors import Conflict, InvalidPayload, Unauthorized

REGISTER_PARTICIPANT = "identity.register_participant"
REVOKE_PARTICIPANT = "identity.revoke_participant"
REGISTER_SUBJECT = "identity.register_subject"

PARTICIPANT_NS = "participant"
SUBJECT_NS = "subject"
#: ``institution/n`` -> the n-th address the institution registered; the count under
#: ``institution``.
STAFF_NS = "staff"
STAFF_COUNT_NS = "staff_count"
MAX_NAME = 80


def staff_key(institution: Address, n: int) -> str:
    return f"{institution}/{n}"


@dataclass(frozen=True)
class Span:
    """A role held at an institution, from log entry ``since`` until ``until`` (None: now)."""

    role: str
    institution: Address
    since: int
    until: int | None

    def covers(self, index: int) -> bool:
        return self.since <= index and (self.until is None or index < self.until)


@dataclass(frozen=True)
class Participant:
    """A registered person as the state holds them: who registered them, in which role,
    under what name, whether they still hold it, and every role they held before."""

    address: Address
    role: str
    institution: Address
    name: str | None
    active: bool
    since: int
    #: Every role held, so that what someone did can be judged as of when they did it.
    spans: tuple[Span, ...]
    #: Where the log ended the current registration, once it did.
    until: int | None = None

    @classmethod
    def from_state(cls, address: Address, entry: Mapping[str, Any]) -> Participant:
        spans = tuple(Span(str(s["role"]), Address(s["institution"]), int(s["since"]),
                           None if s["until"] is None else int(s["until"]))
                      for s in entry["spans"])  # fmt: skip
        until = entry.get("until")
        return cls(address, str(entry["role"]), Address(entry["institution"]), entry["name"],
                   entry["status"] == "active", int(entry["since"]), spans,
                   None if until is None else int(until))  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "role": self.role, "institution": self.institution,
            "status": "active" if self.active else "revoked", "since": self.since,
            "spans": [dataclasses.asdict(span) for span in self.spans], "name": self.name,
        }  # fmt: skip
        if self.until is not None:
            state["until"] = self.until
        return state

    def ended(self, index: int) -> tuple[Span, ...]:
        """Its spans with the current one ended at ``index``."""
        if self.spans and self.spans[-1].until is None:
            return (*self.spans[:-1], dataclasses.replace(self.spans[-1], until=index))
        return self.spans


def participant_of(view: StateView, address: Address) -> Participant | None:
    entry = view.get(PARTICIPANT_NS, address)
    return None if entry is None else Participant.from_state(address, entry)


def staff_of(view: StateView, institution: Address) -> list[Participant]:
    """Everyone ``institution`` ever registered, in the order it did; a person who moved
    to another institution since is listed as they stand now."""
    count = int(view.get(STAFF_COUNT_NS, institution) or 0)
    staff = []
    for n in range(count):
        address = Address(str(view.get(STAFF_NS, staff_key(institution, n))))
        participant = participant_of(view, address)
        assert participant is not None, f"{institution}'s staff entry {n} is counted but missing"
        staff.append(participant)
    return staff


@dataclass(frozen=True)
class Subject:
    """A data subject (a patient) under their pseudonymous key: the X25519 key their
    records are sealed to, and when they registered."""

    address: Address
    encryption_key: bytes
    since: int

    @classmethod
    def from_state(cls, address: Address, entry: Mapping[str, Any]) -> Subject:
        return cls(address, bytes.fromhex(str(entry["encryption_key"])[2:]), int(entry["since"]))

    def to_state(self) -> dict[str, Any]:
        return {"encryption_key": "0x" + self.encryption_key.hex(), "since": self.since}


def subject_of(view: StateView, address: Address) -> Subject | None:
    entry = view.get(SUBJECT_NS, address)
    return None if entry is None else Subject.from_state(address, entry)


def is_subject(view: StateView, address: Address) -> bool:
    """Whether ``address`` registered as a data subject (a patient)."""
    return view.get(SUBJECT_NS, address) is not None


def standing_participant(view: StateView, address: Address) -> Participant | None:
    """The participant an address is now, if it holds its role at a current member."""
    participant = participant_of(view, address)
    if participant is None or not participant.active:
        return None
    return participant if is_member(view, participant.institution) else None


def participant_role(view: StateView, address: Address) -> str | None:
    """The role an address holds now, or None if it holds none."""
    participant = standing_participant(view, address)
    return None if participant is None else participant.role


def participant_institution(view: StateView, address: Address) -> Address | None:
    """The member institution an active participant acts for, or None."""
    participant = standing_participant(view, address)
    return None if participant is None else participant.institution


def participant_at(view: StateView, address: Address, index: int) -> tuple[str, Address] | None:
    """The role and institution an address held at log entry ``index``, if it held one
    at a member institution then."""
    participant = participant_of(view, address)
    if participant is None:
        return None
    for span in participant.spans:
        if span.covers(index) and member_at(view, span.institution, index):
            return span.role, span.institution
    return None


def _taken(view: StateView, address: Address) -> bool:
    return any(view.get(ns, address) is not None for ns in (MEMBER_NS, SUBJECT_NS))


def register_participant(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    address = p.address(ctx.payload, "address")
    role = p.identifier(ctx.payload, "role")
    if role not in network_config(view)["roles"]:
        raise InvalidPayload(f"role: {role!r} is not a role of this network")
    if _taken(view, address):
        raise Conflict(f"{address} is already registered as a member or subject")
    existing = participant_of(view, address)
    if existing is not None and existing.active and existing.institution != ctx.sender:
        raise Conflict(f"{address} is registered by another institution")
    earlier = () if existing is None else existing.ended(ctx.index)
    record = Participant(
        address, role, ctx.sender, _display_name(ctx.payload) if "name" in ctx.payload else None,
        True, ctx.index, (*earlier, Span(role, ctx.sender, ctx.index, None)),
    )  # fmt: skip
    writes = [Write(PARTICIPANT_NS, address, record.to_state())]
    if not any(span.institution == ctx.sender for span in earlier):
        count = int(view.get(STAFF_COUNT_NS, ctx.sender) or 0)
        writes += [Write(STAFF_NS, staff_key(ctx.sender, count), address),
                   Write(STAFF_COUNT_NS, ctx.sender, count + 1)]  # fmt: skip
    return writes


def _display_name(payload: Mapping[str, Any]) -> str:
    """A name people read: no control or format characters (terminal escapes, bidi
    overrides) that would make it show as something else."""
    name = p.text(payload, "name", max_length=MAX_NAME)
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise InvalidPayload("name: control or format characters are not allowed")
    return name


def revoke_participant(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    address = p.address(ctx.payload, "address")
    existing = participant_of(view, address)
    if existing is None or not existing.active:
        raise Conflict(f"{address} is not an active participant")
    if existing.institution != ctx.sender:
        raise Unauthorized(f"{address} was registered by another institution")
    ended = dataclasses.replace(existing, active=False, until=ctx.index,
                                spans=existing.ended(ctx.index))  # fmt: skip
    return [Write(PARTICIPANT_NS, address, ended.to_state())]


def register_subject(ctx: TxContext, view: StateView) -> list[Write]:
    network_config(view)
    encryption_key = p.hex_bytes(ctx.payload, "encryption_key", 32)
    if _taken(view, ctx.sender) or view.get(PARTICIPANT_NS, ctx.sender) is not None:
        raise Conflict(f"{ctx.sender} is already registered")
    record = Subject(ctx.sender, encryption_key, ctx.index)
    return [Write(SUBJECT_NS, ctx.sender, record.to_state())]


HANDLERS: dict[str, Handler] = {
    REGISTER_PARTICIPANT: register_participant,
    REVOKE_PARTICIPANT: revoke_participant,
    REGISTER_SUBJECT: register_subject,
}
