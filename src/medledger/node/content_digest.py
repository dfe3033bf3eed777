"""Content-Digest (RFC 9530): the request body's digest, a header the signature covers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from medledger.node.errors import (
    ContentDigestMismatch,
    MalformedHeader,
    UnsupportedDigestAlgorithm,
)
from medledger.node.structured_fields import Item, parse_dictionary, serialize_bare

__all__ = ["content_digest", "verify_content_digest"]

_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}


def content_digest(body: bytes) -> str:
    """Return the RFC 9530 Content-Digest value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=" + serialize_bare(_DIGESTS["sha-256"](body))


def verify_content_digest(value: str, body: bytes) -> None:
    """Raise unless the Content-Digest header ``value`` matches ``body``.

    Every sha-256 and sha-512 digest present must match, and at least one must
    be present; digests by other algorithms are ignored.
    """
    members = parse_dictionary("Content-Digest", value)
    checked = []
    for algorithm, member in members.items():
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise MalformedHeader(f"Content-Digest {algorithm} is not a byte sequence")
        digest = _DIGESTS.get(algorithm)
        if digest is None:
            continue
        if not hmac.compare_digest(member.value, digest(body)):
            raise ContentDigestMismatch(
                f"Content-Digest {algorithm} does not match the {len(body)}-byte body"
            )
        checked.append(algorithm)
    if not checked:
        names = ", ".join(key[:20] for key in members) or "none"
        raise UnsupportedDigestAlgorithm(
            f"Content-Digest has no sha-256 or sha-512 digest (has {names[:100]})"
        )
