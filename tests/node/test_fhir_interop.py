"""FHIR clients nobody here wrote drive the API as an EHR would, over the real network of
tests/node/test_fhir_api.py: Python's ``fhirclient`` (SMART on FHIR) reads the
CapabilityStatement into its own R4 models, finds the token endpoint in its SMART
extension, proves itself with a Backend Services assertion, searches, runs
``$everything`` across two institutions' vaults and posts a transaction, as fhirpy
does too; npm's
``fhir-kit-client`` does the same from JavaScript, and a Bulk Data export.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation

from medledger.access.delegation import Delegation, SignedDelegation
from medledger.node.fhir.apps import AppRegistry, PublicApp
from tests.node.network import Network
from tests.node.test_fhir_api import (
    CLIENT_KEY,
    CONDITION,
    PATIENT,
    SCENE,
    WRITE,
    _assertion,
    _glucose,
    _token,
    net,
)

__all__ = ["net"]


def _smart(net: Network, scope: str) -> client.FHIRClient:
    base = net.nodes["hospital-b"].url
    smart = client.FHIRClient(settings={
        "app_id": "ehr-b", "api_base": base + "/fhir/", "scope": scope,
        "jwt_token": _assertion(base + "/auth/token"), "patient_id": PATIENT.address,
    })  # fmt: skip
    assert not smart.prepare()  # the statement read, no token yet
    smart.authorize()
    assert smart.ready
    return smart


def test_fhirclient_authorizes_searches_and_reads(net: Network) -> None:
    smart = _smart(net, "system/*.rs")
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1" and statement.rest[0].mode == "server"
    search = Observation.where(struct={"patient": PATIENT.address, "_count": "2"})
    found = list(search.perform_resources_iter(smart.server))
    ids = {SCENE.records_a["lab1.json"], SCENE.records_a["lab2.json"], SCENE.records_b["lab3.json"]}
    assert ids <= {o.id for o in found}
    read = Observation.read(SCENE.records_b["lab3.json"], smart.server)
    assert read.valueQuantity.unit == "mmol/L" and read.subject.reference.endswith(PATIENT.address)


def test_fhirclient_reads_everything_across_two_institutions(net: Network) -> None:
    smart = _smart(net, "system/*.rs")
    answer = Bundle(smart.server.request_json(f"Patient/{PATIENT.address}/$everything"))
    sources = {e.resource.meta.source.split("#")[0] for e in answer.entry}
    assert sources == {net.nodes["hospital-a"].url, net.nodes["hospital-b"].url}
    assert {e.resource.resource_type for e in answer.entry} >= {"Patient", "Observation",
                                                                "Condition"}  # fmt: skip


def test_fhirclient_posts_a_transaction(net: Network) -> None:
    smart = _smart(net, WRITE)
    observation = _glucose(7, "urn:uuid:obs-subject")
    observation["subject"] = {"reference": f"Patient/{PATIENT.address}"}
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:obs", "resource": observation,
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {**CONDITION, "subject": {"reference": f"Patient/{PATIENT.address}"},
                      "evidence": [{"detail": [{"reference": "urn:uuid:obs"}]}]},
         "request": {"method": "POST", "url": "Condition"}},
    ]}  # fmt: skip
    Bundle(bundle)  # the client's own models take it as valid R4
    answer = Bundle(smart.server.post_json("", bundle).json())
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created"] * 2
    condition_id = answer.entry[1].response.location.split("/")[-3]
    condition = smart.server.request_json(f"Condition/{condition_id}")
    observation_id = answer.entry[0].response.location.split("/")[-3]
    assert condition["evidence"][0]["detail"][0]["reference"] == f"Observation/{observation_id}"


INTEROP = Path(__file__).resolve().parents[1] / "interop"


def test_fhir_kit_client_searches_reads_everything_exports_and_writes(net: Network) -> None:
    """npm's fhir-kit-client, with the client assertion signed by Node's own crypto."""
    base = net.nodes["hospital-b"].url
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": _glucose(8, f"Patient/{PATIENT.address}"),
         "request": {"method": "POST", "url": "Observation"}}]}  # fmt: skip
    settings = {"base": base, "clientId": "ehr-b", "patient": PATIENT.address,
                "jwk": CLIENT_KEY.export_private(as_dict=True), "bundle": bundle}  # fmt: skip
    ran = subprocess.run(["node", str(INTEROP / "fhir_kit.mjs")], input=json.dumps(settings),
                         capture_output=True, text=True, timeout=120, cwd=INTEROP,
                         check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-2000:]
    seen = json.loads(ran.stdout)
    assert seen["tokenUrl"] == base + "/auth/token"
    assert all(len(page) <= 2 for page in seen["pages"]) and len(seen["pages"]) >= 2
    ids = {SCENE.records_a["lab1.json"], SCENE.records_a["lab2.json"], SCENE.records_b["lab3.json"]}
    assert ids <= {i for page in seen["pages"] for i in page}
    origins = {source.split("#")[0] for source in seen["everything"]}
    assert origins == {net.nodes["hospital-a"].url, base}
    assert seen["total"] == len(seen["everything"])
    everything = Counter(source.split("#")[1].split("/")[0] for source in seen["everything"])
    assert seen["exported"] == {"Observation": everything["Observation"],
                                "Condition": everything["Condition"]}  # fmt: skip
    assert seen["transaction"] == ["201 Created"]
    assert seen["refused"] == {"status": 404, "resourceType": "OperationOutcome"}


PATIENT_APP, PATIENT_CALLBACK = "my-chart", "http://127.0.0.1:9/my-chart/callback"


def _patient_signs(base: str, authorize_url: str) -> str:
    """What the consent page does for the patient: read the request, sign its delegation
    with her own key, and hand the decision in; the URL back to the app."""
    asked = httpx.get(authorize_url, follow_redirects=False)
    assert asked.status_code == 303, asked.text
    request_id = parse_qs(urlsplit(asked.headers["location"]).query)["request"][0]
    shown = httpx.get(f"{base}/auth/authorize/requests/{request_id}").json()
    assert shown["patient_launch"] and shown["app"] == PATIENT_APP
    d = shown["delegation"]
    delegation = Delegation(d["network_id"], d["delegate"], d["app"], d["types"],
                            d["not_after_ms"])  # fmt: skip
    signed = SignedDelegation.sign(delegation, PATIENT)
    decided = httpx.post(f"{base}/auth/authorize/decision",
                         json={"request": request_id, "delegation": signed.to_json()})  # fmt: skip
    assert decided.status_code == 200, decided.text
    return str(decided.json()["redirect"])


def test_fhirclient_launches_a_patient_app_that_reads_her_chart_and_audit(net: Network) -> None:
    """SMART App Launch, standalone, by fhirclient's own authorization code and PKCE: the
    patient signs, and her app reads her chart from both vaults and who read it."""
    base = net.nodes["hospital-b"].url
    registry = AppRegistry(net.nodes["hospital-b"].service.settings.data_dir)
    registry.add(PublicApp(PATIENT_APP, (PATIENT_CALLBACK,), "My Chart"))
    smart = client.FHIRClient(settings={
        "app_id": PATIENT_APP, "api_base": base + "/fhir/", "redirect_uri": PATIENT_CALLBACK,
        "scope": "patient/*.rs",
    })  # fmt: skip
    assert not smart.prepare()
    back = _patient_signs(base, smart.authorize_url)
    smart.handle_callback(back)
    assert smart.ready and smart.patient_id == PATIENT.address
    assert smart.patient is not None and smart.patient.birthDate.isostring == "1970-05-01"
    chart = Bundle(smart.server.request_json(f"Patient/{PATIENT.address}/$everything"))
    sources = {e.resource.meta.source.split("#")[0] for e in chart.entry}
    assert sources == {net.nodes["hospital-a"].url, base}
    trail = Bundle(smart.server.request_json(f"AuditEvent?patient={PATIENT.address}"))
    apps = {agent.who.display for e in trail.entry for agent in e.resource.agent
            if agent.who is not None and agent.who.display}  # fmt: skip
    assert PATIENT_APP in apps  # her own reads through this app are in her trail too


def test_fhirpy_reads_everything_and_posts_a_transaction(net: Network) -> None:
    """fhirpy, the client an EHR in Python would pick: ``$everything`` over both vaults
    and a transaction, through its own operation and resource calls."""
    from fhirpy import AsyncFHIRClient

    base = net.nodes["hospital-b"].url

    async def drive() -> tuple[Any, Any, Any]:
        reader = AsyncFHIRClient(base + "/fhir", authorization=f"Bearer {_token(net)}")
        everything = await reader.execute(f"Patient/{PATIENT.address}/$everything", method="get")
        writer = AsyncFHIRClient(base + "/fhir",
                                 authorization=f"Bearer {_token(net, scope=WRITE)}")  # fmt: skip
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": _glucose(9, f"Patient/{PATIENT.address}"),
             "request": {"method": "POST", "url": "Observation"}}]}  # fmt: skip
        answer = await writer.execute("", method="post", data=bundle)
        created = answer["entry"][0]["response"]["location"].split("/")[-3]
        read = await reader.reference("Observation", created).to_resource()
        return everything, answer, read

    everything, answer, read = asyncio.run(drive())
    origins = {e["resource"]["meta"]["source"].split("#")[0] for e in everything["entry"]}
    assert origins == {net.nodes["hospital-a"].url, base}
    assert answer["type"] == "transaction-response"
    assert read["resourceType"] == "Observation" and read["valueQuantity"]["value"] == 4.2
