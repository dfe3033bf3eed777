"""Attack table for the FHIR API and the SMART token endpoint, over three real node
servers (127.0.0.1), with the cast of tests/node/test_fhir_api.py: hospital B's system
(client ``ehr-b``, reading as EHR_B, who holds a labs/administrative/conditions grant on
PATIENT) and a second system at B (``dr-b-app``, reading as DR_B, who holds no grant).

Who attacks: a malicious registered FHIR client, a dishonest member node (the insurer),
an outsider at the token endpoint. Each test is an attack and the answer it must get.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jwcrypto import jwk, jwt

from medledger.access import contract as access
from medledger.access.custodian import ReleaseAsk
from medledger.access.delegation import SignedDelegation, digest_of
from medledger.access.release import Release
from medledger.crypto.keystore import encrypt_keystore
from medledger.ledger.tx import SignedTransaction
from medledger.node.client import NodeClient, NodeRefused, RemoteCustodian
from medledger.node.fhir import tokens as tokens_module
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.tokens import ASSERTION_TYPE, TokenError, Tokens
from medledger.node.identities import PASSPHRASE_ENV
from medledger.node.uploads import upload_records
from medledger.records.proof import committed_record
from tests.ledger.consortium import key
from tests.node.network import Network, running_network
from tests.node.test_fhir_api import (
    CLIENT_KEY,
    CONDITION,
    DR_A,
    DR_B,
    EHR_B,
    NURSE_A,
    OTHER,
    PASSPHRASE,
    PATIENT,
    SCENE,
    WRITE,
    _fhir,
    _get,
    _glucose,
    _post,
    _receipts,
    _set_up,
    _token,
    _vault_size,
)
from tests.security.test_insider_network import ANY_NURSE, _approve, _request

#: Records one write may carry at these nodes: small, so that the limit is cheap to test.
WRITE_LIMIT = 4
REVOKER = key("fhir-attack:revoker")  # a patient whose only grant to EHR_B gets revoked
DR_B_KEY = jwk.JWK.generate(kty="EC", crv="P-384", kid="dr-b-app-1")
SLOW_KEY = jwk.JWK.generate(kty="EC", crv="P-384", kid="slow-1")
PHI = "Jo Doe 123-45-6789"


class Attack:
    own_account: str  # a record PATIENT wrote of themself into hospital B's vault
    others_lab: str  # OTHER's lab at hospital A: EHR_B holds no grant on OTHER
    revoker_grant: str


ATTACK = Attack()


def _home_reading() -> dict[str, Any]:
    lab = _glucose(3, f"Patient/{PATIENT.address}")
    return {**lab, "id": "home-glucose", "valueQuantity": {"value": 5.5, "unit": "mmol/L"}}


async def _more(net: Network) -> None:
    # The patient's own account, written into hospital B's vault (enrolled there).
    async with net.client("hospital-b", PATIENT) as client:
        written, rejected = await upload_records(client, PATIENT.address,
                                                 [("home.json", _home_reading())])  # fmt: skip
    assert not rejected, rejected
    ATTACK.own_account = written[0].record_id
    # A lab of another patient, at hospital A.
    async with net.client("hospital-a", DR_A) as client:
        written, rejected = await upload_records(
            client, OTHER.address, [("other.json", _glucose(4, "Patient/other"))]
        )
    assert not rejected, rejected
    ATTACK.others_lab = written[0].record_id
    # A patient enrolled at B whose labs EHR_B may read, until the patient revokes it.
    await net.register_patient(REVOKER, node="hospital-b")
    await net.submit("hospital-b", REVOKER, "access.set_policy",
                     {"category": "labs", "policy": ANY_NURSE})  # fmt: skip
    async with net.client("hospital-b", DR_B) as client:
        written, rejected = await upload_records(
            client, REVOKER.address, [("r.json", _glucose(5, "Patient/r"))]
        )
    assert not rejected, rejected
    request = await _request(net, "hospital-b", EHR_B, categories=["labs"],
                             patient=REVOKER.address)  # fmt: skip
    granted = await _approve(net, "hospital-a", request, NURSE_A)
    assert granted["status"] == "granted", granted
    ATTACK.revoker_grant = request["request"]
    registry = ClientRegistry(net.nodes["hospital-b"].service.settings.data_dir)
    registry.add(BackendClient("dr-b-app", {"keys": [DR_B_KEY.export_public(as_dict=True)]},
                               encrypt_keystore(DR_B, PASSPHRASE, scrypt_n=1024)))  # fmt: skip
    # A system registered as `medledger fhir client add` registers it: a keystore at the
    # default scrypt cost (n = 2**18).
    registry.add(BackendClient("slow-ehr", {"keys": [SLOW_KEY.export_public(as_dict=True)]},
                               encrypt_keystore(EHR_B, PASSPHRASE)))  # fmt: skip


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, PASSPHRASE)
        root = tmp_path_factory.mktemp("fhir-attacks")
        with running_network(root, max_records_per_write=WRITE_LIMIT) as network:
            asyncio.run(_set_up(network))
            asyncio.run(_more(network))
            yield network


def _signed(claims: dict[str, Any], signer: jwk.JWK, header: dict[str, Any]) -> str:
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(signer)
    return str(token.serialize())


def _claims(client: str, aud: str, **changes: Any) -> dict[str, Any]:
    claims = {"iss": client, "sub": client, "aud": aud, "exp": int(time.time()) + 240,
              "jti": uuid.uuid4().hex, **changes}  # fmt: skip
    return {k: v for k, v in claims.items() if v is not None}


def _token_form(assertion: str, scope: str = "system/*.rs") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}  # fmt: skip


def _token_of(net: Network, client: str, signer: jwk.JWK, scope: str = "system/*.rs") -> str:
    url = net.nodes["hospital-b"].url + "/auth/token"
    header = {"alg": "ES384", "kid": signer.get("kid"), "typ": "JWT"}
    answer = httpx.post(url, data=_token_form(_signed(_claims(client, url), signer, header),
                                              scope), timeout=60)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_jws(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (what no honest library would sign)."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(signature)


# -- writes: scopes, the chart rules, the vault's rules, the write limit --------------------


@pytest.mark.parametrize(
    ("scope", "kind"),
    [("system/Observation.rs", "Observation"), ("system/Observation.rs", "Condition"),
     ("system/*.read", "Observation")],
)  # fmt: skip
def test_a_token_granted_only_reading_cannot_write(net: Network, scope: str, kind: str) -> None:
    """A token granted only reading and searching cannot create or update: 403, nothing written."""
    token = _token(net, scope=scope)
    body = (_glucose(4, f"Patient/{PATIENT.address}") if kind == "Observation"
            else {**CONDITION, "subject": {"reference": f"Patient/{PATIENT.address}"}})  # fmt: skip
    before = _vault_size(net)
    outcome = _fhir(_post(net, f"/{kind}", body, token), 403)
    assert outcome["issue"][0]["code"] == "forbidden"
    assert _vault_size(net) == before


def test_a_system_cannot_amend_the_patients_own_account(net: Network) -> None:
    """A patient's own account and the clinicians' record stay apart: a system cannot
    write a next version of what the patient wrote."""
    token = _token(net, scope=WRITE)
    vault = net.nodes["hospital-b"].service.vault
    before = vault.get(bytes.fromhex(ATTACK.own_account)).sealed.header.version
    overwrite = {**_home_reading(), "status": "entered-in-error"}
    answer = _post(net, f"/Observation/{ATTACK.own_account}", overwrite, token, method="PUT")
    outcome = _fhir(answer, 422)
    assert "amend" in outcome["issue"][0]["diagnostics"]
    assert vault.get(bytes.fromhex(ATTACK.own_account)).sealed.header.version == before


def test_a_batch_is_held_to_the_write_limit(net: Network) -> None:
    """``max_records_per_write`` bounds a batch Bundle as it bounds a transaction."""
    token = _token(net, scope=WRITE)
    entries = [{"resource": _glucose(5 + i % 5, f"Patient/{PATIENT.address}"),
                "request": {"method": "POST", "url": "Observation"}}
               for i in range(WRITE_LIMIT + 1)]  # fmt: skip
    before = _vault_size(net)
    answer = _post(net, "", {"resourceType": "Bundle", "type": "batch", "entry": entries}, token)
    _fhir(answer, 422)
    assert _vault_size(net) == before


def test_a_transaction_cannot_put_one_record_twice(net: Network) -> None:
    """Two updates of one record in one transaction are refused, nothing written."""
    token = _token(net, scope=WRITE)
    created = _fhir(_post(net, "/Observation", _glucose(5, f"Patient/{PATIENT.address}"), token),
                    201)  # fmt: skip
    record = created["id"]
    put = {"resource": {**_glucose(5, f"Patient/{PATIENT.address}"), "status": "amended"},
           "request": {"method": "PUT", "url": f"Observation/{record}"}}  # fmt: skip
    before = _vault_size(net)
    answer = _post(net, "", {"resourceType": "Bundle", "type": "transaction",
                             "entry": [put, put]}, token)  # fmt: skip
    assert 400 <= answer.status_code < 500, answer.text
    assert _vault_size(net) == before


def test_an_update_cannot_move_a_record_to_another_patient(net: Network) -> None:
    token = _token(net, scope=WRITE)
    record = SCENE.records_b["lab3.json"]
    before = _vault_size(net)
    answer = _post(net, f"/Observation/{record}", _glucose(3, f"Patient/{OTHER.address}"), token,
                   method="PUT")  # fmt: skip
    _fhir(answer, 422)
    assert _vault_size(net) == before


def test_a_contained_resource_about_another_patient_is_refused(net: Network) -> None:
    """A resource whose contained resource names another patient is refused, as
    importing refuses it."""
    token = _token(net, scope=WRITE)
    contained = {"resourceType": "Observation", "id": "c1", "status": "final",
                 "code": {"text": "glucose"},
                 "subject": {"reference": f"Patient/{OTHER.address}"}}  # fmt: skip
    body = {**_glucose(5, f"Patient/{PATIENT.address}"), "contained": [contained],
            "hasMember": [{"reference": "#c1"}]}  # fmt: skip
    before = _vault_size(net)
    _fhir(_post(net, "/Observation", body, token), 422)
    assert _vault_size(net) == before


# -- reads: receipts, the kept charts, revocation, another patient's records ---------------


def test_reading_what_a_search_found_leaves_no_new_receipts(net: Network) -> None:
    """Reading what a search just found is served from the session's kept chart: no
    new release, no new receipts."""
    token = _token(net)
    bundle = _fhir(_get(net, "/Observation", token, patient=PATIENT.address))
    found = bundle["entry"][0]["resource"]["id"]
    before = _receipts(net)
    for _ in range(3):
        _fhir(_get(net, f"/Observation/{found}", token))
    assert _receipts(net) == before


def test_a_format_refused_reads_nothing(net: Network) -> None:
    """A format we do not serve is refused before anything is opened or receipted."""
    token = _token(net)
    before = _receipts(net)
    record = SCENE.records_b["lab3.json"]
    _fhir(_get(net, f"/Observation/{record}", token, _format="xml"), 406)
    assert _receipts(net) == before


def test_kept_charts_do_not_cross_sessions(net: Network) -> None:
    """Within the 60 s a chart is kept: a narrower token of the same client, and another
    client reading as someone with no grant, see only what their own session may."""
    wide = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", _token(net)))
    assert "Condition" in {e["resource"]["resourceType"] for e in wide["entry"]}
    narrow_token = _token(net, scope="system/Observation.rs")
    narrow = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", narrow_token))
    assert {e["resource"]["resourceType"] for e in narrow["entry"]} == {"Observation"}
    counted = _fhir(_get(net, "/Condition", narrow_token, patient=PATIENT.address,
                         _summary="count"))  # fmt: skip
    assert counted["total"] == 0
    stranger = _token_of(net, "dr-b-app", DR_B_KEY)
    nothing = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", stranger))
    assert nothing["total"] == 0 and "entry" not in nothing
    _fhir(_get(net, f"/Condition/{SCENE.records_a['dm.json']}", stranger), 404)


def test_another_patients_record_is_as_one_that_does_not_exist(net: Network) -> None:
    token = _token(net)
    before = _receipts(net)
    theirs = _fhir(_get(net, f"/Observation/{ATTACK.others_lab}", token), 404)
    missing = _fhir(_get(net, f"/Observation/{'ab' * 16}", token), 404)
    strip = str.maketrans("", "", "0123456789abcdef")
    assert (theirs["issue"][0]["diagnostics"].translate(strip)
            == missing["issue"][0]["diagnostics"].translate(strip))  # fmt: skip
    _fhir(_get(net, f"/Observation/{ATTACK.others_lab}/_history", token), 404)
    _fhir(_get(net, f"/Observation/{ATTACK.others_lab}/_history/1", token), 404)
    assert _fhir(_get(net, "/Observation", token, patient=OTHER.address))["total"] == 0
    assert _receipts(net) == before


def test_a_search_names_exactly_one_patient(net: Network) -> None:
    token = _token(net)
    url = net.nodes["hospital-b"].url + "/fhir/Observation"
    headers = {"Authorization": f"Bearer {token}"}
    me, them = str(PATIENT.address), str(OTHER.address)
    cases: list[list[tuple[str, str]]] = [
        [("patient", f"{me},{them}")],
        [("patient", me), ("patient", them)],
        [("patient", me), ("subject", f"Patient/{them}")],
        [("subject", "Patient/pat-a")],
    ]
    for params in cases:
        answer = httpx.get(url, params=tuple(params), headers=headers, timeout=60)
        assert answer.status_code in (400, 404), (params, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"


def test_a_revoked_grant_is_not_served_from_the_kept_chart(net: Network) -> None:
    """A revocation takes effect at once: the kept chart is not served once a grant it
    was read under no longer holds."""
    token = _token(net)
    before = _fhir(_get(net, f"/Patient/{REVOKER.address}/$everything", token))
    assert before["total"] == 1
    asyncio.run(net.submit("hospital-b", REVOKER, access.REVOKE,
                           {"grant": ATTACK.revoker_grant}))  # fmt: skip
    after = _fhir(_get(net, f"/Patient/{REVOKER.address}/$everything", token))
    assert after["total"] == 0 and "entry" not in after


def test_health_data_is_not_left_in_caches(net: Network) -> None:
    """Every FHIR answer says ``Cache-Control: no-store``."""
    token = _token(net)
    for path, params in ((f"/Patient/{PATIENT.address}/$everything", {}),
                         ("/Observation", {"patient": PATIENT.address}),
                         (f"/Observation/{SCENE.records_b['lab3.json']}", {})):  # fmt: skip
        answer = _get(net, path, token, **params)
        assert answer.status_code == 200
        assert "no-store" in answer.headers.get("cache-control", ""), path


# -- a dishonest node with another node's delegation -------------------------------------


def test_one_dishonest_vault_cannot_deny_the_whole_chart(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hospital A's operator makes its vault list another patient's lab under this
    patient: that record is left out, said so, and the rest of the chart is served."""
    baseline = _fhir(_get(net, f"/Patient/{PATIENT.address}/$everything", _token(net)))
    vault = net.nodes["hospital-a"].service.vault
    honest = vault.for_patient
    foreign = vault.get(bytes.fromhex(ATTACK.others_lab))

    def tampered(patient: Any) -> list[Any]:
        return [*honest(patient), foreign] if patient == PATIENT.address else honest(patient)

    monkeypatch.setattr(vault, "for_patient", tampered)
    answer = _get(net, f"/Patient/{PATIENT.address}/$everything", _token(net))
    bundle = _fhir(answer)
    assert bundle["total"] == baseline["total"]
    assert ATTACK.others_lab not in answer.text


