"""Schemathesis against the node's own OpenAPI document: generated requests, signed by a
member institution's key, never get a 5xx, and every answer matches the document. The
FHIR API is driven again with a SMART bearer token: every refusal there is an
OperationOutcome in FHIR JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from medledger.crypto.keys import PrivateKey
from medledger.crypto.keystore import encrypt_keystore
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.tokens import ASSERTION_TYPE
from medledger.node.identities import PASSPHRASE_ENV
from medledger.node.signatures import new_nonce, sign_request
from tests.node.network import Network, member_key, running_network
from tests.node.test_fhir_api import CLIENT_KEY, EHR_B, PASSPHRASE, _assertion


class SignedRequests(requests.auth.AuthBase):
    """Signs each prepared request exactly as it will be sent."""

    def __init__(self, key: PrivateKey) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body if isinstance(r.body, bytes) else (r.body or "").encode()
        now = int(time.time())
        assert r.method is not None and r.url is not None
        headers = sign_request(self.key, method=r.method, url=r.url, body=body,
                               created=now, expires=now + 60, nonce=new_nonce())  # fmt: skip
        r.headers.update(headers)
        return r


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root: Path = tmp_path_factory.mktemp("openapi")
    # Hundreds of generated requests from one key and address: limits a clinic would not
    # reach, so that they exercise the routes rather than the rate limit.
    unlimited = {"rate_limit_per_s": 1e6, "rate_limit_burst": 10**6,
                 "auth_failures_per_s": 1e6, "auth_failure_burst": 10**6}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        with running_network(root, ["hospital-a", "hospital-b"], **unlimited) as net:
            settings_a = net.nodes["hospital-a"].service.settings
            ClientRegistry(settings_a.data_dir).add(BackendClient(
                "ehr-b", {"keys": [CLIENT_KEY.export_public(as_dict=True)]},
                encrypt_keystore(EHR_B, PASSPHRASE, scrypt_n=1024)))  # fmt: skip
            yield net


@pytest.fixture(scope="module")
def node_url(network: Network) -> str:
    return network.nodes["hospital-a"].url


def test_every_signed_route_declares_the_rate_limit_answer(node_url: str) -> None:
    document = requests.get(f"{node_url}/openapi.json", timeout=30).json()
    too_many = document["paths"]["/v1/ledger/status"]["get"]["responses"]["429"]
    assert too_many["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert too_many["headers"]["Retry-After"]["schema"] == {"type": "integer"}


def test_no_server_errors_and_every_answer_matches_the_document(node_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{node_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    session = requests.Session()
    session.auth = SignedRequests(member_key("hospital-a"))
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 14

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=node_url, session=session, checks=checks)

        exercise()
    session.close()


class BearerTokens(requests.auth.AuthBase):
    """A Backend Services token, asked for again before it expires."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._token, self._at = "", 0.0

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if time.monotonic() - self._at > 120:
            form = {"grant_type": "client_credentials", "scope": "system/*.cruds",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": _assertion(self.base + "/auth/token")}  # fmt: skip
            answer = requests.post(self.base + "/auth/token", data=form, timeout=30)
            answer.raise_for_status()
            self._token, self._at = answer.json()["access_token"], time.monotonic()
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r


@schemathesis.check
def refusals_are_operation_outcomes(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """FHIR clients read a refusal's reason from an OperationOutcome, nothing else."""
    if response.status_code < 400:
        return None
    media = response.headers.get("content-type", [""])[0]
    assert media.startswith("application/fhir+json"), f"{response.status_code} as {media}"
    body = response.json()
    assert body.get("resourceType") == "OperationOutcome", f"{response.status_code}: {body}"
    assert body["issue"] and all(i["severity"] and i["code"] for i in body["issue"])
    return True


def test_the_fhir_api_answers_every_generated_request_in_fhir_terms(node_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{node_url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, refusals_are_operation_outcomes]
    session = requests.Session()
    session.auth = BearerTokens(node_url)
    operations = [result.ok() for result in api.get_all_operations()]
    fhir = [o for o in operations
            if o.path.split("/")[1] == "fhir" and "smart-configuration" not in o.path]  # fmt: skip
    assert len(fhir) >= 10

    for operation in fhir:

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=node_url, session=session, checks=checks)

        exercise()
    session.close()
