"""The patient portal in a real browser (Chromium, headless, driven by Playwright): sign in
with a keystore, open a record decrypted in the page, approve one request and deny
another with signatures made in the page, and see each read with a proof the page
checked itself. Screenshots go to test-artifacts/portal/."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zxingcpp

from medledger.access.contract import GRANT_NS, REQUEST
from medledger.access.reader import read_record
from medledger.credentials.health_card import jws_from_qr_text
from medledger.credentials.registry import Registry
from medledger.credentials.verifier import verify_health_card
from medledger.node.client import NodeClient, RemoteCustodian
from medledger.node.proven_state import ProvenState
from medledger.node.uploads import upload_records
from medledger.records.synthetic import generate_patients
from medledger.records.wire import committed_from_json
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.portal.browser import (
    ARTIFACTS,
    needs_browser,
    run,
    sign_in,
    write_keystore,
)
from tests.records.world import lab_result

PASSPHRASE = "portal test passphrase"
DR_A, DR_B, PATIENT = key("portal:dr-a"), key("portal:dr-b"), key("portal:patient")
RESOURCE = lab_result()
(CHART,) = generate_patients(1, seed=17, records_per_patient=12)

pytestmark = needs_browser


async def _set_up(net: Network) -> str:
    await net.register_staff("hospital-a", DR_A, "doctor")
    await net.register_staff("hospital-b", DR_B, "doctor")
    await net.register_patient(PATIENT)
    async with net.client("hospital-a", net.nodes["hospital-a"].member) as hospital:
        await hospital.post("/v1/credentials/setup", {"max_credentials": 10})
    async with net.client("hospital-a", DR_A) as dr_a:
        sources = [("lab.json", RESOURCE)]
        written, _ = await upload_records(dr_a, PATIENT.address, sources)
        card = [CHART.patient, *(r for r in CHART.resources if r["resourceType"] == "Immunization")]
        more = [(f"card-{i}.json", r) for i, r in enumerate(card)]
        await upload_records(dr_a, PATIENT.address, more)
    return str(written[0].record_id)


async def _ask(net: Network) -> str:
    payload = {"patient": PATIENT.address, "categories": ["labs"], "purpose": "TREAT",
               "duration_s": 3600}  # fmt: skip
    async with net.client("hospital-b", DR_B) as dr_b:
        state = await dr_b.post("/v1/access/requests",
                                {"transaction": net.tx(DR_B, REQUEST, payload)})  # fmt: skip
    return str(state["request"])


async def _read_and_checkpoint(net: Network, record: str, grant: str) -> None:
    clients = [net.client(n.name, DR_B) for n in net.nodes.values()]
    custodians = [
        RemoteCustodian(c, n.member.address)
        for c, n in zip(clients, net.nodes.values(), strict=True)
    ]
    async with net.client("hospital-a", DR_B) as dr_b:
        fetched = committed_from_json(await dr_b.get(f"/v1/records/{record}", {"grant": grant}))
    await read_record(DR_B, bytes.fromhex(grant[2:]), fetched, custodians=custodians, threshold=2)
    for client in clients:
        await client.close()
    node = net.nodes["hospital-a"].service.node
    for _ in range(100):  # the other nodes' receipts reach hospital A
        if node.size >= max(n.service.node.size for n in net.nodes.values()):
            break
        await asyncio.sleep(0.02)
    await net.checkpoint()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with running_network(tmp_path_factory.mktemp("portal")) as network:
        yield network


@pytest.fixture(scope="module")
def record(net: Network) -> str:
    """The patient's lab result, written once for the module's tests."""
    return run(_set_up(net))


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_keystore(tmp_path_factory.mktemp("keys"), PATIENT, PASSPHRASE)


def _scan(page: Any) -> str:
    """Read the QR code the page shows, from its pixels, as a phone's scanner would."""
    width, height, gray = page.evaluate("""() => {
        const image = document.getElementById('card-qr');
        const canvas = document.createElement('canvas');
        canvas.width = image.naturalWidth * 2;
        canvas.height = image.naturalHeight * 2;
        const context = canvas.getContext('2d');
        context.fillStyle = 'white';
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.drawImage(image, 0, 0, canvas.width, canvas.height);
        const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
        const gray = [];
        for (let i = 0; i < rgba.length; i += 4) gray.push(rgba[i] < 128 ? 0 : 255);
        return [canvas.width, canvas.height, gray];
    }""")

    class Gray:
        __array_interface__ = {  # noqa: RUF012
            "shape": (height, width),
            "typestr": "|u1",
            "data": bytes(gray),
            "version": 3,
        }

    found = zxingcpp.read_barcodes(Gray())
    assert len(found) == 1, "the page's QR code does not scan"
    return str(found[0].text)


def _sign_in(page: Any, url: str, keystore: Path, passphrase: str = PASSPHRASE) -> None:
    sign_in(page, url, keystore, passphrase)


