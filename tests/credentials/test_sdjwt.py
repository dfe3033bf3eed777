"""SD-JWT VC credentials: round trip, one test per refusal, no leaks, interop with sd_jwt."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwcrypto import jwk, jws
from sd_jwt.holder import SDJWTHolder
from sd_jwt.verifier import SDJWTVerifier

from medledger.credentials.errors import (
    BadDisclosure,
    CredentialExpired,
    CredentialNotYetValid,
    InvalidPresentation,
    KeyBindingFailed,
    NonceMismatch,
    UnknownIssuer,
    WrongAudience,
)
from medledger.credentials.sdjwt import (
    VCT_HEALTH_SUMMARY,
    issue_sd_jwt,
    present_sd_jwt,
    verify_sd_jwt,
)
from medledger.errors import MedledgerError, UsageError

ISSUER = "https://hospital-a.example"
AUDIENCE = "https://insurer.example"
NONCE = "n-5f2c9a"
NOW = 1_760_000_000
ISSUED_AT = NOW - 3_600
LIFETIME = 30 * 86_400
ISSUER_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
ISSUER_PUBLIC = jwk.JWK(**ISSUER_KEY.export_public(as_dict=True))
HOLDER_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
OTHER_KEY = jwk.JWK.generate(kty="EC", crv="P-256")
#: A value that must never surface in an error.
SECRET = "HbA1c-7.9-percent-zq81"
CLAIMS: dict[str, Any] = {
    "hba1c": SECRET,
    "hba1c_below_6_5": False,
    "bmi_band": "25-30",
    "smoker": False,
    "conditions": [{"system": "icd-10", "code": "E11.9"}],
}
SHOWN = ("bmi_band", "smoker")
REGISTERED = ["iss", "iat", "nbf", "exp", "vct", "cnf", "status", "sub", "_sd", "_sd_alg", "..."]
# RFC 9901 section 4.2.1: the disclosure of "family_name": "Möbius" and its SHA-256 digest.
RFC_DISCLOSURE = "WyJfMjZiYzRMVC1hYzZxMktJNmNCVzVlcyIsICJmYW1pbHlfbmFtZSIsICJNw7ZiaXVzIl0"
RFC_DIGEST = "X9yH0Ajrdm1Oij4tWso9UzzKJvPoDxwmuEcO3XAdRC0"


def key_for(iss: str, kid: str) -> jwk.JWK:
    if (iss, kid) != (ISSUER, ISSUER_KEY.thumbprint()):
        raise UnknownIssuer(f"{iss} has no key {kid}")
    return ISSUER_PUBLIC


def issue(claims: dict[str, Any] = CLAIMS, **changes: Any) -> str:
    args: dict[str, Any] = {
        "issuer": ISSUER,
        "vct": VCT_HEALTH_SUMMARY,
        "claims": claims,
        "holder_key": HOLDER_KEY,
        "credential_id": "cred-0001",
        "issued_at": ISSUED_AT,
        "lifetime_s": LIFETIME,
    }
    return issue_sd_jwt(changes.pop("issuer_key", ISSUER_KEY), **(args | changes))


ISSUANCE = issue()


def present(
    issuance: str = ISSUANCE, disclose: Any = SHOWN, key: jwk.JWK = HOLDER_KEY, **changes: Any
) -> str:
    args = {"audience": AUDIENCE, "nonce": NONCE, "now": NOW} | changes
    return present_sd_jwt(issuance, key, disclose, **args)


def verify(presentation: str, **changes: Any) -> Any:
    args = {"audience": AUDIENCE, "nonce": NONCE, "now": NOW} | changes
    return verify_sd_jwt(presentation, key_for, **args)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest(text: str) -> str:
    return b64(hashlib.sha256(text.encode()).digest())


def disclosure(*item: Any) -> str:
    return b64(json.dumps(item).encode())


def sign(key: jwk.JWK, header: dict[str, Any], payload: Any) -> str:
    token = jws.JWS(json.dumps(payload))
    token.add_signature(key, alg=header["alg"], protected=header)
    return str(token.serialize(compact=True))


def split(serialized: str) -> tuple[str, list[str], str]:
    jwt, *disclosures, last = serialized.split("~")
    return jwt, disclosures, last


def decoded(compact: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _ = compact.split(".")
    return json.loads(unb64(header)), json.loads(unb64(payload))


def bind(jwt: str, disclosures: list[str], key: jwk.JWK = HOLDER_KEY, **changes: Any) -> str:
    """The holder's own KB-JWT over exactly these parts, so only the planted fault remains."""
    presented = "".join(part + "~" for part in [jwt, *disclosures])
    claims = {"iat": NOW, "aud": AUDIENCE, "nonce": NONCE, "sd_hash": digest(presented)}
    header = {"alg": "ES256", "typ": changes.pop("typ", "kb+jwt")}
    return presented + sign(key, header, claims | changes)


