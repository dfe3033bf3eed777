"""How often one signing key may call a node, and how often one client address may fail to.

Both are token buckets. A signer's bucket is spent only by requests whose signature
verified and whose nonce is new, so nobody drains another's allowance by naming their
keyid or replaying one of their requests; and since a nonce is recorded only when a
token is there to spend, the nonces a node keeps per key are bounded by the burst plus
the rate times the longest a signature lives. A client address's bucket is spent by
its failed authentications; once it is empty, the node refuses that address's
requests before doing the work of checking them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from medledger.crypto.keys import Address
from medledger.errors import UsageError
from medledger.node.errors import SignerRateLimited, TooManyFailedAuthentications


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1:
            raise UsageError(f"a rate needs per_s > 0 and burst >= 1, got {self}")


class TokenBuckets:
    """One token bucket per key, all at one rate: each starts full with ``burst`` tokens
    and refills at ``per_s`` a second.

    A full bucket is the same as none, so buckets that have refilled are dropped: the
    table holds only keys that spent a token in the last two refill times, however many
    keys come and go. Used from the node's event loop only.
    """

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._refill_s = rate.burst / rate.per_s
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` has a whole token; 0 if it has one now."""
        missing = 1 - self._tokens(key, self._clock())
        return max(0.0, missing / self.rate.per_s)

    def take(self, key: str) -> None:
        """Spend one of ``key``'s tokens."""
        now = self._clock()
        if now - self._swept >= self._refill_s:
            self._swept = now
            self._buckets = {
                k: held
                for k, held in self._buckets.items()
                if self._tokens(k, now) < self.rate.burst
            }
        self._buckets[key] = (self._tokens(key, now) - 1, now)

    def _tokens(self, key: str, now: float) -> float:
        held = self._buckets.get(key)
        if held is None:
            return float(self.rate.burst)
        tokens, at = held
        return min(float(self.rate.burst), tokens + (now - at) * self.rate.per_s)


class RequestLimits:
    """The node's two limits on authenticated routes, built from its settings."""

    def __init__(
        self, signers: Rate, failures: Rate, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.signers = TokenBuckets(signers, clock)
        self.failures = TokenBuckets(failures, clock)

    def admit_address(self, address: str) -> None:
        """Refuse ``address`` while its failed authentications are over the limit."""
        wait = self.failures.wait_s(address)
        if wait > 0:
            rate = self.failures.rate
            raise TooManyFailedAuthentications(
                f"more than {rate.burst} failed authentications from this client address "
                f"(refilling at {rate.per_s:g} a second); retry in {_whole(wait)} s",
                _whole(wait),
            )

    def failed(self, address: str) -> None:
        self.failures.take(address)

    def admit_signer(self, signer: Address) -> None:
        """Refuse a verified request of ``signer`` when its bucket is empty."""
        wait = self.signers.wait_s(signer)
        if wait > 0:
            rate = self.signers.rate
            raise SignerRateLimited(
                f"{signer} is over its limit of {rate.per_s:g} requests a second "
                f"(burst {rate.burst}); retry in {_whole(wait)} s",
                _whole(wait),
            )

    def spent(self, signer: Address) -> None:
        self.signers.take(signer)


def _whole(seconds: float) -> int:
    # Retry-After takes whole seconds; rounding down would send the client back too soon.
    return max(1, math.ceil(seconds))
