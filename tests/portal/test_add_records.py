"""A patient adds their own records in the portal, in Chromium against real nodes: files
are read, kept to the patient's chart, checked, sealed and signed in the page, and the
node commits them as the patient's own account. Each outcome is checked from Python, on
the vault and the ledger: what the page wrote opens with the patient's key to the
canonical JSON of the file, a second upload of a resource is its next version,
institution-level resources are listed as set aside, and whatever the page refuses
(another patient's resource, a search answer, files that name several patients, a file
that is not JSON, an institution the patient is not enrolled at, a record tampered with
after signing) writes nothing. test_chart_rules.py holds the page's chart rules to
records/chart.py case by case."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.crypto.canonical import canonical_json
from medledger.crypto.json_numbers import parse_json
from medledger.ledger.contracts.membership import MEMBER_NS
from medledger.node.identities import PATIENT_LABEL, encryption_key
from medledger.node.uploads import upload_records
from medledger.records.categories import Refinement, category_of, category_table
from medledger.records.sealed import SealedRecord, open_as_patient
from medledger.records.wire import committed_from_json
from tests.data import FHIR_EXAMPLES
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.portal.browser import (
    ARTIFACTS,
    needs_browser,
    run,
    sign_in,
    write_keystore,
)

pytestmark = needs_browser

PASSPHRASE = "add records passphrase"
PATIENT, DR_A = key("portal-add:patient"), key("portal-add:dr-a")
# Enrolled at Hospital A, with no Patient record in their chart there.
NEWCOMER = key("portal-add:newcomer")


def _example(name: str) -> dict[str, Any]:
    return dict(json.loads((FHIR_EXAMPLES / name).read_text()))


# The chart's Patient record, written by Dr A: who the patient is in FHIR terms.
ME = _example("patient-example1.json")  # Patient/example
ANOTHER = _example("patient-example2.json")  # Patient/f001, born another day
ABOUT_ME = _example("observation-example1.json")  # subject Patient/example
ABOUT_ANOTHER = _example("observation-example2.json")  # subject Patient/f001
DOCTOR = _example("practitioner-example1.json")  # Practitioner/example
ANOTHER_IS = "names another patient than this chart's"


def _reading(fhir_id: str, systolic: int) -> dict[str, Any]:
    """A blood pressure reading the patient took at home (category vital-signs)."""
    return {
        "resourceType": "Observation", "id": fhir_id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                  "observation-category", "code": "vital-signs"}]}],
        "code": {"text": "Blood pressure at home"},
        "subject": {"reference": "Patient/example"},
        "component": [{"code": {"text": "Systolic"},
                       "valueQuantity": {"value": systolic, "unit": "mmHg"}}],
        "note": [{"text": "Morgens, sitzend \u2013 nach dem Kaffee"}],
    }  # fmt: skip


def _by_identifier(fhir_id: str, value: str) -> dict[str, Any]:
    """A reading whose subject is named by a medical record number alone."""
    system = ME["identifier"][0]["system"]
    return {**_reading(fhir_id, 120), "subject": {"identifier": {"system": system, "value": value}}}


def _file(name: str, content: object) -> dict[str, Any]:
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    return {"name": name, "mimeType": "application/json", "buffer": data}


def _ndjson(name: str, *lines: object) -> dict[str, Any]:
    data = b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n"
                    for line in lines)  # fmt: skip
    return {"name": name, "mimeType": "application/fhir+ndjson", "buffer": data}


async def _set_up(net: Network) -> None:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_patient(PATIENT)  # enrolled at Hospital A only
    await net.register_patient(NEWCOMER)
    async with net.client("hospital-a", DR_A) as dr_a:
        sources = [("patient.json", ME), ("clinic-reading.json", _reading("shared-id", 131))]
        _, rejected = await upload_records(dr_a, PATIENT.address, sources)
        assert not rejected, rejected
    await net.checkpoint()


async def _vault(
    net: Network, node: str = "hospital-a", who: Any = PATIENT
) -> list[dict[str, Any]]:
    async with net.client(node, who) as client:
        return list(await client.get("/v1/records", {"patient": who.address}))


async def _sealed(net: Network, record_id: str, version: int) -> SealedRecord:
    async with net.client("hospital-a", PATIENT) as client:
        answer = await client.get(f"/v1/records/{record_id}", {"version": version})
    return committed_from_json(answer).sealed


def _opened(net: Network, row: dict[str, Any]) -> bytes:
    sealed = run(_sealed(net, row["record_id"], row["version"]))
    assert sealed.check() == PATIENT.address
    return open_as_patient(sealed, encryption_key(PATIENT, PATIENT_LABEL))


def _own(rows: list[dict[str, Any]], fhir_id: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["author"] == PATIENT.address and r["fhir_id"] == fhir_id),
                  key=lambda r: int(r["version"]))  # fmt: skip


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("add-records")) as network:
        run(_set_up(network))
        yield network


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keystore(tmp_path_factory.mktemp("keys"), PATIENT, PASSPHRASE)


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keystore(tmp_path_factory.mktemp("keys"), NEWCOMER, PASSPHRASE, "newcomer")


def _signed_in(page: Any, net: Network, keystore: Path, node: str = "hospital-a") -> list[str]:
    """Sign in; the records POSTed from then on."""
    sign_in(page, net.nodes[node].url, keystore, PASSPHRASE)
    page.wait_for_selector("#signed-in:not([hidden])")
    page.wait_for_selector("#records tbody tr, #records-empty:not([hidden])")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST"
            and r.url.endswith("/v1/records") else None)  # fmt: skip
    return posted


def _add(page: Any, *files: dict[str, Any]) -> str:
    page.set_input_files("#add-files", list(files))
    page.click("button.add")
    page.wait_for_selector("#add-result:not(:empty), #add-error:not(:empty)")
    return str(page.text_content("#add-result") or page.text_content("#add-error"))


def test_a_patient_adds_a_reading_that_lists_as_theirs_and_opens_as_written(
    net: Network, keystore: Path, page: Any
) -> None:
    reading = _reading("home-2026-01-05", 124)
    _signed_in(page, net, keystore)
    assert _add(page, _file("reading.json", reading)) == "Added 1 record."
    (row,) = _own(run(_vault(net)), "home-2026-01-05")
    shown = f"#records tr[data-record='{row['record_id']}']"
    page.wait_for_selector(shown)
    assert page.get_attribute(shown, "data-author") == PATIENT.address
    assert page.locator(f"{shown} td").nth(3).text_content() == "you"
    assert page.locator(f"{shown} td").nth(1).text_content() == "Vital signs"
    page.screenshot(path=str(ARTIFACTS / "add-1-added.png"), full_page=True)

    assert (row["version"], row["category"]) == (1, category_of("Observation", reading))
    assert _opened(net, row) == canonical_json(reading)


def test_adding_a_resource_again_makes_its_next_version_and_leaves_the_clinics_alone(
    net: Network, keystore: Path, page: Any
) -> None:
    posted = _signed_in(page, net, keystore)
    first, second = _reading("shared-id", 118), _reading("shared-id", 121)
    assert _add(page, _file("first.json", first)) == "Added 1 record."
    result = _add(page, _file("again.json", second))
    assert result == "Added 1 record (1 new version of records you wrote before)."
    assert len(posted) == 2

    v1, v2 = _own(run(_vault(net)), "shared-id")
    assert v1["record_id"] == v2["record_id"] and (v1["version"], v2["version"]) == (1, 2)
    assert run(_sealed(net, v2["record_id"], 2)).header.previous.hex() == v1["digest"][2:]
    assert _opened(net, v2) == canonical_json(second)
    page.wait_for_selector(f"#records tr[data-record='{v2['record_id']}'][data-version='2']")
    # Dr A's record of a resource with the same type and id is a record of its own.
    (clinic,) = [r for r in run(_vault(net)) if r["author"] == DR_A.address
                 and r["fhir_id"] == "shared-id"]  # fmt: skip
    assert clinic["version"] == 1 and clinic["record_id"] != v1["record_id"]


def test_a_bundle_adds_each_of_its_entries_that_are_the_patient_s(
    net: Network, keystore: Path, page: Any
) -> None:
    """Another hospital's export: its Patient record of the same person (an identifier in
    common) is refused, as the chart holds one, but what names it is the patient's; its
    practitioner is set aside, listed apart from the refusals."""
    me = {**ME, "id": "me-elsewhere"}
    reading = {**_reading("bundled-1", 140), "subject": {"reference": "urn:uuid:me"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:me", "resource": me}, {"resource": reading},
        {"resource": ABOUT_ME}, {"resource": DOCTOR},
    ]}  # fmt: skip
    _signed_in(page, net, keystore)
    assert _add(page, _file("export.json", bundle)) == "Added 2 records. 1 resource refused:"
    assert page.locator("#add-refused li").all_text_contents() == [
        "export.json#entry[0]: Patient/me-elsewhere: is a second Patient resource: "
        "a chart holds one"
    ]
    assert page.locator("#add-shared li").all_text_contents() == [
        "export.json#entry[3]: Practitioner/example"
    ]
    assert "1 institution-level resource" in str(page.text_content("#add-shared-note"))
    page.screenshot(path=str(ARTIFACTS / "add-3-export.png"), full_page=True)
    rows = run(_vault(net))
    assert _opened(net, _own(rows, "bundled-1")[0]) == canonical_json(reading)
    assert _own(rows, "example")[0]["category"] == category_of("Observation", ABOUT_ME)
    assert _own(rows, "me-elsewhere") == []
    assert not [r for r in rows if r["resource_type"] == "Practitioner"]


def test_an_ndjson_file_adds_a_resource_a_line(net: Network, keystore: Path, page: Any) -> None:
    first, second = _reading("line-1", 117), _reading("line-2", 119)
    _signed_in(page, net, keystore)
    added = _add(page, _ndjson("home.ndjson", first, b"", second, ABOUT_ANOTHER, DOCTOR))
    assert added == "Added 2 records. 1 resource refused:"
    assert page.locator("#add-refused li").all_text_contents() == [
        f"home.ndjson:4: Observation/f001.subject.reference: {ANOTHER_IS}"
    ]
    assert page.locator("#add-shared li").all_text_contents() == [
        "home.ndjson:5: Practitioner/example"
    ]
    rows = run(_vault(net))
    assert _opened(net, _own(rows, "line-1")[0]) == canonical_json(first)
    assert _opened(net, _own(rows, "line-2")[0]) == canonical_json(second)


def test_a_medical_record_number_of_the_chart_s_patient_names_the_patient(
    net: Network, keystore: Path, page: Any
) -> None:
    """With no patient index to ask, the page ties an identifier through the chart's
    Patient record it opens (Dr A's, with the patient's MRN)."""
    reading = _by_identifier("by-mrn", ME["identifier"][0]["value"])
    _signed_in(page, net, keystore)
    assert _add(page, _file("by-mrn.json", reading)) == "Added 1 record."
    assert _opened(net, _own(run(_vault(net)), "by-mrn")[0]) == canonical_json(reading)


def test_a_chart_without_a_patient_record_takes_one_and_no_other(
    net: Network, newcomer: Path, page: Any
) -> None:
    """Files that name two patients, for a chart that holds no Patient record, are refused
    whole; a Patient added on its own is then the chart's, and another is refused."""
    posted = _signed_in(page, net, newcomer)
    error = _add(page, _file("me.json", ME), _file("someone.json", ANOTHER))
    assert error.startswith("The files name 2 patients (Patient/example, Patient/f001)"), error
    assert "nothing was written" in error
    assert posted == [] and run(_vault(net, who=NEWCOMER)) == []

    assert _add(page, _file("me.json", ME)) == "Added 1 record."
    assert _add(page, _file("someone.json", ANOTHER)) == "Nothing was written. 1 resource refused:"
    (refusal,) = page.locator("#add-refused li").all_text_contents()
    assert refusal == "someone.json: Patient/f001: is another patient than this chart's"
    assert [r["fhir_id"] for r in run(_vault(net, who=NEWCOMER))] == ["example"]


