"""secp256k1 keys, Ethereum addresses and recoverable signatures."""

import os
import re
from collections.abc import Callable
from functools import lru_cache
from typing import NewType, NoReturn

import coincurve
import sha3

from medledger.crypto.errors import InvalidAddress, InvalidSignature
from medledger.errors import InvalidInput, UsageError

__all__ = [
    "Address",
    "PrivateKey",
    "PublicKey",
    "keccak256",
    "recover_address",
    "to_checksum_address",
    "verify_signature",
]

Address = NewType("Address", str)
"""A 20-byte account address in EIP-55 checksummed "0x..." form."""

# Order of the secp256k1 group.
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = _N // 2
_RECOVERY_IDS = {0: 0, 1: 1, 27: 0, 28: 1}
_HEX_ADDRESS = re.compile(r"(?:0x)?([0-9a-fA-F]{40})\Z")
_HEX_SECRET = re.compile(r"(?:0x)?([0-9a-fA-F]{64})\Z")
_CHECKSUM_UPPER = frozenset("89abcdef")


def keccak256(data: bytes) -> bytes:
    """Return the Keccak-256 hash (Ethereum's, not SHA3-256) of ``data``."""
    # The C extension: about 1 us a call, where pycryptodome's wrapper costs 6 to 7.
    digest: bytes = sha3.keccak_256(data).digest()
    return digest


@lru_cache(maxsize=65536)
def _checksum(raw: bytes) -> Address:
    lower = raw.hex()
    nibbles = keccak256(lower.encode("ascii")).hex()
    return Address(
        "0x"
        + "".join(
            c.upper() if h in _CHECKSUM_UPPER else c for c, h in zip(lower, nibbles, strict=False)
        )
    )


def to_checksum_address(value: str | bytes) -> Address:
    """Return ``value`` (20 raw bytes, or 40 hex digits with or without 0x) in EIP-55 form.

    Mixed-case input is taken to carry a checksum, and is rejected if it is wrong.
    """
    if isinstance(value, bytes | bytearray):
        if len(value) != 20:
            raise InvalidAddress(f"address must be 20 bytes, got {len(value)}")
        return _checksum(bytes(value))
    if not isinstance(value, str):
        raise InvalidAddress(f"address must be str or bytes, not {type(value).__name__}")
    match = _HEX_ADDRESS.match(value)
    if match is None:
        raise InvalidAddress(f"not a 20-byte hex address: {value[:50]!r}")
    digits = match.group(1)
    result = _checksum(bytes.fromhex(digits))
    mixed = digits != digits.lower() and digits != digits.upper()
    if mixed and result[2:] != digits:
        raise InvalidAddress(f"bad EIP-55 checksum: {value!r}, expected {result}")
    return result


@lru_cache(maxsize=4096)
def _address_of_point(point: bytes) -> Address:
    # A consortium has few signers, so the two keccaks per address are
    # almost always a cache hit.
    return _checksum(keccak256(point)[12:])


class PublicKey:
    """An immutable secp256k1 public key."""

    __slots__ = ("_compressed", "_uncompressed")
    _compressed: bytes
    _uncompressed: bytes

    def __init__(self, data: bytes) -> None:
        """Parse a 33-byte compressed or 65-byte uncompressed SEC1 point."""
        if len(data) not in (33, 65):
            raise InvalidInput(f"public key must be 33 or 65 bytes, got {len(data)}")
        if data[0] not in ((2, 3) if len(data) == 33 else (4,)):
            # libsecp256k1 also parses the obsolete "hybrid" 0x06/0x07 form.
            raise InvalidInput(f"public key has bad SEC1 prefix 0x{data[0]:02x}")
        try:
            key = coincurve.PublicKey(bytes(data))
        except (ValueError, TypeError):
            raise InvalidInput("public key is not a point on secp256k1") from None
        object.__setattr__(self, "_compressed", key.format(compressed=True))
        object.__setattr__(self, "_uncompressed", key.format(compressed=False))

    @classmethod
    def from_bytes(cls, data: bytes) -> "PublicKey":
        """Parse a 33-byte compressed or 65-byte uncompressed SEC1 point."""
        return cls(data)

    def to_bytes(self, compressed: bool = True) -> bytes:
        """Return the SEC1 encoding (33 bytes compressed, else 65 bytes)."""
        return self._compressed if compressed else self._uncompressed

    @property
    def address(self) -> Address:
        """The Ethereum address: last 20 bytes of keccak256 of the 64-byte point."""
        return _address_of_point(self._uncompressed[1:])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._compressed == other._compressed

    def __hash__(self) -> int:
        return hash(self._compressed)

    def __repr__(self) -> str:
        return f"PublicKey({self._compressed.hex()})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("PublicKey is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("PublicKey is immutable")


