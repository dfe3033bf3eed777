"""ECIES to X25519 keys: ephemeral X25519, HKDF-SHA256, then AES-256-GCM.

Hazmat: this is the primitives layer. Domain code should use the higher-level
seal/open recipes built on top of it rather than calling it directly.

A sealed value is ``ephemeral public key (32) || nonce (12) || ciphertext || tag (16)``.
The AES key is ``HKDF-SHA256(ikm=shared secret, salt=none, info=label || ephemeral
public key || recipient public key)``. Binding both public keys in ``info`` ties the key
to this exact exchange, so a ciphertext cannot be replayed to another recipient, and
the label keeps keys from this scheme apart from any other use of the same X25519 keys.
Every field of ``info`` has a fixed length, so plain concatenation is unambiguous.
"""

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medledger.crypto import aead
from medledger.crypto.errors import DecryptionError
from medledger.errors import InvalidInput, UsageError

__all__ = [
    "LABEL",
    "PUBLIC_KEY_SIZE",
    "Opener",
    "Sealer",
    "derive_key",
    "derive_private_key",
    "derive_secret",
    "generate_private_key",
    "open_sealed",
    "private_from_bytes",
    "public_bytes",
    "seal",
]

LABEL = b"medledger/ecies/v1"
PUBLIC_KEY_SIZE = 32
_PRIVATE_KEY_SIZE = 32
_OVERHEAD = PUBLIC_KEY_SIZE + aead.NONCE_SIZE + aead.TAG_SIZE


def generate_private_key() -> X25519PrivateKey:
    """Return a fresh X25519 private key."""
    return X25519PrivateKey.generate()


def public_bytes(key: X25519PrivateKey) -> bytes:
    """Return the 32-byte raw public key of ``key``."""
    return key.public_key().public_bytes_raw()


def private_from_bytes(b: bytes) -> X25519PrivateKey:
    """Load a 32-byte raw X25519 private key (RFC 7748 clamping is applied on use)."""
    if len(b) != _PRIVATE_KEY_SIZE:
        raise UsageError(f"X25519 private key must be {_PRIVATE_KEY_SIZE} bytes, got {len(b)}")
    return X25519PrivateKey.from_private_bytes(b)


def derive_secret(seed: bytes, label: bytes) -> bytes:
    """A 32-byte secret derived from a 32-byte secret, one per ``label`` (HKDF-SHA256).

    Lets a person keep one keystore: their signing key's secret is the seed, and
    each use (a patient's records, a custodian's shares, a wallet file) gets a key
    of its own.
    """
    if len(seed) != _PRIVATE_KEY_SIZE:
        raise UsageError(f"seed must be {_PRIVATE_KEY_SIZE} bytes, got {len(seed)}")
    return HKDF(
        algorithm=hashes.SHA256(), length=_PRIVATE_KEY_SIZE, salt=None, info=LABEL + b"/" + label
    ).derive(seed)


def derive_private_key(seed: bytes, label: bytes) -> X25519PrivateKey:
    """An X25519 key derived from a 32-byte secret, one per ``label``."""
    return X25519PrivateKey.from_private_bytes(derive_secret(seed, label))


def derive_key(shared_secret: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    """Return the AES-256 key for one exchange (exposed for known-answer tests)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=aead.KEY_SIZE,
        salt=None,
        info=LABEL + ephemeral_public + recipient_public,
    ).derive(shared_secret)


class Sealer:
    """Seals many values to one recipient under one ephemeral key.

    Each value is sealed exactly as :func:`seal` would, so :func:`open_sealed` opens
    it, but the X25519 exchange and key derivation happen once per sealer rather
    than once per value. Reusing the ephemeral key is safe because every value
    gets a fresh random nonce (the usual 2**32-messages-per-key bound applies) and
    callers bind each value to its context through associated data; what it gives
    away is that values from one sealer are recognisably sealed together.
    """

    def __init__(self, recipient_public: bytes, *, ephemeral: X25519PrivateKey | None = None):
        if len(recipient_public) != PUBLIC_KEY_SIZE:
            raise InvalidInput(
                f"X25519 public key must be {PUBLIC_KEY_SIZE} bytes, got {len(recipient_public)}"
            )
        if ephemeral is None:
            ephemeral = generate_private_key()
        self._prefix = public_bytes(ephemeral)
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
        except ValueError:
            # cryptography refuses an all-zero shared secret, which only a low-order
            # public key produces: sealing to it would give a key anyone can compute.
            raise InvalidInput("recipient public key is a low-order point") from None
        self._cipher = AESGCM(derive_key(shared, self._prefix, recipient_public))

    def seal(
        self, plaintext: bytes, associated_data: bytes = b"", *, nonce: bytes | None = None
    ) -> bytes:
        """Seal one value; ``nonce`` exists only for known-answer tests."""
        if nonce is None:
            nonce = os.urandom(aead.NONCE_SIZE)
        elif len(nonce) != aead.NONCE_SIZE:
            raise UsageError(f"nonce must be {aead.NONCE_SIZE} bytes, got {len(nonce)}")
        return self._prefix + nonce + self._cipher.encrypt(nonce, plaintext, associated_data)


def seal(
    recipient_public: bytes,
    plaintext: bytes,
    associated_data: bytes = b"",
    *,
    ephemeral: X25519PrivateKey | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Encrypt ``plaintext`` so that only the holder of ``recipient_public``'s key can read it.

    ``ephemeral`` and ``nonce`` exist only for known-answer tests: an ephemeral key
    and nonce pair must never be used twice.
    """
    return Sealer(recipient_public, ephemeral=ephemeral).seal(
        plaintext, associated_data, nonce=nonce
    )


def open_sealed(recipient: X25519PrivateKey, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt a value made by :func:`seal`; raise ``DecryptionError`` on any failure."""
    return Opener(recipient).open(sealed, associated_data)


class Opener:
    """Opens values sealed to one key, deriving each sender key once: values one
    :class:`Sealer` made (a custodian's shares of one release) share its exchange."""

    _MAX_KEYS = 64  # ephemeral keys come from untrusted input: the cache is bounded

    def __init__(self, recipient: X25519PrivateKey) -> None:
        self._recipient = recipient
        self._public = public_bytes(recipient)
        self._keys: dict[bytes, bytes] = {}

    def open(self, sealed: bytes, associated_data: bytes = b"") -> bytes:
        """Like :func:`open_sealed`; raise ``DecryptionError`` on any failure."""
        if len(sealed) < _OVERHEAD:
            raise DecryptionError("decryption failed")
        ephemeral_public = sealed[:PUBLIC_KEY_SIZE]
        key = self._keys.get(ephemeral_public)
        if key is None:
            try:
                shared = self._recipient.exchange(
                    X25519PublicKey.from_public_bytes(ephemeral_public)
                )
            except ValueError:
                raise DecryptionError("decryption failed") from None
            key = derive_key(shared, ephemeral_public, self._public)
            if len(self._keys) >= self._MAX_KEYS:
                self._keys.clear()
            self._keys[ephemeral_public] = key
        return aead.decrypt(key, sealed[PUBLIC_KEY_SIZE:], associated_data)
