"""The page keeps a patient's chart to that patient as records/chart.py does: for a table
of cases (one Patient per chart, identity by id, fullUrl or identifier and never by birth
date, every reference form, contained resources, Bundles that are no chart,
institution-level resources, NDJSON, the HL7 examples) the page's reading and sorting
(fhir-input.js ``documentsOf``, subject-check.js ``sortChart``) and Python's
(``fhir_sources.read_files``, ``chart.sort_chart``) keep, set aside and refuse the same
resources in the same words, or both refuse the files as naming several patients; the
lists they apply are the node's answer to ``GET /v1/fhir/categories``, never a copy.

The chart's Patient records stand for what the page opens; Python is given what they
say (their ids, and their identifiers as the index would hold them). Runs in Chromium
against the portal's files and that one route (no ledger)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI

from medledger.node.deps import authenticated
from medledger.node.routes import fhir_categories
from medledger.portal.serve import STATIC
from medledger.records import chart as rules
from medledger.records.chart import (
    CHART_BUNDLES,
    SHARED,
    AmbiguousChart,
    Chart,
    identifiers_named,
    sort_chart,
)
from medledger.records.errors import InvalidRecord
from medledger.records.fhir_codes import REQUIRED_CODES
from medledger.records.fhir_sources import Entry, Loaded, read_files
from tests.data import FHIR_EXAMPLES
from tests.portal.browser import browser_page, needs_browser, portal_only
from tests.records.test_chart import observation, patient

pytestmark = needs_browser

MRN = "urn:oid:1.2.36.146.595.217.0.1"
SECRET = "SECRET-4711"  # a value no refusal may repeat
BUNDLE_TYPES = REQUIRED_CODES["Bundle", "type"].codes
NOT_CHARTS = [kind for kind in BUNDLE_TYPES if kind not in CHART_BUNDLES]


def about(fhir_id: str) -> dict[str, str]:
    return {"reference": f"Patient/{fhir_id}"}


def bundle(*entries: tuple[str | None, object], kind: str = "collection",
           fhir_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    held = [{"resource": obj} if url is None else {"fullUrl": url, "resource": obj}
            for url, obj in entries]  # fmt: skip
    body: dict[str, Any] = {"resourceType": "Bundle", "type": kind, "entry": held}
    return body if fhir_id is None else {**body, "id": fhir_id}


def ndjson(*lines: object, end: bytes = b"\n") -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + end
                    for line in lines)  # fmt: skip


def no(source: str, resource: str, field: str, problem: str) -> str:
    """A refusal as both sides word it."""
    return str(InvalidRecord(source, resource, field, problem))


def kept(*sources: str, shared: Sequence[tuple[str, str]] = (),
         refused: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    return {"kept": list(sources), "shared": [list(s) for s in shared], "refused": list(refused)}


def ambiguous(*candidates: str) -> dict[str, Any]:
    return {"ambiguous": list(candidates)}


OTHER = "is another patient than this chart's"
SECOND = "is a second Patient resource: a chart holds one"
#: The chart's Patient record, as the page opens it.
ME = patient("me", (MRN, "1"), birthDate="1970-01-01")


@dataclass(frozen=True)
class Case:
    name: str
    files: tuple[tuple[str, bytes], ...]
    #: The chart's Patient records, as the page opens them.
    chart: tuple[dict[str, Any], ...] = ()
    #: What both sides decide; None where only their agreement is checked.
    expected: dict[str, Any] | None = None


def case(name: str, files: Sequence[tuple[str, object]], expected: dict[str, Any] | None,
         chart: Sequence[dict[str, Any]] = (ME,)) -> Case:  # fmt: skip
    encoded = tuple((n, c if isinstance(c, bytes) else json.dumps(c).encode()) for n, c in files)
    return Case(name, encoded, tuple(chart), expected)


def about_me(subject: Any, expected: dict[str, Any], **more: Any) -> Case:
    """One observation whose subject is ``subject``, for the chart of ``ME``."""
    return case(f"3: {json.dumps(subject)}", [("r.json", observation(subject, **more))], expected)


def refused_as(field: str, problem: str) -> dict[str, Any]:
    return kept(refused=[no("r.json", "Observation/o1", f"subject{field}", problem)])


def contained_patient(*identifiers: tuple[str, str]) -> dict[str, Any]:
    return {"contained": [patient("p1", *identifiers)]}


# Latin-1, not UTF-8.
LATIN1 = b'{"resourceType": "Basic", "id": "n", "code": {"text": "M\xfcller"}}'
URN_ME, URN_YOU = "urn:uuid:0a6f3bc1-26c6-4bb8-a7c5-5a1b4c3c2a01", "urn:uuid:5f7e3c0e-3e4b"
EXAMPLES = tuple(sorted(FHIR_EXAMPLES.glob("*.json")))

CASES = [
    # 1. One Patient resource per chart.
    case("1: two Patients, and the chart holds none",
         [("a.json", patient("me")), ("b.json", patient("you"))],
         ambiguous("Patient/me", "Patient/you"), chart=()),
    case("1: a Patient with an id is named before one without",
         [("b.json", bundle((None, patient(None)), (None, patient("you"))))],
         ambiguous("Patient/you", "b.json#entry[0]"), chart=()),
    case("1: two versions of one Patient, and the chart holds none",
         [("a.json", patient("me")), ("b.json", patient("me", gender="female"))],
         kept("a.json", "b.json"), chart=()),
    case("1: the chart's Patient again is kept, a second one of the same person is not",
         [("me.json", patient("me", (MRN, "1"), gender="female")),
          ("alias.json", patient("alias", (MRN, "1"))),
          ("r.json", observation(about("alias")))],
         kept("me.json", "r.json", refused=[no("alias.json", "Patient/alias", "", SECOND)])),
    case("1: a chart whose Patient has no id takes no other",
         [("p.json", patient("me")), ("r.json", observation(about("me")))],
         kept("r.json", refused=[no("p.json", "Patient/me", "", SECOND)]), chart=[patient(None)]),
    # 2. Who the patient is: by id, fullUrl or identifier, never by birth date.
    case("2: a Patient born the same day is another person",
         [("twin.json", patient("twin", (MRN, "2"), birthDate="1970-01-01")),
          ("r.json", observation(about("twin")))],
         kept(refused=[no("twin.json", "Patient/twin", "", OTHER),
                       no("r.json", "Observation/o1", "subject.reference", rules.ANOTHER)])),
    case("2: an identifier in common ties a Patient born another day to the chart",
         [("alias.json", patient("alias", (MRN, "1"), birthDate="1999-09-09")),
          ("r.json", observation(about("alias")))],
         kept("r.json", refused=[no("alias.json", "Patient/alias", "", SECOND)])),
    # 3. Every reference form, for the chart of ME (MRN 1).
    about_me({"reference": "#p1"}, kept("r.json"), **contained_patient((MRN, "1"))),
    about_me({"reference": "#p1"}, refused_as(".reference", rules.NOT_SHOWN),
             **contained_patient((MRN, SECRET))),
    about_me({"reference": "#p1"}, refused_as(".reference", rules.NOT_SHOWN),
             **contained_patient()),
    about_me({"reference": "#g1"}, kept("r.json"),
             contained=[{"resourceType": "Group", "id": "g1"}]),
    about_me({"reference": "#nowhere"}, refused_as(".reference", rules.NO_CONTAINED)),
    about_me({"reference": "#"}, kept("r.json")),
    about_me({"reference": URN_YOU}, refused_as(".reference", rules.NO_ENTRY)),
    about_me({"reference": f"Patient?identifier={MRN}|1"}, kept("r.json")),
    about_me({"reference": f"Patient?identifier={MRN}|{SECRET}"},
             refused_as(".reference", rules.UNKNOWN_IDENTIFIER)),
    about_me({"identifier": {"system": MRN, "value": "1"}}, kept("r.json")),
    about_me({"type": "Patient", "identifier": {"system": MRN, "value": SECRET}},
             refused_as(".identifier", rules.UNKNOWN_IDENTIFIER)),
    about_me({"type": "Device", "identifier": {"system": "urn:serial", "value": SECRET}},
             kept("r.json")),
    about_me({"display": SECRET}, kept("r.json")),
    about_me({"reference": "Patient/me/_history/3"}, kept("r.json")),
    about_me({"reference": "https://ehr.example.org/fhir/Patient/me/_history/2"}, kept("r.json")),
    about_me({"reference": "https://ehr.example.org/fhir/Patient/you", "display": SECRET},
             refused_as(".reference", rules.ANOTHER)),
    about_me({"reference": "Group/g1"}, kept("r.json")),
    about_me({"reference": f"not a reference {SECRET}"},
             refused_as(".reference", rules.UNRESOLVED)),
    case("3: fullUrls name the chart's Patient and another within their Bundle",
         [("b.json", bundle((URN_ME, patient("me")), (URN_YOU, patient(None, (MRN, "2"))),
                            (None, observation({"reference": URN_ME})),
                            (None, observation({"reference": URN_YOU}, "o2"))))],
         kept("b.json#entry[0]", "b.json#entry[2]", refused=[
             no("b.json#entry[1]", "Patient", "", OTHER),
             no("b.json#entry[3]", "Observation/o2", "subject.reference", rules.ANOTHER)])),
    case("3: a fullUrl names an entry of its own file only",
         [("a.json", bundle((URN_ME, patient("me")))),
          ("r.json", observation({"reference": URN_ME}))],
         kept("a.json#entry[0]", refused=[
             no("r.json", "Observation/o1", "subject.reference", rules.NO_ENTRY)])),
    case("3: the added files' Patient ties its identifiers, with no Patient in the chart",
         [("p.json", patient("me", (MRN, "7"))),
          ("r.json", observation({"identifier": {"system": MRN, "value": "7"}}))],
         kept("p.json", "r.json"), chart=()),
    case("3: a next version of the chart's Patient ties its new identifiers",
         [("p.json", patient("me", (MRN, "9"))),
          ("r.json", observation({"reference": f"Patient?identifier={MRN}|9"}))],
         kept("p.json", "r.json"), chart=[patient("me")]),
    case("3: every reference of a list element is judged",
         [("r.json", {"resourceType": "Account", "id": "a1", "status": "active",
                      "subject": [about("me"), about("you")]})],
         kept(refused=[no("r.json", "Account/a1", "subject[1].reference", rules.ANOTHER)])),
    # 4. Contained resources are judged too.
    case("4: a contained resource about another patient refuses its container",
         [("r.json", observation(about("me"), contained=[observation(about("you"), "in")]))],
         kept(refused=[no("r.json", "Observation/o1", "contained[0].subject.reference",
                          rules.ANOTHER)])),
    case("4: contained resources about the patient, and a contained Patient nobody names",
         [("r.json", observation(about("me"), contained=[observation(about("me"), "in"),
                                                         patient("p9", (MRN, SECRET))]))],
         kept("r.json")),
    # 5. Bundles that are no chart refuse their file, whatever they hold.
    *[case(f"5: a {kind} Bundle",
           [("b.json", bundle((None, patient("you")), (None, observation(about("you"))),
                              kind=kind)),
            ("r.json", observation(about("me"), "o2"))],
           kept("r.json", refused=[no("b.json", "Bundle", "type",
                                      f"a {kind} Bundle is not a chart")]), chart=())
      for kind in NOT_CHARTS],
    case("5: a searchset inside a collection refuses the file",
         [("export.json", bundle((None, patient("me")), (None, bundle(kind="searchset",
                                                                      fhir_id="inner"))))],
         kept(refused=[no("export.json", "Bundle/inner", "type",
                          "a searchset Bundle is not a chart")]), chart=()),
    *[case(f"5: a {kind} Bundle is read entry by entry",
           [("b.json", bundle((None, patient("me")), (None, observation(about("me"))),
                              kind=kind))],
           kept("b.json#entry[0]", "b.json#entry[1]"), chart=())
      for kind in sorted(CHART_BUNDLES)],
    case("5: a Bundle of no FHIR type",
         [("b.json", bundle(kind="weird")), ("r.json", observation(about("me")))],
         kept("r.json", refused=[no("b.json", "Bundle", "type",
                                    "not one of " + ", ".join(BUNDLE_TYPES))])),
    # 6. Institution-level resources are set aside, never sealed.
    case("6: practitioners, organizations, medications, places and equipment",
         [("dr.json", {"resourceType": "Practitioner", "id": "dr"}),
          ("org.json", {"resourceType": "Organization", "id": "org"}),
          ("med.json", {"resourceType": "Medication", "id": "med"}),
          ("loc.json", {"resourceType": "Location", "id": "loc"}),
          ("eq.json", {"resourceType": "Device", "id": "monitor"}),
          ("im.json", {"resourceType": "Device", "id": "pacer", "patient": about("you")}),
          ("mine.json", {"resourceType": "Device", "id": "mine", "patient": about("me")}),
          ("r.json", observation(about("me")))],
         kept("mine.json", "r.json",
              shared=[("dr.json", "Practitioner/dr"), ("org.json", "Organization/org"),
                      ("med.json", "Medication/med"), ("loc.json", "Location/loc"),
                      ("eq.json", "Device/monitor")],
              refused=[no("im.json", "Device/pacer", "patient.reference", rules.ANOTHER)])),
    case("6: in a Bundle",
         [("b.json", bundle(("urn:uuid:dr", {"resourceType": "PractitionerRole"}),
                            (None, observation(about("me"),
                                               performer=[{"reference": "urn:uuid:dr"}]))))],
         kept("b.json#entry[1]", shared=[("b.json#entry[0]", "PractitionerRole")])),
    # 7. NDJSON: one resource a line, each named file:line.
    case("7: an NDJSON export",
         [("export.ndjson", ndjson(patient("me"), observation(about("me")),
                                   observation(about("you"), "o2"), b"  \t",
                                   b'{"resourceType": "Observation", ',
                                   {"resourceType": "Practitioner", "id": "dr"}, end=b"\r\n"))],
         kept("export.ndjson:1", "export.ndjson:2",
              shared=[("export.ndjson:6", "Practitioner/dr")],
              refused=[no("export.ndjson:5", "line", "", "not valid JSON"),
                       no("export.ndjson:3", "Observation/o2", "subject.reference",
                          rules.ANOTHER)]), chart=()),
    case("7: a fullUrl names an entry of its own line only",
         [("lines.ndjson", ndjson(bundle((URN_ME, patient("me"))),
                                  observation({"reference": URN_ME})))],
         kept("lines.ndjson:1#entry[0]", refused=[
             no("lines.ndjson:2", "Observation/o1", "subject.reference", rules.NO_ENTRY)]),
         chart=()),
    case("7: a line that is not UTF-8 is refused alone",
         [("x.NDJSON", ndjson(observation(about("me")), LATIN1))],
         kept("x.NDJSON:1", refused=[no("x.NDJSON:2", "line", "", "not valid JSON")])),
    case("7: a line that holds a searchset is refused alone",
         [("s.ndjson", ndjson(bundle((None, observation(about("you"))), kind="searchset",
                                     fhir_id="found"), observation(about("me"))))],
         kept("s.ndjson:2", refused=[no("s.ndjson:1", "Bundle/found", "type",
                                        "a searchset Bundle is not a chart")])),
    case("7: NDJSON in a .json file is no JSON",
         [("two.json", ndjson(observation(about("me")), observation(about("me"), "o2")))],
         kept(refused=[no("two.json", "file", "", "not valid JSON")])),
    # With no Patient resource anywhere, the references must agree.
    case("references that agree name the patient",
         [("a.json", observation(about("me"))),
          ("b.json", observation({"reference": "Patient/me/_history/1"}, "o2"))],
         kept("a.json", "b.json"), chart=()),
    case("references that disagree name no one patient",
         [("a.json", observation(about("me"))), ("c.json", observation(about("you"), "o3"))],
         ambiguous("Patient/me", "Patient/you"), chart=()),
    case("a resource that names nobody",
         [("r.json", {"resourceType": "Appointment", "id": "a1", "status": "booked"})],
         kept("r.json"), chart=()),
    # The HL7 R4 examples, every file at once.
    case("the HL7 examples, and the chart holds no Patient",
         [(p.name, p.read_bytes()) for p in EXAMPLES], None, chart=()),
    *[case(f"the HL7 examples, and the chart holds {p.name}",
           [(e.name, e.read_bytes()) for e in EXAMPLES], None,
           chart=[json.loads(p.read_text())])
      for p in (FHIR_EXAMPLES / "patient-example1.json", FHIR_EXAMPLES / "patient-example2.json")],
]  # fmt: skip


# --- Python's side ------------------------------------------------------------------------


def _chart(patients: Sequence[dict[str, Any]]) -> Chart:
    """What the page knows of the chart, for sort_chart: the ids of its Patient records,
    and their identifiers as the index holds them for this patient."""
    held = [Loaded("chart", tuple(Entry("chart", p) for p in patients))]
    return Chart(patient_ids=frozenset(p["id"] for p in patients if "id" in p),
                 has_patient=bool(patients), ours=frozenset(identifiers_named(held)))  # fmt: skip


# Python names where in a file's text JSON broke; the page, whose parser's message may
# quote the file, does not.
_WHERE = re.compile(r" \((line \d+, )?column \d+\)$")


def python_sorts(item: Case, folder: Path) -> dict[str, Any]:
    folder.mkdir()
    for name, data in item.files:
        (folder / name).write_bytes(data)
    read = list(read_files([folder / name for name, _ in item.files]))
    unread = [_WHERE.sub("", str(r)) for r in read if isinstance(r, InvalidRecord)]
    try:
        result = sort_chart([r for r in read if isinstance(r, Loaded)], _chart(item.chart))
    except AmbiguousChart as caught:
        return ambiguous(*caught.candidates)
    return kept(*[source for source, _ in result.records],
                shared=[(r.source, r.resource) for r in result.shared],
                refused=[*unread, *map(str, result.refused)])  # fmt: skip


# --- the page's side ----------------------------------------------------------------------

# Reads and sorts each case as upload.js does, with the lists the node serves.
_PAGE_SORTS = """async (cases) => {
    const { unbase64 } = await import('/portal/js/crypto.js');
    const { Refused, documentsOf, fhirRules } = await import('/portal/js/fhir-input.js');
    const { AmbiguousChart, chartOf, sortChart } = await import('/portal/js/subject-check.js');
    const answer = await fetch('/v1/fhir/categories');
    const rules = fhirRules(await answer.json());
    return cases.map(({ files, chart }) => {
        const refused = [];
        const documents = [];
        for (const [name, data] of files) {
            for (const read of documentsOf(unbase64(data), name, rules)) {
                (read instanceof Refused ? refused : documents).push(read);
            }
        }
        try {
            const sorted = sortChart(documents, chartOf(chart), rules);
            return { kept: sorted.records.map((r) => r.source),
                     shared: sorted.shared.map((r) => [r.source, r.resource]),
                     refused: [...refused, ...sorted.refused].map((r) => r.message) };
        } catch (error) {
            if (!(error instanceof AmbiguousChart)) throw error;
            return { ambiguous: error.candidates };
        }
    });
}"""


def _served() -> FastAPI:
    """The node's category route, without its signed-request check."""
    app = FastAPI()
    app.include_router(fhir_categories.router)
    app.dependency_overrides[authenticated] = lambda: None
    return app


