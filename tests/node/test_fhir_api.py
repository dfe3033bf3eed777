"""The FHIR API over three real node servers: a hospital's system, registered as a SMART
Backend Services client at hospital B, reads a patient's chart kept at hospitals A and B
under its grant, every read through the custodians; and every refusal.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jwcrypto import jwk, jwt

from medledger.access import care
from medledger.access.audit import audit_log
from medledger.access.delegation import HEADER as DELEGATION_HEADER
from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import encrypt_keystore
from medledger.node.client import NodeRefused
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.tokens import ASSERTION_TYPE
from medledger.node.identities import PASSPHRASE_ENV
from medledger.node.uploads import upload_records
from tests.access.test_delegation import HOUR_MS
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.security.test_insider_network import ANY_NURSE, _approve, _request

DR_A, NURSE_A, DR_B = key("fhir:dr-a"), key("fhir:nurse-a"), key("fhir:dr-b")
EHR_B = key("fhir:ehr-b")  # hospital B's system's service account
PATIENT, OTHER = key("fhir:patient"), key("fhir:other")
PASSPHRASE = "fhir test passphrase"
CATEGORIES = ["labs", "administrative", "conditions"]
CLIENT_KEY = jwk.JWK.generate(kty="EC", crv="P-384", kid="ehr-b-1")
WRITE = "system/*.cruds"  # reads and writes (delete is not served)


def _lab(n: int, value: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"glu-{n}", "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0",
                             "display": "Glucose"}]},
        "subject": {"reference": "Patient/pat-a"},
        "effectiveDateTime": f"2026-0{n}-01T08:00:00Z",
        "valueQuantity": {"value": f"__{value}__", "unit": "mmol/L"},
    }  # fmt: skip


def _as_json(resource: dict[str, Any]) -> object:
    """The resource with its value a JSON number as written (``7.20``, not ``7.2``)."""
    from medledger.crypto.json_numbers import parse_json

    text = json.dumps(resource)
    for marker in ("7.20", "5.0", "6.10"):
        text = text.replace(f'"__{marker}__"', marker)
    return parse_json(text)


PATIENT_RESOURCE = {"resourceType": "Patient", "id": "pat-a", "birthDate": "1970-05-01",
                    "name": [{"family": "Doe", "given": ["Jo"]}]}  # fmt: skip
CONDITION = {
    "resourceType": "Condition", "id": "dm2",
    "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
    "code": {"text": "Type 2 diabetes"}, "subject": {"reference": "Patient/pat-a"},
}  # fmt: skip


class Scene:
    grant: str
    records_a: dict[str, str]
    records_b: dict[str, str]


SCENE = Scene()


async def _set_up(net: Network) -> None:
    staff = [("hospital-a", DR_A, "doctor"), ("hospital-a", NURSE_A, "nurse"),
             ("hospital-b", DR_B, "doctor"), ("hospital-b", EHR_B, "doctor")]  # fmt: skip
    for node, person, role in staff:
        await net.register_staff(node, person, role)
    await net.register_patient(PATIENT)
    await net.submit("hospital-a", PATIENT, care.ENROL,
                     {"institution": net.nodes["hospital-b"].member.address})  # fmt: skip
    await net.register_patient(OTHER)
    for category in CATEGORIES:
        await net.submit("hospital-a", PATIENT, "access.set_policy",
                         {"category": category, "policy": ANY_NURSE})  # fmt: skip
    at_a = [("patient.json", PATIENT_RESOURCE), ("lab1.json", _as_json(_lab(1, "7.20"))),
            ("lab2.json", _as_json(_lab(2, "5.0"))), ("dm.json", CONDITION)]  # fmt: skip
    async with net.client("hospital-a", DR_A) as client:
        written, rejected = await upload_records(client, PATIENT.address, at_a)
    assert not rejected, rejected
    SCENE.records_a = {name: w.record_id for (name, _), w in zip(at_a, written, strict=True)}
    async with net.client("hospital-b", DR_B) as client:
        written, rejected = await upload_records(
            client, PATIENT.address, [("lab3.json", _as_json(_lab(3, "6.10")))]
        )
    assert not rejected, rejected
    SCENE.records_b = {"lab3.json": written[0].record_id}
    request = await _request(net, "hospital-b", EHR_B, categories=CATEGORIES,
                             patient=PATIENT.address)
    granted = await _approve(net, "hospital-a", request, NURSE_A)
    assert granted["status"] == "granted", granted
    SCENE.grant = request["request"]
    node_b = net.nodes["hospital-b"].service.settings
    ClientRegistry(node_b.data_dir).add(BackendClient(
        "ehr-b", {"keys": [CLIENT_KEY.export_public(as_dict=True)]},
        encrypt_keystore(EHR_B, PASSPHRASE, scrypt_n=1024)))  # fmt: skip


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        with running_network(tmp_path_factory.mktemp("fhir")) as network:
            asyncio.run(_set_up(network))
            yield network


def _assertion(token_url: str, signer: jwk.JWK = CLIENT_KEY) -> str:
    claims = {"iss": "ehr-b", "sub": "ehr-b", "aud": token_url, "exp": int(time.time()) + 240,
              "jti": uuid.uuid4().hex}  # fmt: skip
    token = jwt.JWT(header={"alg": "ES384", "kid": signer.get("kid"), "typ": "JWT"}, claims=claims)
    token.make_signed_token(signer)
    return str(token.serialize())


def _token(net: Network, scope: str = "system/*.rs", node: str = "hospital-b") -> str:
    base = net.nodes[node].url
    form = {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(base + "/auth/token")}  # fmt: skip
    answer = httpx.post(base + "/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 200
    return str(body["access_token"])


def _get(net: Network, path: str, token: str | None, node: str = "hospital-b",
         **params: str) -> httpx.Response:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(net.nodes[node].url + "/fhir" + path, params=params, headers=headers,
                     timeout=60)  # fmt: skip


def _fhir(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    return dict(response.json())


def _receipts(net: Network) -> int:
    store = net.nodes["hospital-b"].service.node.store
    return sum(1 for tx in store.iter_txs() if tx.tx_type == "access.receipt")


def test_a_search_reads_the_chart_from_every_vault(net: Network) -> None:
    token = _token(net)
    before = _receipts(net)
    answer = _get(net, "/Observation", token, patient=PATIENT.address, _sort="date")
    bundle = _fhir(answer)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 3
    resources = [e["resource"] for e in bundle["entry"]]
    ids = {SCENE.records_a["lab1.json"], SCENE.records_a["lab2.json"], SCENE.records_b["lab3.json"]}
    assert {r["id"] for r in resources} == ids
    assert all(r["subject"]["reference"] == f"Patient/{PATIENT.address}" for r in resources)
    assert [r["meta"]["source"].rsplit("#", 1)[1] for r in resources] == [
        "Observation/glu-1", "Observation/glu-2", "Observation/glu-3"]
    assert net.nodes["hospital-a"].url in resources[0]["meta"]["source"]
    # Decimals leave as they were written.
    assert '"value":7.20' in answer.text.replace(" ", "")
    assert '"value":5.0' in answer.text.replace(" ", "")
    # The whole chart (5 records, two vaults, one grant): one release, one receipt per
    # custodian, not one per record.
    assert _receipts(net) - before == 3
    reads = audit_log(net.nodes["hospital-b"].service.node, PATIENT.address)
    member_b = net.nodes["hospital-b"].member.address
    assert {(r.reader, r.via, r.app) for r in reads} == {(EHR_B.address, member_b, "ehr-b")}


def test_everything_and_reads_by_id(net: Network) -> None:
    token = _token(net)
    bundle = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", token))
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["Condition", "Observation", "Observation", "Observation", "Patient"]
    assert bundle["total"] == 5
    patient = _fhir(_get(net, f"/Patient/{PATIENT.address}", token))
    assert patient["id"] == PATIENT.address and patient["birthDate"] == "1970-05-01"
    lab = SCENE.records_b["lab3.json"]
    observation = _fhir(_get(net, f"/Observation/{lab}", token))
    assert observation["id"] == lab and observation["meta"]["versionId"] == "1"
    remote = SCENE.records_a["dm.json"]
    assert _fhir(_get(net, f"/Condition/{remote}", token))["code"]["text"] == "Type 2 diabetes"


def test_scopes_narrow_what_the_grant_allows(net: Network) -> None:
    token = _token(net, scope="system/Observation.rs")
    bundle = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", token))
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Observation"}
    assert bundle["total"] == 3
    outcome = _fhir(_get(net, f"/Condition/{SCENE.records_a['dm.json']}", token), 404)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"


def test_a_patient_without_a_grant_shows_nothing(net: Network) -> None:
    bundle = _fhir(_get(net, "/Observation", _token(net), patient=OTHER.address))
    assert bundle["total"] == 0 and "entry" not in bundle


@pytest.mark.parametrize(
    ("path", "token", "params", "status", "code"),
    [
        ("/Observation", None, {"patient": PATIENT.address}, 401, "login"),
        ("/Observation", "forged", {"patient": PATIENT.address}, 401, "login"),
        ("/Observation", "ok", {}, 400, "invalid"),
        ("/Observation", "ok", {"patient": PATIENT.address, "color": "red"}, 400, None),
        ("/Observation", "ok", {"patient": PATIENT.address, "_format": "xml"}, 406,
         "not-supported"),
        ("/Observation/" + "00" * 16, "ok", {}, 404, "not-found"),
        ("/Observation/not-an-id", "ok", {}, 404, "not-found"),
        ("/Patient/0x1234", "ok", {}, 404, "not-found"),
    ],
)  # fmt: skip
def test_refusals_are_operation_outcomes(
    net: Network, path: str, token: str | None, params: dict[str, str], status: int,
    code: str | None,
) -> None:  # fmt: skip
    bearer = _token(net) if token == "ok" else token
    outcome = _fhir(_get(net, path, bearer, **params), status)
    assert outcome["resourceType"] == "OperationOutcome"
    if code is not None:
        assert outcome["issue"][0]["code"] == code


def test_a_token_is_good_only_at_the_node_that_issued_it(net: Network) -> None:
    token = _token(net)
    outcome = _fhir(_get(net, "/Observation", token, node="hospital-a", patient=PATIENT.address),
                    401)  # fmt: skip
    assert outcome["issue"][0]["code"] == "login"


def test_discovery_names_the_token_endpoint(net: Network) -> None:
    base = net.nodes["hospital-b"].url
    config = httpx.get(base + "/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == base + "/auth/token"
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]


def test_the_token_endpoint_refuses_in_oauth_terms(net: Network) -> None:
    base = net.nodes["hospital-b"].url
    stranger = jwk.JWK.generate(kty="EC", crv="P-384", kid="ehr-b-1")
    form = {"grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _assertion(base + "/auth/token", stranger)}  # fmt: skip
    refused = httpx.post(base + "/auth/token", data=form)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    wrong_grant = httpx.post(base + "/auth/token", data={**form, "grant_type": "password"})
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"


def _delegated(net: Network, delegate: PrivateKey, principal: PrivateKey) -> SignedDelegation:
    delegation = Delegation.of_types(3131, delegate.address, "ehr-b", None,
                                     int(time.time() * 1000) + HOUR_MS)  # fmt: skip
    return SignedDelegation.sign(delegation, principal)


@pytest.mark.parametrize(
    ("case", "status"),
    [("principal holds no grant", 403), ("delegated to another node", 403),
     ("holder's own delegation", 200)],
)  # fmt: skip
def test_a_vault_serves_a_delegated_node_only_what_its_principal_may_see(
    net: Network, case: str, status: int
) -> None:
    """Hospital B's node asks hospital A's vault for the chart on someone's behalf."""
    from medledger.node.client import NodeClient

    member_b, member_insurer = net.nodes["hospital-b"].member, net.nodes["insurer"].member
    delegation = {
        "principal holds no grant": _delegated(net, member_b, DR_B),
        "delegated to another node": _delegated(net, member_insurer, EHR_B),
        "holder's own delegation": _delegated(net, member_b, EHR_B),
    }[case]

    async def ask() -> int:
        async with NodeClient(net.nodes["hospital-a"].url, member_b,
                              delegation=delegation) as client:  # fmt: skip
            return len(await client.committed_records(PATIENT.address))

    if status == 200:
        assert asyncio.run(ask()) == 4
    else:
        with pytest.raises(NodeRefused) as refused:
            asyncio.run(ask())
        assert refused.value.status == status