SEARCH = {"resourceType": "Bundle", "id": "found", "type": "searchset",
          "entry": [{"resource": ABOUT_ME}]}  # fmt: skip
CONTAINER = {**_reading("container", 120), "contained": [ABOUT_ANOTHER]}

REFUSALS = [
    (_file("theirs.json", ABOUT_ANOTHER), "theirs.json: Observation/f001.subject.reference: "
     f"{ANOTHER_IS}"),
    (_file("someone.json", ANOTHER), "someone.json: Patient/f001: is another patient than "
     "this chart's"),
    (_file("search.json", SEARCH), "search.json: Bundle/found.type: a searchset Bundle is "
     "not a chart"),
    (_file("contained.json", CONTAINER), "contained.json: Observation/container."
     f"contained[0].subject.reference: {ANOTHER_IS}"),
    (_file("their-mrn.json", _by_identifier("their-mrn", "98765")), "their-mrn.json: "
     "Observation/their-mrn.subject.identifier: names a patient by an identifier not known "
     "as this chart's patient's"),
    (_ndjson("theirs.ndjson", b" ", ABOUT_ANOTHER), "theirs.ndjson:2: Observation/f001."
     f"subject.reference: {ANOTHER_IS}"),
    (_file("broken.json", b'{"resourceType": "Observation", '), "broken.json: file: "
     "not valid JSON"),
    # Latin-1, not UTF-8: sealed as U+FFFD it would say other than the file does.
    (_file("latin1.json", b'{"resourceType": "Basic", "id": "n", "code": {"text": "M\xfcller"}}'),
     "latin1.json: file: not valid JSON"),
    (_file("odd.json", {"resourceType": "Spaceship"}), "odd.json: Resource.resourceType: "
     "unknown resource type"),
    (_file("bundle.json", {"resourceType": "Bundle", "entry": []}), "bundle.json: "
     "Bundle.type: required"),
    (_file("big.json", b'{"resourceType": "Basic", "id": "n", "code": {}, "x": 9007199254740993}'),
     "big.json: Basic/n: not canonicalizable: an integer beyond 2^53"),
]  # fmt: skip


