"""Access policies: approver rules as attack tables, exactness against brute force,
parsing that names the JSON path, and request terms (purpose, duration, CEL)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.access import rules as rules_module
from medledger.access.errors import (
    ConditionFailed,
    DurationTooLong,
    InvalidPolicy,
    PolicyNotSatisfied,
    PurposeNotAllowed,
)
from medledger.access.policy import MAX_DURATION_S, PURPOSES, Policy, default_policy
from medledger.access.rules import (
    MAX_DEPTH,
    MAX_LEAVES,
    KOf,
    Patient,
    Person,
    Role,
    Rule,
    Signer,
    evaluate,
    parse_rule,
    rule_to_json,
)
from medledger.crypto.keys import Address, to_checksum_address
from medledger.errors import InvalidInput, UsageError


def addr(n: int) -> Address:
    return to_checksum_address(bytes([n]) * 20)


PATIENT, DOCTOR, NURSE, GUARDIAN, STRANGER, DOCTOR2, NURSE2 = (addr(n) for n in range(1, 8))
HOSPITAL, CLINIC = addr(0xA1), addr(0xA2)
MISCASED = HOSPITAL[:2] + HOSPITAL[2].swapcase() + HOSPITAL[3:]

patient = Signer(PATIENT)
doctor = Signer(DOCTOR, "doctor", HOSPITAL)
doctor2 = Signer(DOCTOR2, "doctor", CLINIC)
nurse = Signer(NURSE, "nurse", HOSPITAL)
nurse2 = Signer(NURSE2, "nurse", HOSPITAL)
clinic_nurse = Signer(NURSE2, "nurse", CLINIC)
guardian = Signer(GUARDIAN)
stranger = Signer(STRANGER)
patient_who_nurses = Signer(PATIENT, "nurse", HOSPITAL)
guardian_who_doctors = Signer(GUARDIAN, "doctor", CLINIC)

#: "2 of {patient, attending doctor, nurse}": the doctor by name, the nurse by role.
TWO_OF_THREE = KOf(2, (Patient(), Person(DOCTOR), Role("nurse")))
#: "(patient or guardian) and 1 of the care team".
CARE = KOf(2, (KOf(1, (Patient(), Person(GUARDIAN))), KOf(1, (Role("doctor"), Role("nurse")))))
#: A doctor wanted both by name and by role: two approvals, so two people.
NAMED_AND_ROLE = KOf(2, (Person(DOCTOR), Role("doctor")))
#: "any of (nurse, doctor), and a nurse": the first nurse must not take the any.
NEEDS_BACKTRACKING = KOf(2, (KOf(1, (Role("nurse"), Role("doctor"))), Role("nurse")))
#: A nurse anywhere and a nurse at the hospital: the hospital nurse sorts first and must
#: be kept for the second leaf.
BOTH_NURSES = KOf(2, (Role("nurse"), Role("nurse", HOSPITAL)))
NESTED = KOf(
    2, (KOf(2, (Role("nurse"), Role("nurse"), Role("doctor"))), Patient(), Person(GUARDIAN))
)

APPROVALS = [
    ("patient and doctor", TWO_OF_THREE, [patient, doctor], True),
    ("doctor and nurse", TWO_OF_THREE, [doctor, nurse], True),
    ("all three", TWO_OF_THREE, [nurse, doctor, patient], True),
    ("doctor alone", TWO_OF_THREE, [doctor], False),
    ("the same doctor twice", TWO_OF_THREE, [doctor, doctor], False),
    ("patient who is also a nurse counts once", TWO_OF_THREE, [patient_who_nurses], False),
    ("nobody", TWO_OF_THREE, [], False),
    ("strangers only", TWO_OF_THREE, [stranger, guardian], False),
    ("doctor named and by role counts once", NAMED_AND_ROLE, [doctor], False),
    ("named doctor and another doctor", NAMED_AND_ROLE, [doctor2, doctor], True),
    ("another doctor alone", NAMED_AND_ROLE, [doctor2], False),
    ("guardian and nurse", CARE, [guardian, nurse], True),
    ("patient and doctor for care", CARE, [patient, doctor], True),
    ("patient and guardian: no care team", CARE, [patient, guardian], False),
    ("care team only", CARE, [doctor, nurse], False),
    ("guardian who is a doctor counts once", CARE, [guardian_who_doctors], False),
    ("guardian who is a doctor, and a nurse", CARE, [guardian_who_doctors, nurse], True),
    ("signer without the role", KOf(1, (Role("nurse"),)), [stranger], False),
    ("role at the wrong institution", Role("nurse", HOSPITAL), [clinic_nurse], False),
    ("role at the right institution", Role("nurse", HOSPITAL), [nurse], True),
    ("role at any institution", Role("nurse"), [clinic_nurse], True),
    ("other role at the right institution", Role("nurse", HOSPITAL), [doctor], False),
    (
        "any nurse leaves the hospital nurse to the hospital",
        BOTH_NURSES,
        [clinic_nurse, nurse],
        True,
    ),
    ("one hospital nurse for both", BOTH_NURSES, [nurse], False),
    ("needs backtracking: nurse and doctor", NEEDS_BACKTRACKING, [nurse, doctor], True),
    ("needs backtracking: one nurse", NEEDS_BACKTRACKING, [nurse], False),
    ("needs backtracking: two nurses", NEEDS_BACKTRACKING, [nurse, nurse2], True),
    ("nested: two nurses and the patient", NESTED, [nurse, nurse2, patient], True),
    ("nested: nurse, doctor and guardian", NESTED, [nurse, guardian, doctor], True),
    ("nested: patient and guardian only", NESTED, [patient, guardian], True),
    ("nested: two nurses only", NESTED, [nurse, nurse2], False),
    ("nested: one nurse twice and the patient", NESTED, [nurse, nurse, patient], False),
    ("nested: patient nurse and one nurse", NESTED, [patient_who_nurses, nurse], False),
]


@pytest.mark.parametrize(
    ("rule", "signers", "expected"),
    [row[1:] for row in APPROVALS],
    ids=[row[0] for row in APPROVALS],
)
def test_approval_table(rule: Rule, signers: list[Signer], expected: bool) -> None:
    result = evaluate(rule, PATIENT, signers)
    assert result.satisfied is expected
    assert_valid_assignment(rule, PATIENT, signers, result.assignment)
    assert result.satisfied == holds(rule, (), set(result.assignment))


def test_result_says_who_counted_for_what() -> None:
    result = evaluate(TWO_OF_THREE, PATIENT, [stranger, doctor, patient])
    assert result.assignment == {(0,): PATIENT, (1,): DOCTOR}
    assert result.unused == (STRANGER,)
    assert (result.approved, result.required, result.missing) == (2, 2, "")


def test_extra_signers_who_fit_are_counted_not_unused() -> None:
    result = evaluate(TWO_OF_THREE, PATIENT, [nurse, doctor, patient])
    assert result.assignment == {(0,): PATIENT, (1,): DOCTOR, (2,): NURSE}
    assert result.unused == ()
    assert result.describe() == "approved by 2 of 2 required"


def test_assignment_does_not_depend_on_signer_order() -> None:
    signers = [nurse, nurse2, doctor, patient, guardian, stranger]
    results = {
        json.dumps(sorted(evaluate(NESTED, PATIENT, list(order)).assignment.items()))
        for order in itertools.permutations(signers)
    }
    assert len(results) == 1


def test_same_address_with_different_roles_is_a_caller_bug() -> None:
    with pytest.raises(UsageError, match=DOCTOR):
        evaluate(TWO_OF_THREE, PATIENT, [doctor, Signer(DOCTOR, "nurse", HOSPITAL)])


# ---- describe() --------------------------------------------------------------

DESCRIPTIONS = [
    (TWO_OF_THREE, [doctor], "approved by 1 of 2 required: missing 1 more of: patient, role nurse"),
    (
        TWO_OF_THREE,
        [],
        f"approved by 0 of 2 required: missing 2 of: patient, person {DOCTOR}, role nurse",
    ),
    (
        TWO_OF_THREE,
        [doctor, stranger],
        "approved by 1 of 2 required: missing 1 more of: patient, role nurse;"
        f" not counted: {STRANGER}",
    ),
    (CARE, [nurse], f"approved by 1 of 2 required: missing 1 of: patient, person {GUARDIAN}"),
    (
        CARE,
        [],
        "approved by 0 of 2 required: missing all of: "
        f"(1 of: patient, person {GUARDIAN}), (1 of: role doctor, role nurse)",
    ),
    (
        Role("nurse", HOSPITAL),
        [clinic_nurse],
        f"approved by 0 of 1 required: missing role nurse at {HOSPITAL}; not counted: {NURSE2}",
    ),
    (NAMED_AND_ROLE, [doctor], "approved by 1 of 2 required: missing role doctor"),
    (
        KOf(3, (Role("nurse"),) * 3),
        [nurse],
        "approved by 1 of 3 required: missing all of: role nurse, role nurse",
    ),
]


@pytest.mark.parametrize(("rule", "signers", "text"), DESCRIPTIONS)
def test_describe(rule: Rule, signers: list[Signer], text: str) -> None:
    assert evaluate(rule, PATIENT, signers).describe() == text


def test_check_approvals_raises_with_the_description() -> None:
    policy = Policy(TWO_OF_THREE, frozenset({"TREAT"}), 3600)
    assert policy.check_approvals(PATIENT, [doctor, nurse]).assignment == {
        (1,): DOCTOR,
        (2,): NURSE,
    }
    with pytest.raises(PolicyNotSatisfied) as caught:
        policy.check_approvals(PATIENT, [doctor, doctor])
    assert (
        str(caught.value) == "approved by 1 of 2 required: missing 1 more of: patient, role nurse"
    )


# ---- exactness against brute force -------------------------------------------

POOL = [addr(n) for n in range(1, 6)]
leaf_rules = st.one_of(
    st.builds(Person, st.sampled_from(POOL[:4])),
    st.just(Patient()),
    st.builds(Role, st.sampled_from(["doctor", "nurse"]), st.sampled_from([None, HOSPITAL])),
)
rules = st.recursive(
    leaf_rules,
    lambda children: st.lists(children, min_size=1, max_size=3).flatmap(
        lambda of: st.integers(1, len(of)).map(lambda k: KOf(k, tuple(of)))
    ),
    max_leaves=6,
)
signer_sets = st.lists(
    st.builds(
        Signer,
        st.sampled_from(POOL),
        st.sampled_from([None, "doctor", "nurse"]),
        st.sampled_from([None, HOSPITAL, CLINIC]),
    ),
    max_size=5,
    unique_by=lambda s: s.address,
)


def leaves(rule: Rule, path: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], Rule]]:
    if isinstance(rule, KOf):
        return [leaf for i, c in enumerate(rule.of) for leaf in leaves(c, (*path, i))]
    return [(path, rule)]


def fills(leaf: Rule, signer: Signer, patient: Address) -> bool:
    match leaf:
        case Person(address=address):
            return signer.address == address
        case Patient():
            return signer.address == patient
        case Role(role=role, institution=institution):
            return signer.role == role and institution in (None, signer.institution)
    raise AssertionError(leaf)


def holds(rule: Rule, path: tuple[int, ...], filled: set[tuple[int, ...]]) -> bool:
    if isinstance(rule, KOf):
        return sum(holds(c, (*path, i), filled) for i, c in enumerate(rule.of)) >= rule.k
    return path in filled


def brute_force(rule: Rule, patient: Address, signers: Sequence[Signer]) -> bool:
    """Try every injective partial assignment of signers to the leaves they can fill."""
    spots = leaves(rule)
    options = [
        [None, *(s.address for s in signers if fills(leaf, s, patient))] for _, leaf in spots
    ]
    for choice in itertools.product(*options):
        chosen = [a for a in choice if a is not None]
        if len(chosen) == len(set(chosen)):
            filled = {path for (path, _), a in zip(spots, choice, strict=True) if a is not None}
            if holds(rule, (), filled):
                return True
    return False


def assert_valid_assignment(
    rule: Rule,
    patient: Address,
    signers: Sequence[Signer],
    assignment: dict[tuple[int, ...], Address],
) -> None:
    by_address = {s.address: s for s in signers}
    spots = dict(leaves(rule))
    assert len(set(assignment.values())) == len(assignment), "a signer counted twice"
    for path, address in assignment.items():
        assert fills(spots[path], by_address[address], patient)


@settings(max_examples=1000, deadline=None)
@given(rules, signer_sets, st.sampled_from(POOL), st.booleans())
def test_evaluate_is_exact(
    rule: Rule, signers: list[Signer], patient: Address, repeat: bool
) -> None:
    given_signers = signers + signers[:2] if repeat else signers
    result = evaluate(rule, patient, given_signers)
    assert result.satisfied == brute_force(rule, patient, signers)
    assert_valid_assignment(rule, patient, signers, result.assignment)
    assert result.satisfied == holds(rule, (), set(result.assignment))
    assert set(result.unused) == {s.address for s in signers} - set(result.assignment.values())
    assert evaluate(rule, patient, given_signers[::-1]) == result


@settings(max_examples=100, deadline=None)
@given(rules)
def test_rule_json_round_trip(rule: Rule) -> None:
    assert parse_rule(json.loads(json.dumps(rule_to_json(rule)))) == rule


# ---- bounds ------------------------------------------------------------------


def test_wide_rules_are_decided_quickly_both_ways() -> None:
    nurses = [Signer(addr(n), "nurse", HOSPITAL) for n in range(100, 132)]
    wide = KOf(33, (Role("nurse"),) * MAX_LEAVES)
    assert not evaluate(wide, PATIENT, nurses).satisfied
    assert evaluate(KOf(32, (Role("nurse"),) * MAX_LEAVES), PATIENT, nurses).satisfied


def test_a_rule_too_slow_to_decide_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules_module, "MAX_SEARCH_STEPS", 3)
    assert evaluate(TWO_OF_THREE, PATIENT, [patient, doctor]).satisfied
    with pytest.raises(InvalidPolicy, match="search steps"):
        evaluate(NEEDS_BACKTRACKING, PATIENT, [nurse, doctor])


def nest(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"patient": True}
    for _ in range(depth):
        rule = {"all": [rule]}
    return rule


def test_depth_and_leaf_limits() -> None:
    parse_rule(nest(MAX_DEPTH))
    with pytest.raises(InvalidPolicy, match=rf"^rule(\.all\[0\]){{{MAX_DEPTH}}}: more than"):
        parse_rule(nest(MAX_DEPTH + 1))
    parse_rule({"any": [{"role": "nurse"}] * MAX_LEAVES})
    with pytest.raises(InvalidPolicy, match=rf"^rule\.any\[{MAX_LEAVES}\]: more than"):
        parse_rule({"any": [{"role": "nurse"}] * (MAX_LEAVES + 1)})


# ---- parsing -----------------------------------------------------------------

BAD_RULES = [
    ("not an object", ["patient"], "rule: expected an object"),
    ("no kind", {}, "rule: expected exactly one of"),
    (
        "two kinds",
        {"all": [{"patient": True}], "any": [{"patient": True}]},
        "rule: expected exactly one",
    ),
    ("unknown key", {"role": "nurse", "ward": "b"}, "rule.ward: unknown key"),
    ("of without k_of", {"all": [{"patient": True}], "of": []}, "rule.of: unknown key"),
    ("patient false", {"patient": False}, "rule.patient: expected true"),
    ("short address", {"person": "0x1234"}, "rule.person: not a 20-byte hex address"),
    ("bad checksum", {"person": MISCASED}, "rule.person: bad EIP-55 checksum"),
    ("person not a string", {"person": 7}, "rule.person: expected an address"),
    ("uppercase role", {"role": "Nurse"}, "rule.role: 'Nurse' is not a lowercase identifier"),
    ("role too long", {"role": "n" * 65}, "rule.role: 'nnn"),
    (
        "null institution",
        {"role": "nurse", "institution": None},
        "rule.institution: expected an address",
    ),
    ("empty all", {"all": []}, "rule.all: expected a non-empty list"),
    ("any not a list", {"any": {"patient": True}}, "rule.any: expected a non-empty list"),
    (
        "k of zero",
        {"k_of": 0, "of": [{"patient": True}]},
        r"rule.k_of: expected an integer in \[1, 1\], got 0",
    ),
    (
        "k above n",
        {"k_of": 3, "of": [{"patient": True}] * 2},
        r"rule.k_of: expected an integer in \[1, 2\], got 3",
    ),
    ("k a bool", {"k_of": True, "of": [{"patient": True}]}, "rule.k_of: .* got True"),
    ("k a string", {"k_of": "1", "of": [{"patient": True}]}, "rule.k_of: .* got '1'"),
    ("k_of without of", {"k_of": 1}, "rule.of: expected a non-empty list"),
    (
        "deep bad leaf",
        {"any": [{"patient": True}, {"all": [{"role": "x y"}]}]},
        r"rule.any\[1\].all\[0\].role: 'x y'",
    ),
]


@pytest.mark.parametrize(
    ("obj", "message"), [r[1:] for r in BAD_RULES], ids=[r[0] for r in BAD_RULES]
)
def test_bad_rules_name_the_path(obj: object, message: str) -> None:
    with pytest.raises(InvalidPolicy, match="^" + message):
        parse_rule(obj)


def policy_json(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "approvers": {"k_of": 2, "of": [{"patient": True}, {"person": DOCTOR}, {"role": "nurse"}]},
        "purposes": ["TREAT", "ETREAT"],
        "max_duration_s": 7 * 24 * 3600,
        "condition": None,
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


BAD_POLICIES = [
    (
        "bad approver leaf",
        {
            "approvers": {
                "k_of": 2,
                "of": [{"patient": True}, {"person": DOCTOR}, {"role": "Nurse!"}],
            }
        },
        r"approvers\.of\[2\]\.role: 'Nurse!'",
    ),
    (
        "built-in rule error",
        {"approvers": {"all": []}},
        r"approvers\.all: expected a non-empty list",
    ),
    ("unknown key", {"owner": PATIENT}, "owner: unknown key"),
    ("missing approvers", {"approvers": ...}, "approvers: missing"),
    ("missing purposes", {"purposes": ...}, "purposes: missing"),
    ("no purposes", {"purposes": []}, "purposes: expected a non-empty list"),
    (
        "unknown purpose",
        {"purposes": ["TREAT", "MARKETING"]},
        r"purposes\[1\]: 'MARKETING' is not a supported code",
    ),
    ("purpose not a string", {"purposes": [["TREAT"]]}, r"purposes\[0\]: \['TREAT'\]"),
    ("purpose twice", {"purposes": ["TREAT", "TREAT"]}, r"purposes\[1\]: 'TREAT' given twice"),
    (
        "duration too short",
        {"max_duration_s": 59},
        r"max_duration_s: expected an integer in \[60, 31622400\], got 59",
    ),
    (
        "duration too long",
        {"max_duration_s": MAX_DURATION_S + 1},
        "max_duration_s: .* got 31622401",
    ),
    ("duration a string", {"max_duration_s": "7d"}, "max_duration_s: .* got '7d'"),
    ("duration a bool", {"max_duration_s": True}, "max_duration_s: .* got True"),
    ("condition not a string", {"condition": 1}, "condition: expected a string or null"),
    (
        "CEL syntax error",
        {"condition": "request.purpose == "},
        "condition: not valid CEL: 1:20: Syntax error",
    ),
    ("empty condition", {"condition": ""}, "condition: expected 1 to 1000 characters"),
    (
        "condition too long",
        {"condition": "true && " * 200 + "true"},
        "condition: expected 1 to 1000 characters",
    ),
    (
        "unknown name",
        {"condition": 'requst.purpose == "TREAT"'},
        "condition: unknown name 'requst'",
    ),
    (
        "comprehension over a map",
        {"condition": '{"a": 1}.exists(k, k == "a")'},
        r"condition: exists\(\) is not allowed",
    ),
    (
        "map macro",
        {"condition": "request.categories.map(c, c).size() > 0"},
        r"condition: map\(\) is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"), [r[1:] for r in BAD_POLICIES], ids=[r[0] for r in BAD_POLICIES]
)
def test_bad_policies_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPolicy, match="^" + message):
        Policy.from_json(policy_json(**changes))


def test_policy_is_not_a_json_object() -> None:
    with pytest.raises(InvalidPolicy, match=r"^policy: expected an object, got list"):
        Policy.from_json([])


def test_policies_built_in_code_are_checked_too() -> None:
    with pytest.raises(
        InvalidPolicy, match=r"^approvers\.k_of: expected an integer in \[1, 2\], got 3"
    ):
        Policy(KOf(3, (Patient(), Role("nurse"))), frozenset({"TREAT"}), 3600)
    with pytest.raises(InvalidPolicy, match=r"^approvers\.all: expected a non-empty list"):
        Policy(KOf(0, ()), frozenset({"TREAT"}), 3600)
    with pytest.raises(InvalidPolicy, match=r"^purposes: .* got MARKETING, TREAT$"):
        Policy(Patient(), frozenset({"TREAT", "MARKETING"}), 3600)
    with pytest.raises(InvalidPolicy, match=r"^purposes: .* got none$"):
        Policy(Patient(), frozenset(), 3600)
    with pytest.raises(InvalidPolicy, match=r"^rule\.all: expected a non-empty list"):
        evaluate(KOf(0, ()), PATIENT, [patient])


def test_person_addresses_are_checksummed_on_parse() -> None:
    assert parse_rule({"person": DOCTOR.lower()}) == Person(DOCTOR)


ROUND_TRIPS = [
    policy_json(),
    policy_json(approvers=nest(3), purposes=sorted(PURPOSES), max_duration_s=60, condition=...),
    policy_json(
        approvers={
            "all": [
                {"any": [{"patient": True}, {"person": GUARDIAN}]},
                {"role": "nurse", "institution": HOSPITAL},
            ]
        },
        condition='request.requester_role == "doctor"',
    ),
]


@pytest.mark.parametrize("doc", ROUND_TRIPS)
def test_policy_json_round_trip(doc: dict[str, Any]) -> None:
    policy = Policy.from_json(doc)
    again = Policy.from_json(json.loads(json.dumps(policy.to_json())))
    assert again == policy
    assert again.to_json() == policy.to_json()


def test_to_json_uses_all_and_any_where_they_fit() -> None:
    assert rule_to_json(KOf(1, (Patient(),))) == {"all": [{"patient": True}]}
    assert rule_to_json(KOf(1, (Patient(), Role("nurse")))) == {
        "any": [{"patient": True}, {"role": "nurse"}]
    }
    assert rule_to_json(TWO_OF_THREE)["k_of"] == 2


# ---- request terms -----------------------------------------------------------

TREAT_WEEK = Policy.from_json(policy_json())
CONDITIONAL = Policy.from_json(
    policy_json(
        condition='request.requester_role == "doctor" && !("mental-health" in request.categories)'
        " && request.duration_s <= 86400"
        ' && timestamp(request.now) < timestamp("2030-01-01T00:00:00Z")'
    )
)
CONTEXT = {"requester_role": "doctor", "categories": ["labs"], "now": "2026-03-01T12:00:00Z"}

REQUESTS: list[tuple[str, Policy, str, int, dict[str, Any], type[Exception] | None]] = [
    ("treatment for a week", TREAT_WEEK, "TREAT", 7 * 24 * 3600, {}, None),
    ("emergency treatment", TREAT_WEEK, "ETREAT", 60, {}, None),
    ("research is not allowed", TREAT_WEEK, "HRESCH", 60, {}, PurposeNotAllowed),
    ("unknown purpose", TREAT_WEEK, "SHOPPING", 60, {}, PurposeNotAllowed),
    ("a second too long", TREAT_WEEK, "TREAT", 7 * 24 * 3600 + 1, {}, DurationTooLong),
    ("zero duration", TREAT_WEEK, "TREAT", 0, {}, InvalidInput),
    ("condition holds", CONDITIONAL, "TREAT", 3600, CONTEXT, None),
    (
        "condition: wrong role",
        CONDITIONAL,
        "TREAT",
        3600,
        {**CONTEXT, "requester_role": "nurse"},
        ConditionFailed,
    ),
    (
        "condition: mental health",
        CONDITIONAL,
        "TREAT",
        3600,
        {**CONTEXT, "categories": ["labs", "mental-health"]},
        ConditionFailed,
    ),
    ("condition: reads duration", CONDITIONAL, "TREAT", 86401, CONTEXT, ConditionFailed),
    (
        "condition: reads the time given",
        CONDITIONAL,
        "TREAT",
        3600,
        {**CONTEXT, "now": "2030-06-01T00:00:00Z"},
        ConditionFailed,
    ),
    (
        "condition: field missing at runtime",
        CONDITIONAL,
        "TREAT",
        3600,
        {"categories": []},
        ConditionFailed,
    ),
]


@pytest.mark.parametrize(
    ("policy", "purpose", "duration", "context", "refusal"),
    [r[1:] for r in REQUESTS],
    ids=[r[0] for r in REQUESTS],
)
def test_request_terms(
    policy: Policy,
    purpose: str,
    duration: int,
    context: dict[str, Any],
    refusal: type[Exception] | None,
) -> None:
    if refusal is None:
        policy.check_request(purpose=purpose, duration_s=duration, context=context)
        return
    with pytest.raises(refusal) as caught:
        policy.check_request(purpose=purpose, duration_s=duration, context=context)
    assert type(caught.value) is refusal


def test_refusals_name_the_value() -> None:
    with pytest.raises(
        PurposeNotAllowed, match=r"^purpose 'HRESCH' is not allowed; allowed: ETREAT, TREAT$"
    ):
        TREAT_WEEK.check_request(purpose="HRESCH", duration_s=60, context={})
    with pytest.raises(
        DurationTooLong, match=r"^duration 604801 s exceeds the maximum of 604800 s$"
    ):
        TREAT_WEEK.check_request(purpose="TREAT", duration_s=604801, context={})
    with pytest.raises(
        ConditionFailed, match=r"^condition 'request.requester_role == \"doctor\" .* is false"
    ):
        CONDITIONAL.check_request(
            purpose="TREAT", duration_s=60, context={**CONTEXT, "requester_role": "x"}
        )


RUNTIME_ERRORS = [
    ("missing field", "request.ward == 3", {}),
    ("division by zero", "1 / request.zero == 1", {"zero": 0}),
    ("type mismatch", "request.requester_role + 1 == 2", {"requester_role": "doctor"}),
    ("unknown function", "clock() > 0", {}),
    ("overflow", "request.big + 1 > 0", {"big": 2**63 - 1}),
]


@pytest.mark.parametrize(
    ("condition", "context"), [r[1:] for r in RUNTIME_ERRORS], ids=[r[0] for r in RUNTIME_ERRORS]
)
def test_runtime_errors_refuse_and_say_so(condition: str, context: dict[str, Any]) -> None:
    policy = Policy.from_json(policy_json(condition=condition))
    with pytest.raises(ConditionFailed, match="failed at runtime: "):
        policy.check_request(purpose="TREAT", duration_s=60, context=context)


def test_a_non_boolean_condition_refuses() -> None:
    policy = Policy.from_json(policy_json(condition="request.duration_s"))
    with pytest.raises(ConditionFailed, match="is a int, not a bool"):
        policy.check_request(purpose="TREAT", duration_s=60, context={})


def test_condition_sees_purpose_and_duration_from_the_request() -> None:
    policy = Policy.from_json(
        policy_json(condition='request.purpose == "ETREAT" && request.duration_s == 60')
    )
    policy.check_request(purpose="ETREAT", duration_s=60, context={})
    with pytest.raises(ConditionFailed):
        policy.check_request(purpose="TREAT", duration_s=60, context={})
    with pytest.raises(UsageError, match="context purpose 'TREAT' contradicts"):
        policy.check_request(purpose="ETREAT", duration_s=60, context={"purpose": "TREAT"})


def test_the_clock_is_not_reachable_from_a_condition() -> None:
    policy = Policy.from_json(policy_json(condition="now() > 0"))
    with pytest.raises(ConditionFailed, match="failed at runtime"):
        policy.check_request(purpose="TREAT", duration_s=60, context={})


# ---- the default policy ------------------------------------------------------


def test_default_policy_needs_the_patient_and_nobody_else() -> None:
    policy = default_policy()
    assert policy.check_approvals(PATIENT, [patient]).assignment == {(): PATIENT}
    with pytest.raises(
        PolicyNotSatisfied, match=r"^approved by 0 of 1 required: missing patient; not counted: "
    ):
        policy.check_approvals(PATIENT, [doctor, nurse, guardian])
    policy.check_request(purpose="ETREAT", duration_s=7 * 24 * 3600, context={})
    with pytest.raises(DurationTooLong):
        policy.check_request(purpose="TREAT", duration_s=7 * 24 * 3600 + 1, context={})
    with pytest.raises(PurposeNotAllowed):
        policy.check_request(purpose="HPAYMT", duration_s=60, context={})
    assert policy.condition is None