@pytest.mark.parametrize("change", ["swapped", "dropped"])
def test_a_delegation_cannot_be_changed_on_the_way(net: Network, change: str) -> None:
    """Hospital B's node reads A's vault under one of its principal's delegations; on the
    way, the header is swapped for another delegation of the same principal to the same
    node (another app), or dropped: the request's signature covers it, so A refuses."""
    from medledger.node.client import NodeClient

    member_b = net.nodes["hospital-b"].member
    signed = _delegated(net, member_b, EHR_B)
    other_app = SignedDelegation.sign(
        Delegation.of_types(3131, member_b.address, "another-app", None,
                            int(time.time() * 1000) + HOUR_MS), EHR_B)  # fmt: skip
    client = NodeClient(net.nodes["hospital-a"].url, member_b, delegation=signed)
    url, _, headers = client.signed("GET", "/v1/records/committed", {"patient": PATIENT.address})
    asyncio.run(client.close())
    if change == "swapped":
        headers[DELEGATION_HEADER] = other_app.to_header()
    else:
        del headers[DELEGATION_HEADER]
    answer = httpx.get(url, headers=headers, timeout=30)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == ("SignatureMismatch" if change == "swapped"
                                      else "WrongCoveredComponents")  # fmt: skip


def test_metadata_is_open_and_says_what_is_served(net: Network) -> None:
    from medledger.records.fhir import validate_resource

    base = net.nodes["hospital-b"].url
    statement = _fhir(httpx.get(base + "/fhir/metadata"))
    validate_resource(statement, "metadata")
    assert (statement["kind"], statement["fhirVersion"]) == ("instance", "4.0.1")
    rest = statement["rest"][0]
    (oauth,) = rest["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris == {"authorize": base + "/auth/authorize", "token": base + "/auth/token"}
    observation = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert [i["code"] for i in observation["interaction"]] == [
        "read", "vread", "history-instance", "search-type", "create", "update"]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "search-system"}
    provenance = next(r for r in rest["resource"] if r["type"] == "Provenance")
    assert [p["name"] for p in provenance["searchParam"]] == ["target"]
    names = {p["name"] for p in observation["searchParam"]}
    assert {"code", "date", "category", "patient"} <= names


