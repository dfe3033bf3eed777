"""SMART scopes and Backend Services tokens: what is granted, and every refusal."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwk, jwt

from medledger.crypto.keystore import encrypt_keystore
from medledger.errors import InvalidInput
from medledger.node.fhir.clients import BackendClient, ClientRegistry
from medledger.node.fhir.scopes import grant_scopes
from medledger.node.fhir.tokens import ASSERTION_TYPE, TokenError, Tokens
from tests.ledger.consortium import key

SYSTEM = frozenset({"system"})
TOKEN_URL = "http://127.0.0.1:8700/auth/token"
PASSPHRASE = "node passphrase"
NODE = key("node")
SERVICE_ACCOUNT = key("ehr-service")


@pytest.mark.parametrize(
    ("asked", "scope", "types"),
    [
        ("system/*.rs", "system/*.rs", None),
        ("system/*.read", "system/*.read", None),
        ("system/Observation.rs system/Patient.r", "system/Observation.rs system/Patient.r",
         {"Observation", "Patient"}),
        ("system/Observation.cruds", "system/Observation.crus", {"Observation"}),
        ("system/Observation.write system/Condition.read",
         "system/Observation.write system/Condition.read", {"Condition"}),
        ("openid fhirUser system/Observation.s", "openid fhirUser system/Observation.s",
         {"Observation"}),
    ],
)  # fmt: skip
def test_scopes_grant_only_reading(asked: str, scope: str, types: set[str] | None) -> None:
    granted = grant_scopes(asked, contexts=SYSTEM)
    assert granted.scope == scope
    assert granted.types == (None if types is None else frozenset(types))


@pytest.mark.parametrize(
    ("asked", "why"),
    [("", "no scope"), ("system/Observation.write", "no scope"), ("openid", "no scope"),
     ("user/Observation.rs", "may not use user/"), ("system/Nothing.rs", "no FHIR R4"),
     ("system/Observation.", "no SMART scope"), ("system/observation.rs", "no SMART scope"),
     ("system/Observation.rx", "no SMART scope"), ("admin", "no SMART scope")],
)  # fmt: skip
def test_scopes_refused(asked: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        grant_scopes(asked, contexts=SYSTEM)


@pytest.fixture
def client_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="EC", crv="P-384", kid="k1")


@pytest.fixture
def tokens(tmp_path: Path, client_key: jwk.JWK) -> Tokens:
    registry = ClientRegistry(tmp_path)
    keys = {"keys": [client_key.export_public(as_dict=True)]}
    registry.add(BackendClient("ehr", keys, encrypt_keystore(SERVICE_ACCOUNT, PASSPHRASE,
                                                             scrypt_n=1024)))  # fmt: skip
    return Tokens(registry, NODE.address, network_id=7)


def assertion(signer: jwk.JWK, alg: str = "ES384", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "ehr", "sub": "ehr", "aud": TOKEN_URL, "exp": now + 240,
            "jti": uuid.uuid4().hex} | claims  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    token = jwt.JWT(header={"alg": alg, "kid": signer.get("kid"), "typ": "JWT"}, claims=body)
    token.make_signed_token(signer)
    return str(token.serialize())


def form(signed: str, scope: str = "system/Observation.rs") -> dict[str, str]:
    return {"grant_type": "client_credentials", "scope": scope, "client_assertion": signed,
            "client_assertion_type": ASSERTION_TYPE}  # fmt: skip


def issue(tokens: Tokens, body: dict[str, str]) -> Any:
    return tokens.client_credentials(body, token_url=TOKEN_URL, passphrase=PASSPHRASE)


def test_a_backend_client_gets_a_session_under_its_principal(
    tokens: Tokens, client_key: jwk.JWK
) -> None:
    token, session = issue(tokens, form(assertion(client_key)))
    assert tokens.session(token) == session
    assert (session.principal, session.app, session.scope) == (
        SERVICE_ACCOUNT.address, "ehr", "system/Observation.rs")
    signed = session.delegation
    assert signed.principal() == SERVICE_ACCOUNT.address
    assert signed.delegation.delegate == NODE.address
    assert signed.delegation.allows("Observation") and not signed.delegation.allows("Condition")
    assert tokens.session("not-a-token") is None
    assert tokens.session(token, now_ns=session.expires_ns) is None


def test_an_assertion_is_spent_once(tokens: Tokens, client_key: jwk.JWK) -> None:
    signed = assertion(client_key)
    issue(tokens, form(signed))
    with pytest.raises(TokenError, match="used before"):
        issue(tokens, form(signed))


@pytest.mark.parametrize(
    ("claims", "why"),
    [({"aud": "http://elsewhere/auth/token"}, "does not verify"),
     ({"iss": "other", "sub": "other"}, "unknown client"),
     ({"sub": "someone"}, "iss and sub"),
     ({"exp": int(time.time()) - 600}, "does not verify"),
     ({"exp": int(time.time()) + 3600}, "within five minutes"),
     ({"jti": None}, "no jti")],
)  # fmt: skip
def test_a_bad_assertion_is_refused(
    tokens: Tokens, client_key: jwk.JWK, claims: dict[str, Any], why: str
) -> None:
    with pytest.raises(TokenError, match=why) as caught:
        issue(tokens, form(assertion(client_key, **claims)))
    assert caught.value.error == "invalid_client"


def test_another_key_or_algorithm_is_refused(tokens: Tokens) -> None:
    stranger = jwk.JWK.generate(kty="EC", crv="P-384", kid="k1")
    with pytest.raises(TokenError, match="does not verify"):
        issue(tokens, form(assertion(stranger)))
    secret = jwk.JWK.generate(kty="oct", size=256, kid="k1")
    with pytest.raises(TokenError, match="does not verify"):
        issue(tokens, form(assertion(secret, alg="HS256")))


@pytest.mark.parametrize(
    ("change", "error"),
    [({"client_assertion_type": "password"}, "invalid_client"),
     ({"client_assertion": ""}, "invalid_client"),
     ({"client_assertion": "not.a.jwt"}, "invalid_client"),
     ({"scope": "user/*.rs"}, "invalid_scope")],
)  # fmt: skip
def test_a_bad_request_is_refused(
    tokens: Tokens, client_key: jwk.JWK, change: dict[str, str], error: str
) -> None:
    with pytest.raises(TokenError) as caught:
        issue(tokens, form(assertion(client_key)) | change)
    assert caught.value.error == error


def test_a_registry_keeps_public_keys_only(tmp_path: Path, client_key: jwk.JWK) -> None:
    private = {"keys": [json.loads(client_key.export_private())]}
    with pytest.raises(Exception, match="public keys only"):
        BackendClient("ehr", private, encrypt_keystore(SERVICE_ACCOUNT, PASSPHRASE,
                                                       scrypt_n=1024))  # fmt: skip
    with pytest.raises(Exception, match="client id"):
        BackendClient("bad id!", {"keys": [client_key.export_public(as_dict=True)]}, {})
    assert ClientRegistry(tmp_path).get("ehr") is None


@pytest.mark.parametrize(
    ("asked", "creates", "updates"),
    [("system/*.rs", set(), set()), ("system/*.cruds", None, None),
     ("system/*.read system/Observation.c", {"Observation"}, set()),
     ("system/*.read system/Condition.u system/Observation.write", {"Observation"},
      {"Condition", "Observation"})],
)  # fmt: skip
def test_scopes_say_what_may_be_created_and_updated(
    asked: str, creates: set[str] | None, updates: set[str] | None
) -> None:
    granted = grant_scopes(asked, contexts=SYSTEM)
    assert granted.creates == (None if creates is None else frozenset(creates))
    assert granted.updates == (None if updates is None else frozenset(updates))
