"""Token buckets per signing key and per client address, on a clock the tests move."""

from __future__ import annotations

import pytest

from medledger.errors import UsageError
from medledger.node.errors import RateLimited, SignerRateLimited, TooManyFailedAuthentications
from medledger.node.limits import Rate, RequestLimits, TokenBuckets
from tests.ledger.consortium import key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_at_once_then_its_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_s=2, burst=5), clock)
    for _ in range(5):
        assert buckets.wait_s("k") == 0
        buckets.take("k")
    assert buckets.wait_s("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.wait_s("k") == 0
    buckets.take("k")
    clock.now += 100
    for _ in range(5):
        assert buckets.wait_s("k") == 0
        buckets.take("k")
    assert buckets.wait_s("k") > 0


def test_keys_have_their_own_buckets() -> None:
    buckets = TokenBuckets(Rate(per_s=1, burst=1), Clock())
    buckets.take("a")
    assert buckets.wait_s("a") > 0 and buckets.wait_s("b") == 0


def test_buckets_that_refilled_are_forgotten_however_many_keys_came() -> None:
    clock = Clock()
    buckets = TokenBuckets(Rate(per_s=10, burst=20), clock)
    for second in range(30):
        clock.now += 1
        for i in range(1000):
            buckets.take(f"{second}:{i}")
        # A bucket refills in 2 s: only keys of the last few seconds are kept.
        assert len(buckets) <= 4 * 1000


def test_a_signer_over_its_rate_is_refused_with_the_wait_in_whole_seconds() -> None:
    clock = Clock()
    limits = RequestLimits(signers=Rate(0.25, 2), failures=Rate(1, 1), clock=clock)
    signer = key("limits:signer").address
    for _ in range(2):
        limits.admit_signer(signer)
        limits.spent(signer)
    with pytest.raises(SignerRateLimited) as refused:
        limits.admit_signer(signer)
    assert refused.value.retry_after_s == 4 and signer in str(refused.value)
    clock.now += 0.1
    with pytest.raises(SignerRateLimited) as again:
        limits.admit_signer(signer)
    assert again.value.retry_after_s == 4  # 3.9 s, rounded up
    clock.now += 3.9
    limits.admit_signer(signer)


def test_an_address_is_held_off_once_its_failures_run_out() -> None:
    clock = Clock()
    limits = RequestLimits(signers=Rate(1, 1), failures=Rate(5, 3), clock=clock)
    for _ in range(3):
        limits.admit_address("192.0.2.7")
        limits.failed("192.0.2.7")
    with pytest.raises(TooManyFailedAuthentications) as refused:
        limits.admit_address("192.0.2.7")
    assert isinstance(refused.value, RateLimited) and refused.value.retry_after_s == 1
    assert "192.0.2.7" not in str(refused.value)
    limits.admit_address("192.0.2.8")
    clock.now += 0.2
    limits.admit_address("192.0.2.7")


@pytest.mark.parametrize(("per_s", "burst"), [(0, 1), (-1, 5), (1, 0)])
def test_a_rate_that_never_refills_or_never_admits_is_a_usage_error(
    per_s: float, burst: int
) -> None:
    with pytest.raises(UsageError):
        Rate(per_s, burst)
