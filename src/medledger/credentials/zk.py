"""AnonCreds: CL-signature credentials with zero-knowledge predicates and revocation.

This is the thin layer over the ``anoncreds`` library (Hyperledger's anoncreds-rs):
the issuer's set-up and issuance, the holder's proof, the verifier's check, and a
presentation request built from a signed :class:`PresentationRequest`. It does no
I/O besides the tails file the library itself writes and reads, and knows nothing
of the ledger: callers pass the published documents in.

Binding: the AnonCreds nonce is the first 80 bits of the signed request's id, so
a proof made for one request (verifier, purpose, nonce) fails against any other.
Revocation: a proof of non-revocation is made against one status list, named by
its timestamp; the verifier only accepts the registry's current list.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import anoncreds

from medledger.credentials.claims import CLAIMS
from medledger.credentials.errors import InvalidPresentation, PredicateNotSatisfied
from medledger.credentials.request import PresentationRequest
from medledger.errors import InvalidInput

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "HolderCredential",
    "IssuerSecrets",
    "create_issuer",
    "issue",
    "offer",
    "presentation_request",
    "prove",
    "request_credential",
    "revoke",
    "store_credential",
    "verify",
]

SCHEMA_NAME = "health-summary"
SCHEMA_VERSION = "1.0"
_NONCE_BYTES = 10


@dataclass(frozen=True)
class IssuerSecrets:
    """An issuer's AnonCreds material: public documents and the private keys behind them."""

    schema_id: str
    cred_def_id: str
    rev_reg_id: str
    schema: str
    cred_def: str
    cred_def_private: str
    key_proof: str
    rev_reg: str
    rev_reg_private: str

    def to_json(self) -> dict[str, str]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, obj: Mapping[str, str]) -> IssuerSecrets:
        return cls(**{name: str(obj[name]) for name in cls.__dataclass_fields__})


@lru_cache(maxsize=64)
def _schema(text: str) -> anoncreds.Schema:
    return anoncreds.Schema.load(text)


@lru_cache(maxsize=64)
def _cred_def(text: str) -> anoncreds.CredentialDefinition:
    return anoncreds.CredentialDefinition.load(text)


@lru_cache(maxsize=64)
def _rev_reg(text: str) -> anoncreds.RevocationRegistryDefinition:
    return anoncreds.RevocationRegistryDefinition.load(text)


@lru_cache(maxsize=64)
def _status_list(text: str) -> anoncreds.RevocationStatusList:
    return anoncreds.RevocationStatusList.load(text)


def create_issuer(
    issuer: str,
    ids: tuple[str, str, str],
    *,
    tails_dir: str,
    max_credentials: int,
    timestamp: int,
) -> tuple[IssuerSecrets, str]:
    """Schema, credential definition and revocation registry; and the first status list.

    ``ids`` are the schema, credential definition and registry ids the documents
    will be published under. The tails file is written into ``tails_dir``.
    """
    schema_id, cred_def_id, rev_reg_id = ids
    schema = anoncreds.Schema.create(SCHEMA_NAME, SCHEMA_VERSION, issuer, list(CLAIMS))
    cred_def, cred_def_private, key_proof = anoncreds.CredentialDefinition.create(
        schema_id, schema, issuer, "default", "CL", support_revocation=True
    )
    rev_reg, rev_reg_private = anoncreds.RevocationRegistryDefinition.create(
        cred_def_id, cred_def, issuer, "default", "CL_ACCUM", max_credentials,
        tails_dir_path=tails_dir,
    )  # fmt: skip
    status = anoncreds.RevocationStatusList.create(
        cred_def, rev_reg_id, rev_reg, rev_reg_private, issuer, True, timestamp
    )
    secrets = IssuerSecrets(
        schema_id, cred_def_id, rev_reg_id, schema.to_json(), cred_def.to_json(),
        cred_def_private.to_json(), key_proof.to_json(), rev_reg.to_json(),
        rev_reg_private.to_json(),
    )  # fmt: skip
    return secrets, status.to_json()


