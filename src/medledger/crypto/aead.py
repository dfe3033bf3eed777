"""AES-256-GCM authenticated encryption with the nonce carried in the output.

Hazmat: this is the primitives layer. Domain code should not call it directly but
use the higher-level seal/open recipes built on top of it, which choose keys,
associated data and nonces correctly.

A sealed value is ``nonce (12) || ciphertext || tag (16)``. The nonce is random for
every call, so one key must not seal more than about 2**32 messages (NIST SP 800-38D
section 8.3), after which the chance of a repeated nonce is no longer negligible.
"""

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medledger.crypto.errors import DecryptionError
from medledger.errors import UsageError

__all__ = ["KEY_SIZE", "NONCE_SIZE", "TAG_SIZE", "decrypt", "encrypt", "generate_key"]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

# One message for every failure, so a caller (or an attacker timing or reading the
# error) cannot tell a bad tag from a truncated input.
_FAILED = "decryption failed"


def generate_key(randbytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """Return a fresh AES-256 key; ``randbytes`` is injectable for known-answer tests."""
    key = randbytes(KEY_SIZE)
    if len(key) != KEY_SIZE:
        raise UsageError(f"randbytes returned {len(key)} bytes, expected {KEY_SIZE}")
    return key


def _cipher(key: bytes) -> AESGCM:
    if len(key) != KEY_SIZE:
        raise UsageError(f"AES-256-GCM key must be {KEY_SIZE} bytes, got {len(key)}")
    return AESGCM(key)


def encrypt(
    key: bytes, plaintext: bytes, associated_data: bytes, *, nonce: bytes | None = None
) -> bytes:
    """Encrypt and authenticate ``plaintext``, binding ``associated_data``.

    ``nonce`` exists only for known-answer tests: reusing a nonce under one key
    reveals the XOR of the plaintexts and lets an attacker forge tags.
    """
    cipher = _cipher(key)
    if nonce is None:
        nonce = os.urandom(NONCE_SIZE)
    elif len(nonce) != NONCE_SIZE:
        raise UsageError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    return nonce + cipher.encrypt(nonce, plaintext, associated_data)


def decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Open a value made by :func:`encrypt`; raise ``DecryptionError`` on any failure."""
    cipher = _cipher(key)
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(_FAILED)
    try:
        return cipher.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], associated_data)
    except InvalidTag:
        # Drop the chained exception: it adds nothing and must not become a side channel.
        raise DecryptionError(_FAILED) from None
