"""Errors raised by the crypto layer.

Messages name what failed but never carry a password, a private key or plaintext.
"""

from medledger.errors import InvalidInput, VerificationError

__all__ = [
    "DecryptionError",
    "InsufficientShares",
    "InvalidAddress",
    "InvalidProof",
    "InvalidShare",
    "InvalidSignature",
    "InvalidTypedData",
    "KeystoreError",
    "NotCanonicalizable",
]


class InvalidSignature(VerificationError):
    """A signature is malformed, forged, or made by someone other than expected."""


class InvalidProof(VerificationError):
    """A Merkle proof does not lead to the expected root."""


class DecryptionError(InvalidInput):
    """Authenticated decryption failed.

    The message is deliberately always "decryption failed" so it leaks nothing
    about which check failed.
    """


class KeystoreError(InvalidInput):
    """A keystore is malformed or the password is wrong."""


class InsufficientShares(InvalidInput):
    """Fewer Shamir shares were given than the threshold needs."""


class InvalidShare(InvalidInput):
    """A Shamir share is malformed or inconsistent with the others."""


class InvalidAddress(InvalidInput):
    """A value is not a 20-byte address, or its EIP-55 checksum is wrong."""


class InvalidTypedData(InvalidInput):
    """EIP-712 typed data is malformed; the message names the field path."""


class NotCanonicalizable(InvalidInput):
    """A value cannot be serialised as RFC 8785 canonical JSON."""
