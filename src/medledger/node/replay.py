"""Request nonces a node has seen, kept until the request would have expired anyway.

A signed request carries a fresh nonce and an expiry; a second request with the
same signer and nonce is a replay. The nonces are kept in SQLite beside the
node's other data so that a restart forgets none of them.
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
# Pruning costs one indexed delete; doing it every few hundred requests keeps the table
# at about one signature lifetime's worth of traffic.
_PRUNE_EVERY = 512


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
        self._since_prune = 0

    def first_use(self, signer: Address, nonce: str, expires: int, now_s: int) -> bool:
        """Record the nonce; False if this signer used it before."""
        with self._lock:
            self._since_prune += 1
            try:
                if self._since_prune >= _PRUNE_EVERY:
                    self._since_prune = 0
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

    def close(self) -> None:
        self._db.close()
