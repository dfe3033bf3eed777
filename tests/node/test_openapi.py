"""Schemathesis against the node's own OpenAPI document: generated requests, signed by a
member institution's key, never get a 5xx, and every answer matches the document."""

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
from medledger.node.signatures import new_nonce, sign_request
from tests.node.network import member_key, running_network


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
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("openapi")
    # Hundreds of generated requests from one key and address: limits a clinic would not
    # reach, so that they exercise the routes rather than the rate limit.
    unlimited = {"rate_limit_per_s": 1e6, "rate_limit_burst": 10**6,
                 "auth_failures_per_s": 1e6, "auth_failure_burst": 10**6}  # fmt: skip
    with running_network(root, ["hospital-a", "hospital-b"], **unlimited) as network:
        yield network.nodes["hospital-a"].url


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
