"""Bulk export over three real node servers, with the scene of tests/node/test_fhir_api.py:
hospital B's system (client ``ehr-b``, reading as EHR_B, who holds a grant on PATIENT)
exports what it may read as NDJSON, through the custodians; and every refusal.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwcrypto import jwk, jwt

from medledger.access.audit import audit_log
from medledger.crypto.keystore import encrypt_keystore
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.export import EXPORT_DIR
from medledger.node.fhir.groups import Group, GroupRegistry
from medledger.node.fhir.tokens import ASSERTION_TYPE
from medledger.node.identities import PASSPHRASE_ENV
from medledger.node.uploads import upload_records
from tests.node.network import Network, running_network
from tests.node.test_fhir_api import (
    DR_A,
    DR_B,
    EHR_B,
    OTHER,
    PASSPHRASE,
    PATIENT,
    _fhir,
    _get,
    _glucose,
    _receipts,
    _set_up,
    _token,
)

#: Small, so that the chart's three Observations take more than one file.
FILE_BYTES = 1024
OTHER_APP_KEY = jwk.JWK.generate(kty="EC", crv="P-384", kid="other-app-1")
NDJSON = "application/fhir+ndjson"
ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        root = tmp_path_factory.mktemp("fhir-export")
        with running_network(root, export_file_bytes=FILE_BYTES) as network:
            asyncio.run(_set_up(network))
            settings = network.nodes["hospital-b"].service.settings
            registry = ClientRegistry(settings.data_dir)
            public = {"keys": [OTHER_APP_KEY.export_public(as_dict=True)]}
            # Another app of the same participant, and an app of one who holds no grant.
            registry.add(BackendClient("ehr-b-other", public,
                                       encrypt_keystore(EHR_B, PASSPHRASE, scrypt_n=1024)))
            registry.add(BackendClient("dr-b-app", public,
                                       encrypt_keystore(DR_B, PASSPHRASE, scrypt_n=1024)))
            cohort = Group.of("cohort", [PATIENT.address, OTHER.address])
            GroupRegistry(settings.data_dir).add(cohort)
            yield network


def _token_of(net: Network, client_id: str) -> str:
    url = net.nodes["hospital-b"].url + "/auth/token"
    claims = {"iss": client_id, "sub": client_id, "aud": url, "exp": int(time.time()) + 240,
              "jti": uuid.uuid4().hex}  # fmt: skip
    assertion = jwt.JWT(header={"alg": "ES384", "kid": "other-app-1"}, claims=claims)
    assertion.make_signed_token(OTHER_APP_KEY)
    form = {"grant_type": "client_credentials", "scope": "system/*.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion.serialize()}  # fmt: skip
    answer = httpx.post(url, data=form)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _kick_off(net: Network, path: str, token: str, **params: str) -> str:
    answer = httpx.get(net.nodes["hospital-b"].url + "/fhir" + path, params=params,
                       headers={"Authorization": f"Bearer {token}", **ASYNC})  # fmt: skip
    assert answer.status_code == 202, answer.text
    return answer.headers["content-location"]


def _call(url: str, token: str, method: str = "GET") -> httpx.Response:
    return httpx.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _manifest(status_url: str, token: str) -> dict[str, Any]:
    """Poll until the job is done (at most a minute)."""
    deadline = time.monotonic() + 60
    while True:
        answer = _call(status_url, token)
        if answer.status_code != 202:
            break
        assert "charts read" in answer.headers["x-progress"]
        assert time.monotonic() < deadline, "the export did not finish in a minute"
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store" and "expires" in answer.headers
    return dict(answer.json())


def _lines(url: str, token: str) -> list[str]:
    answer = _call(url, token)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(NDJSON)
    assert answer.headers["cache-control"] == "no-store"
    return answer.text.splitlines()


def _exported(manifest: dict[str, Any], token: str) -> dict[str, list[dict[str, Any]]]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for output in manifest["output"]:
        lines = _lines(output["url"], token)
        assert len(lines) == output["count"]
        resources = [json.loads(line) for line in lines]
        assert {r["resourceType"] for r in resources} == {output["type"]}
        by_type.setdefault(output["type"], []).extend(resources)
    return by_type


def _everything(net: Network) -> Counter[str]:
    bundle = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", _token(net)))
    return Counter(e["resource"]["resourceType"] for e in bundle["entry"])


def _job_dirs(net: Network) -> list[Path]:
    root = net.nodes["hospital-b"].service.settings.data_dir / EXPORT_DIR
    return sorted(root.iterdir()) if root.exists() else []


def test_a_patient_export_holds_what_everything_shows(net: Network) -> None:
    expected = _everything(net)
    token, receipts = _token(net), _receipts(net)
    base = net.nodes["hospital-b"].url
    status_url = _kick_off(net, "/Patient/$export", token, _outputFormat=NDJSON)
    assert status_url.startswith(base + "/fhir/")
    manifest = _manifest(status_url, token)
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["request"] == f"{base}/fhir/Patient/$export?_outputFormat=" + (
        "application%2Ffhir%2Bndjson")
    assert manifest["transactionTime"].endswith("Z")
    exported = _exported(manifest, token)
    assert Counter({kind: len(found) for kind, found in exported.items()}) == expected
    # Split once a file passes the node's byte bound: three Observations, two files or more.
    observation_files = [o for o in manifest["output"] if o["type"] == "Observation"]
    assert len(observation_files) >= 2
    (patient,) = exported["Patient"]
    assert patient["id"] == PATIENT.address
    observations = exported["Observation"]
    assert all(o["subject"]["reference"] == f"Patient/{PATIENT.address}" for o in observations)
    raw = "".join(line for o in observation_files for line in _lines(o["url"], token))
    assert '"value":7.20' in raw.replace(" ", "")  # decimals as written
    # Read through the custodians, the receipts naming the app.
    assert _receipts(net) - receipts >= 3
    reads = audit_log(net.nodes["hospital-b"].service.node, PATIENT.address)
    assert {(r.reader, r.app) for r in reads} == {(EHR_B.address, "ehr-b")}


def test_type_and_since_narrow_the_export(net: Network) -> None:
    token = _token(net)
    manifest = _manifest(_kick_off(net, "/Patient/$export", token, _type="Condition,Patient"),
                         token)  # fmt: skip
    assert sorted(o["type"] for o in manifest["output"]) == ["Condition", "Patient"]
    since = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    async def write() -> str:
        async with net.client("hospital-a", DR_A) as client:
            written, rejected = await upload_records(
                client, PATIENT.address, [("new.json", _glucose(9, "Patient/pat-a"))]
            )
        assert not rejected, rejected
        return written[0].record_id

    new = asyncio.run(write())
    token = _token(net)
    manifest = _manifest(_kick_off(net, "/Patient/$export", token, _since=since), token)
    exported = _exported(manifest, token)
    assert [r["id"] for rs in exported.values() for r in rs] == [new]
    later = "2999-01-01T00:00:00Z"
    assert _manifest(_kick_off(net, "/Patient/$export", token, _since=later), token)["output"] == []


def test_a_group_export_covers_only_the_members_the_token_may_read(net: Network) -> None:
    """OTHER is in the Group, but EHR_B holds no grant on OTHER's data."""
    token = _token(net)
    group = _fhir(_get(net, "/Group/cohort", token))
    assert group["quantity"] == 1
    assert group["member"] == [{"entity": {"reference": f"Patient/{PATIENT.address}"}}]
    manifest = _manifest(_kick_off(net, "/Group/cohort/$export", token), token)
    exported = _exported(manifest, token)
    assert [p["id"] for p in exported["Patient"]] == [PATIENT.address]
    assert Counter({kind: len(found) for kind, found in exported.items()}) == _everything(net)
    _fhir(_get(net, "/Group/nobody", token), 404)
    # A record id names a record of type Group, read as any other record.
    record = _fhir(_get(net, "/Group/" + "00" * 16, token), 404)
    assert "this token may read" in record["issue"][0]["diagnostics"]
    _fhir(_get(net, "/Group/cohort", _token(net, scope="system/Observation.rs")), 403)
    answer = httpx.get(net.nodes["hospital-b"].url + "/fhir/Group/nobody/$export",
                       headers={"Authorization": f"Bearer {token}", **ASYNC})  # fmt: skip
    _fhir(answer, 404)