@pytest.mark.parametrize(("upload", "message"), REFUSALS, ids=[u["name"] for u, _ in REFUSALS])
def test_what_the_page_refuses_is_explained_and_writes_nothing(
    net: Network, keystore: Path, page: Any, upload: dict[str, Any], message: str
) -> None:
    before = run(_vault(net))
    posted = _signed_in(page, net, keystore)
    assert _add(page, upload) == "Nothing was written. 1 resource refused:"
    (refusal,) = page.locator("#add-refused li").all_text_contents()
    assert refusal == message
    assert posted == [] and run(_vault(net)) == before


def test_a_patient_not_enrolled_here_is_told_so_and_nothing_is_written(
    net: Network, keystore: Path, page: Any
) -> None:
    before = run(_vault(net, "hospital-b"))
    posted = _signed_in(page, net, keystore, node="hospital-b")
    error = _add(page, _file("reading.json", _reading("elsewhere", 120)))
    assert error.startswith("You are not enrolled at hospital-b"), error
    assert "nothing was written" in error
    page.screenshot(path=str(ARTIFACTS / "add-2-not-enrolled.png"), full_page=True)
    assert posted == [] and run(_vault(net, "hospital-b")) == before


# Seals one reading in the page with the node's recipients, then posts it with one
# ciphertext byte flipped (when asked) and as sealed: what the node answers to each.
_TAMPER = """async ([text, flip]) => {
    const { session, call } = await import('/portal/js/session.js');
    const crypto = await import('/portal/js/crypto.js');
    const { checkedRecipients } = await import('/portal/js/recipients.js');
    const { checkResource, fhirRules, parseJson } = await import('/portal/js/fhir-input.js');
    const { KeyWrapper, sealRecord, secureRandomBytes } = await import('/portal/js/seal.js');
    const me = session.key.address;
    const answer = await call('GET', `/v1/records/recipients?patient=${me}`);
    const recipients = await checkedRecipients(answer, session.key, session.trust);
    const rules = fhirRules(await call('GET', '/v1/fhir/categories'));
    const resource = checkResource(parseJson(text), 'tamper.json', rules);
    const draft = { recordId: secureRandomBytes(16), version: 1, previous: new Uint8Array(32),
                    patient: me, patientKey: recipients.patientKey, ...resource };
    const wrapper = await KeyWrapper.create(recipients);
    const sealed = await sealRecord(draft, resource.canonical,
                                    { network: recipients.network, author: session.key, wrapper });
    const outcomes = [];
    for (const bad of [flip, false]) {
        const ciphertext = crypto.unbase64(sealed.ciphertext);
        if (bad) ciphertext[ciphertext.length - 20] ^= 1;
        const record = { ...sealed, ciphertext: crypto.base64(ciphertext) };
        try {
            await call('POST', '/v1/records', { records: [{ sealed: record, fhir_id: null }] });
            outcomes.push('written');
        } catch (error) {
            outcomes.push(error.message);
        }
    }
    return outcomes;
}"""