@pytest.fixture(scope="module")
def portal() -> Iterator[str]:
    with portal_only(_served()) as url:
        yield url


@pytest.fixture(scope="module")
def page_sorts(portal: str) -> list[dict[str, Any]]:
    cases = [{"files": [[n, base64.b64encode(d).decode()] for n, d in c.files],
              "chart": list(c.chart)} for c in CASES]  # fmt: skip
    with browser_page() as (page, problems):
        page.goto(f"{portal}/portal/")
        outcomes: list[dict[str, Any]] = page.evaluate(_PAGE_SORTS, cases)
    assert problems == [], problems
    return outcomes


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_the_page_sorts_a_chart_as_chart_py_does(
    page_sorts: list[dict[str, Any]], tmp_path: Path, index: int
) -> None:
    item = CASES[index]
    python = python_sorts(item, tmp_path / "files")
    if item.expected is not None:
        assert python == item.expected
    assert page_sorts[index] == python


def test_the_hl7_examples_are_sorted_not_all_refused(page_sorts: list[dict[str, Any]]) -> None:
    """The agreement on the examples is about something: each side keeps, sets aside and
    refuses some of them, and without a chart Patient names all ten Patients."""
    outcomes = {c.name: o for c, o in zip(CASES, page_sorts, strict=True)}
    assert len(outcomes["the HL7 examples, and the chart holds no Patient"]["ambiguous"]) == 10
    for name in ("patient-example1.json", "patient-example2.json"):
        outcome = outcomes[f"the HL7 examples, and the chart holds {name}"]
        assert name in outcome["kept"] and outcome["shared"] and outcome["refused"]