def _captured_delegation(net: Network) -> SignedDelegation:
    """What every member sees: the delegation in a receipt of hospital B's FHIR reads."""
    store = net.nodes["insurer"].service.node.store
    for tx in reversed(list(store.iter_txs())):
        if tx.tx_type == access.RECEIPT:
            payload = SignedTransaction.decode(tx.raw).tx.payload
            if "delegation" in payload:
                return SignedDelegation.from_json(payload["delegation"], 3131)
    raise AssertionError("no delegated receipt on the ledger")


def test_a_captured_delegation_is_no_good_to_another_node(net: Network) -> None:
    _fhir(_get(net, "/Observation", _token(net), patient=PATIENT.address))
    captured = _captured_delegation(net)
    assert captured.delegation.delegate == net.nodes["hospital-b"].member.address
    insurer = net.nodes["insurer"].member
    node_a = net.nodes["hospital-a"]
    stored = node_a.service.vault.get(bytes.fromhex(SCENE.records_a["lab1.json"]))
    record = committed_record(stored, node_a.service.vault_id, node_a.service.node)
    grant = bytes.fromhex(SCENE.grant[2:])
    not_after = int(time.time() * 1000) + 60_000
    release = Release.of(3131, grant, [record.commitment], bytes(32), not_after,
                         delegation=digest_of(captured))  # fmt: skip
    ask = ReleaseAsk(release, release.sign(insurer), (record,), captured)
    before = _receipts(net)

    async def attack() -> None:
        async with NodeClient(node_a.url, insurer) as client:
            await RemoteCustodian(client, node_a.member.address).release(ask)

    with pytest.raises(NodeRefused) as refused:
        asyncio.run(attack())
    assert refused.value.code == "bad_approval"

    async def listing() -> None:
        async with NodeClient(node_a.url, insurer, delegation=captured) as client:
            await client.committed_records(PATIENT.address)

    with pytest.raises(NodeRefused) as refused:
        asyncio.run(listing())
    assert refused.value.status == 403
    assert _receipts(net) == before