def test_a_record_tampered_with_after_the_page_sealed_it_is_refused_by_the_node(
    net: Network, keystore: Path, page: Any
) -> None:
    _signed_in(page, net, keystore)
    text = json.dumps(_reading("tampered", 99))
    before = len(run(_vault(net)))
    tampered, intact = page.evaluate(_TAMPER, [text, True])
    assert tampered.startswith("422 RecordTampered") and "ciphertext" in tampered, tampered
    # The same record as sealed is written: the flipped byte alone was refused.
    assert intact == "written"
    assert len(run(_vault(net))) == before + 1


_CATEGORIES = """async (resources) => {
    const { call } = await import('/portal/js/session.js');
    const { categoryOf, fhirRules } = await import('/portal/js/fhir-input.js');
    const rules = fhirRules(await call('GET', '/v1/fhir/categories'));
    return resources.map((r) => categoryOf(r.resourceType, r, rules));
}"""


def _with_category(resource_type: str, *codes: str) -> dict[str, Any]:
    return {"resourceType": resource_type,
            "category": [{"coding": [{"code": c} for c in codes]}, "not a concept"]}  # fmt: skip


def _coded(resource_type: str, element: str, *codings: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": resource_type, element: [{"coding": list(codings)}]}


def _applying(resource_type: str, rule: Refinement) -> list[dict[str, Any]]:
    """Resources that hold what ``rule`` looks for: each of its codes under each of its
    systems, under none and under another; or a reference."""
    if rule.codes is None:
        return [{"resourceType": resource_type, rule.element: {"reference": "Specimen/s"}}]
    systems = [*sorted(rule.systems or ()), "http://example.org/other", None]
    return [_coded(resource_type, rule.element, *[
        {"code": code} if system is None else {"system": system, "code": code}
        for code in sorted(rule.codes)
    ]) for system in systems]  # fmt: skip


V2 = "http://terminology.hl7.org/CodeSystem/v2-0074"
LOINC = "http://loinc.org"


def test_the_page_categorises_as_the_python_side_with_the_table_the_node_serves(
    net: Network, keystore: Path, page: Any
) -> None:
    examples = [json.loads(p.read_text()) for p in sorted(FHIR_EXAMPLES.glob("*.json"))]
    refined = [
        _with_category("Observation", "laboratory", "psychiatry"),
        _with_category("Observation", "imaging"), _with_category("Observation", "survey"),
        _with_category("DiagnosticReport", "RAD"), _with_category("DiagnosticReport", "LAB"),
        _with_category("Condition", "mental-health"),
        _with_category("Spaceship", "laboratory"), {"resourceType": "Observation", "category": 7},
        # Malformed nesting is skipped alike (a lone concept where R4 has a list counts);
        # every code of every concept counts, and the first refinement in the table's
        # order wins, not the first code in the resource.
        {"resourceType": "Observation", "category": {"coding": [{"code": "laboratory"}]}},
        {"resourceType": "Observation", "category": [{"coding": {"code": "laboratory"}}]},
        _with_category("Observation", "Laboratory", "__proto__", "constructor"),
        {"resourceType": "Observation", "category": [
            {"coding": [{"code": 7}, {"system": "x"}, {"code": "imaging"}]},
            {"coding": [{"code": "psychiatry"}]}]},
        _with_category("DiagnosticReport", "RAD", "LAB"), _with_category("Basic", "laboratory"),
        {"resourceType": "Condition", "category": [
            {"coding": [{"code": "problem-list-item"}]}, {"coding": [{"code": "psychiatry"}]}]},
        # Systems: a table 0074 code under the table, a system that is no string, one that
        # differs in case, or another code system's; a lone concept; an ECG section first.
        {"resourceType": "DiagnosticReport",
         "category": {"coding": [{"system": V2, "code": "HM"}]}},
        _coded("DiagnosticReport", "category", {"system": 7, "code": "HM"}),
        _coded("DiagnosticReport", "category", {"system": V2.upper(), "code": "CT"}),
        _coded("DiagnosticReport", "category", {"system": LOINC, "code": "RX"}),
        _coded("DiagnosticReport", "category", {"system": V2, "code": ["HM"]}),
        _coded("DiagnosticReport", "category", {"system": V2, "code": "EC"},
               {"system": V2, "code": "RUS"}),
        # Codes and specimens: a lab test, a vital sign, a lab code under no system, one
        # the author's category overrides; specimens of every shape.
        {"resourceType": "Observation", "code": {"coding": [{"system": LOINC, "code": "718-7"}]}},
        {"resourceType": "Observation", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}},
        {"resourceType": "Observation", "code": {"coding": [{"code": "718-7"}], "text": "Hb"}},
        {"resourceType": "Observation", "category": [{"coding": [{"code": "vital-signs"}]}],
         "code": {"coding": [{"system": LOINC, "code": "2339-0"}]}},
        {"resourceType": "Observation", "code": {"coding": [{"system": LOINC,
                                                            "code": "__proto__"}]}},
        *[{"resourceType": t, "specimen": s} for t in ("Observation", "DiagnosticReport")
          for s in ({"reference": "Specimen/s"}, {}, [{"display": "blood"}], ["Specimen/s"],
                    "Specimen/s", None, [], 7)],
        {"resourceType": "Condition", "specimen": {"reference": "Specimen/s"}},
        # Every code of every refinement the node serves, under each of its systems.
        *[r for t, (_, rules) in category_table().items() for rule in rules
          for r in _applying(t, rule)],
    ]  # fmt: skip
    resources = [*examples, *refined]
    _signed_in(page, net, keystore)
    expected = [category_of(r["resourceType"], r) for r in resources]
    assert page.evaluate(_CATEGORIES, resources) == expected
    assert {"labs", "imaging", "mental-health", "clinical", "conditions"} <= set(expected)
    labs = {(e["resourceType"], e["id"]) for e, c in zip(examples, expected, strict=False)
            if c == "labs"}  # fmt: skip
    # The glucose, CBC and MRSA culture examples.
    assert labs == {("Observation", "f001"), ("DiagnosticReport", "f001"),
                    ("DiagnosticReport", "micro")}  # fmt: skip


