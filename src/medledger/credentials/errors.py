"""Why a health credential could not be issued, presented or verified.

Messages name the claim, issuer, credential id or check that failed, never a
claim's value: a verifier that learns "HbA1c below 6.5 %" must not learn the
HbA1c from an error either. Refusals inside a ledger contract are
:class:`TransactionRejected` with a stable code, like every other contract's.
"""

from __future__ import annotations

from medledger.errors import InvalidInput, UsageError, VerificationError
from medledger.ledger.errors import TransactionRejected

__all__ = [
    "BadDisclosure",
    "BadPresentationRequest",
    "ClaimUnavailable",
    "CredentialExpired",
    "CredentialNotYetValid",
    "CredentialRevoked",
    "DuplicateVerification",
    "EvidenceRejected",
    "InvalidCredentialDocument",
    "InvalidHealthCard",
    "InvalidPresentation",
    "KeyBindingFailed",
    "NonceMismatch",
    "NotIssuer",
    "PredicateNotSatisfied",
    "RequestExpired",
    "StaleRevocationState",
    "UnknownIssuer",
    "UnrequestedClaim",
    "UnrevocableCredential",
    "WrongAudience",
]


class ClaimUnavailable(InvalidInput):
    """The patient's records hold nothing from which a claim can be derived."""


class EvidenceRejected(InvalidInput):
    """A record offered as evidence is not the patient's, not this vault's, not its latest
    version, or not what its author signed."""


class PredicateNotSatisfied(UsageError):
    """The wallet was asked to prove a predicate its credential makes false.

    Raised before anything is sent: a false predicate cannot be proven, and the
    wallet says so instead of producing a proof that would fail.
    """


class UnrequestedClaim(UsageError):
    """The wallet was asked to disclose a claim the verifier did not request."""


class BadPresentationRequest(VerificationError):
    """A presentation request is malformed or not signed by the verifier it names."""


class RequestExpired(VerificationError):
    """A presentation request was answered or checked after its expiry."""


class InvalidPresentation(VerificationError):
    """A presentation's proof or signature does not verify."""


class WrongAudience(VerificationError):
    """A presentation was made for another verifier (or another request)."""


class NonceMismatch(VerificationError):
    """A presentation carries another request's nonce: a replay."""


class BadDisclosure(VerificationError):
    """A selective disclosure is malformed, tampered or not referenced by the credential."""


class KeyBindingFailed(VerificationError):
    """The holder's key-binding proof is missing, forged, stale or for other content."""


class CredentialExpired(VerificationError):
    """The credential's expiry time has passed."""


class CredentialNotYetValid(VerificationError):
    """The credential's not-before time is still in the future."""


class CredentialRevoked(VerificationError):
    """The issuer revoked the credential on the ledger."""


class StaleRevocationState(CredentialRevoked):
    """Non-revocation was proven against a status list the issuer has since replaced.

    Proving against an old list is how a revoked credential would pass, so it is
    refused as a revocation; an honest wallet proves again against the current list.
    """


class UnrevocableCredential(CredentialRevoked):
    """A credential's id is not one the ledger can record a revocation under.

    Its issuer could never revoke it, so "not revoked" would say nothing: like a
    stale status list, it is refused as a revocation.
    """


class UnknownIssuer(VerificationError):
    """The issuer or the key it used is not registered on the ledger."""


class InvalidHealthCard(VerificationError):
    """A SMART Health Card's JWS, payload or QR encoding is invalid."""


class InvalidCredentialDocument(TransactionRejected):
    """A published schema, credential definition, registry or key is malformed."""

    code = "invalid_credential_document"


class NotIssuer(TransactionRejected):
    """Only the institution that published an issuer document may update or revoke under it."""

    code = "not_issuer"


class DuplicateVerification(TransactionRejected):
    """A verification is already recorded for this presentation request."""

    code = "duplicate_verification"
