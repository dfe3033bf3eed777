"""SD-JWT VC health credentials: issue, present with key binding, verify.

A credential is an issuer-signed JWT (``typ`` ``dc+sd-jwt``, ES256) whose top-level
``_sd`` digests commit to one disclosure per health claim, followed by the
disclosures; a presentation keeps the chosen disclosures and ends with a key-binding
JWT signed by the holder key in ``cnf`` (draft-ietf-oauth-sd-jwt-vc over RFC 9901).
The registered claims and ``status`` (the ledger revocation handle) are always visible.

Issuance uses the ``sd_jwt`` reference library. Verification is written here on
jwcrypto instead: the library skips exp/nbf, treats key binding as optional and
ignores unreferenced disclosures, and wrapping it would hash every disclosure twice.
Checks follow RFC 9901 section 7: issuer signature, validity period, disclosures,
then key binding.

Nothing here reads the clock, the ledger or the network: ``now`` is a parameter and
the issuer key comes from the caller. Messages name claims and checks, never a value.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from jwcrypto import jwk, jws
from jwcrypto.common import JWException
from sd_jwt.common import SDJWTHasSDClaimException, SDObj
from sd_jwt.issuer import SDJWTIssuer

from medledger.credentials.errors import (
    BadDisclosure,
    CredentialExpired,
    CredentialNotYetValid,
    InvalidPresentation,
    KeyBindingFailed,
    NonceMismatch,
    WrongAudience,
)
from medledger.errors import UsageError

__all__ = [
    "VCT_HEALTH_SUMMARY",
    "VerifiedSdJwt",
    "issue_sd_jwt",
    "present_sd_jwt",
    "verify_sd_jwt",
]

VCT_HEALTH_SUMMARY = "urn:medledger:vct:health-summary:1"

_SD_JWT_TYP = "dc+sd-jwt"
_KB_JWT_TYP = "kb+jwt"
_ALG = "ES256"
_DIGEST_ALG = "sha-256"
# The registered claims, plus "..." (the array-element marker) that RFC 9901 section 7.1
# also forbids as a disclosed claim name.
_RESERVED = frozenset(
    {"iss", "iat", "nbf", "exp", "vct", "cnf", "status", "sub", "_sd", "_sd_alg", "..."}
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class VerifiedSdJwt:
    """What a verifier learns from a valid presentation."""

    issuer: str
    vct: str
    credential_id: str
    #: The disclosed claims only; undisclosed ones are not even named.
    claims: dict[str, Any]
    issued_at: int
    expires_at: int
    key_id: str


def issue_sd_jwt(
    issuer_key: jwk.JWK,
    *,
    issuer: str,
    vct: str,
    claims: Mapping[str, Any],
    holder_key: jwk.JWK,
    credential_id: str,
    issued_at: int,
    lifetime_s: int,
) -> str:
    """Return the issuance ``<issuer-jwt>~<disclosure>~...~``, one disclosure per claim."""
    _require_p256(issuer_key, "issuer_key", private=True)
    _require_p256(holder_key, "holder_key", private=False)
    reserved = sorted(_RESERVED.intersection(claims))
    if reserved:
        raise UsageError(f"registered claims cannot be disclosable claims: {', '.join(reserved)}")
    if lifetime_s <= 0:
        raise UsageError(f"lifetime_s must be positive, got {lifetime_s}")
    payload: dict[Any, Any] = {
        "iss": issuer,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime_s,
        "vct": vct,
        "status": {"medledger": {"id": credential_id}},
    }
    payload.update((SDObj(name), value) for name, value in claims.items())
    header = {"typ": _SD_JWT_TYP, "kid": issuer_key.thumbprint()}
    try:
        built = SDJWTIssuer(
            payload, issuer_key, holder_key, sign_alg=_ALG, extra_header_parameters=header
        )
    except SDJWTHasSDClaimException:
        # The library's message quotes the offending object, i.e. health data.
        raise UsageError("a claim value contains the reserved key '_sd'") from None
    return str(built.sd_jwt_issuance)


def present_sd_jwt(
    issuance: str,
    holder_key: jwk.JWK,
    disclose: Collection[str],
    *,
    audience: str,
    nonce: str,
    now: int,
) -> str:
    """Return ``<issuer-jwt>~<chosen disclosures>~<kb-jwt>`` for one verifier's request."""
    if isinstance(disclose, str):
        raise UsageError("disclose must be a collection of claim names, not one string")
    _require_p256(holder_key, "holder_key", private=True)
    parts = issuance.split("~")
    if len(parts) < 2 or parts[-1] or not issuance.isascii():
        raise UsageError("not an SD-JWT issuance '<jwt>~<disclosure>~...~' without key binding")
    named = [(_decode_disclosure(text, i)[0], text) for i, text in enumerate(parts[1:-1])]
    wanted = set(disclose)
    missing = sorted(wanted.difference(name for name, _ in named))
    if missing:
        raise UsageError(f"the credential has no claim {', '.join(map(repr, missing))}")
    chosen = "".join(text + "~" for name, text in named if name in wanted)
    presented = f"{parts[0]}~{chosen}"
    token = jws.JWS(
        json.dumps({"iat": now, "aud": audience, "nonce": nonce, "sd_hash": _digest(presented)})
    )
    token.add_signature(holder_key, alg=_ALG, protected={"alg": _ALG, "typ": _KB_JWT_TYP})
    return presented + str(token.serialize(compact=True))


