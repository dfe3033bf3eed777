"""SMART Health Cards: FHIR bundles signed as compact JWS and shown as QR codes.

A card (https://spec.smarthealth.cards/) is a W3C-VC-shaped JWT payload holding
a FHIR R4 Bundle, minified, raw-DEFLATE compressed and signed ES256 with a P-256
key whose RFC 7638 thumbprint is the header's ``kid``. On paper it is a QR code
reading ``shc:/`` followed by two digits per JWS character. The issuer's public
key comes from the ledger through the caller's ``issuer_key_for``; nothing here
does I/O or reads the clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import segno
from jwcrypto import jwk, jws
from jwcrypto.common import JWException
from segno import consts

from medledger.credentials.errors import CredentialExpired, InvalidHealthCard
from medledger.errors import UsageError

__all__ = [
    "HEALTH_CARD_TYPE",
    "MAX_QR_JWS",
    "VerifiedHealthCard",
    "card_bundle",
    "health_card_qr",
    "issue_health_card",
    "jws_from_qr_text",
    "qr_text",
    "verify_health_card",
]

HEALTH_CARD_TYPE = "https://smarthealth.cards#health-card"
MAX_QR_JWS = 1195  # the longest JWS the spec lets one version-22 QR code carry
_FHIR_VERSION = "4.0.1"
_QR_PREFIX = "shc:/"
_QR_OFFSET = ord("-")  # the lowest character of a compact JWS encodes as 00
_QR_MAX_PAIR = ord("z") - _QR_OFFSET
_JWS_PART = re.compile(r"[A-Za-z0-9_-]+")
_JWS_CHARS = re.compile(r"[A-Za-z0-9_.-]*")
_DIGITS = re.compile(r"[0-9]*")
_RID = re.compile(r"[A-Za-z0-9_-]{1,24}")
# The key lookup needs the ``iss`` inside the compressed payload, so a payload is inflated
# before its signature can be checked: the cap keeps a forgery from inflating without bound.
_MAX_PAYLOAD = 1 << 20
_COMPACT = (",", ":")


@dataclass(frozen=True)
class VerifiedHealthCard:
    """A card whose signature, header and claims verified."""

    issuer: str
    key_id: str
    issued_at: int
    types: tuple[str, ...]
    bundle: dict[str, Any]
    revocation_id: str | None


def card_bundle(patient: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A "collection" Bundle of ``patient`` then ``entries``, minimised as the spec asks.

    The Patient keeps only its name and birth date. ``Type/id`` references to any of
    the resources become ``resource:N``; a reference to anything else is refused,
    because the verifier could not resolve it and its id would only leak.
    """
    resources = [patient, *entries]
    local = {
        f"{r['resourceType']}/{r['id']}": f"resource:{i}"
        for i, r in enumerate(resources)
        if "id" in r
    }
    identity = {k: patient[k] for k in ("resourceType", "name", "birthDate") if k in patient}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"resource:{i}", "resource": _slim_resource(r, local)}
            for i, r in enumerate([identity, *entries])
        ],
    }


def _slim_resource(resource: Mapping[str, Any], local: Mapping[str, str]) -> Any:
    slim = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    security = resource.get("meta", {}).get("security")
    if security:
        slim["meta"] = {"security": security}
    return _slim(slim, local, codings=False)


def _slim(value: Any, local: Mapping[str, str], *, codings: bool) -> Any:
    if isinstance(value, list):
        return [_slim(v, local, codings=codings) for v in value]
    if not isinstance(value, Mapping):
        return value
    slim: dict[str, Any] = {}
    for key, item in value.items():
        # Without a schema, a CodeableConcept is recognised by its coding list.
        if (key == "text" and "coding" in value) or (key == "display" and codings):
            continue
        if key == "reference" and isinstance(item, str):
            if item not in local:
                raise UsageError("a reference points at a resource that is not in the card")
            slim[key] = local[item]
        else:
            slim[key] = _slim(item, local, codings=key in ("coding", "security"))
    return slim


def issue_health_card(
    issuer_key: jwk.JWK,
    *,
    issuer: str,
    bundle: Mapping[str, Any],
    types: Sequence[str],
    issued_at: int,
    revocation_id: str | None = None,
) -> str:
    """Sign ``bundle`` as a compact-JWS health card; the health-card type is always listed."""
    vc: dict[str, Any] = {
        "type": [HEALTH_CARD_TYPE, *(t for t in types if t != HEALTH_CARD_TYPE)],
        "credentialSubject": {"fhirVersion": _FHIR_VERSION, "fhirBundle": dict(bundle)},
    }
    if revocation_id is not None:
        if not _RID.fullmatch(revocation_id):
            raise UsageError("a revocation id is 1 to 24 base64url characters")
        vc["rid"] = revocation_id
    claims = {"iss": issuer, "nbf": issued_at, "vc": vc}
    payload = json.dumps(claims, separators=_COMPACT, ensure_ascii=False, allow_nan=False)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw: no zlib header
    token = jws.JWS(deflate.compress(payload.encode()) + deflate.flush())
    header = {"zip": "DEF", "alg": "ES256", "kid": issuer_key.thumbprint()}
    token.add_signature(issuer_key, alg="ES256", protected=json.dumps(header, separators=_COMPACT))
    return str(token.serialize(compact=True))