class PrivateKey:
    """An immutable secp256k1 private key; its repr never shows the secret."""

    __slots__ = ("_address", "_key", "_public")
    _address: Address
    _key: coincurve.PrivateKey
    _public: PublicKey

    def __init__(self, secret: bytes) -> None:
        """Wrap a 32-byte big-endian scalar in [1, n-1]."""
        if len(secret) != 32:
            raise InvalidInput(f"private key must be 32 bytes, got {len(secret)}")
        if not 0 < int.from_bytes(secret, "big") < _N:
            raise InvalidInput("private key is out of range for secp256k1")
        key = coincurve.PrivateKey(bytes(secret))
        public = PublicKey(key.public_key.format(compressed=False))
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_public", public)
        object.__setattr__(self, "_address", public.address)

    @classmethod
    def generate(cls, randbytes: Callable[[int], bytes] = os.urandom) -> "PrivateKey":
        """Draw a uniformly random key from ``randbytes`` (rejection sampling)."""
        while True:
            candidate = randbytes(32)
            if len(candidate) != 32:
                raise UsageError(f"randbytes(32) returned {len(candidate)} bytes")
            if 0 < int.from_bytes(candidate, "big") < _N:
                return cls(candidate)

    @classmethod
    def from_bytes(cls, b: bytes) -> "PrivateKey":
        """Wrap a 32-byte big-endian scalar in [1, n-1]."""
        return cls(b)

    @classmethod
    def from_hex(cls, s: str) -> "PrivateKey":
        """Parse 64 hex digits, with or without 0x."""
        match = _HEX_SECRET.match(s)
        if match is None:
            # The text may be a secret with a typo: do not echo it.
            raise InvalidInput("private key must be 64 hex digits")
        return cls(bytes.fromhex(match.group(1)))

    def to_bytes(self) -> bytes:
        """Return the 32-byte secret scalar."""
        return self._key.secret

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    @property
    def address(self) -> Address:
        """The Ethereum address of the matching public key."""
        return self._address

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest: 65 bytes r||s||v, v in {27, 28}, low s (RFC 6979 nonce)."""
        if len(digest) != 32:
            raise InvalidInput(f"digest must be 32 bytes, got {len(digest)}")
        signature = self._key.sign_recoverable(bytes(digest), hasher=None)
        recovery_id = signature[64]
        if recovery_id > 1:
            # Needs r >= n, probability about 2**-127; Ethereum's v cannot express it.
            raise UsageError("signature needs recovery id > 1; sign a different digest")
        # libsecp256k1 always emits low-s, as EIP-2 requires.
        return signature[:64] + bytes((27 + recovery_id,))

    def __repr__(self) -> str:
        return f"PrivateKey(address={self._address})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("PrivateKey cannot be pickled; use a keystore")

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("PrivateKey is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("PrivateKey is immutable")


def _reject(problem: str) -> NoReturn:
    raise InvalidSignature(problem)


def _recover_once(digest: bytes, signature: bytes) -> Address:
    try:
        key = coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)
    except ValueError:
        _reject("no public key can be recovered from this signature")
    return _address_of_point(key.format(compressed=False)[1:])


# Recovery is deterministic, and a ledger checks the same transaction on admission, on
# gossip and in blocks: remembering results is safe and pays.
_recover = lru_cache(maxsize=8192)(_recover_once)


def recover_address(digest: bytes, signature: bytes, *, remember: bool = True) -> Address:
    """Return the address whose key made ``signature`` (r||s||v, v in {0, 1, 27, 28}) of ``digest``.

    Rejects high s (EIP-2), so every signed digest has exactly one valid signature.
    ``remember=False`` for signatures never checked twice (each request's own): kept,
    they would only fill the cache and the collector's oldest generation.
    """
    if len(digest) != 32:
        raise InvalidInput(f"digest must be 32 bytes, got {len(digest)}")
    if not isinstance(signature, bytes | bytearray) or len(signature) != 65:
        size = len(signature) if isinstance(signature, bytes | bytearray) else "not bytes"
        _reject(f"signature must be 65 bytes, got {size}")
    recovery_id = _RECOVERY_IDS.get(signature[64])
    if recovery_id is None:
        _reject(f"signature v is {signature[64]}, expected 0, 1, 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < _N:
        _reject("signature r is zero or not below the group order")
    if s == 0:
        _reject("signature s is zero")
    if s > _HALF_N:
        _reject("signature s is in the upper half of the order (malleable, EIP-2)")
    recover = _recover if remember else _recover_once
    return recover(bytes(digest), bytes(signature[:64]) + bytes((recovery_id,)))


def verify_signature(digest: bytes, signature: bytes, expected: Address) -> None:
    """Raise InvalidSignature unless ``expected`` made ``signature`` of ``digest``."""
    recovered = recover_address(digest, signature)
    if recovered != expected:
        raise InvalidSignature(f"signature by {recovered}, expected {expected}")