def verify_sd_jwt(
    presentation: str,
    issuer_key_for: Callable[[str, str], jwk.JWK],
    *,
    audience: str,
    nonce: str,
    now: int,
    max_key_binding_age_s: int = 300,
    leeway_s: int = 60,
) -> VerifiedSdJwt:
    """Check a presentation made for ``audience`` and ``nonce`` and return what it proves.

    ``issuer_key_for(iss, kid)`` is the caller's registry lookup; whatever it raises
    (normally :class:`UnknownIssuer`) propagates.
    """
    parts = presentation.split("~")
    if len(parts) < 2 or not presentation.isascii():
        raise InvalidPresentation("not an SD-JWT presentation '<jwt>~<disclosure>~...~<kb-jwt>'")
    payload, issuer, kid = _verified_payload(parts[0], issuer_key_for)
    vct = _get(payload, "vct", str)
    credential_id = _get(payload, "status.medledger.id", str)
    holder_jwk = _get(payload, "cnf.jwk", dict)
    issued_at = _get(payload, "iat", int)
    expires_at = _get(payload, "exp", int)
    not_before = issued_at
    if "nbf" in payload:
        not_before = max(issued_at, _get(payload, "nbf", int))
    if expires_at < now - leeway_s:
        raise CredentialExpired(f"credential {credential_id} expired at {expires_at}")
    if not_before > now + leeway_s:
        raise CredentialNotYetValid(f"credential {credential_id} is not valid before {not_before}")
    claims = _disclosed_claims(payload, parts[1:-1])
    if not parts[-1]:
        raise KeyBindingFailed("the presentation has no key-binding JWT")
    try:
        holder_key = jwk.JWK(**holder_jwk)
    except (JWException, ValueError, TypeError):
        raise InvalidPresentation("the credential's cnf.jwk is not a valid key") from None
    token = jws.JWS()
    try:
        token.deserialize(parts[-1])
        header = token.jose_header
    except (JWException, ValueError):
        raise KeyBindingFailed("the key-binding JWT is malformed") from None
    if header.get("typ") != _KB_JWT_TYP:
        raise KeyBindingFailed(f"the key-binding JWT's typ is not {_KB_JWT_TYP}")
    try:
        token.verify(holder_key, alg=_ALG)
        binding = json.loads(token.payload)
    except (JWException, ValueError):
        raise KeyBindingFailed("the key-binding JWT is not signed by the holder key") from None
    if not isinstance(binding, dict):
        raise KeyBindingFailed("the key-binding JWT payload is not a JSON object")
    made_at = _get(binding, "iat", int, KeyBindingFailed, "the key-binding JWT")
    if made_at < now - max_key_binding_age_s:
        raise KeyBindingFailed(f"the key-binding JWT is stale: iat {made_at}, now {now}")
    if made_at > now + leeway_s:
        raise KeyBindingFailed(f"the key-binding JWT is from the future: iat {made_at}, now {now}")
    if binding.get("aud") != audience:
        raise WrongAudience(f"expected audience {audience!r}, got {binding.get('aud')!r}")
    if binding.get("nonce") != nonce:
        raise NonceMismatch("the key-binding JWT's nonce is not this request's")
    if binding.get("sd_hash") != _digest(presentation[: -len(parts[-1])]):
        raise KeyBindingFailed("sd_hash does not match the presented JWT and disclosures")
    return VerifiedSdJwt(issuer, vct, credential_id, claims, issued_at, expires_at, kid)


