"""FHIR search over opened records: the R4 date rules (the specification's own examples,
the HL7 resources, properties against an independent clock), tokens, the parameters
each type has, and a refusal for everything unsupported that never quotes a value."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.access.consent import CATEGORY_SYSTEM
from medledger.crypto.json_numbers import parse_json
from medledger.errors import UsageError
from medledger.records.fhir import validate_resource
from medledger.records.fhir_search import (
    DATA_CATEGORY_SYSTEM,
    SUBSETTED,
    DateValue,
    Found,
    InvalidSearch,
    SearchLimits,
    Span,
    UnsupportedSearch,
    instant_text,
    matches,
    parameters_for,
    parse_query,
    search,
    subset,
)
from tests.data import FHIR_EXAMPLES

SECRET = "SECRET-4711"
NS = 1_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UPDATED = 1_700_000_000 * NS


def example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = parse_json((FHIR_EXAMPLES / name).read_bytes())
    return resource


def found(
    resource: dict[str, Any],
    *,
    logical_id: str | None = None,
    version: str = "1",
    updated: int = UPDATED,
    category: str = "clinical",
) -> Found:
    return Found(resource, logical_id or resource.get("id", "x"), version, updated, category)


def hit(resource: dict[str, Any], *params: tuple[str, str], **kw: Any) -> bool:
    item = found(resource, **kw)
    return matches(parse_query(params), item)


def span(text: str) -> Span:
    value: DateValue = parse_query([("_lastUpdated", text)]).clauses[0].values[0]  # type: ignore[attr-defined]
    return value.span


def ns_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


# -- dates: the R4 specification's own examples (search.html, "date") ----------------------


def point(text: str) -> dict[str, Any]:
    """An Observation whose date is exactly ``text``."""
    return {"resourceType": "Observation", "status": "final", "code": {}, "effectiveDateTime": text}


def period(start: str | None, end: str | None) -> dict[str, Any]:
    bounds = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    return {"resourceType": "Observation", "effectivePeriod": bounds}


@pytest.mark.parametrize(
    ("search_value", "target", "expected"),
    [
        ("eq2013-01-14", point("2013-01-14T00:00:00Z"), True),
        ("eq2013-01-14", point("2013-01-14T10:00:00Z"), True),
        ("eq2013-01-14", point("2013-01-15T00:00:00Z"), False),
        ("ne2013-01-14", point("2013-01-15T00:00:00Z"), True),
        ("ne2013-01-14", point("2013-01-14T00:00:00Z"), False),
        ("ne2013-01-14", point("2013-01-14T10:00:00Z"), False),
        ("lt2013-01-14T10:00", point("2013-01-14"), True),  # the part before 10am
        ("gt2013-01-14T10:00", point("2013-01-14"), True),  # the part after 10am
        ("ge2013-03-14", period("2013-01-21", None), True),  # may include times after
        ("le2013-03-14", period("2013-01-21", None), True),  # may include times before
        ("sa2013-03-14", period("2013-03-15", None), True),  # starts after
        ("sa2013-03-14", period("2013-03-11", None), False),  # starts before
        ("eb2013-03-14", period(None, "2013-03-13"), True),  # ends before
        ("eb2013-03-14", period(None, "2013-03-15"), False),  # ends after
    ],
)
def test_the_specifications_date_examples(
    search_value: str, target: dict[str, Any], expected: bool
) -> None:
    assert hit(target, ("date", search_value)) is expected


# -- dates: the HL7 examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("search_value", "expected"),
    [
        # effectiveDateTime "2016-03-28": a whole day
        ("2016", True),
        ("2016-03", True),
        ("2016-03-28", True),
        ("2016-03-27", False),
        ("2016-03-28T12:00:00Z", False),  # a second cannot contain a day
        ("ne2016-03-28T12:00:00Z", True),
        ("gt2016-03-28T12:00:00Z", True),
        ("lt2016-03-28T12:00:00Z", True),
        ("sa2016-03-27", True),
        ("sa2016-03-28", False),
        ("eb2016-03-29", True),
        ("eb2016-03-28T23:59:59Z", False),
    ],
)
def test_a_date_searches_the_days_range(search_value: str, expected: bool) -> None:
    assert hit(example("observation-example1.json"), ("date", search_value)) is expected


@pytest.mark.parametrize(
    ("search_value", "expected"),
    [
        # effectivePeriod from 2013-04-02T09:30:10+01:00, open-ended
        ("ge2013-04-02", True),
        ("gt2013", True),
        ("2013", False),  # an open period is in no year
        ("lt2013-04-02T08:30:10Z", False),  # it starts exactly there
        ("lt2013-04-02T08:30:11Z", True),
        ("sa2013-04-01", True),
        ("sa2013-04-02", False),
        ("eb2030", False),
        ("le2013-04-02T08:30:10Z", False),  # nothing of it lies before
    ],
)
def test_an_open_period_reaches_forever(search_value: str, expected: bool) -> None:
    assert hit(example("observation-example2.json"), ("date", search_value)) is expected


def test_time_zones_compare_instants() -> None:
    encounter = example("encounter-example2.json")  # 16:00 to 16:30 at +10:00
    assert hit(encounter, ("date", "2015-01-17"))  # 06:00Z to 06:30Z, inside the UTC day
    assert hit(encounter, ("date", "sa2015-01-17T05:59:59Z"))
    assert not hit(encounter, ("date", "sa2015-01-17T06:00:00Z"))
    assert hit(encounter, ("date", "le2015-01-17T16:00:01+10:00"))
    assert not hit(encounter, ("date", "le2015-01-17T16:00:00+10:00"))
    # An unencoded "+" in a URL reaches the server as a space.
    assert span("2015-01-17T16:00:00 10:00") == span("2015-01-17T06:00:00Z")


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("procedure-example1.json", ("date", "2013-04-05"), True),
        ("immunization-example1.json", ("date", "2013-01"), True),
        ("immunization-example1.json", ("date", "2013-02"), False),
        ("allergyIntolerance-example1.json", ("date", "2014-10-09"), True),  # recordedDate
        ("allergyIntolerance-example1.json", ("date", "2004"), False),  # onset, not date
        ("carePlan-pregnancyPlan.json", ("date", "2013"), True),
        ("carePlan-weightLossPlan.json", ("date", "lt1900"), True),  # no start
        ("carePlan-weightLossPlan.json", ("date", "gt2017-06-01"), False),
        ("careTeam-example1.json", ("date", "eb2013-01-02"), True),
        ("list-example1.json", ("date", "2012-11-25T11:17:00Z"), True),  # +11:00
        ("list-example1.json", ("date", "2012-11-25T22:17:00Z"), False),
        ("list-example1.json", ("date", "2012-11-25"), True),
        ("medicationRequest-example1.json", ("authoredon", "2015-03-01"), True),
        ("medicationRequest-example1.json", ("authoredon", "2015-03-02"), False),
        ("condition-example1.json", ("onset-date", "2012-05"), True),
        ("condition-example2.json", ("onset-date", "ge1900"), False),  # onsetString
        ("allergyIntolerance-example2.json", ("date", "2010-03-01"), True),
    ],
)
def test_each_type_searches_its_r4_date_element(
    name: str, params: tuple[str, str], expected: bool
) -> None:
    assert hit(example(name), params) is expected


def test_medication_request_date_is_its_dosage_events() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "authoredOn": "2020-01-01",
        "dosageInstruction": [
            {"timing": {"event": ["2020-03-01T08:00:00Z"]}},
            {"timing": {"event": ["2020-05-01T08:00:00Z", "2020-06-01T08:00:00Z"]}},
        ],
    }
    assert hit(request, ("date", "2020-05"))
    assert hit(request, ("date", "2020-03-01"))
    assert not hit(request, ("date", "2020-04"))
    assert not hit(request, ("date", "2020-01-01"))  # authoredOn is authoredon's


def test_a_timing_spans_its_events_and_bounds() -> None:
    timing = {
        "resourceType": "Observation",
        "effectiveTiming": {
            "event": ["2013-02-10T08:00:00Z"],
            "repeat": {"boundsPeriod": {"start": "2013-01-31", "end": "2013-03-24"}},
        },
    }
    assert hit(timing, ("date", "eq2013"))
    assert hit(timing, ("date", "ge2013-03-23"))
    assert not hit(timing, ("date", "ge2013-03-24"))  # nothing after its last day
    assert hit(timing, ("date", "lt2013-02-01"))
    assert not hit(timing, ("date", "2013-02"))  # reaches past February


def test_a_search_to_the_minute_covers_the_minute() -> None:
    assert span("2020-01-01T10:00Z") == Span(
        *(ns_of(datetime(2020, 1, 1, 10, m, tzinfo=UTC)) for m in (0, 1))
    )
    assert hit(point("2020-01-01T10:00:59Z"), ("date", "2020-01-01T10:00Z"))
    assert not hit(point("2020-01-01T10:01:00Z"), ("date", "2020-01-01T10:00Z"))
    assert hit(point("2020-01-01T10:00:59Z"), ("date", "2020-01-01T11:00+01:00"))


def test_unreadable_resource_dates_never_match() -> None:
    assert not hit(point("not a date"), ("date", "ne2000"))
    assert not hit(period("2013-01-01", "garbage"), ("date", "ge1900"))
    assert not hit({"resourceType": "Observation", "effectivePeriod": {}}, ("date", "ne2000"))
    timing = {
        "resourceType": "Observation",
        "effectiveTiming": {"event": ["2013-01-01", "garbage"]},
    }
    assert not hit(timing, ("date", "ne2000"))


def test_last_updated_is_the_stored_instant() -> None:
    moment = ns_of(datetime(2021, 6, 1, 12, 0, 0, 123456, tzinfo=UTC))
    resource = example("patient-example1.json")
    assert hit(resource, ("_lastUpdated", "2021-06-01"), updated=moment)
    assert hit(resource, ("_lastUpdated", "2021-06-01T12:00:00.123456Z"), updated=moment)
    assert not hit(resource, ("_lastUpdated", "2021-06-01T12:00:00.123457Z"), updated=moment)
    assert hit(resource, ("_lastUpdated", "gt2021-06-01T12:00:00.1234559Z"), updated=moment)


# -- dates: properties ------------------------------------------------------------------

instants = st.integers(
    ns_of(datetime(1900, 1, 1, tzinfo=UTC)), ns_of(datetime(2100, 1, 1, tzinfo=UTC))
)
spans = st.tuples(instants, st.integers(1, 10**18)).map(lambda p: Span(p[0], p[0] + p[1]))
open_spans = st.one_of(
    spans,
    instants.map(lambda t: Span(-(1 << 80), t)),
    instants.map(lambda t: Span(t, 1 << 80)),
)


@given(open_spans, spans)
def test_every_target_is_below_or_not(target: Span, searched: Span) -> None:
    def holds(prefix: str) -> bool:
        return DateValue(prefix, searched).holds(target)  # type: ignore[arg-type]

    assert holds("lt") or holds("ge")
    assert holds("gt") or holds("le")
    assert holds("ne") is not holds("eq")
    assert not holds("sa") or holds("gt")
    assert not holds("eb") or holds("lt")
    assert not holds("eq") or (holds("ge") and holds("le"))


@settings(deadline=None)
@given(
    st.datetimes(datetime(1900, 1, 1), datetime(2099, 12, 31)),
    st.integers(-14 * 60, 14 * 60).map(lambda m: m - m % 15),
    st.sampled_from(["second", "milli", "micro"]),
)
def test_a_datetime_covers_its_precision(moment: datetime, offset: int, precision: str) -> None:
    zone = timezone(timedelta(minutes=offset))
    local = moment.replace(tzinfo=zone)
    if precision == "second":
        local, text, width = local.replace(microsecond=0), local.strftime("%Y-%m-%dT%H:%M:%S"), NS
    elif precision == "milli":
        local = local.replace(microsecond=local.microsecond // 1000 * 1000)
        text, width = (
            local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}",
            NS // 1000,
        )
    else:
        text, width = local.strftime("%Y-%m-%dT%H:%M:%S.%f"), 1000
    sign = "-" if offset < 0 else "+"
    text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    assert span(text) == Span(ns_of(local), ns_of(local) + width)


@given(st.dates(datetime(1, 1, 1).date(), datetime(9999, 12, 31).date()))
def test_partial_dates_cover_their_calendar_unit(day: Any) -> None:
    start = ns_of(datetime(day.year, day.month, day.day, tzinfo=UTC))
    assert span(day.isoformat()) == Span(start, start + 86_400 * NS)
    month = span(day.isoformat()[:7])
    year = span(day.isoformat()[:4])
    assert year.low <= month.low <= start < start + 86_400 * NS <= month.high <= year.high
    assert month.low == ns_of(datetime(day.year, day.month, 1, tzinfo=UTC))
    assert year.low == ns_of(datetime(day.year, 1, 1, tzinfo=UTC))


@given(instants)
def test_instant_text_reads_back(ns: int) -> None:
    covered = span(instant_text(ns))
    assert covered.low == ns < covered.high


def instants_in(year: int) -> st.SearchStrategy[int]:
    return st.integers(
        ns_of(datetime(year, 1, 1, tzinfo=UTC)), ns_of(datetime(year + 1, 1, 1, tzinfo=UTC)) - 1
    )


def months(year: int) -> str:
    return ",".join(f"{year}-{m:02d}" for m in range(1, 13))


@settings(deadline=None)
@given(st.lists(st.integers(2019, 2021).flatmap(instants_in), min_size=1, max_size=20))
def test_a_year_is_the_union_of_its_months(moments: list[int]) -> None:
    items = [observation_at(ns, i) for i, ns in enumerate(moments)]
    year = search(parse_query([("date", "2020")]), items)
    by_month = search(parse_query([("date", months(2020))]), items)
    assert year == by_month
    assert {f.logical_id for f in year} == {
        f"o{i}"
        for i, ns in enumerate(moments)
        if datetime.fromtimestamp(ns // NS, UTC).year == 2020
    }


def observation_at(ns: int, i: int, write: Any = instant_text) -> Found:
    resource = {"resourceType": "Observation", "id": f"o{i}", "effectiveInstant": write(ns)}
    return found(resource)


def nanosecond_text(ns: int) -> str:
    """An instant to the nanosecond, trailing zeros kept: it covers exactly one."""
    seconds, nanos = divmod(ns, NS)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


@settings(deadline=None)
@given(
    st.lists(instants, min_size=1, max_size=20),
    st.lists(instants, min_size=3, max_size=3, unique=True),
)
def test_a_range_split_in_two_matches_the_union(moments: list[int], cuts: list[int]) -> None:
    low, middle, high = (nanosecond_text(ns) for ns in sorted(cuts))
    items = [observation_at(ns, i, nanosecond_text) for i, ns in enumerate(moments)]

    def between(a: str, b: str) -> list[Found]:
        return search(parse_query([("date", f"ge{a}"), ("date", f"lt{b}")]), items)

    whole, first, second = between(low, high), between(low, middle), between(middle, high)
    assert not {f.logical_id for f in first} & {f.logical_id for f in second}
    assert sorted(first + second, key=lambda f: f.logical_id) == sorted(
        whole, key=lambda f: f.logical_id
    )
    lo, hi = sorted(cuts)[0], sorted(cuts)[2]
    assert {f.logical_id for f in whole} == {
        f"o{i}" for i, ns in enumerate(moments) if lo <= ns < hi
    }


# -- tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ((("code", "http://loinc.org|29463-7"),), True),
        ((("code", "29463-7"),), True),
        ((("code", "|29463-7"),), False),  # it has a system
        ((("code", "http://loinc.org|"),), True),
        ((("code", "http://snomed.info/sct|29463-7"),), False),
        ((("code", "http://snomed.info/sct|27113001"),), True),
        ((("code", "nothing,27113001"),), True),  # a comma is an OR
        ((("code", "29463-7"), ("code", "3141-9")), True),  # a repeat is an AND
        ((("code", "29463-7"), ("code", "nothing")), False),
        ((("code:text", "body w"),), True),
        ((("code:text", "weight"),), False),  # text matches from its start
        ((("category", "vital-signs"),), True),
        (
            (
                (
                    "category",
                    "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
                ),
            ),
            True,
        ),
        (
            (
                (
                    "category",
                    "http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
                ),
            ),
            False,
        ),
        ((("category", f"{DATA_CATEGORY_SYSTEM}|labs"),), True),  # the record's data category
        ((("category", "labs"),), True),
        ((("category", "|labs"),), False),  # a data category is under its system
        ((("category", f"{DATA_CATEGORY_SYSTEM}|imaging"),), False),
        ((("category", "imaging"),), False),
        ((("_id", "other,example"),), True),
        ((("_id", "other"),), False),
        ((("_type", "Observation,Patient"),), True),
        ((("_type", "Patient"),), False),
    ],
)
def test_tokens_on_observation_example1(
    params: tuple[tuple[str, str], ...], expected: bool
) -> None:
    assert hit(example("observation-example1.json"), *params, category="labs") is expected


def test_identifiers_match_system_and_value() -> None:
    observation = example("observation-example2.json")
    system = "http://www.bmc.nl/zorgportal/identifiers/observations"
    assert hit(observation, ("identifier", f"{system}|6323"))
    assert hit(observation, ("identifier", "6323"))
    assert hit(observation, ("identifier", f"{system}|"))
    assert not hit(observation, ("identifier", "|6323"))
    assert not hit(observation, ("identifier", f"{system}|6324"))
    single = example("questionnaireResponse-example2.json")  # one Identifier, not a list
    assert hit(single, ("identifier", "Q12349876"))


def test_bare_codes_match_only_without_a_system() -> None:
    allergy = example("allergyIntolerance-example1.json")  # category ["food"]
    assert hit(allergy, ("category", "food"))
    assert not hit(allergy, ("category", "|food"))
    assert not hit(allergy, ("category", "http://hl7.org/fhir/allergy-intolerance-category|food"))
    assert hit(
        allergy, ("code", "http://www.nlm.nih.gov/research/umls/rxnorm|1160593")
    )  # substance


def test_escaped_separators_are_part_of_a_code() -> None:
    resource = {
        "resourceType": "Observation",
        "code": {"coding": [{"system": "s", "code": "a|b,c\\d"}]},
    }
    assert hit(resource, ("code", "s|a\\|b\\,c\\\\d"))
    assert not hit(resource, ("code", "s|a"))


def test_text_search_ignores_case_and_accents() -> None:
    resource = {
        "resourceType": "Observation",
        "code": {"coding": [{"display": "Hémoglobine"}], "text": "Hb"},
    }
    assert hit(resource, ("code:text", "HEMO"))
    assert hit(resource, ("code:text", "hb"))
    assert not hit(resource, ("code:text", "globine"))


def test_medication_codes_are_searched_as_code() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://snomed.info/sct", "code": "27658006"}]
        },
    }
    assert hit(statement, ("code", "27658006"))
    # A medication named by reference has no code here, only the reference's display.
    assert not hit(example("medicationRequest-example1.json"), ("code:text", "prescribed"))


def test_patients_are_parsed_for_the_caller() -> None:
    query = parse_query([("patient", "Patient/example,abc"), ("subject", "example")])
    assert query.patients == frozenset({"example"})
    assert parse_query([("code", "x")]).patients is None
    # matches() leaves them to the caller: it holds whatever the chart.
    assert matches(query, found(example("observation-example1.json")))


def test_empty_parameters_are_ignored() -> None:
    query = parse_query([("code", ""), ("date", "")])
    assert query.clauses == ()
    with pytest.raises(UnsupportedSearch):
        parse_query([("unknown", "")])


# -- parameters by type ------------------------------------------------------------------


def test_a_parameter_must_exist_on_every_type_searched() -> None:
    parse_query([("date", "2020")], resource_type="Observation")
    with pytest.raises(UnsupportedSearch, match="date"):
        parse_query([("date", "2020")], resource_type="Condition")  # R4 gives Condition none
    with pytest.raises(UnsupportedSearch, match="code"):
        parse_query([("code", "x"), ("_type", "Observation,Patient")])
    parse_query([("code", "x"), ("_type", "Observation,Condition")])
    parse_query([("date", "2020")])  # across all types: resources without one do not match


@pytest.mark.parametrize(
    "resource_type", ["Observation", "Condition", "MedicationRequest", "Patient", "Encounter"]
)
def test_every_declared_parameter_is_accepted(resource_type: str) -> None:
    for parameter in parameters_for(resource_type):
        value = {"token": "x", "date": "2020", "reference": "Patient/p"}[parameter.type]
        parse_query([(parameter.name, value)], resource_type=resource_type)
    declared = {p.name for p in parameters_for(resource_type)}
    for name in {"date", "code", "authoredon", "onset-date"} - declared:
        with pytest.raises(UnsupportedSearch):
            parse_query([(name, "2020" if name != "code" else "x")], resource_type=resource_type)


def test_declared_date_parameters_name_their_elements() -> None:
    observation = {p.name: p.documentation for p in parameters_for("Observation")}
    assert observation["date"] == "Observation.effective[x]"
    request = {p.name: p.documentation for p in parameters_for("MedicationRequest")}
    assert request["date"] == "MedicationRequest.dosageInstruction.timing.event"
    assert request["authoredon"] == "MedicationRequest.authoredOn"
    assert {p.name for p in parameters_for(None)} == {
        "_id",
        "_lastUpdated",
        "category",
        "identifier",
        "patient",
        "subject",
    }


# -- result parameters ------------------------------------------------------------------


def test_result_parameters() -> None:
    query = parse_query(
        [
            ("_count", "10"),
            ("_sort", "-date,_lastUpdated"),
            ("_summary", "count"),
            ("_elements", "code,status"),
        ]
    )
    assert query.count == 10
    assert [(k.parameter, k.descending) for k in query.sort] == [
        ("date", True),
        ("_lastUpdated", False),
    ]
    assert query.summary_count
    assert query.elements == ("code", "status")
    limits = SearchLimits(default_count=7, max_count=20)
    assert parse_query([], limits=limits).count == 7
    assert parse_query([("_count", "500")], limits=limits).count == 20  # cut to the bound
    assert parse_query([("_count", "0")]).count == 0


def test_params_render_the_query_as_applied() -> None:
    query = parse_query(
        [
            ("category", "a,b"),
            ("_count", "9999"),
            ("_type", "Patient,Observation"),
            ("_format", "json"),
        ],
        skip={"_format"},
    )
    assert query.params() == [
        ("category", "a,b"),
        ("_type", "Observation,Patient"),
        ("_count", "500"),
    ]
    assert parse_query(query.params()) == query


def test_sorting_orders_by_date_then_a_fixed_tie_break() -> None:
    items = [
        found(point("2020-01-01"), logical_id="b"),
        found(point("2019-01-01"), logical_id="c"),
        found({"resourceType": "Observation"}, logical_id="a"),  # no date: last
        found(point("2020-01-01"), logical_id="a2"),
        found(period("2018-01-01", "2021-01-01"), logical_id="d"),
    ]
    ascending = search(parse_query([("_sort", "date")]), items)
    assert [f.logical_id for f in ascending] == ["d", "c", "a2", "b", "a"]
    descending = search(parse_query([("_sort", "-date")]), items)
    assert [f.logical_id for f in descending] == ["d", "a2", "b", "c", "a"]
    by_update = [found(point("2020"), logical_id=f"u{i}", updated=UPDATED - i) for i in range(3)]
    newest_first = search(parse_query([("_sort", "-_lastUpdated")]), by_update)
    assert [f.logical_id for f in newest_first] == ["u0", "u1", "u2"]


@given(st.randoms())
def test_search_order_does_not_depend_on_input_order(rng: random.Random) -> None:
    items = [
        found(example(name)) for name in ("observation-example1.json", "observation-example2.json")
    ]
    items += [found(point(f"20{10 + i}"), logical_id=f"p{i}") for i in range(6)]
    shuffled = list(items)
    rng.shuffle(shuffled)
    for sort in ("", "date", "-date", "_lastUpdated"):
        query = parse_query([("_sort", sort)])
        assert search(query, shuffled) == search(query, items)


def test_subset_keeps_what_was_asked_and_what_r4_requires() -> None:
    observation = example("observation-example1.json")
    kept = subset(observation, ["subject", "effective"])
    assert set(kept) == {
        "resourceType",
        "id",
        "meta",
        "status",
        "code",
        "subject",
        "effectiveDateTime",
    }
    assert SUBSETTED in kept["meta"]["tag"]
    validate_resource(kept, "subset")
    assert subset(kept, ["subject"])["meta"]["tag"].count(SUBSETTED) == 1


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "error", "names"),
    [
        ([("unknown", SECRET)], UnsupportedSearch, "unknown"),
        ([("_include", SECRET)], UnsupportedSearch, "_include"),
        ([("code:exact", SECRET)], UnsupportedSearch, "code:exact"),
        ([("date:missing", "true")], UnsupportedSearch, "date:missing"),
        ([("subject.name", SECRET)], UnsupportedSearch, "subject.name"),
        ([("date", "ap2020")], UnsupportedSearch, "date"),
        ([("date", f"xx{SECRET}")], InvalidSearch, "date"),
        ([("date", SECRET)], InvalidSearch, "date"),
        ([("date", "2020-13")], InvalidSearch, "date"),
        ([("date", "2019-02-29")], InvalidSearch, "date"),
        ([("date", "2020-01-01T24:00")], InvalidSearch, "date"),
        ([("date", "2020-01-01T10:00:00+14:30")], InvalidSearch, "date"),
        ([("date", "0000")], InvalidSearch, "date"),
        ([("date", "20")], InvalidSearch, "date"),
        ([("_lastUpdated", "2020,")], InvalidSearch, "_lastUpdated"),
        ([("code", f"{SECRET}|a|b")], InvalidSearch, "code"),
        ([("code", "|")], InvalidSearch, "code"),
        ([("code", f"{SECRET}\\")], InvalidSearch, "code"),
        ([("category", f"{DATA_CATEGORY_SYSTEM}|{SECRET}")], InvalidSearch, "category"),
        ([("_id", f"{SECRET}/x")], InvalidSearch, "_id"),
        ([("_id", "a,,b")], InvalidSearch, "_id"),
        ([("_type", SECRET)], InvalidSearch, "_type"),
        ([("patient", f"http://elsewhere/Patient/{SECRET}")], UnsupportedSearch, "patient"),
        ([("subject", f"Group/{SECRET}")], UnsupportedSearch, "subject"),
        ([("patient", f"Patient/{SECRET}/_history/1")], UnsupportedSearch, "patient"),
        ([("patient", "Patient/")], InvalidSearch, "patient"),
        ([("_count", "-1")], InvalidSearch, "_count"),
        ([("_count", "ten")], InvalidSearch, "_count"),
        ([("_count", "1"), ("_count", "2")], InvalidSearch, "_count"),
        ([("_sort", SECRET)], UnsupportedSearch, "_sort"),
        ([("_summary", "true")], UnsupportedSearch, "_summary"),
        ([("_elements", f"{SECRET}!")], InvalidSearch, "_elements"),
        ([("_type", "Patient"), ("_type", "Observation")], InvalidSearch, "_type"),
    ],
)
def test_refusals_name_the_parameter_never_the_value(
    params: list[tuple[str, str]], error: type[InvalidSearch], names: str
) -> None:
    with pytest.raises(error) as refused:
        parse_query(params)
    assert type(refused.value) is error
    assert refused.value.parameter == names
    assert SECRET not in str(refused.value)
    assert str(refused.value).startswith(f"search parameter {names}: ")


def test_refusals_of_the_query_as_a_whole() -> None:
    with pytest.raises(InvalidSearch, match="more than 3 search parameters"):
        parse_query([("_id", "a")] * 4, limits=SearchLimits(max_parameters=3))
    with pytest.raises(InvalidSearch, match="more than 2 values"):
        parse_query([("_id", "a,b,c")], limits=SearchLimits(max_values=2))
    with pytest.raises(InvalidSearch, match="unknown resource type"):
        parse_query([], resource_type="NotAType")
    with pytest.raises(UnsupportedSearch, match="_type"):
        parse_query([("_type", "Observation")], resource_type="Observation")


def test_an_implausible_parameter_name_is_not_quoted() -> None:
    with pytest.raises(UnsupportedSearch) as refused:
        parse_query([(f"{SECRET} diabetes", "1")])
    assert SECRET not in str(refused.value)
    assert refused.value.parameter == "(unreadable)"


def test_found_needs_ids_fit_for_a_url() -> None:
    with pytest.raises(UsageError):
        Found({"resourceType": "Patient"}, "a/b", "1", 0, "clinical")
    with pytest.raises(UsageError):
        Found({"resourceType": "Patient"}, "a", "1 2", 0, "clinical")
    with pytest.raises(UsageError):
        Found({}, "a", "1", 0, "clinical")


def test_the_data_category_system_is_the_one_consents_use() -> None:
    assert DATA_CATEGORY_SYSTEM == CATEGORY_SYSTEM
