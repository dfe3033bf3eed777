"""The request-nonce store: replays refused, and its size bounded under a flood."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from medledger.node.limits import Rate, TokenBuckets
from medledger.node.replay import SeenNonces
from medledger.node.signatures import new_nonce
from tests.ledger.consortium import key

LIFETIME_S, SKEW_S = 5, 2
RATE = Rate(per_s=4, burst=10)
SIGNERS = [key(f"replay:{i}").address for i in range(3)]


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM seen_nonce").fetchone()
    return int(count)


def test_a_nonce_is_refused_the_second_time_and_kept_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nonces.db"
    store = SeenNonces(path)
    assert store.first_use(SIGNERS[0], "n" * 22, 200, 100)
    assert not store.first_use(SIGNERS[0], "n" * 22, 200, 100)
    assert store.first_use(SIGNERS[1], "n" * 22, 200, 100)
    assert store.seen(SIGNERS[1], "n" * 22) and not store.seen(SIGNERS[2], "n" * 22)
    store.close()
    reopened = SeenNonces(path)
    assert not reopened.first_use(SIGNERS[0], "n" * 22, 200, 150)
    assert reopened.size() == 2
    reopened.close()


def test_under_a_flood_the_store_holds_at_most_the_burst_plus_the_rate_over_a_lifetime(
    tmp_path: Path,
) -> None:
    """Every signer asks far more often than its rate, each request signed at the edge of
    the clock skew with the longest lifetime; the node records a nonce only when the
    signer's bucket has a token, as the API does."""
    path = tmp_path / "nonces.db"
    store = SeenNonces(path)
    now = 0.0
    buckets = TokenBuckets(RATE, lambda: now)
    per_signer = RATE.burst + RATE.per_s * (LIFETIME_S + SKEW_S + 1)
    for tick in range(600):
        now = tick / 10
        for signer in SIGNERS:
            for _ in range(50):
                if buckets.wait_s(signer) > 0:
                    break
                expires = int(now) + SKEW_S + LIFETIME_S
                assert store.first_use(signer, new_nonce(), expires, int(now))
                buckets.take(signer)
        assert rows(path) <= len(SIGNERS) * per_signer, f"at {now:.1f} s"
    store.close()


def test_nonces_of_a_past_flood_go_once_they_expire(tmp_path: Path) -> None:
    path = tmp_path / "nonces.db"
    store = SeenNonces(path)
    for _ in range(2000):
        assert store.first_use(SIGNERS[0], new_nonce(), 100 + LIFETIME_S, 100)
    assert rows(path) == 2000
    assert store.first_use(SIGNERS[1], new_nonce(), 200 + LIFETIME_S, 200)
    assert rows(path) == 1
    store.close()
