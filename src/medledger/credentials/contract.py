"""The credentials contracts: issuers' public material, revocation, verifications.

- ``credentials.publish``: a member institution publishes a public document under
  its own name: an AnonCreds schema, credential definition or revocation registry
  definition, or a P-256 JWK (SD-JWT VC and SMART Health Card signing). Ids are
  ``medledger:<address>/<kind>/<name>``, so a document names its issuer, and the
  AnonCreds documents must refer to each other by those ids, each to a document of
  the kind it expects. A JWK may claim its issuer's https URL, spelled one way only.
- ``credentials.status``: the issuer of a revocation registry posts its next
  AnonCreds revocation status list. Timestamps only go forward and a revoked
  index never comes back.
- ``credentials.revoke``: an issuer revokes an SD-JWT VC or a health card by its
  16-byte id. Hex ids, here and in ``credentials.verified``, are stored in lower
  case and looked up through :func:`hex_id`, so either case names the same entry.
- ``credentials.verified``: a verifier records the outcome of checking the
  presentation that answered one of its requests: the request's id, purpose,
  format and outcome, never a claim. One record per request: a request (and so
  its nonce) is used once.

Every document is parsed by the same libraries verifiers use, so nothing
malformed reaches the ledger; a private key offered as a JWK is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import anoncreds
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwk
from jwcrypto.common import JWException

from medledger.access.contract import access_contracts
from medledger.access.policy import PURPOSES
from medledger.credentials.errors import DuplicateVerification, InvalidCredentialDocument, NotIssuer
from medledger.crypto.hexdata import parse_hex
from medledger.crypto.keys import Address
from medledger.ledger.contracts import fields as p
from medledger.ledger.contracts.base import ContractRegistry, Handler, StateView, TxContext, Write
from medledger.ledger.contracts.identity import participant_role
from medledger.ledger.contracts.membership import is_member, require_member
from medledger.ledger.errors import Conflict, InvalidPayload, Unauthorized
from medledger.ledger.timestamps import NS_PER_S

PUBLISH = "credentials.publish"
STATUS = "credentials.status"
REVOKE = "credentials.revoke"
VERIFIED = "credentials.verified"

DOCUMENT_NS = "credentials.document"
STATUS_NS = "credentials.status"
STATUS_HEAD_NS = "credentials.status_head"
ISSUER_URL_NS = "credentials.issuer_url"
REVOKED_NS = "credentials.revoked"
VERIFIED_NS = "credentials.verified"

KINDS = ("schema", "cred_def", "rev_reg", "jwk")
MAX_DOCUMENT_CHARS = 48_000
CREDENTIAL_ID_BYTES = 16
REQUEST_ID_BYTES = 32
MAX_CREDENTIALS_PER_REGISTRY = 100_000
STATUS_CLOCK_SKEW_S = 300
# ASCII only: str.isalnum() takes any script's letters and digits, some of which look
# like ASCII ones, so two ids could read the same and name different documents.
_NAME = re.compile(r"[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*")
# One spelling per URL, so that no member registers another's URL spelled differently:
# a lower-case ASCII host without a trailing dot, no port 443, user, query, fragment,
# percent-escape, dot segment or trailing slash (a SMART Health Card's iss has none).
_ISSUER_URL = re.compile(
    r"https://[a-z0-9-]+(\.[a-z0-9-]+)*(:(?!443\b)[1-9][0-9]{0,4})?"
    r"(/(?!\.\.?(/|$))[A-Za-z0-9._~-]+)*"
)


def hex_id(value: object, size: int) -> str | None:
    """The ledger's spelling of a ``size``-byte id given as 0x-prefixed hex in either
    case (``0x`` and lower-case digits), or None if ``value`` is not one.

    The contracts take ids in either case and store this spelling, so every lookup by
    id goes through here too: an id typed in upper case names the same entry.
    """
    try:
        return "0x" + parse_hex(value, size).hex()
    except ValueError:
        return None


def issuer_id(address: Address) -> str:
    """The AnonCreds ``issuerId`` (and SD-JWT ``iss``) of a member institution."""
    return f"medledger:{address}"


def document_id(address: Address, kind: str, name: str) -> str:
    return f"{issuer_id(address)}/{kind}/{name}"


def document(view: StateView, doc_id: str) -> Mapping[str, Any] | None:
    """``{issuer, kind, document, index}`` of a published document, or None."""
    return view.get(DOCUMENT_NS, doc_id)


def status_key(rev_reg: str, timestamp: int) -> str:
    return f"{rev_reg}@{timestamp}"


def status_head(view: StateView, rev_reg: str) -> int | None:
    """The timestamp of a registry's current status list, or None if it has none."""
    head = view.get(STATUS_HEAD_NS, rev_reg)
    return None if head is None else int(head)


