"""The embedded ordering service: a single-process sequencer on SQLite (WAL).

It is the default backend: no server to run. A block is acknowledged only after
its SQLite commit has been fsynced, so an acknowledged block survives ``kill -9``
and power loss. Several nodes in one process may share one sequencer; several
sequencers, in one process or in several, may share one file: each takes the
next number inside SQLite's write lock, and readers also look for blocks that
another process appended every few milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from medledger.errors import TransportError, UsageError
from medledger.ledger.ordering.base import Block, decode_block_payload, encode_block_payload

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    seq INTEGER PRIMARY KEY,
    timestamp_ns INTEGER NOT NULL,
    payload BLOB NOT NULL
)
"""
_READ_BATCH = 64
_LAST = "SELECT seq, timestamp_ns FROM blocks ORDER BY seq DESC LIMIT 1"
# How soon a reader sees a block that another process appended; blocks appended
# through this object wake its readers at once.
_POLL_S = 0.005


class EmbeddedOrderer:
    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect()
            self._reader = self._connect()
            self._writer.execute(_SCHEMA)
            row = self._writer.execute(_LAST).fetchone()
        except sqlite3.Error as exc:
            raise TransportError(f"cannot open the ordering log {path.name}: {exc}") from exc
        self._last_seq = int(row[0]) if row else 0
        self._lock = threading.Lock()
        self._waiters: set[asyncio.Event] = set()
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, check_same_thread=False, isolation_level=None, timeout=30
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @property
    def last_seq(self) -> int:
        """The last block this sequencer appended or found when it opened."""
        return self._last_seq

    async def head_seq(self) -> int:
        # Other processes may share the file: ask it, not this sequencer's memory.
        try:
            row = self._reader.execute(_LAST).fetchone()
        except sqlite3.Error as exc:
            raise TransportError(f"cannot read the ordering log: {exc}") from exc
        return int(row[0]) if row else 0

    async def append(self, txs: Sequence[bytes]) -> int:
        if self._closed:
            raise UsageError("the ordering log is closed")
        payload = encode_block_payload(txs)
        seq = await asyncio.to_thread(self._append, payload)
        for event in self._waiters:
            event.set()
        return seq

    def _append(self, payload: bytes) -> int:
        with self._lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                # Under the write lock: another sequencer on this file may have appended.
                row = self._writer.execute(_LAST).fetchone()
                last_seq, last_ts = (int(row[0]), int(row[1])) if row else (0, 0)
                seq = last_seq + 1
                # Timestamps never go backwards, whatever the wall clock does.
                timestamp = max(time.time_ns(), last_ts + 1)
                self._writer.execute(
                    "INSERT INTO blocks (seq, timestamp_ns, payload) VALUES (?, ?, ?)",
                    (seq, timestamp, payload),
                )
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")
                raise TransportError(f"cannot append to the ordering log: {exc}") from exc
            self._last_seq = seq
            return seq

    async def blocks(self, after_seq: int) -> AsyncIterator[Block]:
        event = asyncio.Event()
        self._waiters.add(event)
        cursor = after_seq
        try:
            while not self._closed:
                event.clear()
                rows = self._read(cursor)
                for seq, timestamp, payload in rows:
                    cursor = seq
                    yield Block(seq, timestamp, decode_block_payload(payload))
                if not rows:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), _POLL_S)
        finally:
            self._waiters.discard(event)

    def _read(self, after_seq: int) -> list[tuple[int, int, bytes]]:
        try:
            return self._reader.execute(
                "SELECT seq, timestamp_ns, payload FROM blocks WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, _READ_BATCH),
            ).fetchall()
        except sqlite3.Error as exc:
            raise TransportError(f"cannot read the ordering log: {exc}") from exc

    async def close(self) -> None:
        self._closed = True
        for event in self._waiters:
            event.set()
        with self._lock:
            self._writer.close()
        self._reader.close()
