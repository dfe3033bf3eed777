"""The one-line form of approver rules: what it reads, what it refuses, and that it
round-trips every flat rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.access.errors import InvalidPolicy
from medledger.access.rule_text import parse_rule_text, rule_to_text
from medledger.access.rules import KOf, Patient, Person, Role, Rule

INSTITUTION = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("patient", Patient()),
        ("doctor", Role("doctor")),
        (INSTITUTION.lower(), Person(INSTITUTION)),
        ("2 of patient, doctor, nurse", KOf(2, (Patient(), Role("doctor"), Role("nurse")))),
        ("all of patient, doctor", KOf(2, (Patient(), Role("doctor")))),
        ("ANY of patient , nurse", KOf(1, (Patient(), Role("nurse")))),
        (f"1 of doctor@{INSTITUTION}", KOf(1, (Role("doctor", INSTITUTION),))),
    ],
)
def test_the_one_line_form_reads_as_a_person_would_say_it(text: str, rule: Rule) -> None:
    assert parse_rule_text(text) == rule


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("3 of patient, doctor", "3 of 2 cannot be met"),
        ("0 of patient", "0 of 1 cannot be met"),
        ("2 of patient,, doctor", "an empty name"),
        ("2 of patient, Doctor", "not a lowercase identifier"),
        ("any of doctor@hospital-a", "an institution is named by its address"),
        ("any of 0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "checksum"),
    ],
)
def test_a_rule_that_cannot_be_met_or_read_is_refused_with_its_reason(text: str, why: str) -> None:
    with pytest.raises(InvalidPolicy, match=why):
        parse_rule_text(text)


def test_a_nested_rule_has_no_one_line_form() -> None:
    nested = KOf(1, (Patient(), KOf(2, (Role("doctor"), Role("nurse")))))
    with pytest.raises(InvalidPolicy, match="nested"):
        rule_to_text(nested)


_leaves = st.one_of(
    st.just(Patient()),
    st.sampled_from(["doctor", "nurse", "lab", "gp-2"]).map(Role),
    st.sampled_from(["doctor", "nurse"]).map(lambda r: Role(r, INSTITUTION)),
    st.just(Person(INSTITUTION)),
)


@given(st.lists(_leaves, min_size=1, max_size=6, unique=True).flatmap(
    lambda leaves: st.integers(1, len(leaves)).map(lambda k: KOf(k, tuple(leaves)))))  # fmt: skip
def test_every_flat_rule_round_trips_through_its_one_line_form(rule: KOf) -> None:
    assert parse_rule_text(rule_to_text(rule)) == rule
