"""SMART App Launch (standalone, authorization code with PKCE): the rules of requests,
decisions and codes against an in-process ledger, every refusal; then a clinician's
launch end to end, the consent page signing in headless Chromium, over real nodes."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from medledger.access.audit import audit_log
from medledger.access.delegation import Delegation, SignedDelegation
from medledger.crypto.keys import PrivateKey
from medledger.errors import UsageError
from medledger.node.errors import NotFound
from medledger.node.fhir.apps import AppRegistry, PublicApp
from medledger.node.fhir.authorization import (
    Authorizations,
    AuthorizeError,
    DecisionRefused,
    NoRedirect,
    Pending,
)
from medledger.node.fhir.clients import ClientRegistry
from medledger.node.fhir.pkce import s256
from medledger.node.fhir.tokens import Session, TokenError, Tokens
from medledger.node.identities import PASSPHRASE_ENV
from tests.access.chain import DR_A, DR_B, PATIENT, STRANGER, T0, Ledger
from tests.ledger.consortium import NETWORK_ID, key
from tests.node import test_fhir_api as fhir_scene
from tests.node.network import Network, running_network

NODE = key("launch:node")
BASE = "https://node.example/fhir"
APP, OTHER_APP = "chart-viewer", "other-app"
REDIRECT = "https://app.example/callback?from=launch"
# RFC 7636 appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
NOW = T0 + 3600 * 10**9
MS = 10**6


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Ledger:
    return Ledger(tmp_path_factory.mktemp("launch-ledger"))


@pytest.fixture
def registry(tmp_path: Path) -> AppRegistry:
    apps = AppRegistry(tmp_path)
    apps.add(PublicApp(APP, (REDIRECT, "http://127.0.0.1:8765/cb"), "Chart Viewer"))
    apps.add(PublicApp(OTHER_APP, ("https://other.example/cb",), OTHER_APP))
    return apps


@pytest.fixture
def auth(registry: AppRegistry) -> Authorizations:
    return Authorizations(registry, member=NODE.address, network_id=NETWORK_ID, fhir_base=BASE)


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(ClientRegistry(tmp_path), NODE.address, NETWORK_ID)


def _params(**changes: str | None) -> dict[str, str]:
    asked = {"response_type": "code", "client_id": APP, "redirect_uri": REDIRECT,
             "scope": "user/Observation.rs", "state": "s-1", "aud": BASE,
             "code_challenge": CHALLENGE, "code_challenge_method": "S256", **changes}  # fmt: skip
    return {k: v for k, v in asked.items() if v is not None}


def _signed(pending: Pending, signer: PrivateKey, **changes: Any) -> SignedDelegation:
    return SignedDelegation.sign(dataclasses.replace(pending.delegation, **changes), signer)


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _form(presented: str, **changes: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": presented, "redirect_uri": REDIRECT,
            "client_id": APP, "code_verifier": VERIFIER, **changes}  # fmt: skip


def _code(auth: Authorizations, ledger: Ledger, signer: PrivateKey, **params: str) -> str:
    pending = auth.begin(_params(**params), NOW)
    return _query(auth.decide(pending.request_id, _signed(pending, signer), ledger.store, NOW))[
        "code"
    ]


def test_s256_is_rfc_7636_s_example() -> None:
    assert s256(VERIFIER) == CHALLENGE


@pytest.mark.parametrize("clinician", [DR_A, DR_B])
def test_a_clinician_s_token_reads_as_whoever_signed(
    auth: Authorizations, tokens: Tokens, ledger: Ledger, clinician: PrivateKey
) -> None:
    asked = "openid fhirUser launch/patient user/Observation.cruds user/Condition.read"
    pending = auth.begin(_params(scope=asked), NOW)
    assert pending.delegation == Delegation(NETWORK_ID, NODE.address, APP, "Condition,Observation",
                                            (NOW + 3600 * 10**9) // MS)  # fmt: skip
    redirect = auth.decide(pending.request_id, _signed(pending, clinician), ledger.store, NOW)
    assert redirect.startswith(REDIRECT + "&")
    answer = _query(redirect)
    assert answer["state"] == "s-1" and answer["from"] == "launch"
    token, session, patient = auth.exchange(_form(answer["code"]), tokens, NOW + 10**9)
    assert patient is None
    assert tokens.session(token, NOW) == session
    assert session.principal == clinician.address and session.app == APP
    # No ID token, no patient picker, no writes: the node holds no key to write with.
    assert session.scope == "user/Observation.rs user/Condition.read"
    assert session.author is None and not session.may_write("POST", "Observation")
    assert session.delegation.principal() == clinician.address
    assert session.expires_ns == pending.delegation.not_after_ms * MS


def test_a_patient_s_launch_names_the_patient(
    auth: Authorizations, tokens: Tokens, ledger: Ledger
) -> None:
    code = _code(auth, ledger, PATIENT, scope="launch/patient patient/*.rs")
    _, session, patient = auth.exchange(_form(code), tokens, NOW)
    assert patient == PATIENT.address == session.principal
    assert session.scope == "launch/patient patient/*.rs"
    assert session.delegation.delegation.resource_types == "*"


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": VERIFIER + "x"}, "invalid_request"),
        ({"aud": "https://elsewhere.example/fhir"}, "invalid_request"),
        ({"aud": None}, "invalid_request"),
        ({"scope": "system/*.rs"}, "invalid_scope"),
        ({"scope": "user/Observation.rs patient/Condition.rs"}, "invalid_scope"),
        ({"scope": "openid fhirUser launch/patient"}, "invalid_scope"),
        ({"scope": "user/Observation.write"}, "invalid_scope"),
        ({"scope": "launch user/Observation.rs"}, "invalid_scope"),
        ({"scope": "user/Nothing.rs"}, "invalid_scope"),
    ],
)  # fmt: skip
def test_a_bad_request_goes_back_to_the_app_with_an_error(
    auth: Authorizations, changes: dict[str, str | None], error: str
) -> None:
    with pytest.raises(AuthorizeError) as refused:
        auth.begin(_params(**changes), NOW)
    answer = _query(refused.value.redirect())
    assert (answer["error"], answer["state"], answer["from"]) == (error, "s-1", "launch")


def test_a_request_without_state_is_refused_without_one(auth: Authorizations) -> None:
    with pytest.raises(AuthorizeError) as refused:
        auth.begin(_params(state=None), NOW)
    answer = _query(refused.value.redirect())
    assert answer["error"] == "invalid_request" and "state" not in answer


@pytest.mark.parametrize(
    "changes",
    [{"client_id": "unknown-app"}, {"client_id": None}, {"redirect_uri": None},
     {"redirect_uri": "https://app.example/callback"},
     {"redirect_uri": REDIRECT + "&x=1"}, {"redirect_uri": "http://127.0.0.1:8766/cb"},
     {"redirect_uri": "https://other.example/cb"}],
)  # fmt: skip
def test_an_unknown_app_or_redirect_uri_is_never_redirected_to(
    auth: Authorizations, changes: dict[str, str | None]
) -> None:
    with pytest.raises(NoRedirect):
        auth.begin(_params(**changes), NOW)


@pytest.mark.parametrize(
    ("changes", "signer", "why"),
    [
        ({"delegate": key("launch:other-node").address}, DR_A, "not this node"),
        ({"app": OTHER_APP}, DR_A, "not chart-viewer"),
        ({"resource_types": "*"}, DR_A, "reaches \\*"),
        ({"resource_types": "Condition,Observation"}, DR_A, "reaches Condition"),
        ({"not_after_ms": (NOW + 3600 * 10**9) // MS + 1}, DR_A, "ends at"),
        ({"not_after_ms": NOW // MS}, DR_A, "ends at"),
        ({}, PATIENT, "no role"),
        ({}, STRANGER, "no role"),
        ({"network_id": NETWORK_ID + 1}, DR_A, "no role"),
    ],
)  # fmt: skip
def test_a_delegation_that_does_not_answer_the_request_is_refused(
    auth: Authorizations, tokens: Tokens, ledger: Ledger, changes: dict[str, Any],
    signer: PrivateKey, why: str,
) -> None:  # fmt: skip
    pending = auth.begin(_params(), NOW)
    signed = _signed(pending, signer, **changes)
    # As the node parses what the page posts: on its own network, whatever was signed.
    received = SignedDelegation.from_json(signed.to_json(), NETWORK_ID)
    with pytest.raises(DecisionRefused, match=why):
        auth.decide(pending.request_id, received, ledger.store, NOW)
    # The request waits for a right answer.
    redirect = auth.decide(pending.request_id, _signed(pending, DR_A), ledger.store, NOW)
    assert auth.exchange(_form(_query(redirect)["code"]), tokens, NOW)[1].principal == DR_A.address


def test_patient_scopes_need_a_patient_s_signature(auth: Authorizations, ledger: Ledger) -> None:
    pending = auth.begin(_params(scope="patient/Observation.rs"), NOW)
    with pytest.raises(DecisionRefused, match="no patient"):
        auth.decide(pending.request_id, _signed(pending, DR_A), ledger.store, NOW)


def test_a_request_is_answered_once_and_expires(auth: Authorizations, ledger: Ledger) -> None:
    pending = auth.begin(_params(), NOW)
    auth.decide(pending.request_id, _signed(pending, DR_A), ledger.store, NOW)
    with pytest.raises(NotFound):
        auth.decide(pending.request_id, _signed(pending, DR_A), ledger.store, NOW)
    late = auth.begin(_params(), NOW)
    with pytest.raises(NotFound):
        auth.decide(late.request_id, _signed(late, DR_A), ledger.store, NOW + 600 * 10**9)


def test_denying_tells_the_app_and_ends_the_request(auth: Authorizations, ledger: Ledger) -> None:
    pending = auth.begin(_params(), NOW)
    answer = _query(auth.deny(pending.request_id, NOW))
    assert (answer["error"], answer["state"]) == ("access_denied", "s-1")
    with pytest.raises(NotFound):
        auth.decide(pending.request_id, _signed(pending, DR_A), ledger.store, NOW)


@pytest.mark.parametrize(
    ("changes", "later_s", "error", "why"),
    [
        ({"code_verifier": VERIFIER[:-1] + "x"}, 0, "invalid_grant", "does not match"),
        ({"code_verifier": "short"}, 0, "invalid_grant", "43 to 128"),
        ({"code_verifier": ""}, 0, "invalid_grant", "43 to 128"),
        ({"code_verifier": CHALLENGE}, 0, "invalid_grant", "does not match"),
        ({"redirect_uri": "http://127.0.0.1:8765/cb"}, 0, "invalid_grant", "redirect_uri"),
        ({"client_id": OTHER_APP}, 0, "invalid_grant", "another client"),
        ({"client_id": "unknown-app"}, 0, "invalid_client", "no app"),
        ({"code": "made-up"}, 0, "invalid_grant", "no such code"),
        ({}, 60, "invalid_grant", "expired"),
    ],
)  # fmt: skip
def test_a_code_is_refused_to_the_wrong_presenter_and_then_spent(
    auth: Authorizations, tokens: Tokens, ledger: Ledger, changes: dict[str, str], later_s: int,
    error: str, why: str,
) -> None:  # fmt: skip
    code = _code(auth, ledger, DR_A)
    with pytest.raises(TokenError, match=why) as refused:
        auth.exchange(_form(code, **changes), tokens, NOW + later_s * 10**9)
    assert refused.value.error == error
    if error == "invalid_grant" and "code" not in changes:
        # A code presented once is gone, right verifier or not.
        with pytest.raises(TokenError, match="used before"):
            auth.exchange(_form(code), tokens, NOW)


def test_a_code_used_twice_revokes_its_token(
    auth: Authorizations, tokens: Tokens, ledger: Ledger
) -> None:
    code = _code(auth, ledger, DR_A)
    token, _, _ = auth.exchange(_form(code), tokens, NOW)
    assert tokens.session(token, NOW) is not None
    with pytest.raises(TokenError, match="used before") as refused:
        auth.exchange(_form(code), tokens, NOW)
    assert refused.value.error == "invalid_grant"
    assert tokens.session(token, NOW) is None


def test_tokens_revoke_only_the_token_named(tokens: Tokens, ledger: Ledger) -> None:
    delegation = Delegation(NETWORK_ID, NODE.address, APP, "*", NOW // MS + 60_000)
    session = Session(DR_A.address, APP, "user/*.rs", SignedDelegation.sign(delegation, DR_A),
                      NOW + 60 * 10**9)  # fmt: skip
    kept, revoked = tokens.issue(session, NOW), tokens.issue(session, NOW)
    tokens.revoke(revoked)
    assert tokens.session(kept, NOW) == session and tokens.session(revoked, NOW) is None


@pytest.mark.parametrize(
    "uri",
    ["http://app.example/cb", "https://app.example/cb#frag", "ftp://app.example/cb",
     "/relative/cb", "https://"],
)  # fmt: skip
def test_an_app_registers_only_safe_redirect_uris(uri: str) -> None:
    with pytest.raises(UsageError, match="redirect URI"):
        PublicApp(APP, (uri,), "App")


def test_the_app_registry_keeps_what_was_added(tmp_path: Path) -> None:
    apps = AppRegistry(tmp_path)
    assert apps.get(APP) is None and apps.apps() == []
    app = PublicApp(APP, ("http://[::1]:9000/cb", "https://app.example/cb"), "Chart Viewer")
    apps.add(app)
    apps.add(PublicApp(APP + "-2", ("http://localhost/cb",), "Second"))
    assert apps.get(APP) == app
    assert [a.client_id for a in apps.apps()] == [APP, APP + "-2"]
    with pytest.raises(UsageError, match="client id"):
        PublicApp("bad id", ("https://app.example/cb",), "App")
    with pytest.raises(UsageError, match="at least one"):
        PublicApp(APP, (), "App")


def test_the_cli_registers_and_lists_apps(tmp_path: Path) -> None:
    from tests.cli.test_chart_cli import medledger
    from tests.cli.test_fhir_cli import _node_config

    config = str(_node_config(tmp_path))
    uris = ["--redirect-uri", REDIRECT, "--redirect-uri", "http://127.0.0.1:8765/cb"]
    added = medledger("fhir", "app", "add", APP, *uris, "--name", "Chart Viewer",
                      "--config", config)  # fmt: skip
    assert added.returncode == 0, added.stderr
    refused = medledger("fhir", "app", "add", "plain-http", "--redirect-uri",
                        "http://app.example/cb", "--config", config)  # fmt: skip
    assert refused.returncode != 0 and "redirect URI" in refused.stderr
    listed = medledger("fhir", "app", "list", "--config", config).stdout.splitlines()
    assert listed == [f"{APP}\tChart Viewer\t{REDIRECT}\thttp://127.0.0.1:8765/cb"]
    assert AppRegistry(tmp_path / "data").get(APP) is not None


# -- end to end: a clinician's launch over real nodes, the consent page in Chromium ---------

CALLBACK = "http://127.0.0.1:9/callback"  # intercepted by the page: nothing listens there
BROWSER_PASSPHRASE = "launch test passphrase"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PASSPHRASE_ENV, fhir_scene.PASSPHRASE)
        with running_network(tmp_path_factory.mktemp("launch")) as network:
            asyncio.run(fhir_scene._set_up(network))
            node_b = network.nodes["hospital-b"].service.settings
            AppRegistry(node_b.data_dir).add(PublicApp(APP, (CALLBACK,), "Chart Viewer"))
            yield network


def _authorize_url(base: str, verifier: str, **changes: str) -> str:
    asked = {"response_type": "code", "client_id": APP, "redirect_uri": CALLBACK,
             "scope": "launch/patient openid fhirUser user/Observation.rs", "state": "st-e2e",
             "aud": base + "/fhir", "code_challenge": s256(verifier),
             "code_challenge_method": "S256", **changes}  # fmt: skip
    return f"{base}/auth/authorize?{urlencode(asked)}"


def _back_at_the_app(page: Any, arrived: list[str]) -> None:
    def app(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="back at the app")

    page.route(CALLBACK + "**", app)


def test_a_clinician_launches_an_app_signs_in_the_browser_and_reads(
    net: Network, tmp_path: Path
) -> None:
    from tests.portal.browser import BROWSER_MISSING, clean_page, write_keystore

    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    base = net.nodes["hospital-b"].url
    config = httpx.get(base + "/fhir/.well-known/smart-configuration").json()
    assert config["authorization_endpoint"] == base + "/auth/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"launch-standalone", "client-public", "permission-user"} <= set(config["capabilities"])
    statement = httpx.get(base + "/fhir/metadata").json()
    oauth = statement["rest"][0]["security"]["extension"][0]["extension"]
    assert {e["url"]: e["valueUri"] for e in oauth}["authorize"] == base + "/auth/authorize"

    verifier = secrets.token_urlsafe(48)
    keystore = write_keystore(tmp_path, fhir_scene.EHR_B, BROWSER_PASSPHRASE, "ehr-b")
    arrived: list[str] = []
    with clean_page() as page:
        _back_at_the_app(page, arrived)
        page.goto(_authorize_url(base, verifier))
        page.wait_for_selector("#asks li")
        assert page.text_content("#app-name") == "Chart Viewer"
        assert page.text_content("#node") == net.nodes["hospital-b"].member.address
        assert page.text_content("#asks") == "read and search patients' Observation records " \
            "that your grants cover"
        page.set_input_files("#keystore", str(keystore))
        page.fill("#passphrase", BROWSER_PASSPHRASE)
        page.click("#allow")
        page.wait_for_url(CALLBACK + "**", timeout=30_000)

        # The user's no goes back to the app as access_denied, with its state.
        page.goto(_authorize_url(base, verifier, state="st-deny"))
        page.wait_for_selector("#asks li")
        page.click("#deny")
        page.wait_for_url(CALLBACK + "?error=access_denied**", timeout=30_000)
    code = _query(arrived[0])
    assert code["state"] == "st-e2e"
    denied = _query(arrived[1])
    assert (denied["error"], denied["state"]) == ("access_denied", "st-deny")

    form = {"grant_type": "authorization_code", "code": code["code"], "redirect_uri": CALLBACK,
            "client_id": APP, "code_verifier": verifier}  # fmt: skip
    answer = httpx.post(base + "/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == "user/Observation.rs" and "patient" not in body
    assert body["token_type"] == "bearer" and body["expires_in"] > 3000
    bearer = {"Authorization": f"Bearer {body['access_token']}"}

    # The doctor's own grant, narrowed to Observations, across both hospitals' vaults.
    search = httpx.get(base + "/fhir/Observation", headers=bearer, timeout=60,
                       params={"patient": fhir_scene.PATIENT.address})  # fmt: skip
    assert search.status_code == 200, search.text
    assert search.json()["total"] == 3
    condition = fhir_scene.SCENE.records_a["dm.json"]
    assert httpx.get(f"{base}/fhir/Condition/{condition}", headers=bearer).status_code == 404
    reads = audit_log(net.nodes["hospital-b"].service.node, fhir_scene.PATIENT.address)
    assert (fhir_scene.EHR_B.address, APP) in {(r.reader, r.app) for r in reads}

    # The code again: refused, and the token it gave is revoked.
    again = httpx.post(base + "/auth/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = httpx.get(base + "/fhir/Observation", headers=bearer,
                        params={"patient": fhir_scene.PATIENT.address})  # fmt: skip
    assert revoked.status_code == 401


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [({"client_id": "unknown-app"}, 400, None), ({"redirect_uri": CALLBACK + "/x"}, 400, None),
     ({"code_challenge_method": "plain"}, 303, "invalid_request"),
     ({"scope": "system/*.rs"}, 303, "invalid_scope")],
)  # fmt: skip
def test_the_authorization_endpoint_redirects_only_to_a_registered_uri(
    net: Network, changes: dict[str, str], status: int, error: str | None
) -> None:
    base = net.nodes["hospital-b"].url
    answer = httpx.get(_authorize_url(base, "v" * 43, **changes), follow_redirects=False)
    assert answer.status_code == status
    if error is None:
        assert "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")
    else:
        assert answer.headers["location"].startswith(CALLBACK + "?")
        assert _query(answer.headers["location"])["error"] == error