def verify_health_card(
    jws_text: str,
    issuer_key_for: Callable[[str, str], jwk.JWK],
    *,
    now: int,
    leeway_s: int = 60,
) -> VerifiedHealthCard:
    """Verify a compact-JWS card against the key ``issuer_key_for(iss, kid)`` returns.

    ``issuer_key_for`` raises :class:`UnknownIssuer` for an unregistered issuer or key;
    that propagates. Claims are checked only once the signature verified.
    """
    parts = jws_text.split(".")
    if len(parts) != 3 or not all(_JWS_PART.fullmatch(p) for p in parts):
        raise InvalidHealthCard("not a compact JWS")
    header = _json_object(_b64decode(parts[0]), "header")
    if header.get("zip") != "DEF":
        raise InvalidHealthCard("header zip is not DEF")
    if header.get("alg") != "ES256":
        raise InvalidHealthCard("header alg is not ES256")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidHealthCard("header has no kid")
    claims = _json_object(_inflate(_b64decode(parts[1])), "payload")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise InvalidHealthCard("payload has no iss")
    key = issuer_key_for(issuer, kid)
    if key.thumbprint() != kid:
        raise InvalidHealthCard("kid is not the thumbprint of the issuer key")
    token = jws.JWS()
    try:
        token.deserialize(jws_text)
        token.verify(key, alg="ES256")
    except JWException as exc:
        raise InvalidHealthCard("signature does not verify") from exc
    return _verified_claims(claims, issuer, kid, now=now, leeway_s=leeway_s)


def _verified_claims(
    claims: dict[str, Any], issuer: str, kid: str, *, now: int, leeway_s: int
) -> VerifiedHealthCard:
    nbf = _time(claims, "nbf")
    if nbf is None:
        raise InvalidHealthCard("payload has no nbf")
    if nbf > now + leeway_s:
        raise InvalidHealthCard("nbf is in the future")
    exp = _time(claims, "exp")
    if exp is not None and exp + leeway_s < now:
        raise CredentialExpired("health card exp has passed")
    vc = claims.get("vc")
    if not isinstance(vc, dict):
        raise InvalidHealthCard("payload has no vc")
    types = vc.get("type")
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise InvalidHealthCard("vc.type is not a list of strings")
    if HEALTH_CARD_TYPE not in types:
        raise InvalidHealthCard("vc.type lacks the health-card type")
    subject = vc.get("credentialSubject")
    bundle = subject.get("fhirBundle") if isinstance(subject, dict) else None
    if not isinstance(subject, dict) or not isinstance(bundle, dict):
        raise InvalidHealthCard("vc.credentialSubject has no fhirBundle")
    version = subject.get("fhirVersion")
    if not isinstance(version, str) or not version.startswith("4."):
        raise InvalidHealthCard("credentialSubject.fhirVersion is not 4.x")
    rid = vc.get("rid")
    if rid is not None and not isinstance(rid, str):
        raise InvalidHealthCard("vc.rid is not a string")
    return VerifiedHealthCard(issuer, kid, int(nbf), tuple(types), bundle, rid)


def _time(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    # The spec's own examples carry a fractional nbf, so floats count; a bool is no time.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidHealthCard(f"payload {name} is not a number")
    return value


def _b64decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except binascii.Error as exc:
        raise InvalidHealthCard("JWS part is not base64url") from exc


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        payload = inflater.decompress(data, _MAX_PAYLOAD)
    except zlib.error as exc:
        raise InvalidHealthCard("payload is not raw DEFLATE") from exc
    if not inflater.eof or inflater.unused_data:
        raise InvalidHealthCard("payload is not one raw DEFLATE stream within the size cap")
    return payload


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        # Raised below, outside this block: the decoder's exception keeps the whole
        # document, health data included, and must not ride along as the context.
        value = None
    if not isinstance(value, dict):
        raise InvalidHealthCard(f"{what} is not a JSON object")
    return value


def qr_text(jws_text: str) -> str:
    """The single-chunk QR content: ``shc:/`` then ``ord(c) - 45`` as two digits per char."""
    if len(jws_text) > MAX_QR_JWS:
        raise InvalidHealthCard(f"JWS is longer than the {MAX_QR_JWS} characters of one QR code")
    if not _JWS_CHARS.fullmatch(jws_text):
        raise InvalidHealthCard("JWS has a character outside base64url and '.'")
    return _QR_PREFIX + "".join(f"{ord(c) - _QR_OFFSET:02d}" for c in jws_text)


def jws_from_qr_text(text: str) -> str:
    """Inverse of :func:`qr_text`; chunked (deprecated) ``shc:/C/N/`` codes are refused."""
    if not text.startswith(_QR_PREFIX):
        raise InvalidHealthCard("QR text does not start with shc:/")
    digits = text[len(_QR_PREFIX) :]
    if not _DIGITS.fullmatch(digits):
        raise InvalidHealthCard("QR text is not all digits after shc:/")
    if len(digits) % 2:
        raise InvalidHealthCard("QR text has an odd number of digits")
    pairs = [int(digits[i : i + 2]) for i in range(0, len(digits), 2)]
    if any(p > _QR_MAX_PAIR for p in pairs):
        raise InvalidHealthCard(f"QR digit pair above {_QR_MAX_PAIR}")
    return "".join(chr(p + _QR_OFFSET) for p in pairs)


def health_card_qr(jws_text: str) -> segno.QRCode:
    """The card's QR code: error level L, a byte segment ``shc:/`` and a numeric one.

    :data:`MAX_QR_JWS` keeps the symbol at version 22 or below.
    """
    digits = qr_text(jws_text)[len(_QR_PREFIX) :]
    # segno encodes a list of (content, mode) pairs as separate segments, though its stub
    # types content as one value; per-segment modes must be its numeric constants.
    segments: Any = [(_QR_PREFIX, consts.MODE_BYTE), (digits, consts.MODE_NUMERIC)]
    return segno.make(segments, error="l", micro=False, boost_error=False)