def test_an_independent_fhir_client_searches_pages_and_reads(net: Network) -> None:
    """fhirpy (nobody here wrote it) drives the API as an EHR would: a search followed
    page by page through the Bundle's next links, then a read by id."""
    from fhirpy import AsyncFHIRClient

    async def drive() -> tuple[list[Any], Any]:
        client = AsyncFHIRClient(net.nodes["hospital-b"].url + "/fhir",
                                 authorization=f"Bearer {_token(net)}")  # fmt: skip
        search = client.resources("Observation").search(patient=PATIENT.address).limit(1)
        found = await search.fetch_all()
        read = await client.reference("Observation", found[0]["id"]).to_resource()
        return found, read

    found, read = asyncio.run(drive())
    assert sorted(o["meta"]["source"].rsplit("/", 1)[1] for o in found) == [
        "glu-1", "glu-2", "glu-3"]
    assert read["id"] == found[0]["id"] and read["resourceType"] == "Observation"


def test_versions_are_read_one_by_one_and_as_a_history(net: Network) -> None:
    """An amended record: vread reaches each version, _history lists them newest first."""
    amended = {**_as_json(_lab(2, "5.0")), "status": "amended"}  # type: ignore[dict-item]

    async def amend() -> None:
        async with net.client("hospital-a", DR_A) as client:
            written, rejected = await upload_records(client, PATIENT.address,
                                                     [("lab2.json", amended)])  # fmt: skip
        assert not rejected and written[0].version == 2

    asyncio.run(amend())
    token, lab = _token(net), SCENE.records_a["lab2.json"]
    first = _fhir(_get(net, f"/Observation/{lab}/_history/1", token))
    second = _fhir(_get(net, f"/Observation/{lab}/_history/2", token))
    assert (first["status"], second["status"]) == ("final", "amended")
    assert (first["meta"]["versionId"], second["meta"]["versionId"]) == ("1", "2")
    assert _fhir(_get(net, f"/Observation/{lab}", token))["status"] == "amended"
    bundle = _fhir(_get(net, f"/Observation/{lab}/_history", token))
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in bundle["entry"]] == ["2", "1"]
    _fhir(_get(net, f"/Observation/{lab}/_history/3", token), 404)
    _fhir(_get(net, f"/Observation/{lab}/_history/x", token), 404)
    patient = _fhir(_get(net, f"/Patient/{PATIENT.address}/_history/1", token))
    assert patient["id"] == PATIENT.address