def reissue(
    edit: Callable[[dict[str, Any], dict[str, Any]], None],
    key: jwk.JWK = ISSUER_KEY,
    extra: tuple[str, ...] = (),
) -> str:
    """A presentation of SHOWN whose issuer JWT was edited, then re-signed by ``key``."""
    jwt, disclosures, _ = split(ISSUANCE)
    header, payload = decoded(jwt)
    payload["_sd"] = sorted([*payload["_sd"], *map(digest, extra)])
    edit(header, payload)
    chosen = [d for d in disclosures if json.loads(unb64(d))[1] in SHOWN]
    return bind(sign(key, header, payload), [*chosen, *extra])


def test_round_trip_discloses_only_the_chosen_claims() -> None:
    result = verify(present())
    assert result.claims == {name: CLAIMS[name] for name in SHOWN}
    assert (result.issuer, result.vct, result.credential_id) == (
        ISSUER,
        VCT_HEALTH_SUMMARY,
        "cred-0001",
    )
    assert (result.issued_at, result.expires_at) == (ISSUED_AT, ISSUED_AT + LIFETIME)
    assert result.key_id == ISSUER_KEY.thumbprint()


def test_issuance_hides_every_claim_behind_one_digest() -> None:
    jwt, disclosures, last = split(ISSUANCE)
    header, payload = decoded(jwt)
    assert last == ""
    assert header == {"alg": "ES256", "typ": "dc+sd-jwt", "kid": ISSUER_KEY.thumbprint()}
    assert payload["cnf"] == {"jwk": HOLDER_KEY.export_public(as_dict=True)}
    assert payload["status"] == {"medledger": {"id": "cred-0001"}}
    assert (payload["iat"], payload["nbf"], payload["exp"]) == (
        ISSUED_AT,
        ISSUED_AT,
        ISSUED_AT + LIFETIME,
    )
    assert sorted(payload["_sd"]) == sorted(map(digest, disclosures))
    assert len(disclosures) == len(CLAIMS)
    assert not set(CLAIMS) & set(payload)
    assert SECRET not in json.dumps(payload)


def test_key_binding_jwt_follows_the_spec() -> None:
    presentation = present()
    _, disclosures, kb = split(presentation)
    header, claims = decoded(kb)
    assert header == {"alg": "ES256", "typ": "kb+jwt"}
    assert claims == {
        "iat": NOW,
        "aud": AUDIENCE,
        "nonce": NONCE,
        "sd_hash": digest(presentation[: -len(kb)]),
    }
    assert len(disclosures) == len(SHOWN)


def test_reference_library_verifies_our_presentation() -> None:
    verifier = SDJWTVerifier(
        present(), lambda iss, header: ISSUER_PUBLIC, expected_aud=AUDIENCE, expected_nonce=NONCE
    )
    payload = verifier.get_verified_payload()
    assert {name: payload[name] for name in SHOWN} == {name: CLAIMS[name] for name in SHOWN}
    assert not set(CLAIMS).difference(SHOWN) & set(payload)


