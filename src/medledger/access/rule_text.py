"""A one-line form of approver rules, for people typing at a shell.

    patient                              the patient alone
    2 of patient, doctor, nurse          any two of the three
    all of patient, 0xAbC…               both
    any of doctor@0xInstitution, nurse   a doctor at that institution, or any nurse

A leaf is ``patient``, an address (that person), or a role name, optionally
``@institution-address``. One level of k-of-n only: nested rules are written in the
JSON form (:func:`medledger.access.rules.parse_rule`), and :func:`rule_to_text`
says so by refusing to flatten them.
"""

from __future__ import annotations

import re

from medledger.access.errors import InvalidPolicy
from medledger.access.rules import KOf, Patient, Person, Role, Rule, check_rule
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput

_HEAD = re.compile(r"^\s*(?:(\d+)|(all)|(any))\s+of\s+(.+)$", re.IGNORECASE)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_rule_text(text: str) -> Rule:
    """Read the one-line form; :class:`InvalidPolicy` says which part is wrong."""
    head = _HEAD.match(text)
    if head is None:
        return check_rule(_leaf(text.strip()), "approvers")
    count, every, _ = head.group(1, 2, 3)
    leaves = tuple(_leaf(part.strip()) for part in head.group(4).split(","))
    k = len(leaves) if every else 1 if count is None else int(count)
    if not 1 <= k <= len(leaves):
        raise InvalidPolicy(f"approvers: {k} of {len(leaves)} cannot be met")
    return check_rule(KOf(k, leaves), "approvers")


def rule_to_text(rule: Rule) -> str:
    """The one-line form of a rule, if it has one; :class:`InvalidPolicy` if nested."""
    if not isinstance(rule, KOf):
        return _leaf_text(rule)
    if any(isinstance(child, KOf) for child in rule.of):
        raise InvalidPolicy("approvers: a nested rule has only the JSON form")
    k = "all" if rule.k == len(rule.of) > 1 else "any" if rule.k == 1 else str(rule.k)
    return f"{k} of " + ", ".join(_leaf_text(child) for child in rule.of)


def _leaf(part: str) -> Rule:
    if not part:
        raise InvalidPolicy("approvers: an empty name in the list")
    if part.lower() == "patient":
        return Patient()
    if _ADDRESS.fullmatch(part):
        return Person(_address(part))
    role, at, institution = part.partition("@")
    if not at:
        return Role(role)
    if not _ADDRESS.fullmatch(institution):
        raise InvalidPolicy(f"approvers: {part!r}: an institution is named by its address")
    return Role(role, _address(institution))


def _address(text: str) -> Address:
    try:
        return to_checksum_address(text)
    except InvalidInput as exc:
        raise InvalidPolicy(f"approvers: {exc}") from None


def _leaf_text(rule: Rule) -> str:
    if isinstance(rule, Patient):
        return "patient"
    if isinstance(rule, Person):
        return rule.address
    if isinstance(rule, Role):
        return rule.role if rule.institution is None else f"{rule.role}@{rule.institution}"
    raise InvalidPolicy("approvers: a nested rule has only the JSON form")
