"""The verifier's side: sign a presentation request, check the answer, record the outcome.

A verifier (insurer, bank, employer) is a member or a registered participant.
It checks, in order: that the presentation answers its own request (another
verifier's: :class:`WrongAudience`; another of its requests: :class:`NonceMismatch`),
that the request is still open and was never verified before, the issuer's
registration on the ledger, revocation, and the proof itself. Whatever the
outcome, it puts ``credentials.verified`` on the ledger: the request's id,
purpose, format and outcome, which the patient's wallet finds by the id.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.credentials import health_card, sdjwt, zk
from medledger.credentials.contract import VERIFIED, issuer_id, verification
from medledger.credentials.errors import (
    DuplicateVerification,
    InvalidHealthCard,
    InvalidPresentation,
    NonceMismatch,
    UnknownIssuer,
    WrongAudience,
)
from medledger.credentials.registry import Registry
from medledger.credentials.request import Predicate, PresentationRequest, SignedRequest
from medledger.crypto.keys import Address, PrivateKey
from medledger.errors import UsageError, VerificationError
from medledger.ledger.port import Ledger

__all__ = ["REQUEST_LIFETIME_S", "Verification", "Verifier", "verify_health_card"]

REQUEST_LIFETIME_S = 600


def _outcome(error: VerificationError) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()
    return f"rejected-{name}"


@dataclass(frozen=True)
class Verification:
    """What a verifier learned: the predicates that hold and the claims disclosed."""

    request_id: str
    format: str
    issuer: Address
    facts: dict[str, Any]


class Verifier:
    def __init__(self, node: Ledger, key: PrivateKey) -> None:
        self.node, self.key = node, key

    @property
    def registry(self) -> Registry:
        return Registry(self.node.store)

    def request(
        self,
        *,
        purpose: str,
        fmt: str,
        now_ms: int,
        predicates: Sequence[Predicate] = (),
        disclose: Sequence[str] = (),
        issuers: Sequence[Address] = (),
        lifetime_s: int = REQUEST_LIFETIME_S,
    ) -> SignedRequest:
        """A signed request with a fresh nonce, open for ``lifetime_s``."""
        request = PresentationRequest(
            network_id=self.node.network_id, verifier=self.key.address, purpose=purpose,
            nonce=os.urandom(32), format=fmt, predicates=tuple(predicates),
            disclose=tuple(disclose), issuers=tuple(issuers),
            not_after_ms=now_ms + lifetime_s * 1000,
        )  # fmt: skip
        return request.signed_by(self.key)

    async def verify(
        self, own: SignedRequest, envelope: Mapping[str, Any], *, now_ms: int
    ) -> Verification:
        """Check ``envelope`` against ``own`` request; record the outcome on the ledger."""
        request = own.request
        if request.verifier != self.key.address:
            raise UsageError("a verifier checks answers to its own requests only")
        if verification(self.node.store, request.id) is not None:
            raise DuplicateVerification(f"request {request.id} was already verified")
        try:
            result = self._check(request, envelope, now_ms)
        except VerificationError as exc:
            await self._record(request, _outcome(exc))
            raise
        await self._record(request, "accepted")
        return result

    async def _record(self, request: PresentationRequest, outcome: str) -> None:
        payload = {"request": request.id, "purpose": request.purpose,
                   "format": request.format, "outcome": outcome}  # fmt: skip
        await self.node.submit_payload(self.key, VERIFIED, payload)

    def _check(self, request: PresentationRequest, envelope: Mapping[str, Any],
               now_ms: int) -> Verification:  # fmt: skip
        if not isinstance(envelope, Mapping) or not isinstance(envelope.get("presentation"), str):
            raise InvalidPresentation("expected {format, request, presentation}")
        answered = SignedRequest.from_json(envelope.get("request", {})).request
        if answered.verifier != request.verifier:
            raise WrongAudience(f"presentation made for verifier {answered.verifier}, "
                                f"not {request.verifier}")  # fmt: skip
        if answered.digest != request.digest:
            raise NonceMismatch(f"presentation answers request {answered.id}, not {request.id}")
        request.check_fresh(now_ms)
        if envelope.get("format") != request.format:
            raise InvalidPresentation(f"expected a {request.format} presentation")
        if request.format == "sd-jwt":
            return self._check_sd_jwt(request, envelope["presentation"], now_ms)
        return self._check_anoncreds(request, envelope["presentation"])

    def _accepted_issuer(self, request: PresentationRequest, issuer: Address) -> None:
        if request.issuers and issuer not in request.issuers:
            raise UnknownIssuer(f"issuer {issuer} is not one this request accepts")

    def _check_anoncreds(self, request: PresentationRequest, presentation: str) -> Verification:
        registry = self.registry
        try:
            parsed = json.loads(presentation)
            identifiers = parsed["identifiers"]
            if len(identifiers) != 1:
                raise InvalidPresentation("expected a proof from exactly one credential")
            ident = identifiers[0]
            cred_def_id, rev_reg_id = str(ident["cred_def_id"]), str(ident["rev_reg_id"])
            timestamp = int(ident["timestamp"])
        except (ValueError, KeyError, TypeError):
            raise InvalidPresentation("malformed AnonCreds presentation") from None
        issuer = registry.issuer_of(cred_def_id)
        self._accepted_issuer(request, issuer)
        cred_def = registry.document(cred_def_id, "cred_def")
        schema_id = str(json.loads(cred_def)["schemaId"])
        documents = {cred_def_id: cred_def, schema_id: registry.document(schema_id, "schema"),
                     rev_reg_id: registry.document(rev_reg_id, "rev_reg")}  # fmt: skip
        if registry.issuer_of(rev_reg_id) != issuer:
            raise UnknownIssuer(f"{rev_reg_id} is not a registry of {issuer}")
        status_list = registry.check_current_status(rev_reg_id, timestamp)
        pres_request = zk.presentation_request(request, [issuer_id(a) for a in request.issuers])
        zk.verify(pres_request, presentation, documents, [status_list])
        facts: dict[str, Any] = {str(p): True for p in request.predicates}
        revealed = parsed["requested_proof"].get("revealed_attrs", {})
        for i, claim in enumerate(request.disclose):
            facts[claim] = int(revealed[f"a{i}"]["raw"])
        return Verification(request.id, request.format, issuer, facts)

    def _check_sd_jwt(self, request: PresentationRequest, presentation: str,
                      now_ms: int) -> Verification:  # fmt: skip
        registry = self.registry
        checked = sdjwt.verify_sd_jwt(presentation, registry.jwk_for, audience=request.verifier,
                                      nonce=request.id, now=now_ms // 1000)  # fmt: skip
        if checked.vct != sdjwt.VCT_HEALTH_SUMMARY:
            raise InvalidPresentation(f"credential type {checked.vct!r} is not a health summary")
        issuer = registry.issuer_address(checked.issuer)
        self._accepted_issuer(request, issuer)
        registry.check_not_revoked(issuer, checked.credential_id)
        missing = [claim for claim in request.disclose if claim not in checked.claims]
        if missing:
            raise InvalidPresentation(f"requested claims not disclosed: {', '.join(missing)}")
        facts = {claim: checked.claims[claim] for claim in request.disclose}
        return Verification(request.id, request.format, issuer, facts)


def verify_health_card(
    jws: str, registry: Registry, *, now_s: int
) -> health_card.VerifiedHealthCard:
    """Check a SMART Health Card against its issuer's key and revocation on the ledger.

    A health card answers no request: it is shown whole, like a paper certificate,
    so there is no nonce to check and no verification to record.
    """
    card = health_card.verify_health_card(jws, registry.jwk_for, now=now_s)
    if card.revocation_id is not None:
        padded = card.revocation_id + "=" * (-len(card.revocation_id) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded)
        except (binascii.Error, ValueError):
            raise InvalidHealthCard("rid is not base64url") from None
        registry.check_not_revoked(registry.issuer_address(card.issuer), "0x" + raw.hex())
    return card