# -- the token endpoint ------------------------------------------------------------------


def _forged(net: Network, case: str) -> str:
    url = net.nodes["hospital-b"].url + "/auth/token"
    public = bytes(CLIENT_KEY.export_to_pem())
    claims = _claims("ehr-b", url)
    kid = {"kid": "ehr-b-1", "typ": "JWT"}
    if case == "alg none":
        return _raw_jws({"alg": "none", **kid}, claims)
    if case == "HS384 keyed with the public key":
        head = _raw_jws({"alg": "HS384", **kid}, claims).rsplit(".", 1)[0]
        mac = hmac.new(public, head.encode(), hashlib.sha384).digest()
        return head + "." + _b64(mac)
    attacker = jwk.JWK.generate(kty="EC", crv="P-384", kid="ehr-b-1")
    if case == "the attacker's key embedded":
        header = {"alg": "ES384", "typ": "JWT", "kid": "ehr-b-1",
                  "jwk": attacker.export_public(as_dict=True)}  # fmt: skip
        return _signed(claims, attacker, header)
    if case == "a jku of the attacker's":
        header = {"alg": "ES384", "typ": "JWT", "kid": "evil",
                  "jku": "http://127.0.0.1:9/jwks.json"}  # fmt: skip
        return _signed(claims, attacker, header)
    if case == "addressed to another node's token endpoint":
        other = net.nodes["hospital-a"].url + "/auth/token"
        return _signed(_claims("ehr-b", other), CLIENT_KEY, {"alg": "ES384", **kid})
    if case == "living an hour":
        return _signed(_claims("ehr-b", url, exp=int(time.time()) + 3600), CLIENT_KEY,
                       {"alg": "ES384", **kid})  # fmt: skip
    if case == "another client's name, ehr-b's key":
        return _signed(_claims("dr-b-app", url), CLIENT_KEY, {"alg": "ES384", **kid})
    if case == "no exp":
        return _signed(_claims("ehr-b", url, exp=None), CLIENT_KEY, {"alg": "ES384", **kid})
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    ["alg none", "HS384 keyed with the public key", "the attacker's key embedded",
     "a jku of the attacker's", "addressed to another node's token endpoint",
     "living an hour", "another client's name, ehr-b's key", "no exp"],
)  # fmt: skip
def test_a_forged_client_assertion_gets_no_token(net: Network, case: str) -> None:
    url = net.nodes["hospital-b"].url + "/auth/token"
    answer = httpx.post(url, data=_token_form(_forged(net, case)), timeout=60)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_client"
    assert "access_token" not in answer.text


