"""What a patient does in the portal on a real network, in Chromium against real nodes:
see new requests at the top and answer them, revoke a grant, set a k-of-n policy per
data category, read records as cards rather than JSON; and what someone who is not a
patient is told. Each feature is checked on the ledger from Python, not only on the page.
Screenshots go to test-artifacts/portal/."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medledger.access.approval import Approval
from medledger.access.contract import GRANT_NS, POLICY_NS, REQUEST, REQUEST_NS
from medledger.access.policy import PURPOSES
from medledger.crypto.json_numbers import parse_json
from medledger.crypto.keys import PrivateKey
from medledger.node.uploads import upload_records
from medledger.records.categories import CATEGORIES
from tests.data import FHIR_EXAMPLES
from tests.ledger.consortium import key
from tests.node.network import NETWORK_ID, Network, running_network
from tests.portal.browser import (
    ARTIFACTS,
    needs_browser,
    run,
    sign_in,
    write_keystore,
)

pytestmark = needs_browser

PASSPHRASE = "patient features passphrase"
PATIENT = key("portal-features:patient")
DR_A, DR_B = key("portal-features:dr-a"), key("portal-features:dr-b")
STRANGER = key("portal-features:stranger")

GLUCOSE = json.loads((FHIR_EXAMPLES / "observation-example2.json").read_text())
ANSWERS = json.loads((FHIR_EXAMPLES / "questionnaireResponse-example1.json").read_text())
SCAN = b"%PDF-1.4\n% history and physical, scanned\n" + bytes(range(256)) * 8
DOCUMENT = json.loads((FHIR_EXAMPLES / "documentReference-example1.json").read_text())
_attachment = DOCUMENT["content"][0]["attachment"]
_attachment.update(contentType="application/pdf", size=len(SCAN),
                   data=base64.b64encode(SCAN).decode())  # fmt: skip
del _attachment["hash"]  # the example's hash is of other bytes


def _load(resource: dict[str, Any]) -> tuple[str, object]:
    return (f"{resource['resourceType']}.json", resource)


async def _set_up(net: Network) -> dict[str, str]:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_staff("hospital-b", DR_B, "doctor")
    await net.register_patient(PATIENT)
    records = {}
    async with net.client("hospital-a", DR_A) as dr_a:
        for name, resource in (("glucose", GLUCOSE), ("document", DOCUMENT), ("answers", ANSWERS)):
            written, rejected = await upload_records(dr_a, PATIENT.address, [_load(resource)])
            assert not rejected, rejected
            records[name] = str(written[0].record_id)
    # The staff's registrations are proven from here on: the page names who asks.
    await net.checkpoint()
    return records


async def _ask(net: Network, categories: list[str], duration_s: int = 3600) -> str:
    payload = {"patient": PATIENT.address, "categories": categories, "purpose": "TREAT",
               "duration_s": duration_s}  # fmt: skip
    async with net.client("hospital-b", DR_B) as dr_b:
        state = await dr_b.post("/v1/access/requests",
                                {"transaction": net.tx(DR_B, REQUEST, payload)})  # fmt: skip
    return str(state["request"])


async def _approve_as(net: Network, signer: PrivateKey, request: str) -> dict[str, Any]:
    approval = Approval(NETWORK_ID, bytes.fromhex(request[2:]), PATIENT.address, DR_B.address,
                        int(time.time() * 1000) + 60_000)  # fmt: skip
    async with net.client("hospital-a", signer) as client:
        return dict(await client.post(f"/v1/access/requests/{request}/approvals",
                                      {"approvals": [approval.signed_by(signer)]}))  # fmt: skip


async def _grant_seen_by_patient(net: Network, grant: str) -> dict[str, Any]:
    async with net.client("hospital-b", PATIENT) as client:
        return dict(await client.get(f"/v1/access/grants/{grant}"))


async def _next_nonce(net: Network) -> int:
    async with net.client("hospital-a", PATIENT) as client:
        return int((await client.get(f"/v1/ledger/nonces/{PATIENT.address}"))["next_nonce"])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("patient-features")) as network:
        yield network


@pytest.fixture(scope="module")
def records(net: Network) -> dict[str, str]:
    return run(_set_up(net))


def _keystore(tmp_path_factory: pytest.TempPathFactory, who: PrivateKey, name: str) -> Path:
    return write_keystore(tmp_path_factory.mktemp("keys"), who, PASSPHRASE, name)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _keystore(tmp_path_factory, PATIENT, "patient")


def _patient_page(page: Any, net: Network, keystore: Path) -> None:
    sign_in(page, net.nodes["hospital-a"].url, keystore, PASSPHRASE)
    page.wait_for_selector("#signed-in:not([hidden])")
    page.wait_for_selector("#request-count:not(:empty)")


def _transactions_posted(page: Any) -> list[str]:
    """Every transaction the page posts from now on, whatever the route."""
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    return posted


def test_new_requests_show_at_the_top_with_who_asks_and_can_be_answered(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    _patient_page(page, net, keystore)
    assert page.text_content("#request-count") == "No new requests."
    labs, vitals = run(_ask(net, ["labs"])), run(_ask(net, ["vital-signs", "labs"], 2 * 86400))
    run(net.checkpoint())  # the requests proven too, as on a network that checkpoints often
    page.click("button.refresh")
    page.wait_for_selector("#request-count:text('2 new requests')")
    notice = page.locator(f"#request-notices li[data-request='{vitals}']")
    assert notice.locator(".asker strong").text_content() == "doctor at Hospital B"
    assert DR_B.address in notice.locator(".asker .address").text_content()
    assert notice.locator("dd.categories").text_content() == "Vital signs, Lab results"
    assert notice.locator("dd.purpose").text_content() == "TREAT (treatment)"
    assert notice.locator("dd.duration").text_content() == "2 d"
    page.screenshot(path=str(ARTIFACTS / "features-1-new-requests.png"), full_page=True)

    page.click(f"#request-notices li[data-request='{labs}'] button.approve")
    page.wait_for_selector("#request-count:text('1 new request')")
    page.click(f"#request-notices li[data-request='{vitals}'] button.deny")
    page.wait_for_selector("#request-count:text('No new requests.')")
    store = net.nodes["hospital-a"].service.node.store
    assert store.get(GRANT_NS, labs)["status"] == "active"
    assert store.get(REQUEST_NS, vitals)["status"] == "denied"
    assert store.get(GRANT_NS, vitals) is None
    assert page.text_content(f"#requests tr[data-request='{vitals}'] td.status") == "denied"


def test_a_grant_shows_its_real_status_and_revoking_it_ends_it_on_the_ledger(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    grant = run(_ask(net, ["labs"]))
    _patient_page(page, net, keystore)
    page.click(f"#request-notices li[data-request='{grant}'] button.approve")
    status = f"#requests tr[data-request='{grant}'] td.status"
    page.wait_for_selector(f"{status}:text('active until')")
    assert run(_grant_seen_by_patient(net, grant))["status"] == "active"

    page.click(f"#requests tr[data-request='{grant}'] button.revoke")
    page.wait_for_selector(f"{status}:text('revoked')")
    assert page.locator(f"#requests tr[data-request='{grant}'] button.revoke").count() == 0
    for node in net.nodes.values():
        assert node.service.node.store.get(GRANT_NS, grant)["status"] == "revoked"
    assert run(_grant_seen_by_patient(net, grant))["status"] == "revoked"
    page.screenshot(path=str(ARTIFACTS / "features-2-revoked.png"), full_page=True)

    # Signed in afresh, the request reads as its grant is, never as merely "granted".
    page.reload()
    _patient_page(page, net, keystore)
    page.wait_for_selector(f"{status}:text('revoked')")
    assert "granted" not in page.text_content(status)


def test_the_policy_editor_sets_a_two_of_three_policy_that_the_ledger_then_holds(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    _patient_page(page, net, keystore)
    row = "#policy-table tr[data-category='imaging']"
    page.wait_for_selector(f"{row} td.rule:text('the patient alone')")
    page.click(f"{row} button.edit")
    page.fill("#policy-k", "2")
    page.fill("#policy-approvers", f"me\n{DR_A.address}\n{DR_B.address.lower()}")
    page.check("#policy-purposes input[value='CAREMGT']")
    page.fill("#policy-duration", "2")
    page.select_option("#policy-unit", "days")
    page.click("#policy-save")
    page.wait_for_selector(f"{row} td.rule:text('2 of: me')")
    shown = page.text_content(f"{row} td.rule")
    assert f"{DR_A.address} (doctor at Hospital A)" in shown
    assert f"{DR_B.address} (doctor at Hospital B)" in shown
    assert "version 1" in shown
    assert "your new policy is in force" in page.text_content("#policies-status")
    page.screenshot(path=str(ARTIFACTS / "features-3-policy.png"), full_page=True)

    expected = {"k_of": 2, "of": [{"patient": True}, {"person": DR_A.address},
                                  {"person": DR_B.address}]}  # fmt: skip
    for node in net.nodes.values():
        entry = node.service.node.store.get(POLICY_NS, f"{PATIENT.address}/imaging")
        assert entry["set_by"] == PATIENT.address and entry["version"] == 1
        assert entry["policy"] == {
            "approvers": expected, "purposes": ["CAREMGT", "ETREAT", "TREAT"],
            "max_duration_s": 2 * 86400, "condition": None,
        }  # fmt: skip

    # The policy governs: the patient's approval alone no longer grants imaging.
    request = run(_ask(net, ["imaging"]))
    page.click("button.refresh")
    page.click(f"#request-notices li[data-request='{request}'] button.approve")
    status = f"#requests tr[data-request='{request}'] td.status"
    page.wait_for_selector(f"{status}:text('you approved')")
    assert net.nodes["hospital-a"].service.node.store.get(GRANT_NS, request) is None
    assert run(_approve_as(net, DR_A, request))["status"] == "granted"


@pytest.mark.parametrize(
    ("k", "approvers", "message"),
    [
        ("3", "me\n{dr_a}", "3 approvals needed, but only 2 approvers are named"),
        ("0", "me", "at least 1"),
        ("1", "me\n0x1234", "has 40 hex digits after 0x, this has 4"),
        ("1", "me\n{bad_checksum}", "wrong checksum"),
        ("1", "me\n0xZZ{dr_a_tail}", "only hex digits"),
        ("2", "me\n{dr_a}\n{dr_a_lower}", "named twice"),
        ("1", "doctr", "not a role on this network"),
        ("1", "", "Name at least one approver"),
    ],
)
def test_the_policy_editor_refuses_bad_input_in_the_page_and_submits_nothing(
    net: Network, records: dict[str, str], keystore: Path, page: Any,
    k: str, approvers: str, message: str,
) -> None:  # fmt: skip
    checksummed = DR_A.address
    flipped = next(i for i, c in enumerate(checksummed) if i > 1 and c.isalpha())
    bad_checksum = (checksummed[:flipped] + checksummed[flipped].swapcase()
                    + checksummed[flipped + 1:])  # fmt: skip
    text = approvers.format(dr_a=checksummed, dr_a_lower=checksummed.lower(),
                            bad_checksum=bad_checksum, dr_a_tail=checksummed[4:])  # fmt: skip
    nonce = run(_next_nonce(net))
    _patient_page(page, net, keystore)
    page.wait_for_selector("#policy-table tr[data-category='labs'] button.edit")
    posted = _transactions_posted(page)
    page.click("#policy-table tr[data-category='labs'] button.edit")
    page.fill("#policy-k", k)
    page.fill("#policy-approvers", text)
    page.click("#policy-save")
    page.wait_for_selector("#policy-error:not(:empty)")
    error = page.text_content("#policy-error")
    assert error.startswith("Not saved: ") and message in error, error
    assert posted == []
    assert run(_next_nonce(net)) == nonce
    store = net.nodes["hospital-a"].service.node.store
    assert store.get(POLICY_NS, f"{PATIENT.address}/labs") is None


def test_a_policy_the_ledger_refuses_is_explained_and_changes_nothing(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    """The page leaves the condition's CEL to the ledger: its refusal reaches the patient."""
    _patient_page(page, net, keystore)
    page.click("#policy-table tr[data-category='financial'] button.edit")
    page.fill("#policy-condition", "request.purpose ==")
    page.click("#policy-save")
    page.wait_for_selector("#policy-error:not(:empty)")
    error = page.text_content("#policy-error")
    assert error.startswith("Not saved: ") and "not valid CEL" in error, error
    assert page.is_visible("#policy-form")
    store = net.nodes["hospital-a"].service.node.store
    assert store.get(POLICY_NS, f"{PATIENT.address}/financial") is None