# A reading with decimals as a scale writes them and a lab result's range.
DECIMALS = (
    b'{"resourceType": "Observation", "id": "decimals", "status": "final",'
    b' "code": {"text": "Weight at home"}, "subject": {"reference": "Patient/example"},'
    b' "valueQuantity": {"value": 100.0, "unit": "kg"},'
    b' "referenceRange": [{"low": {"value": 7.20, "unit": "kg"},'
    b' "high": {"value": 1e2, "unit": "kg"}}]}'
)


def test_decimals_a_patient_adds_open_in_python_exactly_as_written(
    net: Network, keystore: Path, page: Any
) -> None:
    _signed_in(page, net, keystore)
    assert _add(page, _file("decimals.json", DECIMALS)) == "Added 1 record."
    (row,) = _own(run(_vault(net)), "decimals")
    opened = _opened(net, row)
    assert opened == canonical_json(parse_json(DECIMALS))
    for written in (b'"value":100.0', b'"value":7.20', b'"value":1e2'):
        assert written in opened, written


def test_a_second_version_is_signed_only_over_the_version_the_node_serves(
    net: Network, keystore: Path, page: Any
) -> None:
    """The page checks the version it amends; a listing that names another digest makes
    it stop before anything is signed."""
    _signed_in(page, net, keystore)
    assert _add(page, _file("v1.json", _reading("listed", 100))) == "Added 1 record."
    (listed,) = _own(run(_vault(net)), "listed")
    forged = copy.deepcopy(listed)
    forged["digest"] = "0x" + "00" * 32

    def lie(route: Any) -> None:
        rows = route.fetch().json()
        route.fulfill(json=[forged if r == listed else r for r in rows])

    page.route(lambda url: "/v1/records?patient=" in url, lie)
    error = _add(page, _file("v2.json", _reading("listed", 101)))
    assert "other than it serves it" in error and "nothing was written" in error, error
    assert _own(run(_vault(net)), "listed") == [listed]