def test_we_verify_the_reference_library_presentation() -> None:
    # The library stamps its KB-JWT with the wall clock.
    now = int(time.time())
    credential = issue(issued_at=now - 10)
    holder = SDJWTHolder(credential)
    holder.create_presentation(dict.fromkeys(SHOWN, True), NONCE, AUDIENCE, HOLDER_KEY)
    result = verify(holder.sd_jwt_presentation, now=now)
    assert result.claims == {name: CLAIMS[name] for name in SHOWN}


def test_rfc9901_disclosure_digest() -> None:
    assert digest(RFC_DISCLOSURE) == RFC_DIGEST
    presentation = reissue(lambda h, p: p.update(_sd=[RFC_DIGEST]))
    jwt, _, _ = split(presentation)
    assert verify(bind(jwt, [RFC_DISCLOSURE])).claims == {"family_name": "Möbius"}


@pytest.mark.parametrize(
    ("now", "error"),
    [
        (ISSUED_AT + LIFETIME + 60, None),
        (ISSUED_AT + LIFETIME + 61, CredentialExpired),
        (ISSUED_AT - 60, None),
        (ISSUED_AT - 61, CredentialNotYetValid),
    ],
)
def test_validity_period_with_leeway(now: int, error: type[Exception] | None) -> None:
    presentation = present(now=now)
    if error is None:
        verify(presentation, now=now)
    else:
        with pytest.raises(error):
            verify(presentation, now=now)


def test_nbf_later_than_iat_is_enforced() -> None:
    presentation = reissue(lambda h, p: p.update(nbf=NOW + 600))
    with pytest.raises(CredentialNotYetValid):
        verify(presentation)


def test_presentation_without_key_binding_is_refused() -> None:
    jwt, disclosures, _ = split(present())
    with pytest.raises(KeyBindingFailed, match="no key-binding"):
        verify(ISSUANCE)
    with pytest.raises(KeyBindingFailed):
        verify("".join(part + "~" for part in [jwt, *disclosures]))


@pytest.mark.parametrize(
    ("forge", "match"),
    [
        (lambda jwt, ds: present(key=OTHER_KEY), "not signed by the holder"),
        (lambda jwt, ds: bind(jwt, ds, typ="JWT"), "typ"),
        (lambda jwt, ds: present(now=NOW - 301), "stale"),
        (lambda jwt, ds: present(now=NOW + 61), "future"),
        (lambda jwt, ds: bind(jwt, ds, iat=str(NOW)), "iat"),
        (lambda jwt, ds: bind(jwt, ds, sd_hash=digest("something else")), "sd_hash"),
        (lambda jwt, ds: present()[:-3], "not signed by the holder"),
        (lambda jwt, ds: f"{jwt}~{ds[0]}~{ds[1]}~not.a.jwt", "malformed"),
    ],
    ids=["other key", "typ", "stale", "future", "iat type", "sd_hash", "cut signature", "junk"],
)
def test_forged_key_binding_is_refused(forge: Callable[..., str], match: str) -> None:
    jwt, disclosures, _ = split(present())
    with pytest.raises(KeyBindingFailed, match=match):
        verify(forge(jwt, disclosures))


def test_key_binding_covers_the_exact_disclosures() -> None:
    jwt, disclosures, kb = split(present())
    dropped = f"{jwt}~{disclosures[0]}~{kb}"
    hidden = next(d for d in split(ISSUANCE)[1] if d not in disclosures)
    added = f"{jwt}~{disclosures[0]}~{disclosures[1]}~{hidden}~{kb}"
    for changed in (dropped, added):
        with pytest.raises(KeyBindingFailed, match="sd_hash"):
            verify(changed)


def test_presentation_for_another_verifier_is_refused() -> None:
    with pytest.raises(
        WrongAudience,
        match=f"expected audience 'https://broker.example', got '{AUDIENCE}'",
    ):
        verify(present(), audience="https://broker.example", nonce="n-other")


def test_replay_with_another_nonce_is_refused() -> None:
    with pytest.raises(NonceMismatch):
        verify(present(), nonce="n-next-request")