def test_no_refusal_of_the_page_repeats_a_value_from_the_files(
    page_sorts: list[dict[str, Any]],
) -> None:
    assert any(SECRET.encode() in data for c in CASES for _, data in c.files)
    messages = [m for outcome in page_sorts for m in outcome.get("refused", [])]
    assert messages and not [m for m in messages if SECRET in m]


# --- the lists are the node's -------------------------------------------------------------


def test_the_node_serves_the_lists_of_chart_py(portal: str) -> None:
    served = requests.get(f"{portal}/v1/fhir/categories", timeout=30).json()
    assert served["shared_types"] == sorted(SHARED)
    assert served["non_chart_bundle_types"] == NOT_CHARTS
    assert set(served["non_chart_bundle_types"]) == set(served["bundle_types"]) - CHART_BUNDLES


_SORT_ONE = """async ([files, chart]) => {
    const { documentsOf, fhirRules } = await import('/portal/js/fhir-input.js');
    const { chartOf, sortChart } = await import('/portal/js/subject-check.js');
    const rules = fhirRules(await (await fetch('/v1/fhir/categories')).json());
    const documents = files.flatMap(([name, text]) =>
        documentsOf(new TextEncoder().encode(text), name, rules));
    const sorted = sortChart(documents, chartOf(chart), rules);
    return { kept: sorted.records.map((r) => r.source),
             shared: sorted.shared.map((r) => r.resource),
             refused: sorted.refused.map((r) => r.message) };
}"""