def _post(net: Network, path: str, body: object, token: str, method: str = "POST",
          **headers: str) -> httpx.Response:  # fmt: skip
    return httpx.request(method, net.nodes["hospital-b"].url + "/fhir" + path,
                         content=json.dumps(body), timeout=60,
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/fhir+json", **headers})  # fmt: skip


def _vault_size(net: Network) -> int:
    return len(net.nodes["hospital-b"].service.vault.for_patient(PATIENT.address))


def _glucose(n: int, subject: str) -> dict[str, Any]:
    lab = {**_lab(n, "x"), "subject": {"reference": subject}}
    lab["valueQuantity"] = {"value": 4.2, "unit": "mmol/L"}
    return lab


def test_a_system_creates_updates_and_reads_back(net: Network) -> None:
    token = _token(net, scope=WRITE)
    created = _post(net, "/Observation", _glucose(4, f"Patient/{PATIENT.address}"), token)
    resource = _fhir(created, 201)
    record = resource["id"]
    assert created.headers["location"].endswith(f"/Observation/{record}/_history/1")
    assert resource["meta"]["versionId"] == "1"
    read = _fhir(_get(net, f"/Observation/{record}", token))
    assert read["valueQuantity"]["value"] == 4.2
    changed = {**_glucose(4, f"Patient/{PATIENT.address}"), "status": "corrected"}
    updated = _fhir(_post(net, f"/Observation/{record}", changed, token, method="PUT"))
    assert (updated["id"], updated["meta"]["versionId"]) == (record, "2")
    assert _fhir(_get(net, f"/Observation/{record}", token))["status"] == "corrected"
    reads = audit_log(net.nodes["hospital-b"].service.node, PATIENT.address)
    assert any(r.record_id == record for r in reads)  # what it wrote it read as anyone does


def test_a_transaction_is_all_or_none_and_links_its_entries(net: Network) -> None:
    token = _token(net, scope=WRITE)
    patient = {"resourceType": "Patient", "id": "b-local", "birthDate": "1970-05-01"}
    entries = [
        {"fullUrl": "urn:uuid:pat", "resource": patient,
         "request": {"method": "PUT", "url": f"Patient/{PATIENT.address}"}},
        {"fullUrl": "urn:uuid:obs", "resource": _glucose(5, "urn:uuid:pat"),
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**CONDITION, "subject": {"reference": "urn:uuid:pat"},
                      "evidence": [{"detail": [{"reference": "urn:uuid:obs"}]}]},
         "request": {"method": "POST", "url": "Condition"}},
    ]  # fmt: skip
    bad = {**_glucose(6, f"Patient/{PATIENT.address}"), "status": "bogus"}
    before = _vault_size(net)
    with_bad = [*entries, {"resource": bad, "request": {"method": "POST", "url": "Observation"}}]
    refused = _post(net, "", {"resourceType": "Bundle", "type": "transaction", "entry": with_bad},
                    token)  # fmt: skip
    outcome = _fhir(refused, 422)
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert diagnostics.startswith("entry[3]: Observation") and diagnostics.count("entry[") == 1
    assert _vault_size(net) == before  # nothing of it was written
    answer = _fhir(_post(net, "", {"resourceType": "Bundle", "type": "transaction",
                                   "entry": entries}, token))  # fmt: skip
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created"] * 3
    assert _vault_size(net) == before + 3
    condition_id = answer["entry"][2]["response"]["location"].split("/")[-3]
    observation_id = answer["entry"][1]["response"]["location"].split("/")[-3]
    condition = _fhir(_get(net, f"/Condition/{condition_id}", token))
    assert condition["subject"]["reference"] == f"Patient/{PATIENT.address}"
    assert condition["evidence"][0]["detail"][0]["reference"] == f"Observation/{observation_id}"