def test_a_patient_signs_in_reads_a_record_answers_requests_and_sees_proven_reads(
    net: Network, record: str, keystore: Path, page: Any
) -> None:
    url = net.nodes["hospital-a"].url
    approved, denied = run(_ask(net)), run(_ask(net))

    _sign_in(page, url, keystore)
    page.wait_for_selector("#signed-in:not([hidden])")
    assert PATIENT.address in page.text_content("#who")
    page.wait_for_selector(f"#records tr[data-record='{record}']")
    assert page.locator("#records tbody tr").count() == 1 + len(
        [r for r in CHART.resources if r["resourceType"] == "Immunization"]) + 1  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "1-signed-in.png"), full_page=True)

    page.click(f"#records tr[data-record='{record}'] button.open")
    page.wait_for_selector("#record-detail:not([hidden])")
    assert json.loads(page.text_content("#record-json")) == RESOURCE
    page.screenshot(path=str(ARTIFACTS / "2-record.png"), full_page=True)

    # New requests wait at the top of the page; a granted one then reads as its grant is.
    status = "#requests tr[data-request='{}'] td.status:text('{}')"
    page.click(f"#request-notices li[data-request='{approved}'] button.approve")
    page.wait_for_selector(status.format(approved, "active until"))
    page.click(f"#request-notices li[data-request='{denied}'] button.deny")
    page.wait_for_selector(status.format(denied, "denied"))
    store = net.nodes["hospital-a"].service.node.store
    assert store.get(GRANT_NS, approved) is not None and store.get(GRANT_NS, denied) is None
    page.screenshot(path=str(ARTIFACTS / "3-requests.png"), full_page=True)

    run(_read_and_checkpoint(net, record, approved))
    page.reload()
    _sign_in(page, url, keystore)
    # Badges appear one by one, each after its proof is checked.
    page.wait_for_function("() => document.querySelectorAll('#audit .badge').length >= 1")
    # One read, one row: the record as its author signed it, every receipt checked.
    (badge,) = page.locator("#audit .badge").all_text_contents()
    assert badge.startswith("✓ in checkpoint"), badge
    audit = page.text_content("#audit")
    assert DR_B.address in audit and record in audit and "Observation v1" in audit
    # The requests the node lists agree with the state the members cosigned.
    proven = f"#requests tr[data-request='{approved}'] .badge.proven"
    page.wait_for_selector(proven)
    assert page.text_content(proven).startswith("✓ checkpoint")
    page.screenshot(path=str(ARTIFACTS / "4-audit.png"), full_page=True)

    page.click("button.share")
    page.wait_for_selector("#card:not([hidden])")
    page.wait_for_function("document.getElementById('card-qr').complete")
    page.locator("#card").screenshot(path=str(ARTIFACTS / "5-health-card.png"))
    scanned = _scan(page)
    assert scanned == page.get_attribute("#card-qr", "data-text") and scanned.startswith("shc:/")
    client = NodeClient(url, PATIENT)
    state = ProvenState(client)
    card = verify_health_card(jws_from_qr_text(scanned), Registry(state), now_s=int(time.time()))
    state.close()
    kinds = sorted({e["resource"]["resourceType"] for e in card.bundle["entry"]})
    assert card.issuer == "https://hospital-a.invalid" and kinds == ["Immunization", "Patient"]


def test_a_wrong_passphrase_keeps_the_patient_out(net: Network, keystore: Path, page: Any) -> None:
    _sign_in(page, net.nodes["hospital-a"].url, keystore, passphrase="not it")
    page.wait_for_selector("#signin-status:text('wrong passphrase')")
    assert page.is_hidden("#signed-in")
    page.screenshot(path=str(ARTIFACTS / "6-wrong-passphrase.png"))


async def _proofs(net: Network, request: str) -> list[dict[str, Any]]:
    """The proofs of the patient's request (present) and notice count (absent)."""
    async with net.client("hospital-a", PATIENT) as client:
        size = (await client.get("/v1/ledger/checkpoint"))["size"]
        return [
            await client.get(f"/v1/ledger/state/{ns}", {"key": key, "size": size})
            for ns, key in (("access.request", request), ("access.notice_count", PATIENT.address))
        ]


def test_the_page_checks_state_proofs_as_the_python_side_makes_them(
    net: Network, record: str, keystore: Path, page: Any
) -> None:
    """The page's proof check agrees with the node's trees, for an entry present and one
    absent, and refuses a forged value, a flipped sibling and a proof for another entry."""
    request = run(_ask(net))
    run(net.checkpoint())
    present, absent = run(_proofs(net, request))
    assert present["encoded"] is not None and absent["encoded"] is None
    _sign_in(page, net.nodes["hospital-a"].url, keystore)
    page.wait_for_selector("#signed-in:not([hidden])")
    check = """async ([proof, root]) => {
        const crypto = await import('/portal/js/crypto.js');
        return crypto.verifyStateProof(proof, root);
    }"""
    root = present["state_root"]
    forged = {**present, "encoded": present["encoded"].replace("pending", "granted")}
    siblings = ["0x" + "11" * 32, *present["proof"]["siblings"][1:]]
    flipped = {**present, "proof": {**present["proof"], "siblings": siblings}}
    other = {**present, "key": "0x" + "00" * 32}
    claimed = {**absent, "encoded": "1"}
    proofs = (present, absent, forged, flipped, other, claimed)
    outcomes = [page.evaluate(check, [p, root]) for p in proofs]
    assert outcomes == [True, True, False, False, False, False]


def test_the_page_computes_transaction_ids_as_the_ledger_does(
    net: Network, keystore: Path, page: Any
) -> None:
    """The page trusts the genesis whose id the proven configuration names: its EIP-712
    digest must be the ledger's, for the genesis and for a transaction of another shape."""
    genesis = net.nodes["hospital-a"].service.node.genesis
    other = net.signer.tx(PATIENT, "access.deny", {"request": "0x" + "ab" * 32}, advance=False)
    _sign_in(page, net.nodes["hospital-a"].url, keystore)
    page.wait_for_selector("#signed-in:not([hidden])")
    digest = """async (wire) => {
        const crypto = await import('/portal/js/crypto.js');
        const tx = JSON.parse(wire);
        const id = crypto.transactionDigest(tx.network, tx.sender, tx.nonce, tx.type, tx.payload);
        return '0x' + crypto.hex(id);
    }"""
    for tx in (genesis, other):
        assert page.evaluate(digest, tx.encode().decode()) == "0x" + tx.tx_id.hex()
