"""Credential routes: this institution as an issuer, and the ledger state credentials need.

A patient asks for a credential by showing the records it is to be derived from
(credentials/evidence.py): the node checks them against its vault, derives the
claims and issues an AnonCreds credential (to the wallet's blinded request), an
SD-JWT VC (bound to the holder's key) or a SMART Health Card (with its QR code).
Wallets and verifiers elsewhere read issuers' documents, status lists and
revocations as proven ledger state (``GET /v1/ledger/state/...``, node/client.py
ProvenState).
"""

from __future__ import annotations

import base64
import binascii
import io
import time
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from jwcrypto import jwk

from medledger.credentials.claims import derive_claims
from medledger.credentials.evidence import Evidence, checked_resources
from medledger.credentials.health_card import health_card_qr, qr_text
from medledger.errors import InvalidInput
from medledger.ledger.contracts.identity import participant_at
from medledger.node.api import (
    EvidenceIn,
    IssueIn,
    IssueOut,
    IssuerOut,
    SetupIn,
)
from medledger.node.caller import Caller
from medledger.node.deps import AuthenticatedCaller, Service
from medledger.node.errors import Forbidden, NotFound
from medledger.records.contract import batch_state
from medledger.records.store import StoredRecord

router = APIRouter(prefix="/v1/credentials", tags=["credentials"])



@router.post("/setup", response_model=IssuerOut)
async def setup(
    service: Service, caller: AuthenticatedCaller, body: Annotated[SetupIn, Body()]
) -> IssuerOut:
    """Become an issuer: create the AnonCreds keys and publish them (the institution only)."""
    if caller.address != service.keys.member.address:
        raise Forbidden("only the institution's own key sets up its issuer")
    issuer = service.issuer
    await issuer.setup(now_s=int(time.time()), max_credentials=body.max_credentials)
    return IssuerOut(issuer=issuer.address, offer=issuer.offer())


@router.get("/offer", response_model=IssuerOut)
async def offer(service: Service, caller: AuthenticatedCaller) -> IssuerOut:
    _require_patient(caller)
    return IssuerOut(issuer=service.issuer.address, offer=service.issuer.offer())


def _written_here(service: Service, stored: StoredRecord) -> bool:
    """Whether the record's author was this institution's staff when its batch was
    committed."""
    view = service.node.store
    batch = batch_state(view, service.vault_id, stored.batch)
    held = None if batch is None else participant_at(view, stored.author, batch.index)
    return held is not None and held[1] == service.keys.member.address


@router.post("/issue", response_model=IssueOut)
async def issue(
    service: Service, caller: AuthenticatedCaller, body: Annotated[IssueIn, Body()]
) -> IssueOut:
    """A credential from records this institution wrote, shown by the patient."""
    _require_patient(caller)
    resources = checked_resources(
        service.vault, caller.address, [_evidence(e) for e in body.evidence],
        lambda stored: _written_here(service, stored),
    )  # fmt: skip
    issuer, now_s = service.issuer, int(time.time())
    if body.format == "health-card":
        patients = [r for r in resources if r.get("resourceType") == "Patient"]
        if len(patients) != 1:
            raise InvalidInput("a health card needs the Patient record among the evidence")
        entries = [r for r in resources if r is not patients[0]]
        jws, credential_id = issuer.issue_health_card(patients[0], entries, now_s=now_s)
        svg = io.BytesIO()
        health_card_qr(jws).save(svg, kind="svg", scale=4, border=2)
        return IssueOut(format=body.format, credential_id=credential_id, credential=jws,
                        qr=svg.getvalue().decode(), qr_text=qr_text(jws))  # fmt: skip
    claims = derive_claims(resources)
    if body.format == "sd-jwt":
        if body.holder_jwk is None:
            raise InvalidInput("an SD-JWT VC needs the holder's public key (holder_jwk)")
        holder = jwk.JWK(**body.holder_jwk)
        credential, credential_id = issuer.issue_sd_jwt(claims, holder, now_s=now_s)
    else:
        if body.offer is None or body.request is None:
            raise InvalidInput("an AnonCreds credential needs the offer and the wallet's request")
        credential, credential_id = issuer.issue_anoncreds(claims, body.offer, body.request)
    return IssueOut(format=body.format, credential_id=credential_id, credential=credential)


@router.get("/tails/{name}", response_class=Response, responses={200: {"content": {
    "application/octet-stream": {}}}})  # fmt: skip
async def tails(
    service: Service,
    caller: AuthenticatedCaller,
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9]{20,100}$")],
) -> Response:
    """A revocation registry's tails file, which a wallet needs to prove non-revocation."""
    path = service.issuer.tails_dir / name
    if not path.is_file():
        raise NotFound(f"no tails file {name}")
    return Response(path.read_bytes(), media_type="application/octet-stream")


def _evidence(item: EvidenceIn) -> Evidence:
    try:
        canonical = base64.b64decode(item.resource, validate=True)
    except binascii.Error:
        raise InvalidInput(f"evidence {item.record_id}: resource is not base64") from None
    return Evidence(bytes.fromhex(item.record_id), item.version, bytes.fromhex(item.salt[2:]),
                    canonical)  # fmt: skip


def _require_patient(caller: Caller) -> None:
    if caller.kind != "subject":
        raise Forbidden(f"{caller.address} is not a registered patient")