def test_a_batch_answers_each_entry_on_its_own(net: Network) -> None:
    token = _token(net, scope=WRITE)
    good = {"resource": _glucose(7, f"Patient/{PATIENT.address}"),
            "request": {"method": "POST", "url": "Observation"}}  # fmt: skip
    practitioner = {"resource": {"resourceType": "Practitioner", "id": "p1"},
                    "request": {"method": "POST", "url": "Practitioner"}}  # fmt: skip
    answer = _fhir(_post(net, "", {"resourceType": "Bundle", "type": "batch",
                                   "entry": [good, practitioner]}, token))  # fmt: skip
    assert answer["type"] == "batch-response"
    first, second = (e["response"] for e in answer["entry"])
    assert first["status"] == "201 Created"
    assert second["status"].startswith("422")
    assert "institution-level" in second["outcome"]["issue"][0]["diagnostics"]


def test_a_conditional_create_creates_once(net: Network) -> None:
    token = _token(net, scope=WRITE)
    lab = {**_glucose(8, f"Patient/{PATIENT.address}"),
           "identifier": [{"system": "urn:lab:accession", "value": "A-77"}]}  # fmt: skip
    condition = {"If-None-Exist": "identifier=urn:lab:accession|A-77"}
    first = _post(net, "/Observation", lab, token, **condition)
    assert first.status_code == 201, first.text
    again = _post(net, "/Observation", lab, token, **condition)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("case", "status"),
    [("another institution's patient", 422), ("no patient named", 422),
     ("a pseudonym that is no patient", 422), ("not FHIR JSON", 400),
     ("an update of a record kept elsewhere", 422)],
)  # fmt: skip
def test_writes_that_are_refused(net: Network, case: str, status: int) -> None:
    token = _token(net, scope=WRITE)
    body: object = {
        "another institution's patient": _glucose(9, f"Patient/{OTHER.address}"),
        "no patient named": {k: v for k, v in _glucose(9, "x").items() if k != "subject"},
        "a pseudonym that is no patient": _glucose(9, f"Patient/{key('nobody').address}"),
        "not FHIR JSON": ["not", "a", "resource"],
        "an update of a record kept elsewhere": _glucose(9, f"Patient/{PATIENT.address}"),
    }[case]
    before = _vault_size(net)
    if case == "an update of a record kept elsewhere":
        answer = _post(net, f"/Observation/{SCENE.records_a['lab1.json']}", body, token,
                       method="PUT")  # fmt: skip
    else:
        answer = _post(net, "/Observation", body, token)
    outcome = _fhir(answer, status)
    assert outcome["resourceType"] == "OperationOutcome"
    assert _vault_size(net) == before