def _verified_payload(
    text: str, issuer_key_for: Callable[[str, str], jwk.JWK]
) -> tuple[dict[str, Any], str, str]:
    token = jws.JWS()
    try:
        token.deserialize(text)
        header = token.jose_header
        # The key lookup needs iss before the signature can be checked.
        payload = json.loads(token.objects["payload"])
    except (JWException, ValueError, KeyError):
        raise InvalidPresentation("the issuer-signed JWT is malformed") from None
    kid = header.get("kid")
    if header.get("typ") != _SD_JWT_TYP or header.get("alg") != _ALG or not isinstance(kid, str):
        raise InvalidPresentation(
            f"the issuer-signed JWT header needs typ {_SD_JWT_TYP}, alg {_ALG} and a kid"
        )
    if not isinstance(payload, dict):
        raise InvalidPresentation("the issuer-signed JWT payload is not a JSON object")
    issuer = _get(payload, "iss", str)
    try:
        token.verify(issuer_key_for(issuer, kid), alg=_ALG)
    except JWException:
        raise InvalidPresentation(f"the signature is not by {issuer}'s key {kid}") from None
    return payload, issuer, kid


def _disclosed_claims(payload: Mapping[str, Any], disclosures: list[str]) -> dict[str, Any]:
    if payload.get("_sd_alg", _DIGEST_ALG) != _DIGEST_ALG:
        raise InvalidPresentation(f"the credential's _sd_alg is not {_DIGEST_ALG}")
    listed = payload.get("_sd", [])
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        raise InvalidPresentation("the credential's _sd is not a list of digests")
    referenced = set(listed)
    if len(referenced) != len(listed):
        raise InvalidPresentation("the credential's _sd lists a digest twice")
    claims: dict[str, Any] = {}
    seen: set[str] = set()
    for i, text in enumerate(disclosures):
        digest = _digest(text)
        if digest not in referenced:
            raise BadDisclosure(f"disclosures[{i}] is not referenced by the credential")
        if digest in seen:
            raise BadDisclosure(f"disclosures[{i}] is presented twice")
        seen.add(digest)
        name, value = _decode_disclosure(text, i)
        if name in claims or name in payload:
            raise BadDisclosure(f"disclosures[{i}] discloses the claim {name!r} a second time")
        claims[name] = value
    return claims


def _decode_disclosure(text: str, index: int) -> tuple[str, Any]:
    try:
        item = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        raise BadDisclosure(f"disclosures[{index}] is not base64url-encoded JSON") from None
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
        raise BadDisclosure(f"disclosures[{index}] is not a [salt, claim name, value] array")
    if not isinstance(item[1], str) or item[1] in _RESERVED:
        raise BadDisclosure(f"disclosures[{index}] does not name a disclosable claim")
    return item[1], item[2]


def _get(
    obj: Any,
    path: str,
    kind: type[_T],
    error: type[Exception] = InvalidPresentation,
    where: str = "the credential",
) -> _T:
    for name in path.split("."):
        obj = obj.get(name) if isinstance(obj, dict) else None
    # bool is an int subclass, but true is not a timestamp.
    if isinstance(obj, kind) and not isinstance(obj, bool):
        return obj
    raise error(f"{where} has no valid {path}")


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _require_p256(key: jwk.JWK, role: str, *, private: bool) -> None:
    if key.get("kty") != "EC" or key.get("crv") != "P-256" or (private and not key.has_private):
        raise UsageError(f"{role} must be an EC P-256 {'private ' if private else ''}JWK")