def revoked_key(issuer: Address, credential: str) -> str:
    """The key of a revocation; ``credential`` in the spelling :func:`hex_id` returns."""
    return f"{issuer}/{credential}"


def verification(view: StateView, request_id: str) -> Mapping[str, Any] | None:
    """``{verifier, purpose, format, outcome, index, timestamp_ns}`` or None."""
    key = hex_id(request_id, REQUEST_ID_BYTES)
    return None if key is None else view.get(VERIFIED_NS, key)


@lru_cache(maxsize=256)
def _parsed(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        # Not dict(value): that turns an array of [key, value] pairs into an object.
        raise TypeError("not a JSON object")
    return value


def _json_document(payload: Mapping[str, Any], name: str) -> dict[str, Any]:
    text = p.text(payload, name, max_length=MAX_DOCUMENT_CHARS)
    try:
        value = _parsed(text)
    except (ValueError, TypeError, RecursionError):
        raise InvalidCredentialDocument(f"{name}: expected a JSON object") from None
    return value


def _load(loader: Any, text: str, what: str) -> None:
    try:
        loader(text)
    except anoncreds.AnoncredsError as exc:
        raise InvalidCredentialDocument(f"{what}: {exc}") from None


def _published(view: StateView, doc_id: Any, kind: str) -> Mapping[str, Any] | None:
    entry = document(view, doc_id) if isinstance(doc_id, str) else None
    return entry if entry is not None and entry["kind"] == kind else None


def _owned(view: StateView, doc_id: Any, kind: str, issuer: Address) -> Mapping[str, Any]:
    entry = _published(view, doc_id, kind)
    if entry is None:
        raise InvalidCredentialDocument(f"{doc_id!r} is not a published {kind}")
    if entry["issuer"] != issuer:
        raise NotIssuer(f"{doc_id} was published by {entry['issuer']}")
    return entry


def _check_anoncreds(view: StateView, kind: str, text: str, body: Mapping[str, Any],
                     issuer: Address) -> None:  # fmt: skip
    if body.get("issuerId") != issuer_id(issuer):
        raise InvalidCredentialDocument(f"issuerId: expected {issuer_id(issuer)}")
    if kind == "schema":
        _load(anoncreds.Schema.load, text, "schema")
    elif kind == "cred_def":
        # Any member's schema will do: a credential definition may build on another's.
        if _published(view, body.get("schemaId"), "schema") is None:
            raise InvalidCredentialDocument("schemaId: no such published schema")
        _load(anoncreds.CredentialDefinition.load, text, "credential definition")
    else:
        _owned(view, body.get("credDefId"), "cred_def", issuer)
        _load(anoncreds.RevocationRegistryDefinition.load, text, "revocation registry")
        if not 0 < int(body["value"]["maxCredNum"]) <= MAX_CREDENTIALS_PER_REGISTRY:
            raise InvalidCredentialDocument(
                f"maxCredNum: at most {MAX_CREDENTIALS_PER_REGISTRY} credentials per registry"
            )


def _check_jwk(body: Mapping[str, Any], name: str) -> str | None:
    key = body.get("jwk")
    if not isinstance(key, dict) or key.get("kty") != "EC" or key.get("crv") != "P-256":
        raise InvalidCredentialDocument("jwk: expected an EC P-256 public key")
    if "d" in key:
        raise InvalidCredentialDocument("jwk: a private key must never be published")
    try:
        given = jwk.JWK(**key)
        # Neither the JWK nor its thumbprint checks the point: building the key
        # verifiers will use does, and fails unless (x, y) is on P-256.
        point = given.get_op_key("verify")
    except (ValueError, TypeError, JWException) as exc:
        raise InvalidCredentialDocument(f"jwk: {exc}") from None
    assert isinstance(point, ec.EllipticCurvePublicKey)
    thumbprint = jwk.JWK.from_pyca(point).thumbprint()
    if given.thumbprint() != thumbprint:
        raise InvalidCredentialDocument("jwk: x and y must be unpadded base64url of 32 bytes")
    if name != thumbprint:
        raise InvalidCredentialDocument("jwk: its name must be its RFC 7638 thumbprint")
    url = body.get("url")
    if url is not None and (not isinstance(url, str) or not _ISSUER_URL.fullmatch(url)):
        raise InvalidCredentialDocument(
            "url: expected the issuer's https URL, lower-case host, no trailing slash"
        )
    return url


def publish(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    kind = p.text(ctx.payload, "kind", max_length=16)
    name = p.text(ctx.payload, "name", max_length=64)
    if kind not in KINDS:
        raise InvalidPayload(f"kind: expected one of {', '.join(KINDS)}")
    if not _NAME.fullmatch(name):
        raise InvalidPayload("name: letters, digits, dots, dashes and underscores only")
    doc_id = document_id(ctx.sender, kind, name)
    if document(view, doc_id) is not None:
        raise Conflict(f"{doc_id} is already published")
    text = p.text(ctx.payload, "document", max_length=MAX_DOCUMENT_CHARS)
    body = _json_document(ctx.payload, "document")
    writes = []
    if kind == "jwk":
        url = _check_jwk(body, name)
        if url is not None:
            owner = view.get(ISSUER_URL_NS, url)
            if owner is not None and owner != ctx.sender:
                raise Conflict(f"{url} is the issuer URL of {owner}")
            writes.append(Write(ISSUER_URL_NS, url, ctx.sender))
    else:
        _check_anoncreds(view, kind, text, body, ctx.sender)
    entry = {"issuer": ctx.sender, "kind": kind, "document": text, "index": ctx.index}
    return [*writes, Write(DOCUMENT_NS, doc_id, entry)]


def _revoked_indices(text: str) -> set[int]:
    return {i for i, bit in enumerate(_parsed(text)["revocationList"]) if bit}


def status(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    rev_reg = p.text(ctx.payload, "rev_reg", max_length=200)
    registry = _owned(view, rev_reg, "rev_reg", ctx.sender)
    text = p.text(ctx.payload, "list", max_length=MAX_DOCUMENT_CHARS)
    body = _json_document(ctx.payload, "list")
    _load(anoncreds.RevocationStatusList.load, text, "revocation status list")
    if body.get("revRegDefId") != rev_reg or body.get("issuerId") != issuer_id(ctx.sender):
        raise InvalidCredentialDocument("list: revRegDefId or issuerId names another registry")
    size = int(_parsed(registry["document"])["value"]["maxCredNum"])
    if len(body.get("revocationList", ())) != size:
        raise InvalidCredentialDocument(f"list: expected {size} entries")
    timestamp = body.get("timestamp")
    now_s = ctx.timestamp_ns // NS_PER_S
    previous = status_head(view, rev_reg)
    if type(timestamp) is not int or timestamp > now_s + STATUS_CLOCK_SKEW_S:
        raise InvalidCredentialDocument("list: timestamp missing or in the future")
    if previous is not None:
        if timestamp <= previous:
            raise Conflict(f"list: timestamp {timestamp} does not follow {previous}")
        before = str(view.get(STATUS_NS, status_key(rev_reg, previous)))
        if not _revoked_indices(before) <= _revoked_indices(text):
            raise InvalidCredentialDocument("list: a revoked credential cannot be reinstated")
    return [
        Write(STATUS_NS, status_key(rev_reg, timestamp), text),
        Write(STATUS_HEAD_NS, rev_reg, timestamp),
    ]


def revoke(ctx: TxContext, view: StateView) -> list[Write]:
    require_member(view, ctx.sender)
    credential = "0x" + p.hex_bytes(ctx.payload, "credential", CREDENTIAL_ID_BYTES).hex()
    key = revoked_key(ctx.sender, credential)
    if view.get(REVOKED_NS, key) is not None:
        raise Conflict(f"credential {credential} is already revoked")
    return [Write(REVOKED_NS, key, {"index": ctx.index, "timestamp_ns": ctx.timestamp_ns})]


def verified(ctx: TxContext, view: StateView) -> list[Write]:
    if not is_member(view, ctx.sender) and participant_role(view, ctx.sender) is None:
        raise Unauthorized(f"{ctx.sender} is neither a member nor a registered participant")
    request_id = "0x" + p.hex_bytes(ctx.payload, "request", REQUEST_ID_BYTES).hex()
    purpose = p.text(ctx.payload, "purpose", max_length=16)
    if purpose not in PURPOSES:
        raise InvalidPayload(f"purpose: {purpose!r} is not a PurposeOfUse code")
    entry = {
        "verifier": ctx.sender,
        "purpose": purpose,
        "format": p.identifier(ctx.payload, "format"),
        "outcome": p.identifier(ctx.payload, "outcome"),
        "index": ctx.index,
        "timestamp_ns": ctx.timestamp_ns,
    }
    if verification(view, request_id) is not None:
        raise DuplicateVerification(f"request {request_id} was already verified")
    return [Write(VERIFIED_NS, request_id, entry)]


HANDLERS: dict[str, Handler] = {
    PUBLISH: publish,
    STATUS: status,
    REVOKE: revoke,
    VERIFIED: verified,
}


def credentials_contracts() -> ContractRegistry:
    """Every contract of the stack: ledger, records, access and credentials."""
    registry = access_contracts()
    registry.register_all(HANDLERS)
    return registry