def test_a_record_s_provenance_carries_its_signature_and_ledger_proof(net: Network) -> None:
    import base64

    from medledger.node.fhir.provenance import PROOF_EXTENSION, TYPED_DATA_EXTENSION
    from medledger.records.fhir import validate_resource
    from medledger.records.header import RecordHeader
    from medledger.records.proof import RecordProof

    asyncio.run(net.checkpoint("hospital-a"))
    token, lab = _token(net), SCENE.records_a["lab1.json"]
    receipts = _receipts(net)
    provenance = _fhir(_get(net, f"/Provenance/{lab}-1", token))
    validate_resource(provenance, "provenance")
    assert _receipts(net) == receipts  # nothing was opened
    assert provenance["target"] == [{"reference": f"Observation/{lab}/_history/1"}]
    assert provenance["agent"][0]["who"]["identifier"]["value"] == DR_A.address
    extensions = {e["url"]: e for e in provenance["extension"]}
    typed = json.loads(extensions[TYPED_DATA_EXTENSION]["valueString"])
    header = RecordHeader.from_json({"network": typed["domain"]["chainId"], **typed["message"]})
    signature = base64.b64decode(provenance["signature"][0]["data"])
    assert header.author(signature) == DR_A.address
    proof_json = base64.b64decode(extensions[PROOF_EXTENSION]["valueAttachment"]["data"])
    proof = RecordProof.from_json(json.loads(proof_json))
    members = [n.member.address for n in net.nodes.values()]
    assert proof.verify(members, 2) == DR_A.address
    found = _fhir(_get(net, "/Provenance", token, target=f"Observation/{lab}"))
    assert found["total"] == 1 and found["entry"][0]["resource"]["id"] == f"{lab}-1"
    assert _fhir(_get(net, "/Provenance", token, target=f"Condition/{lab}"))["total"] == 0
    narrow = _token(net, scope="system/Observation.rs")
    _fhir(_get(net, f"/Provenance/{lab}-1", narrow), 404)
    _fhir(_get(net, f"/Provenance/{lab}-9", token), 404)
    _fhir(_get(net, f"/Provenance/{SCENE.records_a['dm.json']}-1",
               _token(net, scope="system/Provenance.rs system/Observation.rs")), 404)  # fmt: skip