def offer(secrets: IssuerSecrets) -> str:
    """The issuer's credential offer, with the proof that its keys are well formed."""
    key_proof = anoncreds.KeyCorrectnessProof.load(secrets.key_proof)
    made = anoncreds.CredentialOffer.create(secrets.schema_id, secrets.cred_def_id, key_proof)
    return str(made.to_json())


def request_credential(
    offer_json: str, cred_def: str, link_secret: str, entropy: str
) -> tuple[str, str]:
    """The holder's blinded credential request and the metadata to keep for it."""
    try:
        request, metadata = anoncreds.CredentialRequest.create(
            entropy, None, _cred_def(cred_def), link_secret, "default", offer_json
        )
    except anoncreds.AnoncredsError as exc:
        raise InvalidInput(f"credential offer rejected: {exc}") from None
    return str(request.to_json()), str(metadata.to_json())


def issue(
    secrets: IssuerSecrets,
    offer: str,
    request: str,
    values: Mapping[str, str],
    *,
    status_list: str,
    index: int,
) -> str:
    """Sign ``values`` into a credential at revocation index ``index`` (from 1)."""
    revocation = anoncreds.CredentialRevocationConfig(
        _rev_reg(secrets.rev_reg),
        anoncreds.RevocationRegistryDefinitionPrivate.load(secrets.rev_reg_private),
        _status_list(status_list),
        index,
    )
    credential = anoncreds.Credential.create(
        _cred_def(secrets.cred_def),
        anoncreds.CredentialDefinitionPrivate.load(secrets.cred_def_private),
        offer, request, dict(values), None, revocation,
    )  # fmt: skip
    return str(credential.to_json())


def revoke(secrets: IssuerSecrets, status_list: str, index: int, timestamp: int) -> str:
    """The registry's next status list, with ``index`` revoked."""
    updated = _status_list(status_list).update(
        _cred_def(secrets.cred_def),
        _rev_reg(secrets.rev_reg),
        anoncreds.RevocationRegistryDefinitionPrivate.load(secrets.rev_reg_private),
        None, [index], timestamp,
    )  # fmt: skip
    return str(updated.to_json())


@dataclass(frozen=True)
class HolderCredential:
    """A credential as the holder keeps it: the library's JSON and where it sits."""

    credential: str
    cred_def_id: str
    rev_reg_id: str
    index: int

    @property
    def values(self) -> dict[str, int]:
        raw = json.loads(self.credential)["values"]
        return {name: int(raw[name]["raw"]) for name in raw}


def store_credential(
    issued: str, metadata: str, link_secret: str, cred_def: str, rev_reg: str
) -> HolderCredential:
    """Check the issuer's signature on ``issued`` and keep it; InvalidPresentation if bad."""
    try:
        credential = anoncreds.Credential.load(issued).process(
            metadata, link_secret, _cred_def(cred_def), _rev_reg(rev_reg)
        )
    except anoncreds.AnoncredsError as exc:
        raise InvalidInput(f"issued credential does not verify: {exc}") from None
    index = credential.rev_reg_index
    if index is None:
        raise InvalidInput("issued credential has no revocation index")
    return HolderCredential(
        str(credential.to_json()), credential.cred_def_id, credential.rev_reg_id, index
    )


def nonce_of(request: PresentationRequest) -> str:
    return str(int.from_bytes(request.digest[:_NONCE_BYTES], "big"))


