"""Why a signed API request to a node was refused.

Every refusal is a :class:`RequestNotAuthenticated`, so the node can answer all
of them alike (401) while logs keep the specific reason. Messages name the
label, parameter, component or time that failed; they never echo signature
bytes, and never the body or its digest.
"""

from __future__ import annotations

from medledger.errors import InvalidInput, VerificationError

__all__ = [
    "ContentDigestMismatch",
    "ContentDigestMissing",
    "Forbidden",
    "InvalidKeyId",
    "InvalidNonce",
    "MalformedHeader",
    "MalformedRequest",
    "RateLimited",
    "ReplayedRequest",
    "RequestNotAuthenticated",
    "SignatureExpired",
    "SignatureLabelMissing",
    "SignatureLifetimeTooLong",
    "SignatureMismatch",
    "SignatureMissing",
    "SignatureNotYetValid",
    "SignerRateLimited",
    "TooManyFailedAuthentications",
    "UnsupportedAlgorithm",
    "UnsupportedDigestAlgorithm",
    "WrongAuthority",
    "WrongCoveredComponents",
]


class RequestNotAuthenticated(InvalidInput):
    """A request's HTTP message signature is absent, malformed, stale or forged."""


class SignatureMissing(RequestNotAuthenticated):
    """The request carries no Signature-Input or no Signature header."""


class MalformedHeader(RequestNotAuthenticated):
    """A Signature-Input, Signature or Content-Digest header does not parse.

    Also raised when a member has the wrong type, or lacks a parameter that
    our profile requires (created, expires).
    """


class MalformedRequest(RequestNotAuthenticated):
    """The method, URL or a covered field cannot be put in a signature base."""


class SignatureLabelMissing(RequestNotAuthenticated):
    """The expected label is absent from Signature-Input or from Signature."""


class WrongCoveredComponents(RequestNotAuthenticated):
    """The signature does not cover exactly the components our profile requires."""


class WrongAuthority(RequestNotAuthenticated):
    """The request is addressed (and signed) for another host or port than this node's.

    A signature covers ``@authority`` so that a request made for one node cannot be
    replayed at another, each of which keeps its own record of nonces.
    """


class UnsupportedAlgorithm(RequestNotAuthenticated):
    """The ``alg`` parameter is missing or names an algorithm we do not accept."""


class InvalidKeyId(RequestNotAuthenticated):
    """The ``keyid`` parameter is missing or is not a 20-byte address."""


class InvalidNonce(RequestNotAuthenticated):
    """The ``nonce`` parameter is missing, too short, too long or has bad characters."""


class SignatureNotYetValid(RequestNotAuthenticated):
    """The signature was created further in the future than the clock skew allows."""


class SignatureExpired(RequestNotAuthenticated):
    """The signature's ``expires`` time has passed."""


class SignatureLifetimeTooLong(RequestNotAuthenticated):
    """The signature is valid for longer than the node accepts."""


class ContentDigestMissing(RequestNotAuthenticated):
    """The request carries no Content-Digest header."""


class UnsupportedDigestAlgorithm(RequestNotAuthenticated):
    """Content-Digest names only hash algorithms we do not compute."""


class ContentDigestMismatch(RequestNotAuthenticated, VerificationError):
    """A Content-Digest value is not the digest of the body received."""


class SignatureMismatch(RequestNotAuthenticated, VerificationError):
    """The signature is not a valid signature by ``keyid`` over the signature base."""


class ReplayedRequest(InvalidInput):
    """A validly signed request reuses a (signer, nonce) the node already accepted.

    Not a RequestNotAuthenticated: the signature itself is good, and the node
    answers a replay differently from a bad signature.
    """


class RateLimited(InvalidInput):
    """More requests than the node's rate limits allow; ``retry_after_s`` says when to retry.

    Not a RequestNotAuthenticated: nothing is wrong with the request itself, and a
    client may send it again, signed anew, once the wait is over.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SignerRateLimited(RateLimited):
    """One signing key made more verified requests than its rate and burst allow."""


class TooManyFailedAuthentications(RateLimited):
    """Requests from one client address failed authentication too often; until its
    allowance refills, the node refuses its requests before checking their signatures."""


class Forbidden(InvalidInput):
    """The caller is authenticated but may not do what the request asks."""


class NotFound(InvalidInput):
    """The node has nothing at what the request names (a checkpoint not yet cosigned, a
    proof beyond the log)."""