def test_a_system_finds_its_institution_s_patient_by_identifier(net: Network) -> None:
    from medledger.records.patient_index import identifier_digest

    mrn = ("urn:hospital-b:mrn", "B-1234")

    async def index() -> None:
        async with net.client("hospital-b", DR_B) as client:
            key = await client.patient_index_key()
            await client.add_patient_identifiers(PATIENT.address, [identifier_digest(key, mrn)])

    asyncio.run(index())
    token = _token(net)
    found = _fhir(_get(net, "/Patient", token, identifier="urn:hospital-b:mrn|B-1234"))
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["id"] == PATIENT.address
    unknown = _fhir(_get(net, "/Patient", token, identifier="urn:hospital-b:mrn|B-0000"))
    assert unknown["total"] == 0
    _fhir(_get(net, "/Patient", token, identifier="urn:hospital-b:mrn"), 400)  # no value


def test_only_the_institution_s_staff_ask_its_patient_index(net: Network) -> None:
    """A system registered at hospital B that reads as hospital A's doctor."""
    outsider_key = jwk.JWK.generate(kty="EC", crv="P-384", kid="outsider-1")
    registry = ClientRegistry(net.nodes["hospital-b"].service.settings.data_dir)
    registry.add(BackendClient("outsider", {"keys": [outsider_key.export_public(as_dict=True)]},
                               encrypt_keystore(DR_A, PASSPHRASE, scrypt_n=1024)))  # fmt: skip
    base = net.nodes["hospital-b"].url
    claims = {"iss": "outsider", "sub": "outsider", "aud": base + "/auth/token",
              "exp": int(time.time()) + 240, "jti": uuid.uuid4().hex}  # fmt: skip
    assertion = jwt.JWT(header={"alg": "ES384", "kid": "outsider-1"}, claims=claims)
    assertion.make_signed_token(outsider_key)
    form = {"grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion.serialize()}  # fmt: skip
    token = httpx.post(base + "/auth/token", data=form).json()["access_token"]
    outcome = _fhir(_get(net, "/Patient", token, identifier="urn:hospital-b:mrn|B-1234"), 403)
    assert outcome["issue"][0]["code"] == "forbidden"