def test_tampered_disclosure_is_refused() -> None:
    jwt, disclosures, _ = split(present())
    salt, name, _ = json.loads(unb64(disclosures[0]))
    tampered = disclosure(salt, name, "18.5-25")
    with pytest.raises(BadDisclosure, match=r"disclosures\[0\] is not referenced"):
        verify(bind(jwt, [tampered, disclosures[1]]))


def test_disclosure_not_referenced_by_the_credential_is_refused() -> None:
    jwt, disclosures, _ = split(present())
    foreign = disclosure("c2FsdHNhbHQ", "diabetes", False)
    with pytest.raises(BadDisclosure, match="not referenced"):
        verify(bind(jwt, [*disclosures, foreign]))


def test_duplicated_disclosure_is_refused() -> None:
    jwt, disclosures, _ = split(present())
    with pytest.raises(BadDisclosure, match="twice"):
        verify(bind(jwt, [*disclosures, disclosures[0]]))


@pytest.mark.parametrize(
    "bad",
    [
        disclosure("c2FsdA", "bmi"),
        disclosure("c2FsdA", "bmi", 1, 2),
        disclosure("c2FsdA", 7, 1),
        disclosure("c2FsdA", "iss", "https://evil.example"),
        disclosure("c2FsdA", "...", 1),
        disclosure("c2FsdA", "_sd", []),
        b64(b"not json"),
        b64(b'{"salt": "c2FsdA"}'),
    ],
)
def test_malformed_disclosure_signed_by_the_issuer_is_refused(bad: str) -> None:
    with pytest.raises(BadDisclosure):
        verify(reissue(lambda h, p: None, extra=(bad,)))


def test_claim_disclosed_twice_is_refused() -> None:
    twin = disclosure("c2FsdDI", "smoker", True)
    with pytest.raises(BadDisclosure, match="'smoker' a second time"):
        verify(reissue(lambda h, p: None, extra=(twin,)))


def test_tampered_issuer_payload_is_refused() -> None:
    jwt, disclosures, _ = split(present())
    header, payload, signature = jwt.split(".")
    claims = json.loads(unb64(payload)) | {"exp": NOW + 10 * LIFETIME}
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(InvalidPresentation, match="signature"):
        verify(bind(forged, disclosures))


def test_credential_signed_by_another_key_is_refused() -> None:
    with pytest.raises(InvalidPresentation, match="signature"):
        verify(reissue(lambda h, p: None, key=OTHER_KEY))


@pytest.mark.parametrize("claim", ["iss", "iat", "exp", "vct", "cnf", "status"])
def test_credential_missing_a_registered_claim_is_refused(claim: str) -> None:
    with pytest.raises(InvalidPresentation, match=claim):
        verify(reissue(lambda h, p: p.pop(claim)))


@pytest.mark.parametrize(
    "edit",
    [
        lambda h, p: h.update(typ="example+sd-jwt"),
        lambda h, p: h.pop("kid"),
        lambda h, p: p.update(_sd_alg="sha-512"),
        lambda h, p: p.update(exp=str(NOW + LIFETIME)),
        lambda h, p: p.update(iat=True),
        lambda h, p: p["status"].update(medledger={}),
        lambda h, p: p.update(cnf={"jwk": {"kty": "EC", "crv": "P-256"}}),
        lambda h, p: p.update(_sd="not a list"),
        lambda h, p: p.update(_sd=[*p["_sd"], p["_sd"][0]]),
    ],
    ids=["typ", "kid", "sd_alg", "exp type", "iat bool", "status id", "cnf", "_sd", "_sd dup"],
)
def test_malformed_credential_is_refused(edit: Callable[..., None]) -> None:
    with pytest.raises(InvalidPresentation):
        verify(reissue(edit))