def test_the_page_amends_only_the_resource_the_node_lists_under_its_fhir_id(
    net: Network, keystore: Path, page: Any
) -> None:
    """The FHIR id is not in what the patient signs: a node that lists another of the
    patient's records under a resource's id is caught when the page opens that record,
    before anything is signed."""
    _signed_in(page, net, keystore)
    added = _add(page, _file("a.json", _reading("steer-a", 100)),
                 _file("b.json", _reading("steer-b", 100)))  # fmt: skip
    assert added == "Added 2 records."
    before = run(_vault(net))
    (a,), (b,) = _own(before, "steer-a"), _own(before, "steer-b")

    def lie(route: Any) -> None:
        rows = route.fetch().json()
        route.fulfill(json=[{**r, "fhir_id": "steer-b"} if r == a else r
                            for r in rows if r != b])  # fmt: skip

    page.route(lambda url: "/v1/records?patient=" in url, lie)
    error = _add(page, _file("b-again.json", _reading("steer-b", 140)))
    assert "other than it serves it" in error and "nothing was written" in error, error
    assert run(_vault(net)) == before


async def _recipients(net: Network) -> dict[str, Any]:
    async with net.client("hospital-a", PATIENT) as client:
        answer: dict[str, Any] = await client.get("/v1/records/recipients",
                                                  {"patient": PATIENT.address})  # fmt: skip
        return answer