def presentation_request(request: PresentationRequest, issuer_ids: list[str]) -> dict[str, Any]:
    """The AnonCreds presentation request that answers ``request``."""
    restrictions = [{"issuer_id": issuer, "schema_name": SCHEMA_NAME} for issuer in issuer_ids]
    restrict = {"restrictions": restrictions} if restrictions else {}
    return {
        "name": "medledger presentation",
        "version": "1.0",
        "nonce": nonce_of(request),
        "requested_attributes": {
            f"a{i}": {"name": claim, **restrict} for i, claim in enumerate(request.disclose)
        },
        "requested_predicates": {
            f"p{i}": {"name": p.claim, "p_type": p.op, "p_value": p.value, **restrict}
            for i, p in enumerate(request.predicates)
        },
        "non_revoked": {"to": request.not_after_ms // 1000},
    }


@lru_cache(maxsize=256)
def _revocation_state(
    rev_reg: str, status_list: str, index: int, tails_path: str
) -> anoncreds.CredentialRevocationState:
    return anoncreds.CredentialRevocationState.create(
        _rev_reg(rev_reg), _status_list(status_list), index, tails_path
    )


@lru_cache(maxsize=64)
def _credential(text: str) -> anoncreds.Credential:
    return anoncreds.Credential.load(text)


def prove(
    request: PresentationRequest,
    pres_request: Mapping[str, Any],
    held: HolderCredential,
    link_secret: str,
    documents: Mapping[str, str],
    *,
    status_list: str,
    tails_path: str,
) -> str:
    """Prove what ``request`` asks from ``held``; PredicateNotSatisfied if it cannot hold.

    ``documents`` maps the schema, credential definition and registry ids to their
    published JSON. The proof of non-revocation is against ``status_list``.
    """
    values = held.values
    for predicate in request.predicates:
        if not predicate.holds(values[predicate.claim]):
            raise PredicateNotSatisfied(f"the credential does not satisfy {predicate.claim} "
                                        f"{predicate.op} {predicate.value}")  # fmt: skip
    credential = _credential(held.credential)
    cred_def_text = documents[held.cred_def_id]
    schema_id = _schema_id(cred_def_text)
    timestamp = int(json.loads(status_list)["timestamp"])
    state = _revocation_state(documents[held.rev_reg_id], status_list, held.index, tails_path)
    present = anoncreds.PresentCredentials()
    present.add_attributes(credential, *pres_request["requested_attributes"], reveal=True,
                           timestamp=timestamp, rev_state=state)  # fmt: skip
    present.add_predicates(credential, *pres_request["requested_predicates"],
                           timestamp=timestamp, rev_state=state)  # fmt: skip
    try:
        presentation = anoncreds.Presentation.create(
            anoncreds.PresentationRequest.load(dict(pres_request)), present, {}, link_secret,
            {schema_id: _schema(documents[schema_id])},
            {held.cred_def_id: _cred_def(cred_def_text)},
        )  # fmt: skip
    except anoncreds.AnoncredsError as exc:
        raise PredicateNotSatisfied(f"the wallet cannot prove this request: {exc}") from None
    return str(presentation.to_json())


@lru_cache(maxsize=64)
def _schema_id(cred_def: str) -> str:
    return str(json.loads(cred_def)["schemaId"])


def verify(
    pres_request: Mapping[str, Any],
    presentation: str,
    documents: Mapping[str, str],
    status_lists: list[str],
) -> None:
    """Raise InvalidPresentation unless ``presentation`` proves ``pres_request``.

    ``documents`` maps every schema, credential definition and registry id the
    presentation names to its published JSON; ``status_lists`` are the lists its
    non-revocation proofs are made against.
    """
    try:
        parsed = anoncreds.Presentation.load(presentation)
        identifiers = json.loads(presentation)["identifiers"]
        schemas = {i["schema_id"]: _schema(documents[i["schema_id"]]) for i in identifiers}
        cred_defs = {i["cred_def_id"]: _cred_def(documents[i["cred_def_id"]]) for i in identifiers}
        rev_regs = {i["rev_reg_id"]: _rev_reg(documents[i["rev_reg_id"]]) for i in identifiers}
        valid = parsed.verify(
            anoncreds.PresentationRequest.load(dict(pres_request)), schemas, cred_defs, rev_regs,
            [_status_list(s) for s in status_lists],
        )  # fmt: skip
    except anoncreds.AnoncredsError as exc:
        raise InvalidPresentation(f"presentation rejected: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidPresentation(f"malformed presentation: {exc!r}") from None
    if not valid:
        raise InvalidPresentation(
            "the proof does not verify: forged, made for another request, or revoked"
        )
