"""Shamir t-of-n secret sharing over GF(256), one independent polynomial per byte.

Hazmat: this is the primitives layer. Domain code should use the higher-level
recipes built on top of it (which, for example, seal each share to its holder).

The field is GF(2^8) with the AES (Rijndael) polynomial x^8 + x^4 + x^3 + x + 1 (0x11B).
For a secret byte ``s`` and threshold ``t`` the dealer picks ``f(x) = s + a1*x + ... +
a(t-1)*x^(t-1)`` with uniformly random coefficients and hands out ``f(1) .. f(n)``.
Any ``t`` points fix ``f`` and so ``s = f(0)``; ``t - 1`` points are consistent with
every possible ``s``, so they reveal nothing about it.

``randbytes`` is called once per coefficient, lowest degree first, each time for
``len(secret)`` bytes: coefficient row ``j`` holds ``aj`` for every secret byte.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from medledger.crypto.errors import InsufficientShares, InvalidShare
from medledger.errors import UsageError

__all__ = ["MAX_SHARES", "Share", "combine", "gf_inv", "gf_mul", "split"]

MAX_SHARES = 255
_POLY = 0x11B
# 3 (x + 1) generates the multiplicative group of this field; 2 does not.
_GENERATOR = 3


def _build_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    exp = [0] * 510
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= _POLY
        value ^= doubled  # value * 3 == value * 2 + value
    # A doubled table lets gf_mul index exp[log a + log b] without reducing mod 255.
    exp[255:] = exp[:255]
    return tuple(exp), tuple(log)


_EXP, _LOG = _build_tables()


def gf_mul(a: int, b: int) -> int:
    """Multiply two field elements (0..255)."""
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def gf_inv(a: int) -> int:
    """Return the multiplicative inverse of a non-zero field element."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(256)")
    return _EXP[255 - _LOG[a]]


@cache
def _times(c: int) -> bytes:
    # A 256-byte table for bytes.translate, which multiplies a whole row of secret
    # bytes by the constant c in C rather than one Python call per byte.
    return bytes(gf_mul(c, v) for v in range(256))


def _xor(a: bytes, b: bytes) -> bytes:
    # Field addition is XOR; doing it on one big integer is much faster than per byte.
    return (int.from_bytes(a) ^ int.from_bytes(b)).to_bytes(len(a))


@dataclass(frozen=True)
class Share:
    """One point ``(index, f(index))`` for every secret byte; ``index`` is 1..255."""

    index: int
    # Kept out of repr so a share never lands in a log line or traceback.
    value: bytes = field(repr=False)


def split(
    secret: bytes,
    threshold: int,
    count: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> list[Share]:
    """Split ``secret`` into ``count`` shares, any ``threshold`` of which recover it."""
    if not 1 <= threshold <= count <= MAX_SHARES:
        raise UsageError(
            f"need 1 <= threshold <= count <= {MAX_SHARES}, got {threshold} of {count}"
        )
    if not secret:
        raise UsageError("cannot split an empty secret")
    rows = [secret]
    for _ in range(threshold - 1):
        # The top coefficient may be zero: forcing it non-zero would make the
        # polynomial non-uniform and leak a little about the secret.
        row = randbytes(len(secret))
        if len(row) != len(secret):
            raise UsageError(f"randbytes returned {len(row)} bytes, expected {len(secret)}")
        rows.append(row)
    shares = []
    for x in range(1, count + 1):
        times_x = _times(x)
        acc = rows[-1]
        for row in reversed(rows[:-1]):  # Horner's rule, highest degree first
            acc = _xor(acc.translate(times_x), row)
        shares.append(Share(x, acc))
    return shares


def _distinct(shares: Sequence[Share]) -> list[Share]:
    length = len(shares[0].value) if shares else 0
    seen: dict[int, Share] = {}
    for share in shares:
        if not 1 <= share.index <= MAX_SHARES:
            raise InvalidShare(f"share index {share.index} is outside 1..{MAX_SHARES}")
        if not share.value or len(share.value) != length:
            raise InvalidShare(
                f"share {share.index} has {len(share.value)} bytes, expected {length}"
            )
        earlier = seen.setdefault(share.index, share)
        if earlier.value != share.value:
            raise InvalidShare(f"two shares have index {share.index} but different values")
    return list(seen.values())


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` distinct shares.

    Every share is checked, but only the first ``threshold`` distinct ones are used:
    Shamir shares carry no integrity, so extra shares cannot be cross-checked here.
    """
    if not 1 <= threshold <= MAX_SHARES:
        raise UsageError(f"threshold must be 1..{MAX_SHARES}, got {threshold}")
    distinct = _distinct(shares)
    if len(distinct) < threshold:
        raise InsufficientShares(f"have {len(distinct)} of {threshold} required shares")
    points = distinct[:threshold]
    secret = bytes(len(points[0].value))
    for share in points:
        # Lagrange basis at 0: prod x_j / (x_j - x_i), and subtraction is XOR here.
        numerator = denominator = 1
        for other in points:
            if other.index != share.index:
                numerator = gf_mul(numerator, other.index)
                denominator = gf_mul(denominator, other.index ^ share.index)
        weight = gf_mul(numerator, gf_inv(denominator))
        secret = _xor(secret, share.value.translate(_times(weight)))
    return secret