def test_a_token_request_does_not_stall_the_node(net: Network) -> None:
    """Token requests (a keystore's scrypt, once per client) and the first
    CapabilityStatement (every model built) run off the event loop: the node answers
    other requests meanwhile."""
    url = net.nodes["hospital-b"].url
    header = {"alg": "ES384", "kid": SLOW_KEY.get("kid"), "typ": "JWT"}
    forms = [_token_form(_signed(_claims("slow-ehr", url + "/auth/token"), SLOW_KEY, header))
             for _ in range(2)]  # fmt: skip
    answers: list[int] = []

    def ask(form: dict[str, str]) -> None:
        answers.append(httpx.post(url + "/auth/token", data=form, timeout=60).status_code)

    threads = [threading.Thread(target=ask, args=(form,)) for form in forms]
    for thread in threads:
        thread.start()
    time.sleep(0.15)  # the first request is in its key derivation
    started = time.monotonic()
    assert httpx.get(url + "/fhir/metadata", timeout=60).status_code == 200
    waited = time.monotonic() - started
    for thread in threads:
        thread.join()
    assert answers == [200, 200]
    assert waited < 0.3, f"metadata waited {waited:.2f} s behind token requests"


# -- errors and limits --------------------------------------------------------------------


def test_refusals_do_not_echo_health_data(net: Network) -> None:
    token = _token(net, scope=WRITE)
    lab = _glucose(6, f"Patient/{PATIENT.address}")
    answers = [
        _post(net, "/Observation", {**lab, "status": PHI}, token),
        _post(net, "/Observation", {**lab, "valueQuantity": {"value": PHI}}, token),
        _post(net, "/Observation", {**lab, "effectiveDateTime": PHI}, token),
        _post(net, "/Observation", {**lab, "subject": {"reference": f"Patient/{PHI}"}}, token),
        _post(net, "", {"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": {**lab, "status": PHI},
             "request": {"method": "POST", "url": "Observation"}}]}, token),
        _get(net, "/Observation", token, patient=PATIENT.address, date=PHI),
        _get(net, "/Observation", token, patient=PATIENT.address, code=PHI + "|" + PHI,
             _sort=PHI),
    ]  # fmt: skip
    for answer in answers:
        assert answer.status_code >= 200, answer.text
        assert "123-45-6789" not in answer.text and "Doe" not in answer.text, answer.text