async def _member_proof(net: Network, address: str, size: int) -> dict[str, Any]:
    async with net.client("hospital-a", PATIENT) as client:
        proof: dict[str, Any] = await client.get(f"/v1/ledger/state/{MEMBER_NS}",
                                                 {"key": address, "size": size})  # fmt: skip
        return proof


# The node's own custodian key for every share, each backed by a valid proof of the
# node's own member entry where the page asks for another member's.
PROVEN_BY_ANOTHER = "one key for every share, proven by another entry"
LIES = ["a patient key the node holds", "one key for every share", "a threshold of one",
        "fewer custodians", PROVEN_BY_ANOTHER]  # fmt: skip


def _lying_recipients(honest: dict[str, Any], lie: str) -> dict[str, Any]:
    """What a node that wants to open what the patient adds could name instead."""
    first = honest["custodians"][0]
    if lie in ("one key for every share", PROVEN_BY_ANOTHER):
        return {**honest, "custodians": [{**c, "key": first["key"]} for c in honest["custodians"]]}
    if lie == "a threshold of one":
        return {**honest, "threshold": 1}
    if lie == "fewer custodians":
        return {**honest, "custodians": [first], "threshold": 1}
    assert lie == "a patient key the node holds"
    return {**honest, "patient_key": first["key"]}


@pytest.mark.parametrize("lie", LIES)
def test_the_page_seals_only_to_the_recipients_the_members_cosigned(
    net: Network, keystore: Path, page: Any, lie: str
) -> None:
    """A node that names recipients of its choosing, even backed by valid proofs of other
    entries than those the page asked for, gets nothing sealed and nothing written."""
    before = run(_vault(net))
    posted = _signed_in(page, net, keystore)
    first = run(_recipients(net))["custodians"][0]["address"]
    substituted: list[str] = []

    def lying_recipients(route: Any) -> None:
        route.fulfill(json=_lying_recipients(route.fetch().json(), lie))

    def another_members_proof(route: Any) -> None:
        honest = route.fetch().json()
        if honest["key"] == first:
            route.fulfill(json=honest)
            return
        substituted.append(honest["key"])
        route.fulfill(json=run(_member_proof(net, first, honest["size"])))

    page.route(lambda url: "/v1/records/recipients?" in url, lying_recipients)
    if lie == PROVEN_BY_ANOTHER:
        page.route(lambda url: f"/v1/ledger/state/{MEMBER_NS}?" in url, another_members_proof)
    error = _add(page, _file("reading.json", _reading("sealed-to-whom", 120)))
    assert not error.startswith("Added"), error
    assert posted == [] and run(_vault(net)) == before
    if lie == PROVEN_BY_ANOTHER:
        assert substituted, "the page asked for no member's entry"
        assert "does not hold" in error, error
    else:
        assert "nothing was written" in error, error
