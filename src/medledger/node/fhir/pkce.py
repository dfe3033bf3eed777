"""PKCE (RFC 7636) with the one method SMART App Launch v2 allows: S256.

``plain`` is refused: a challenge that is the verifier itself protects nothing once the
authorization request has been seen.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from medledger.errors import InvalidInput

__all__ = ["S256", "check_verifier", "is_challenge", "s256"]

S256 = "S256"
_VERIFIER = re.compile(r"[A-Za-z0-9._~\-]{43,128}")
#: A SHA-256 digest in base64url without padding.
_CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{43}")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_challenge(challenge: str) -> bool:
    return _CHALLENGE.fullmatch(challenge) is not None


def check_verifier(verifier: str, challenge: str) -> None:
    """That ``verifier`` is the one whose S256 ``challenge`` the authorization named;
    InvalidInput otherwise."""
    if not _VERIFIER.fullmatch(verifier):
        raise InvalidInput("code_verifier: 43 to 128 unreserved characters (RFC 7636)")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidInput("code_verifier does not match the code_challenge")