def test_deep_and_huge_bodies_are_refused_cleanly(net: Network) -> None:
    token = _token(net, scope=WRITE)
    before = _vault_size(net)
    deep_json = "[" * 100_000 + "]" * 100_000
    answer = httpx.post(net.nodes["hospital-b"].url + "/fhir/Observation", content=deep_json,
                        headers={"Authorization": f"Bearer {token}",
                                 "Content-Type": "application/fhir+json"}, timeout=60)  # fmt: skip
    _fhir(answer, 400)
    huge = httpx.post(net.nodes["hospital-b"].url + "/fhir/Observation",
                      content=b" " * (17 * 1024 * 1024),
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "application/fhir+json"}, timeout=60)  # fmt: skip
    assert huge.status_code == 413
    assert _vault_size(net) == before


def test_a_deeply_nested_resource_is_refused_as_invalid(net: Network) -> None:
    """A resource nested hundreds of levels deep is refused as invalid (422), and the
    node serves on."""
    token = _token(net, scope=WRITE)
    before = _vault_size(net)
    extension: dict[str, Any] = {"url": "http://example.org/e", "valueString": "x"}
    for _ in range(300):
        extension = {"url": "http://example.org/e", "extension": [extension]}
    deep = {**_glucose(7, f"Patient/{PATIENT.address}"), "extension": [extension]}
    answer = _post(net, "/Observation", deep, token)
    after = _post(net, "/Observation", _glucose(8, f"Patient/{PATIENT.address}"), token)
    assert after.status_code == 201, after.text  # the sealing pool survived
    assert _vault_size(net) == before + 1
    _fhir(answer, 422)


