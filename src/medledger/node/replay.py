"""Request nonces a node has seen, kept until the request would have expired anyway.

A signed request carries a fresh nonce and an expiry; a second request with the
same signer and nonce is a replay. The nonces are kept in SQLite beside the
node's other data so that a restart forgets none of them.

A nonce is kept no longer than its request could still verify: its ``expires`` is at
most the longest signature lifetime after its ``created``, which is at most the clock
skew ahead of the node's clock. The first nonce recorded in each second of the clock
drops every nonce that has expired, whether requests come one a minute or thousands a
second, so the store holds only nonces of requests accepted in the last lifetime +
skew + 1 seconds: per signing key, at most its rate limit's burst plus its rate times
that (node/limits.py).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from medledger.crypto.keys import Address
from medledger.errors import TransportError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen_nonce (
    signer TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires INTEGER NOT NULL,
    PRIMARY KEY (signer, nonce)
) WITHOUT ROWID
"""
_INDEX = "CREATE INDEX IF NOT EXISTS seen_nonce_expires ON seen_nonce (expires)"


class SeenNonces:
    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # A process crash loses nothing at NORMAL; only a power cut may lose the last
            # few nonces, which is a replay window of seconds, not an open door.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            self._db.execute(_INDEX)
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open the nonce store {path.name}: {exc}") from exc
        self._lock = threading.Lock()
        # Expiry times are whole seconds: one indexed delete per second of the clock
        # removes every nonce that has expired, whatever the traffic.
        self._pruned_at: int | None = None

    def first_use(self, signer: Address, nonce: str, expires: int, now_s: int) -> bool:
        """Record the nonce; False if this signer used it before."""
        with self._lock:
            try:
                if now_s != self._pruned_at:
                    self._pruned_at = now_s
                    self._db.execute("DELETE FROM seen_nonce WHERE expires < ?", (now_s,))
                self._db.execute(
                    "INSERT INTO seen_nonce (signer, nonce, expires) VALUES (?, ?, ?)",
                    (signer, nonce, expires),
                )
            except sqlite3.IntegrityError:
                return False
            except sqlite3.Error as exc:
                raise TransportError(f"cannot record a request nonce: {exc}") from exc
            return True

    def seen(self, signer: Address, nonce: str) -> bool:
        """Whether this signer's nonce is recorded, without recording it."""
        with self._lock:
            try:
                found = self._db.execute(
                    "SELECT 1 FROM seen_nonce WHERE signer = ? AND nonce = ?", (signer, nonce)
                ).fetchone()
            except sqlite3.Error as exc:
                raise TransportError(f"cannot look up a request nonce: {exc}") from exc
        return found is not None

    def size(self) -> int:
        """How many nonces the store holds."""
        with self._lock:
            try:
                (count,) = self._db.execute("SELECT count(*) FROM seen_nonce").fetchone()
            except sqlite3.Error as exc:
                raise TransportError(f"cannot count request nonces: {exc}") from exc
        return int(count)

    def close(self) -> None:
        self._db.close()