def test_the_page_applies_the_lists_the_node_serves_and_no_copy_of_its_own(portal: str) -> None:
    """Served other lists, the page decides by them: an Observation set aside, a
    Practitioner judged as a record, a collection Bundle refused as no chart."""
    files = [["dr.json", json.dumps({"resourceType": "Practitioner", "id": "dr"})],
             ["r.json", json.dumps(observation(about("me")))],
             ["b.json", json.dumps(bundle((None, observation(about("me"), "o2"))))]]  # fmt: skip

    def other_lists(route: Any) -> None:
        served = route.fetch().json()
        route.fulfill(json={**served, "shared_types": ["Observation"],
                            "non_chart_bundle_types": ["collection"]})  # fmt: skip

    with browser_page() as (page, problems):
        page.goto(f"{portal}/portal/")
        honest = page.evaluate(_SORT_ONE, [files, [ME]])
        page.route("**/v1/fhir/categories", other_lists)
        lied = page.evaluate(_SORT_ONE, [files, [ME]])
    assert problems == [], problems
    assert honest == {"kept": ["r.json", "b.json#entry[0]"], "shared": ["Practitioner/dr"],
                      "refused": []}  # fmt: skip
    refused = "b.json: Bundle.type: a collection Bundle is not a chart"
    assert lied == {"kept": ["dr.json"], "shared": ["Observation/o1"], "refused": [refused]}


def test_the_page_s_code_holds_no_copy_of_the_lists() -> None:
    """What the page applies comes from the node; a list copied into its code would drift
    from chart.py unseen."""
    named = sorted(SHARED) + NOT_CHARTS
    for script in ("subject-check.js", "fhir-input.js", "upload.js", "add-records.js"):
        code = (STATIC / "js" / script).read_text()
        quoted = [n for n in named if re.search(rf"""['"`]{re.escape(n)}['"`]""", code)]
        assert quoted == [], (script, quoted)