@pytest.mark.parametrize("client_id", ["ehr-b-other", "dr-b-app"])
def test_another_app_or_participant_finds_no_job(net: Network, client_id: str) -> None:
    token = _token(net)
    status_url = _kick_off(net, "/Patient/$export", token)
    manifest = _manifest(status_url, token)
    stranger = _token_of(net, client_id)
    for url in (status_url, manifest["output"][0]["url"]):
        _fhir(_call(url, stranger), 404)
    _fhir(_call(status_url, stranger, "DELETE"), 404)
    _fhir(_call(status_url, "forged"), 401)
    assert _call(status_url, token).status_code == 200  # still there for its owner


def test_delete_removes_the_job_and_its_files(net: Network) -> None:
    token = _token(net)
    status_url = _kick_off(net, "/Patient/$export", token)
    manifest = _manifest(status_url, token)
    job = status_url.rsplit("/", 1)[1]
    assert any(d.name == job for d in _job_dirs(net))
    assert _call(status_url, token, "DELETE").status_code == 202
    assert all(d.name != job for d in _job_dirs(net))
    _fhir(_call(status_url, token), 404)
    _fhir(_call(manifest["output"][0]["url"], token), 404)
    _fhir(_call(status_url, token, "DELETE"), 404)


@pytest.mark.parametrize(
    ("headers", "params", "status", "code"),
    [
        ({"Accept": "application/fhir+json"}, {}, 400, "invalid"),
        (ASYNC, {"_outputFormat": "text/csv"}, 400, "invalid"),
        (ASYNC, {"_type": "Observation,Nonsense"}, 400, "invalid"),
        (ASYNC, {"_since": "2026-01-01"}, 400, "invalid"),
        (ASYNC, {"_since": "2026-02-30T00:00:00Z"}, 400, "invalid"),
        (ASYNC, {"_typeFilter": "Observation?code=x"}, 400, "invalid"),
        ({**ASYNC, "Accept": "application/xml"}, {}, 406, "not-supported"),
    ],
)  # fmt: skip
def test_kick_offs_that_are_refused(
    net: Network, headers: dict[str, str], params: dict[str, str], status: int, code: str
) -> None:
    before = _job_dirs(net)
    answer = httpx.get(net.nodes["hospital-b"].url + "/fhir/Patient/$export", params=params,
                       headers={"Authorization": f"Bearer {_token(net)}", **headers})  # fmt: skip
    outcome = _fhir(answer, status)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    assert _job_dirs(net) == before


def test_metadata_declares_the_export_operations(net: Network) -> None:
    statement = _fhir(httpx.get(net.nodes["hospital-b"].url + "/fhir/metadata"))
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    for kind, definition in (("Patient", "patient-export"), ("Group", "group-export")):
        (operation,) = resources[kind]["operation"]
        assert operation["name"] == "export"
        assert operation["definition"].endswith("/OperationDefinition/" + definition)
