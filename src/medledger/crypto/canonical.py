"""Canonical JSON (RFC 8785, JCS) and SHA-256, the inputs to content hashes."""

import hashlib
from typing import Any

import rfc8785

from medledger.crypto.errors import NotCanonicalizable

__all__ = ["canonical_json", "sha256"]


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8).

    Accepts dict (str keys), list, tuple, str, int within +-(2**53 - 1), finite
    float, bool and None; anything else raises NotCanonicalizable.
    """
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        raise NotCanonicalizable(f"not canonicalizable: {exc}") from None
    except UnicodeEncodeError:
        # Lone surrogates have no UTF-8 (or UTF-16 sort-key) encoding.
        raise NotCanonicalizable("not canonicalizable: string with a lone surrogate") from None
    except RecursionError:
        raise NotCanonicalizable("not canonicalizable: nested too deeply") from None


def sha256(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()