def test_a_record_reads_as_a_card_with_values_units_and_downloads_not_base64(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    _patient_page(page, net, keystore)
    page.click(f"#records tr[data-record='{records['glucose']}'] button.open")
    card = "#record-card article.fhir-card"
    page.wait_for_selector(f"{card}[data-resource-type='Observation']")
    terms = page.locator(f"{card} dl.facts dt").all_text_contents()
    facts = dict(zip(terms, page.locator(f"{card} dl.facts dd").all_text_contents(), strict=True))
    assert page.text_content(f"{card} .code") == "Glucose [Moles/volume] in Blood"
    assert facts["Value"] == "6.3 mmol/l"
    assert facts["Effective"] == "from 2013-04-02 09:30 (+01:00)"
    assert facts["Issued"] == "2013-04-03 15:30 (+01:00)"
    assert facts["Status"] == "final" and facts["Interpretation"] == "High"
    assert facts["Normal range"] == "3.1 mmol/l to 6.2 mmol/l"
    assert page.is_hidden("#record-json")
    page.screenshot(path=str(ARTIFACTS / "features-4-observation.png"), full_page=True)

    page.click(f"#records tr[data-record='{records['document']}'] button.open")
    page.wait_for_selector(f"{card}[data-resource-type='DocumentReference']")
    attachment = page.locator(f"{card} li.attachment")
    assert attachment.locator(".title").text_content() == "Physical"
    assert "application/pdf" in attachment.text_content()
    assert f"{len(SCAN) / 1024:.1f} KB" in attachment.text_content()
    page.click("#record-raw summary")
    page.wait_for_selector("#record-json:visible")
    shown = json.loads(page.text_content("#record-json"))
    assert "base64 data, not shown" in shown["content"][0]["attachment"]["data"]
    page.screenshot(path=str(ARTIFACTS / "features-5-document.png"), full_page=True)
    assert DOCUMENT["content"][0]["attachment"]["data"][:40] not in page.content()
    with page.expect_download() as download:
        attachment.locator("a.download").click()
    assert Path(download.value.path()).read_bytes() == SCAN
    assert download.value.suggested_filename == "Physical.pdf"

    page.click(f"#records tr[data-record='{records['answers']}'] button.open")
    page.wait_for_selector(f"{card}.generic[data-resource-type='QuestionnaireResponse']")
    assert "No summary for QuestionnaireResponse" in page.text_content(card)
    assert page.text_content(f"{card} dl.facts") != ""


_COMPONENTS = [
    {"code": {"coding": [{"display": "Systolic"}]},
     "valueQuantity": {"value": 120.5, "unit": "mmHg"}},
    # A string where a Quantity belongs is shown as written; a code that is no concept too.
    {"code": "not a concept", "valueQuantity": "nonsense"},
    "not a component",
]  # fmt: skip
_REPORT = {"resourceType": "DiagnosticReport", "presentedForm": [
    {"contentType": "text/plain", "data": "%%%"},
    {"title": "Elsewhere", "url": "https://x.invalid/r"},
]}  # fmt: skip
MESSY = [
    # A number handed to the page as a number is shown as JavaScript writes it (a record
    # opened with parseRecord keeps a decimal's digits); units may be codes only.
    ({"resourceType": "Observation", "code": {"coding": [{"code": "8867-4"}]},
      "valueQuantity": {"value": 100.0, "code": "/min"}}, "8867-4", {"Value": "100 /min"}),
    ({"resourceType": "Observation", "code": {"text": "Blood pressure"}, "status": "final",
      "component": _COMPONENTS}, "Blood pressure", {"Status": "final"}),
    ({"resourceType": "Observation", "code": "a bare string", "valueQuantity": None,
      "effectivePeriod": "2020", "referenceRange": [{"low": {"value": 1}}, 7]}, "a bare string",
     {"Effective": "2020", "Normal range": "at least 1"}),
    ({"resourceType": "Observation"}, "", {}),
    ({"resourceType": "Spaceship", "status": 7, "code": {"text": "Warp"}, "date": "2024-01-02"},
     "Warp", {"Status": "7", "Date": "2024-01-02"}),
    (_REPORT, "", {}),
    ({}, "", {}),
]  # fmt: skip


def test_the_card_view_copes_with_messy_records(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    """Records as real systems write them: missing fields, strings where objects belong,
    unknown types, broken base64; every one makes a card, and nothing reaches the page as
    markup."""
    _patient_page(page, net, keystore)
    render = """async (resource) => {
        const view = await import('/portal/js/records-view.js');
        const card = view.renderResource(resource);
        const facts = {};
        const terms = card.querySelectorAll('dl.facts dt');
        for (const dt of terms) facts[dt.textContent] = dt.nextElementSibling.textContent;
        const code = card.querySelector('.code');
        return {
            code: code ? code.textContent : '', facts, text: card.textContent,
            components: [...card.querySelectorAll('dl.components dd')].map((d) => d.textContent),
            attachments: [...card.querySelectorAll('li.attachment')].map((l) => l.textContent),
        };
    }"""
    for resource, code, facts in MESSY:
        shown = page.evaluate(render, resource)
        assert shown["code"] == code, (resource, shown)
        assert facts.items() <= shown["facts"].items(), (resource, shown)
        assert "[object Object]" not in shown["text"] and "undefined" not in shown["text"]
    blood_pressure = page.evaluate(render, MESSY[1][0])
    assert blood_pressure["components"] == ["120.5 mmHg", "nonsense"]
    report = page.evaluate(render, MESSY[5][0])
    assert "not valid base64" in report["attachments"][0]
    assert "Stored elsewhere: https://x.invalid/r" in report["attachments"][1]
    markup = {"resourceType": "<img src=x onerror=alert(1)>", "code": {"text": "<b>bold</b>"}}
    assert page.evaluate(render, markup)["code"] == "<b>bold</b>"


# A weight as a clinic's scale writes it: the digits are its precision.
WEIGHT = parse_json(
    '{"resourceType": "Observation", "id": "weight", "status": "final",'
    ' "code": {"text": "Body weight"}, "subject": {"reference": "Patient/example"},'
    ' "valueQuantity": {"value": 100.0, "unit": "kg"},'
    ' "referenceRange": [{"low": {"value": 7.20, "unit": "kg"}}]}'
)


async def _write_weight(net: Network) -> str:
    async with net.client("hospital-a", DR_A) as dr_a:
        written, rejected = await upload_records(dr_a, PATIENT.address, [_load(WEIGHT)])
    assert not rejected, rejected
    return str(written[0].record_id)


def test_a_record_opened_from_the_list_shows_its_decimals_as_written(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    record = run(_write_weight(net))
    _patient_page(page, net, keystore)
    page.click(f"#records tr[data-record='{record}'] button.open")
    card = "#record-card article.fhir-card"
    page.wait_for_selector(f"{card}[data-resource-type='Observation']")
    terms = page.locator(f"{card} dl.facts dt").all_text_contents()
    facts = dict(zip(terms, page.locator(f"{card} dl.facts dd").all_text_contents(), strict=True))
    page.click("#record-raw summary")
    page.wait_for_selector("#record-json:visible")
    shown = page.text_content("#record-json")
    assert (facts["Value"], facts["Normal range"]) == ("100.0 kg", "at least 7.20 kg")
    assert '"value": 100.0' in shown and '"value": 7.20' in shown


def test_the_page_knows_the_ledgers_categories_and_purposes(
    net: Network, records: dict[str, str], keystore: Path, page: Any
) -> None:
    _patient_page(page, net, keystore)
    lists = page.evaluate("""async () => {
        const policy = await import('/portal/js/policy.js');
        return [policy.CATEGORIES.map((c) => c[0]), policy.PURPOSES.map((p) => p[0])];
    }""")
    assert sorted(lists[0]) == sorted(CATEGORIES) and sorted(lists[1]) == sorted(PURPOSES)
    rows = page.locator("#policy-table tbody tr")
    shown = rows.evaluate_all("(rows) => rows.map((r) => r.dataset.category)")
    assert sorted(shown) == sorted(CATEGORIES)


def test_a_doctors_keystore_is_told_what_it_is_not_shown_an_empty_patient_page(
    net: Network, records: dict[str, str], page: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    doctor = _keystore(tmp_path_factory, DR_A, "doctor")
    sign_in(page, net.nodes["hospital-a"].url, doctor, PASSPHRASE)
    page.wait_for_selector("#not-patient:not([hidden])")
    text = page.text_content("#not-patient-text")
    member = net.nodes["hospital-a"].member.address
    assert f"registered as doctor at Hospital A ({member})" in text, text
    assert "portal is for patients" in text
    assert page.is_hidden("#signed-in") and page.is_hidden("#signin")
    page.screenshot(path=str(ARTIFACTS / "features-6-doctor.png"), full_page=True)

    page.click("#signin-again")
    page.wait_for_selector("#signin:not([hidden])")


def test_an_unregistered_keystore_is_told_it_is_not_on_this_network(
    net: Network, records: dict[str, str], page: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    stranger = _keystore(tmp_path_factory, STRANGER, "stranger")
    sign_in(page, net.nodes["hospital-a"].url, stranger, PASSPHRASE)
    page.wait_for_selector("#not-patient:not([hidden])")
    text = page.text_content("#not-patient-text")
    assert f"This key ({STRANGER.address}) is not registered on this network" in text, text
    assert page.is_hidden("#signed-in")


def test_a_member_institutions_key_is_told_it_is_not_a_patients(
    net: Network, records: dict[str, str], page: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    member = _keystore(tmp_path_factory, net.nodes["hospital-b"].member, "member")
    sign_in(page, net.nodes["hospital-a"].url, member, PASSPHRASE)
    page.wait_for_selector("#not-patient:not([hidden])")
    assert "Hospital B's own member key" in page.text_content("#not-patient-text")