def test_searches_are_bounded(net: Network) -> None:
    token = _token(net)
    many = {f"code{i}": "x" for i in range(60)}
    assert _get(net, "/Observation", token, patient=PATIENT.address, **many).status_code == 400
    wide = _fhir(_get(net, "/Observation", token, patient=PATIENT.address, _count="999999999"))
    (self_link,) = [link["url"] for link in wide["link"] if link["relation"] == "self"]
    assert "_count=500" in self_link
    _fhir(_get(net, "/Observation", token, patient=PATIENT.address,
               _page_token="99999999999"), 400)  # fmt: skip
    codes = ",".join(f"c{i}" for i in range(101))
    _fhir(_get(net, "/Observation", token, patient=PATIENT.address, code=codes), 400)


# -- the token store, in process ---------------------------------------------------------

TOKEN_URL = "http://127.0.0.1:8700/auth/token"


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Tokens, jwk.JWK, jwk.JWK]:
    first = jwk.JWK.generate(kty="EC", crv="P-384", kid="a")
    second = jwk.JWK.generate(kty="EC", crv="P-384", kid="b")
    clients = ClientRegistry(tmp_path)
    for name, signer, person in (("greedy", first, EHR_B), ("honest", second, DR_B)):
        clients.add(BackendClient(name, {"keys": [signer.export_public(as_dict=True)]},
                                  encrypt_keystore(person, PASSPHRASE, scrypt_n=2)))  # fmt: skip
    return Tokens(clients, key("node").address, network_id=7), first, second