def test_credential_signed_with_another_algorithm_is_refused() -> None:
    secret = jwk.JWK.generate(kty="oct", size=256)
    jwt, disclosures, _ = split(present())
    header, payload = decoded(jwt)
    forged = sign(secret, header | {"alg": "HS256"}, payload)
    with pytest.raises(InvalidPresentation, match="alg"):
        verify(bind(forged, disclosures))


@pytest.mark.parametrize(
    "junk",
    ["", "no tilde", "a.b.c~", "~~", f"{ISSUANCE}é", "e30.e30.e30~x"],
)
def test_malformed_presentation_is_refused(junk: str) -> None:
    with pytest.raises(InvalidPresentation):
        verify(junk)


def test_unknown_issuer_propagates() -> None:
    with pytest.raises(UnknownIssuer):
        verify(reissue(lambda h, p: p.update(iss="https://unknown.example")))


@pytest.mark.parametrize("claim", REGISTERED)
def test_registered_claim_cannot_be_issued_as_disclosable(claim: str) -> None:
    with pytest.raises(UsageError, match=claim):
        issue({"bmi_band": "25-30", claim: "x"})


def test_issue_refuses_wrong_keys_and_reserved_nested_key() -> None:
    with pytest.raises(UsageError, match="issuer_key"):
        issue(issuer_key=ISSUER_PUBLIC)
    with pytest.raises(UsageError, match="holder_key"):
        issue(holder_key=jwk.JWK.generate(kty="EC", crv="P-384"))
    with pytest.raises(UsageError, match="lifetime_s"):
        issue(lifetime_s=0)
    with pytest.raises(UsageError, match="_sd") as caught:
        issue({"lab": {"_sd": [SECRET]}})
    assert SECRET not in "".join(traceback.format_exception(caught.value))


def test_present_refuses_claims_the_credential_lacks() -> None:
    with pytest.raises(UsageError, match="'weight'"):
        present(disclose=["bmi_band", "weight"])
    with pytest.raises(UsageError, match="collection"):
        present(disclose="bmi_band")
    with pytest.raises(UsageError, match="holder_key"):
        present(key=jwk.JWK(**HOLDER_KEY.export_public(as_dict=True)))
    with pytest.raises(UsageError, match="issuance"):
        present(present())


def test_no_claim_value_in_any_error() -> None:
    everything = present(disclose=list(CLAIMS))
    jwt, disclosures, kb = split(everything)
    salt, name, _ = json.loads(unb64(disclosures[0]))
    attempts: list[Callable[[], Any]] = [
        lambda: verify(bind(jwt, [disclosure(salt, name, SECRET + "!"), *disclosures[1:]])),
        lambda: verify(bind(jwt, [*disclosures, disclosures[0]])),
        lambda: verify(bind(jwt, [*disclosures, disclosure("c2FsdA", "x", SECRET)])),
        lambda: verify(f"{jwt}~{kb}"),
        lambda: verify(everything, audience="https://broker.example"),
        lambda: verify(everything, nonce="n-other"),
        lambda: verify(everything, now=NOW + 2 * LIFETIME),
        lambda: verify(everything[:-4]),
        lambda: verify(reissue(lambda h, p: None, extra=(disclosure("s", "smoker", SECRET),))),
        lambda: verify(reissue(lambda h, p: None, extra=(disclosure("s", SECRET),))),
        lambda: present(disclose=["weight"]),
    ]
    for attempt in attempts:
        with pytest.raises(MedledgerError) as caught:
            attempt()
        report = "".join(traceback.format_exception(caught.value))
        assert SECRET not in report
        assert not any(d in report for d in disclosures)


names = st.text(min_size=1, max_size=12).filter(lambda name: name not in REGISTERED)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abxy"), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None)
@given(claims=st.dictionaries(names, values, max_size=6), data=st.data())
def test_verify_returns_exactly_the_disclosed_subset(claims: dict[str, Any], data: Any) -> None:
    chosen = data.draw(st.sets(st.sampled_from(sorted(claims))) if claims else st.just(set()))
    result = verify(present(issue(claims), disclose=chosen))
    assert result.claims == {name: claims[name] for name in chosen}
