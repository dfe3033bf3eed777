"""Approver rules: who must approve, as k-of-n over people, the patient and roles.

A rule is a tree of leaves (a named person, the patient, any holder of a role,
optionally at one institution) under k-of-n nodes (``all`` is n of n, ``any`` is 1
of n). This is the pure model, with no I/O and no clock: ledger handlers resolve
approvers from state into :class:`Signer` values.

How a rule is evaluated:
* A signer is its address: given twice it counts once (given twice with different
  roles, it is a caller bug). It can fill a Person leaf with its address, the Patient
  leaf if it is the patient, a Role leaf if it holds the role (at the leaf's
  institution, when the leaf names one).
* A KOf node holds when at least k of its children hold. The rule is satisfied when
  an assignment of signers to leaves that is injective over the whole tree makes the
  root hold: a doctor also named in a Person leaf is one approval, never two.
* Finding it is NP-hard in general (any-of-all-of named people encodes set packing),
  so :func:`evaluate` searches exactly, backtracking over the leaves, named ones first.
  At each leaf it tries one signer per class of interchangeable signers (those able to
  fill the same leaves), then leaving the leaf empty. A branch is cut when the root
  cannot hold even if open leaves got free signers, a k-of node counting no more new
  children than it has distinct free signers. The search stops when the root holds,
  then fills the open leaves greedily, so signers left over count where they fit.
* Signers are sorted by address first: the same set gives the same assignment.
* Rules are bounded (:data:`MAX_DEPTH`, :data:`MAX_LEAVES`) and so is the search
  (:data:`MAX_SEARCH_STEPS`): a rule crafted to be slow to decide is refused with
  :class:`InvalidPolicy` rather than stalling every node that executes it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from medledger.access.errors import InvalidPolicy
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput, UsageError

__all__ = [
    "MAX_DEPTH", "MAX_LEAVES", "MAX_SEARCH_STEPS", "KOf", "Patient", "Person", "Role",
    "Rule", "RuleResult", "Signer", "check_rule", "could_fill", "evaluate", "parse_rule",
    "rule_to_json",
    "show_value",
]  # fmt: skip

MAX_DEPTH = 8  # k-of nodes nested in one another
MAX_LEAVES = 64
MAX_SEARCH_STEPS = 10_000  # about half a second of CPU; rules people write take tens

_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_KINDS = ("person", "patient", "role", "all", "any", "k_of")


@dataclass(frozen=True)
class Person:
    """A named person."""

    address: Address


@dataclass(frozen=True)
class Patient:
    """The data subject, whoever the policy is evaluated for."""


@dataclass(frozen=True)
class Role:
    """Anyone holding ``role``; only at ``institution`` when it is set."""

    role: str
    institution: Address | None = None


@dataclass(frozen=True)
class KOf:
    """At least ``k`` of the children, each filled by signers of its own."""

    k: int
    of: tuple[Rule, ...]


Leaf: TypeAlias = Person | Patient | Role
Rule: TypeAlias = Person | Patient | Role | KOf
#: Child indexes from the root to a node: ``(1, 0)`` is ``rule.of[1].of[0]``.
Path: TypeAlias = tuple[int, ...]


@dataclass(frozen=True)
class Signer:
    """A verified approver, as the caller resolved them from ledger state at approval time."""

    address: Address
    role: str | None = None
    institution: Address | None = None


@dataclass(frozen=True)
class RuleResult:
    """Which signer counted for which leaf, who counted for nothing, and what is missing."""

    satisfied: bool
    #: The leaf (by :data:`Path`; ``()`` when the rule is one leaf) -> the signer counted for it.
    assignment: dict[Path, Address]
    unused: tuple[Address, ...]
    missing: str
    #: Top-level parts that hold (at most ``required``), and how many must.
    approved: int
    required: int

    def describe(self) -> str:
        text = f"approved by {self.approved} of {self.required} required"
        if self.missing:
            text += f": missing {self.missing}"
        if self.unused:
            text += "; not counted: " + ", ".join(self.unused)
        return text


def parse_rule(obj: object, path: str = "rule") -> Rule:
    """Read the JSON form of a rule; :class:`InvalidPolicy` names the JSON path at fault."""
    return _Parser().rule(obj, path, 0)


def rule_to_json(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, Person):
        return {"person": rule.address}
    if isinstance(rule, Patient):
        return {"patient": True}
    if isinstance(rule, Role):
        if rule.institution is None:
            return {"role": rule.role}
        return {"role": rule.role, "institution": rule.institution}
    children = [rule_to_json(child) for child in rule.of]
    if rule.k == len(children):
        return {"all": children}
    return {"any": children} if rule.k == 1 else {"k_of": rule.k, "of": children}


def could_fill(rule: Rule, signer: Signer, patient: Address) -> bool:
    """Whether ``signer`` could count for some leaf of ``rule``: someone a request under
    it may be shown to, since their approval may be asked for."""
    return any(_fills(leaf, signer, patient) for _, leaf in _leaves(rule, ()))


def evaluate(rule: Rule, patient: Address, signers: Sequence[Signer]) -> RuleResult:
    """Find distinct signers that satisfy ``rule`` (semantics in the module docstring)."""
    rule = check_rule(rule, "rule")
    distinct = _distinct(signers)
    search = _Search(rule, patient, distinct)
    satisfied = search.run()
    assigned = search.assignment
    counted = set(assigned.values())
    if isinstance(rule, KOf):
        required = rule.k
        approved = sum(_holds(child, (i,), assigned) for i, child in enumerate(rule.of))
    else:
        required, approved = 1, int(() in assigned)
    return RuleResult(
        satisfied=satisfied,
        assignment=dict(sorted(assigned.items())),
        unused=tuple(s.address for s in distinct if s.address not in counted),
        missing="" if satisfied else _lacking(rule, (), assigned),
        approved=min(approved, required),
        required=required,
    )


class _Parser:
    def __init__(self) -> None:
        self.leaves = 0

    def rule(self, obj: object, path: str, depth: int) -> Rule:
        if not isinstance(obj, dict):
            raise InvalidPolicy(f"{path}: expected an object, got {type(obj).__name__}")
        kinds = [kind for kind in _KINDS if kind in obj]
        if len(kinds) != 1:
            got = ", ".join(kinds) or "none"
            raise InvalidPolicy(f"{path}: expected exactly one of {', '.join(_KINDS)}, got {got}")
        kind = kinds[0]
        allowed = {"role": ("role", "institution"), "k_of": ("k_of", "of")}.get(kind, (kind,))
        for key in obj:
            if key not in allowed:
                raise InvalidPolicy(f"{path}.{key}: unknown key")
        if kind in ("all", "any", "k_of"):
            return self.k_of(obj, kind, path, depth)
        self.leaves += 1
        if self.leaves > MAX_LEAVES:
            raise InvalidPolicy(f"{path}: more than {MAX_LEAVES} leaves")
        if kind == "person":
            return Person(_address(obj["person"], f"{path}.person"))
        if kind == "patient":
            if obj["patient"] is not True:
                raise InvalidPolicy(
                    f"{path}.patient: expected true, got {show_value(obj['patient'])}"
                )
            return Patient()
        role = obj["role"]
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise InvalidPolicy(f"{path}.role: {show_value(role)} is not a lowercase identifier")
        if "institution" not in obj:
            return Role(role)
        return Role(role, _address(obj["institution"], f"{path}.institution"))

    def k_of(self, obj: dict[Any, Any], kind: str, path: str, depth: int) -> KOf:
        key = "of" if kind == "k_of" else kind
        items = obj.get(key)
        if not isinstance(items, list) or not items:
            raise InvalidPolicy(f"{path}.{key}: expected a non-empty list")
        if depth >= MAX_DEPTH:
            raise InvalidPolicy(f"{path}: more than {MAX_DEPTH} nested all/any/k_of")
        of = tuple(self.rule(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(items))
        k = obj["k_of"] if kind == "k_of" else len(of) if kind == "all" else 1
        if type(k) is not int or not 1 <= k <= len(of):
            raise InvalidPolicy(
                f"{path}.k_of: expected an integer in [1, {len(of)}], got {show_value(k)}"
            )
        return KOf(k, of)


class _Search:
    """The exact assignment search described in the module docstring.

    Sets of signers are bit masks over their sorted positions: the bound is computed
    at every step, so it must be cheap.
    """

    def __init__(self, rule: Rule, patient: Address, signers: Sequence[Signer]) -> None:
        leaves = dict(_leaves(rule, ()))
        able = {
            p: [s.address for s in signers if _fills(leaf, s, patient)]
            for p, leaf in leaves.items()
        }
        self.kind = {
            s.address: frozenset(p for p, who in able.items() if s.address in who) for s in signers
        }
        # A class of interchangeable signers never needs more members than it has leaves.
        members: dict[frozenset[Path], list[Address]] = {}
        for address, kind in self.kind.items():
            members.setdefault(kind, []).append(address)
        kept = {a for kind, group in members.items() for a in group[: len(kind)]}
        self.rule = rule
        self.bit = {s.address: 1 << i for i, s in enumerate(signers)}
        self.eligible = {p: [a for a in who if a in kept] for p, who in able.items()}
        self.mask = {p: sum(self.bit[a] for a in who) for p, who in self.eligible.items()}
        # Named leaves have one candidate each: deciding them first fails fast and
        # keeps role leaves from taking someone a Person leaf needs.
        self.order = sorted(leaves, key=lambda p: isinstance(leaves[p], Role))
        self.open = set(leaves)
        self.assignment: dict[Path, Address] = {}
        self.used = 0
        self.steps = 0

    def run(self) -> bool:
        found = self._search(0)
        for path in self.order:
            free = [a for a in self.eligible[path] if not self.used & self.bit[a]]
            if path not in self.assignment and free:
                self._assign(path, free[0])
        return found

    def _assign(self, path: Path, address: Address) -> None:
        self.assignment[path] = address
        self.used |= self.bit[address]

    def _search(self, position: int) -> bool:
        self.steps += 1
        if self.steps > MAX_SEARCH_STEPS:
            raise InvalidPolicy(f"approvers: undecided after {MAX_SEARCH_STEPS} search steps")
        holds, could, _ = self._state(self.rule, ())
        if holds or not could:
            return holds
        path = self.order[position]
        self.open.discard(path)
        tried: set[frozenset[Path]] = set()
        for address in self.eligible[path]:
            if self.used & self.bit[address] or self.kind[address] in tried:
                continue
            tried.add(self.kind[address])
            self._assign(path, address)
            if self._search(position + 1):
                return True
            del self.assignment[path]
            self.used &= ~self.bit[address]
        if self._search(position + 1):
            return True
        self.open.add(path)
        return False

    def _state(self, rule: Rule, path: Path) -> tuple[bool, bool, int]:
        """Whether ``rule`` holds now, could still hold, and the free signers it could use."""
        if not isinstance(rule, KOf):
            if path in self.assignment:
                return True, True, 0
            free = self.mask[path] & ~self.used if path in self.open else 0
            return False, free != 0, free
        have, hopeful, supply = 0, 0, 0
        for i, child in enumerate(rule.of):
            holds, could, free = self._state(child, (*path, i))
            if holds:
                have += 1
            elif could:
                hopeful += 1
                supply |= free
        if have >= rule.k:
            return True, True, 0
        # Each child still to be made to hold needs at least one new signer of its own.
        return False, have + min(hopeful, supply.bit_count()) >= rule.k, supply


def check_rule(rule: Rule, path: str) -> Rule:
    # One validator for both doors: a rule built in code goes through the JSON parser.
    return _Parser().rule(rule_to_json(rule), path, 0)


def _distinct(signers: Sequence[Signer]) -> list[Signer]:
    by_address: dict[Address, Signer] = {}
    for signer in signers:
        if by_address.setdefault(signer.address, signer) != signer:
            raise UsageError(f"signer {signer.address} given twice with different roles")
    return sorted(by_address.values(), key=lambda s: s.address)


def _fills(leaf: Leaf, signer: Signer, patient: Address) -> bool:
    if isinstance(leaf, Person):
        return signer.address == leaf.address
    if isinstance(leaf, Patient):
        return signer.address == patient
    return signer.role == leaf.role and leaf.institution in (None, signer.institution)


def _leaves(rule: Rule, path: Path) -> Iterator[tuple[Path, Leaf]]:
    if isinstance(rule, KOf):
        for i, child in enumerate(rule.of):
            yield from _leaves(child, (*path, i))
    else:
        yield path, rule


def _holds(rule: Rule, path: Path, assigned: Collection[Path]) -> bool:
    if not isinstance(rule, KOf):
        return path in assigned
    return sum(_holds(c, (*path, i), assigned) for i, c in enumerate(rule.of)) >= rule.k


def _lacking(rule: Rule, path: Path, assigned: Collection[Path]) -> str:
    """What ``rule`` still needs, given the leaves ``assigned``."""
    if not isinstance(rule, KOf):
        return _label(rule)
    gaps = [
        _lacking(child, (*path, i), assigned)
        for i, child in enumerate(rule.of)
        if not _holds(child, (*path, i), assigned)
    ]
    have = len(rule.of) - len(gaps)
    need = rule.k - have
    if need == 1 and len(gaps) == 1:
        return gaps[0]
    items = ", ".join(f"({gap})" if ":" in gap else gap for gap in gaps)
    if need == len(gaps):
        return f"all of: {items}"
    return f"{need} {'more ' if have else ''}of: {items}"


def _label(leaf: Leaf) -> str:
    if isinstance(leaf, Person):
        return f"person {leaf.address}"
    if isinstance(leaf, Patient):
        return "patient"
    return f"role {leaf.role}" + (f" at {leaf.institution}" if leaf.institution else "")


def _address(value: object, path: str) -> Address:
    if not isinstance(value, str):
        raise InvalidPolicy(f"{path}: expected an address, got {type(value).__name__}")
    try:
        return to_checksum_address(value)
    except InvalidInput as exc:
        raise InvalidPolicy(f"{path}: {exc}") from exc


def show_value(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"
