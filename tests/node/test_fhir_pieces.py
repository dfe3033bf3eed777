"""The FHIR API's pure pieces: searchset and history Bundles (paging through every match
once), batch and transaction responses, OperationOutcomes and the status of each
refusal, the CapabilityStatement and content negotiation. Every resource built here
passes the R4 validator the records pass."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.crypto.json_numbers import parse_json
from medledger.errors import InvalidInput, MedledgerError, TransportError, UsageError
from medledger.node.app import STATUS, status_of
from medledger.node.errors import NotFound, RateLimited
from medledger.node.fhir.bundle import (
    PAGE_PARAM,
    EntryResult,
    batch_response,
    full_url,
    history,
    page_offset,
    searchset,
    served,
    transaction_response,
)
from medledger.node.fhir.capability import (
    FHIR_VERSION,
    SMART_OAUTH_URIS,
    ResourceSupport,
    SmartEndpoints,
    Software,
    capability_statement,
)
from medledger.node.fhir.content import (
    FORMAT_PARAM,
    MEDIA_TYPE,
    NotAcceptable,
    fhir_body,
    negotiate,
)
from medledger.node.fhir.outcome import FHIR_STATUS, Issue, operation_outcome, outcome_of
from medledger.records.errors import InvalidRecord, UnknownRecord
from medledger.records.fhir import validate_resource
from medledger.records.fhir_search import (
    SUBSETTED,
    Found,
    InvalidSearch,
    UnsupportedSearch,
    parameters_for,
    parse_query,
    search,
)
from tests.data import FHIR_EXAMPLES

BASE = "https://node-a.example/fhir"
NS = 1_000_000_000
T0 = 1_700_000_000 * NS
SECRET = "SECRET-4711"
EXAMPLES = [
    "observation-example1.json",
    "observation-example2.json",
    "condition-example1.json",
    "procedure-example1.json",
    "immunization-example1.json",
    "encounter-example2.json",
    "allergyIntolerance-example1.json",
    "carePlan-pregnancyPlan.json",
]


def example(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = parse_json((FHIR_EXAMPLES / name).read_bytes())
    return resource


def chart() -> list[Found]:
    return [
        Found(example(name), f"r{i}", "1", T0 + i * NS, "clinical")
        for i, name in enumerate(EXAMPLES)
    ]


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    validate_resource(resource, "built")
    return resource


def links(bundle: dict[str, Any]) -> dict[str, str]:
    return {link["relation"]: link["url"] for link in bundle["link"]}


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def follow(url: str, items: list[Found]) -> dict[str, Any]:
    """What a server would answer to a link: the query and page token it carries."""
    parts = urlsplit(url)
    params = query_of(url)
    token = dict(params).get(PAGE_PARAM)
    path = parts.path.removeprefix(urlsplit(BASE).path).strip("/")
    query = parse_query(params, resource_type=path or None, skip={PAGE_PARAM})
    return searchset(search(query, items), query=query, base=BASE, offset=page_offset(token))


# -- searchset -------------------------------------------------------------------------


def test_a_searchset_of_hl7_examples_is_valid_r4() -> None:
    items = chart()
    query = parse_query([("_count", "3"), ("_sort", "date")])
    bundle = valid(searchset(search(query, items), query=query, base=BASE, offset=0))
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(items)
    assert len(bundle["entry"]) == 3
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["search"] == {"mode": "match"}
        assert entry["fullUrl"] == f"{BASE}/{resource['resourceType']}/{resource['id']}"
        assert resource["meta"]["versionId"] == "1"
    assert set(links(bundle)) == {"self", "first", "next"}


def test_served_resources_carry_the_servers_id_and_version() -> None:
    resource = {
        "resourceType": "Patient",
        "id": "author-id",
        "meta": {"source": "#lab", "versionId": "9"},
    }
    item = Found(resource, "server-id", "3", T0 + 5, "administrative")
    shown = valid(served(item))
    assert shown["id"] == "server-id"
    assert shown["meta"] == {
        "source": "#lab",
        "versionId": "3",
        "lastUpdated": "2023-11-14T22:13:20.000000005Z",
    }
    assert resource["meta"]["versionId"] == "9"  # the record itself is untouched
    assert full_url(BASE + "/", item) == f"{BASE}/Patient/server-id"


def test_a_type_search_links_to_its_type() -> None:
    query = parse_query([("date", "ge2000"), ("_count", "1")], resource_type="Observation")
    matches = search(query, chart())
    bundle = valid(searchset(matches, query=query, base=BASE, offset=0))
    assert bundle["total"] == 2
    self_link = links(bundle)["self"]
    assert self_link.startswith(f"{BASE}/Observation?")
    assert query_of(self_link) == [("date", "ge2000"), ("_count", "1")]
    assert (
        parse_query(query_of(links(bundle)["next"]), resource_type="Observation", skip={PAGE_PARAM})
        == query
    )


def test_links_keep_values_that_need_escaping() -> None:
    query = parse_query(
        [("code", "http://loinc.org|29463-7,a\\,b"), ("date", "ge2013-04-02T09:30:10+01:00")]
    )
    bundle = searchset(search(query, chart()), query=query, base=BASE, offset=0)
    assert query_of(links(bundle)["self"]) == query.params()
    assert "%2B01:00" in links(bundle)["self"]  # a "+" sent as is would read as a space


def test_summary_count_gives_the_total_alone() -> None:
    query = parse_query([("_summary", "count"), ("_type", "Observation")])
    bundle = valid(searchset(search(query, chart()), query=query, base=BASE, offset=0))
    assert bundle["total"] == 2
    assert "entry" not in bundle
    assert set(links(bundle)) == {"self"}


def test_elements_subset_each_entry() -> None:
    query = parse_query([("_elements", "subject"), ("_type", "Observation")])
    bundle = valid(searchset(search(query, chart()), query=query, base=BASE, offset=0))
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert set(resource) == {"resourceType", "id", "meta", "status", "code", "subject"}
        assert SUBSETTED in resource["meta"]["tag"]


def test_a_page_past_the_end_is_empty() -> None:
    query = parse_query([("_count", "5")])
    bundle = valid(searchset(search(query, chart()), query=query, base=BASE, offset=50))
    assert "entry" not in bundle
    assert bundle["total"] == len(EXAMPLES)
    assert "next" not in links(bundle)


@settings(deadline=None, max_examples=60)
@given(
    st.integers(0, 25), st.integers(1, 7), st.sampled_from(["", "date", "-date", "-_lastUpdated"])
)
def test_paging_yields_every_match_exactly_once(size: int, count: int, sort: str) -> None:
    items = [
        Found(
            {"resourceType": "Observation", "effectiveDateTime": f"20{10 + i % 7}"},
            f"o{i}",
            "1",
            T0 + (i * 7919) % 13,
            "labs",
        )
        for i in range(size)
    ]
    first = parse_query([("_count", str(count)), ("_sort", sort)])
    expected = search(first, items)
    bundle = searchset(expected, query=first, base=BASE, offset=0)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        seen += [entry["resource"]["id"] for entry in bundle.get("entry", [])]
        assert bundle["total"] == size
        if "next" not in links(bundle):
            break
        previous = links(bundle)
        bundle = follow(previous["next"], items)
        assert links(bundle)["previous"] == previous["self"]
    assert seen == [f.logical_id for f in expected]
    assert pages == max(1, -(-size // count))


# "\u0661" is an Arabic-Indic one: str.isdigit() takes it, int() reads it as 1.
@pytest.mark.parametrize("token", ["-1", "01", "abc", "1e3", "99999999999", "\u0661", " 1", ""])
def test_a_page_token_is_a_plain_offset(token: str) -> None:
    with pytest.raises(InvalidSearch) as refused:
        page_offset(token)
    assert refused.value.parameter == PAGE_PARAM
    assert page_offset(None) == 0
    assert page_offset("0") == 0
    assert page_offset("40") == 40


@pytest.mark.parametrize(
    "base", ["node-a.example/fhir", "ftp://node-a/fhir", f"{BASE}?x=1", f"{BASE}#f"]
)
def test_links_need_an_absolute_base(base: str) -> None:
    query = parse_query([])
    with pytest.raises(UsageError):
        searchset(chart(), query=query, base=base, offset=0)


def test_the_validator_refuses_a_broken_bundle() -> None:
    """The validation above can fail: a Bundle that breaks R4 is refused."""
    query = parse_query([])
    bundle = searchset(chart(), query=query, base=BASE, offset=0)
    for broken in ({"total": str(bundle["total"])}, {"type": "search-set"}):
        with pytest.raises(InvalidRecord):
            validate_resource(bundle | broken, "built")


# -- history ---------------------------------------------------------------------------


def versions() -> list[Found]:
    observation = example("observation-example1.json")
    return [Found(observation, "obs", str(v), T0 + v * NS, "vital-signs") for v in (1, 2, 3)]


def test_a_history_is_newest_first_and_valid_r4() -> None:
    bundle = valid(
        history(versions(), base=BASE, endpoint="Observation/obs/_history", count=2, offset=0)
    )
    assert bundle["type"] == "history"
    assert bundle["total"] == 3
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["3", "2"]
    for entry in bundle["entry"]:  # R4 bdl-3 and bdl-4: a history entry has both
        assert entry["request"] == {"method": "PUT", "url": "Observation/obs"}
        assert entry["response"]["status"] == "200 OK"
        assert entry["response"]["etag"] == f'W/"{entry["resource"]["meta"]["versionId"]}"'
    assert links(bundle)["next"] == f"{BASE}/Observation/obs/_history?_count=2&{PAGE_PARAM}=2"
    last = valid(
        history(versions(), base=BASE, endpoint="Observation/obs/_history", count=2, offset=2)
    )
    assert [e["response"]["status"] for e in last["entry"]] == ["201 Created"]  # the first version


# -- batch and transaction responses ---------------------------------------------------


def test_batch_responses_report_each_entry() -> None:
    stored = versions()[0]
    results = [
        EntryResult.stored(stored, BASE, created=True),
        EntryResult.refused(UnknownRecord.not_held("ab12")),
        EntryResult.refused(InvalidSearch("code", "not a token")),
    ]
    bundle = valid(batch_response(results))
    assert bundle["type"] == "batch-response"
    first, missing, bad = (entry["response"] for entry in bundle["entry"])
    assert first == {
        "status": "201 Created",
        "location": f"{BASE}/Observation/obs/_history/1",
        "etag": 'W/"1"',
        "lastModified": "2023-11-14T22:13:21Z",
    }
    assert missing["status"] == "404 Not Found"
    assert missing["outcome"]["issue"][0]["code"] == "not-found"
    assert bad["status"] == "400 Bad Request"


def test_a_transaction_response_is_only_for_success() -> None:
    stored = EntryResult.stored(versions()[1], BASE, created=False)
    bundle = valid(transaction_response([stored]))
    assert bundle["entry"][0]["response"]["status"] == "200 OK"
    with pytest.raises(UsageError):
        transaction_response([stored, EntryResult.refused(NotFound("no"))])
    assert valid(batch_response([])) == {"resourceType": "Bundle", "type": "batch-response"}


# -- OperationOutcome ------------------------------------------------------------------


def instance(cls: type[MedledgerError]) -> MedledgerError:
    """An error of the class, whatever its constructor asks for."""
    if cls is InvalidRecord:
        return InvalidRecord("upload", "Observation/x", "", "a refusal naming a field")
    error = cls.__new__(cls)
    Exception.__init__(error, "a refusal naming a field")
    return error


@pytest.mark.parametrize(("cls", "status"), STATUS)
def test_fhir_statuses_agree_with_the_api(cls: type[MedledgerError], status: int) -> None:
    assert outcome_of(instance(cls))[0] == status == status_of(instance(cls))


@pytest.mark.parametrize(("cls", "status", "code"), FHIR_STATUS)
def test_every_refusal_is_a_valid_outcome(
    cls: type[MedledgerError], status: int, code: str
) -> None:
    error = instance(cls)
    answered, outcome = outcome_of(error)
    assert answered == status
    valid(outcome)
    assert outcome["issue"] == [{"severity": "error", "code": code, "diagnostics": str(error)}]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidSearch("date", "not a FHIR date"), 400, "invalid"),
        (UnsupportedSearch("_include", "unknown or unsupported parameter"), 400, "not-supported"),
        (NotAcceptable("only json"), 406, "not-supported"),
        (RateLimited("slow down", 3), 429, "throttled"),
        (TransportError("vault down"), 503, "transient"),
        (InvalidInput("bad"), 422, "invalid"),
    ],
)
def test_fhir_only_statuses(error: MedledgerError, status: int, code: str) -> None:
    answered, outcome = outcome_of(error)
    assert (answered, outcome["issue"][0]["code"]) == (status, code)


def test_an_unexpected_error_says_nothing_of_itself() -> None:
    status, outcome = outcome_of(KeyError(SECRET))
    assert status == 500
    assert SECRET not in str(outcome)
    assert valid(outcome)["issue"] == [
        {"severity": "fatal", "code": "exception", "diagnostics": "internal error"}
    ]


def test_a_record_error_points_at_its_element() -> None:
    error = InvalidRecord("upload", "Observation/x", "valueQuantity.value", "not a number")
    _, outcome = outcome_of(error)
    assert valid(outcome)["issue"][0]["expression"] == ["Observation.valueQuantity.value"]


def test_issues_are_checked() -> None:
    with pytest.raises(UsageError):
        operation_outcome([])
    with pytest.raises(UsageError):
        Issue("error", "bogus")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        Issue("dire", "invalid")  # type: ignore[arg-type]
    long = operation_outcome([Issue("warning", "too-long", "x" * 5000)])
    assert len(valid(long)["issue"][0]["diagnostics"]) == 1000


# -- CapabilityStatement ---------------------------------------------------------------

SMART = SmartEndpoints(
    token="https://node-a.example/auth/token", authorize="https://node-a.example/auth/authorize"
)
SOFTWARE = Software("medledger", "0.1.0")


def statement(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "base": BASE,
        "date_ns": T0,
        "software": SOFTWARE,
        "resources": [
            ResourceSupport("Observation", ("read", "vread", "search-type", "history-instance")),
            ResourceSupport("Condition", ("read", "search-type")),
            ResourceSupport("Patient", ("read",)),
        ],
        "system_interactions": ("search-system", "history-system"),
        "smart": SMART,
    }
    return capability_statement(**(arguments | overrides))


def test_the_capability_statement_is_valid_r4() -> None:
    capability = valid(statement())
    assert capability["kind"] == "instance"
    assert capability["implementation"]["url"] == BASE  # R4 cpb-15: an instance says where
    assert capability["fhirVersion"] == FHIR_VERSION == "4.0.1"
    assert capability["format"] == ["json"]
    assert capability["date"] == "2023-11-14T22:13:20Z"
    rest = capability["rest"][0]
    assert rest["mode"] == "server"
    oauth = rest["security"]["extension"][0]
    assert oauth["url"] == SMART_OAUTH_URIS
    assert {e["url"]: e["valueUri"] for e in oauth["extension"]} == {
        "authorize": SMART.authorize,
        "token": SMART.token,
    }
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    assert [i["code"] for i in rest["interaction"]] == ["search-system", "history-system"]


def test_the_statement_declares_what_search_implements() -> None:
    rest = statement()["rest"][0]
    by_type = {r["type"]: r for r in rest["resource"]}
    for resource_type in ("Observation", "Condition"):
        declared = by_type[resource_type]["searchParam"]
        assert [p["name"] for p in declared] == [p.name for p in parameters_for(resource_type)]
        for param in declared:  # each one is taken, with a value of its type
            value = {"token": "x", "date": "2020", "reference": "p"}[param["type"]]
            parse_query([(param["name"], value)], resource_type=resource_type)
    assert "searchParam" not in by_type["Patient"]
    assert by_type["Observation"]["readHistory"] is True
    assert by_type["Condition"]["readHistory"] is False
    assert [p["name"] for p in rest["searchParam"]] == [p.name for p in parameters_for(None)]


@pytest.mark.parametrize(
    "overrides",
    [
        {"system_interactions": ("search-everything",)},
        {"resources": [ResourceSupport("Patient", ("read",))] * 2},
    ],
)
def test_the_statement_refuses_what_r4_cannot_say(overrides: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        statement(**overrides)


def test_resource_support_is_checked() -> None:
    with pytest.raises(UsageError):
        ResourceSupport("NotAType", ("read",))
    with pytest.raises(UsageError):
        ResourceSupport("Patient", ("search",))
    with pytest.raises(UsageError):
        ResourceSupport("Patient", ())
    with pytest.raises(UsageError):
        ResourceSupport("Patient", ("read",), search_params=parameters_for("Patient"))
    twice = ResourceSupport("Patient", ("search-type",), search_params=parameters_for(None) * 2)
    with pytest.raises(UsageError):
        statement(resources=[twice])


# -- content negotiation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("format_param", "accept"),
    [
        (None, None),
        (None, ""),
        ("json", None),
        ("application/json", None),
        ("application/fhir+json", None),
        ("application/fhir json", None),  # an unencoded "+"
        ("JSON", "application/fhir+xml"),  # _format wins
        (None, "application/fhir+json"),
        (None, "application/json; charset=utf-8"),
        (None, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),  # a browser
        (None, "application/fhir+xml;q=1, application/*;q=0.1"),
    ],
)
def test_json_is_served(format_param: str | None, accept: str | None) -> None:
    assert negotiate(format_param, accept) == MEDIA_TYPE == "application/fhir+json; charset=utf-8"


@pytest.mark.parametrize(
    ("format_param", "accept"),
    [
        ("xml", None),
        ("application/fhir+xml", "application/fhir+json"),
        ("ttl", None),
        (None, "application/fhir+xml"),
        (None, "application/xml, text/xml"),
        (None, "application/json;q=0, application/fhir+xml"),
        (None, "application/json;q=zero"),
    ],
)
def test_anything_else_is_refused_with_406(format_param: str | None, accept: str | None) -> None:
    with pytest.raises(NotAcceptable) as refused:
        negotiate(format_param, accept)
    status, outcome = outcome_of(refused.value)
    assert status == 406
    assert valid(outcome)["issue"][0]["code"] == "not-supported"
    assert FORMAT_PARAM == "_format"


def test_bodies_keep_decimals_as_written() -> None:
    observation = parse_json(
        '{"resourceType": "Observation", "valueQuantity": {"value": 100.0, "unit": "µg"}}'
    )
    body = fhir_body(observation)
    assert b'"value":100.0' in body
    assert "µg".encode() in body
    assert parse_json(body) == observation