def _issue(tokens: Tokens, client: str, signer: jwk.JWK, **changes: Any) -> Any:
    header = {"alg": "ES384", "kid": signer.get("kid"), "typ": "JWT"}
    form = _token_form(_signed(_claims(client, TOKEN_URL, **changes), signer, header))
    return tokens.client_credentials(form, token_url=TOKEN_URL, passphrase=PASSPHRASE)


def test_an_assertion_is_never_replayed_after_its_exp(
    registry: tuple[Tokens, jwk.JWK, jwk.JWK],
) -> None:
    """A spent ``jti`` is kept as long as its assertion could verify (exp plus the
    library's leeway): the assertion gets one token, ever."""
    tokens, greedy, _ = registry
    header = {"alg": "ES384", "kid": greedy.get("kid"), "typ": "JWT"}
    stale = _signed(_claims("greedy", TOKEN_URL, exp=int(time.time()) - 5), greedy, header)
    issued = 0
    for _ in range(3):
        try:
            tokens.client_credentials(_token_form(stale), token_url=TOKEN_URL,
                                      passphrase=PASSPHRASE)  # fmt: skip
            issued += 1
        except TokenError:
            pass
    assert issued <= 1, f"one assertion bought {issued} tokens"


def test_one_client_cannot_use_up_every_token(
    registry: tuple[Tokens, jwk.JWK, jwk.JWK], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the live tokens reach their bound, the client holding the most gives up
    its oldest: one client cannot lock the others out."""
    tokens, greedy, honest = registry
    monkeypatch.setattr(tokens_module, "_MAX_SESSIONS", 5)
    for _ in range(5):
        _issue(tokens, "greedy", greedy)
    _issue(tokens, "honest", honest)  # TokenError temporarily_unavailable today


def test_a_token_names_only_its_own_client_and_principal(
    registry: tuple[Tokens, jwk.JWK, jwk.JWK],
) -> None:
    tokens, greedy, honest = registry
    with pytest.raises(TokenError):
        _issue(tokens, "honest", greedy)  # another client's name, the caller's own key
    _, session = _issue(tokens, "honest", honest, jti="same")
    assert (session.app, session.principal) == ("honest", DR_B.address)
    _, other = _issue(tokens, "greedy", greedy, jti="same")  # jti spaces are per client
    assert other.principal == EHR_B.address
    assert other.delegation.signature != session.delegation.signature
