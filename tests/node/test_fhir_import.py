"""NDJSON import through the FHIR API (``POST /fhir/$import``), over the real network of
tests/node/test_fhir_api.py: lines written all or none in one commit, linked by their
ids, and every refusal naming its line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.node.network import Network
from tests.node.test_fhir_api import (
    CONDITION,
    PATIENT,
    WRITE,
    _fhir,
    _get,
    _glucose,
    _token,
    _vault_size,
    net,
)

__all__ = ["net"]
NDJSON = "application/fhir+ndjson"


def _import(net: Network, body: bytes, token: str, media: str = NDJSON) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": media}
    url = net.nodes["hospital-b"].url + "/fhir/$import"
    return httpx.post(url, content=body, headers=headers, timeout=60)


def _ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


def _lines() -> tuple[dict[str, Any], dict[str, Any]]:
    observation = {**_glucose(9, f"Patient/{PATIENT.address}"), "id": "imp-1"}
    condition = {**CONDITION, "id": "imp-2", "subject": {"reference": f"Patient/{PATIENT.address}"},
                 "evidence": [{"detail": [{"reference": "Observation/imp-1"}]}]}  # fmt: skip
    return observation, condition


def test_lines_are_written_together_and_stay_linked(net: Network) -> None:
    token, before = _token(net, scope=WRITE), _vault_size(net)
    body = _ndjson(*_lines()).replace(b'"value": 4.2,', b'"value": 4.20,')
    assert b"4.20" in body
    answer = _fhir(_import(net, body, token))
    assert answer["type"] == "transaction-response"
    assert [e["response"]["status"] for e in answer["entry"]] == ["201 Created"] * 2
    assert _vault_size(net) == before + 2
    observation_id = answer["entry"][0]["response"]["location"].split("/")[-3]
    condition_id = answer["entry"][1]["response"]["location"].split("/")[-3]
    condition = _fhir(_get(net, f"/Condition/{condition_id}", token))
    assert condition["evidence"][0]["detail"][0]["reference"] == f"Observation/{observation_id}"
    # Decimals as written.
    read = _get(net, f"/Observation/{observation_id}", token)
    assert '"value":4.20' in read.text.replace(" ", "")


@pytest.mark.parametrize(
    ("body", "media", "status", "says"),
    [
        (b'{"resourceType": "Observation"', NDJSON, 400, "line 1: not a JSON resource"),
        (b"[1, 2]\n", NDJSON, 400, "line 1: not a FHIR resource"),
        (b"\n", NDJSON, 400, "line 1: not a JSON resource"),
        (b"", NDJSON, 400, "no resource"),
        (b"{}", "application/fhir+json", 400, "application/fhir+ndjson"),
    ],
)
def test_malformed_imports_are_refused_before_anything_is_read(
    net: Network, body: bytes, media: str, status: int, says: str
) -> None:
    outcome = _fhir(_import(net, body, _token(net, scope=WRITE), media), status)
    assert outcome["resourceType"] == "OperationOutcome"
    assert says in outcome["issue"][0]["diagnostics"]


def test_one_refused_line_writes_nothing_and_is_named(net: Network) -> None:
    token, before = _token(net, scope=WRITE), _vault_size(net)
    observation, condition = _lines()
    bad = {**_glucose(10, f"Patient/{PATIENT.address}"), "status": "bogus"}
    outcome = _fhir(_import(net, _ndjson(observation, bad, condition), token), 422)
    assert "line 2" in outcome["issue"][0]["diagnostics"]
    assert _vault_size(net) == before


def test_a_token_that_only_reads_imports_nothing(net: Network) -> None:
    before = _vault_size(net)
    outcome = _fhir(_import(net, _ndjson(*_lines()), _token(net)), 403)
    assert outcome["resourceType"] == "OperationOutcome"
    assert _vault_size(net) == before
