"""Durable node state in SQL: the state table, the accepted log and its Merkle nodes.

One node owns one store and is its only writer. A block's writes, log entries,
Merkle nodes, its entries in the state journal (ledger/state_tree.py, which the
state committer hashes into the state tree later) and the applied block number are
committed in one SQL transaction, so a crash leaves the store at a block boundary
and replay resumes from there. SQLite (WAL, full fsync at commit) is the default;
PostgreSQL works by URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from medledger.errors import TransportError
from medledger.ledger.database import (
    PointCursors,
    make_engine,
    tree_engine_for,
    upsert_statement,
)
from medledger.ledger.state_proofs import TreeReader
from medledger.ledger.state_tree import driver_sql, entries_root, journal_rows, tree_metadata
from medledger.ledger.store_schema import (
    STATEMENTS,
    meta_table,
    metadata,
    node_table,
    rejected_table,
    state_table,
    tx_table,
)

_MISSING = object()


@dataclass(frozen=True)
class LoggedTx:
    """One accepted transaction as the log holds it."""

    index: int
    tx_id: bytes
    seq: int
    sender: str
    nonce: int
    tx_type: str
    timestamp_ns: int
    leaf: bytes
    raw: bytes


@dataclass(frozen=True)
class Rejection:
    seq: int
    pos: int
    tx_id: bytes
    code: str
    message: str


@dataclass
class BlockCommit:
    """Everything one block changes, committed atomically by :meth:`LedgerStore.commit`."""

    seq: int
    writes: dict[tuple[str, str], Any]
    txs: list[LoggedTx]
    nodes: list[tuple[int, int, bytes]]
    rejected: list[Rejection]


class LedgerStore:
    """SQL-backed state, log and Merkle nodes of one node."""

    def __init__(self, engine: Engine, *, cache_entries: int = 200_000) -> None:
        self._engine = engine
        self._cache: dict[tuple[str, str], Any] = {}
        self._cache_entries = cache_entries
        self._node_cache: dict[tuple[int, int], bytes] = {}
        self.tree_engine = tree_engine_for(engine)
        try:
            metadata.create_all(engine)
            tree_metadata.create_all(self.tree_engine)
        except SQLAlchemyError as exc:
            raise TransportError(f"cannot open the ledger store: {type(exc).__name__}") from exc
        self.tree = TreeReader(self.tree_engine, engine)
        #: Told after every block commits, to wake the state committer.
        self.on_commit: Callable[[], None] = _nothing
        # The statements of the hot path, in the driver's own parameter style.
        self._sql = {k: driver_sql(engine, v) for k, v in STATEMENTS.items()}
        # Point reads are the hot path of execution.
        self._cursors = PointCursors(engine)

    @classmethod
    def open(cls, url: str) -> LedgerStore:
        return cls(make_engine(url))

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        """Where another process finds this store (the state committer)."""
        return self._engine.url.render_as_string(hide_password=False)

    @property
    def tree_url(self) -> str:
        return self.tree_engine.url.render_as_string(hide_password=False)

    def close(self) -> None:
        self._cursors.close()
        self._engine.dispose()
        if self.tree_engine is not self._engine:
            self.tree_engine.dispose()

    def get(self, ns: str, key: str) -> Any | None:
        cached = self._cache.get((ns, key), _MISSING)
        if cached is not _MISSING:
            return cached
        cursor = self._cursors.cursor()
        cursor.execute(self._sql["get_state"], (ns, key))
        row = cursor.fetchone()
        value = None if row is None else json.loads(bytes(row[0]))
        self._remember({(ns, key): value})
        return value

    def keys_in(self, ns: str) -> list[str]:
        """Every key ``ns`` holds now, in no particular order (a scan, not the hot path)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(state_table.c.key).where(state_table.c.ns == ns)).all()
        return [str(key) for (key,) in rows]

    def meta(self, key: str) -> str | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(meta_table.c.value).where(meta_table.c.key == key)).first()
        return None if row is None else str(row[0])

    @property
    def applied_seq(self) -> int:
        value = self.meta("applied_seq")
        return 0 if value is None else int(value)

    @property
    def size(self) -> int:
        value = self.meta("size")
        return 0 if value is None else int(value)

    def commit(self, block: BlockCommit, size: int) -> None:
        """Persist one block's effects and advance ``applied_seq`` in one SQL transaction."""
        sql = self._sql
        encoded = {k: _encoded(v) for k, v in block.writes.items()}
        journal = journal_rows(
            size, {k: (new, _encoded(self.get(*k))) for k, new in encoded.items()}
        )
        upserts = [(ns, key, value) for (ns, key), value in encoded.items() if value is not None]
        deletions = [(ns, key) for (ns, key), value in encoded.items() if value is None]
        # Plain driver executemany: SQLAlchemy's per-row statement handling cost more
        # than the rest of a block's execution together.
        with self._engine.begin() as conn:
            if upserts:
                conn.exec_driver_sql(sql["upsert_state"], upserts)
            if deletions:
                conn.exec_driver_sql(sql["delete_state"], deletions)
            if block.txs:
                conn.exec_driver_sql(
                    sql["insert_tx"],
                    [
                        (
                            t.index,
                            t.tx_id,
                            t.seq,
                            t.sender,
                            t.nonce,
                            t.tx_type,
                            t.timestamp_ns,
                            t.leaf,
                            t.raw,
                        )
                        for t in block.txs
                    ],
                )
            if block.nodes:
                conn.exec_driver_sql(sql["insert_node"], block.nodes)
            if block.rejected:
                conn.exec_driver_sql(
                    sql["insert_rejected"],
                    [(r.seq, r.pos, r.tx_id, r.code, r.message) for r in block.rejected],
                )
            if journal:
                conn.exec_driver_sql(sql["insert_journal"], journal)
            self._set_meta(conn, {"applied_seq": str(block.seq), "size": str(size)})
        self._remember(block.writes)
        for level, idx, digest in block.nodes:
            self._node_cache[(level, idx)] = digest
        if journal:
            self.on_commit()

    def _set_meta(self, conn: Any, values: Mapping[str, str]) -> None:
        stmt = upsert_statement(self._engine.dialect.name, meta_table, ("key",))
        conn.execute(stmt, [{"key": k, "value": v} for k, v in values.items()])

    def _remember(self, entries: Mapping[tuple[str, str], Any]) -> None:
        if len(self._cache) + len(entries) > self._cache_entries:
            self._cache.clear()
        self._cache.update(entries)

    def perfect(self, level: int, index: int) -> bytes:
        """Hash of a perfect Merkle subtree (the ``SubtreeSource`` protocol)."""
        if level == 0:
            return self.tx_by_index(index).leaf
        cached = self._node_cache.get((level, index))
        if cached is not None:
            return cached
        with self._engine.connect() as conn:
            row = conn.execute(
                select(node_table.c.hash).where(
                    node_table.c.level == level, node_table.c.idx == index
                )
            ).first()
        if row is None:
            raise LookupError(f"no Merkle node at level {level}, index {index}")
        digest = bytes(row[0])
        self._node_cache[(level, index)] = digest
        return digest

    def tx_by_index(self, index: int) -> LoggedTx:
        with self._engine.connect() as conn:
            row = conn.execute(select(tx_table).where(tx_table.c.idx == index)).first()
        if row is None:
            raise LookupError(f"no accepted transaction at index {index}")
        return _logged(row._mapping)

    def tx_by_id(self, tx_id: bytes) -> LoggedTx | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(tx_table).where(tx_table.c.tx_id == tx_id)).first()
        return None if row is None else _logged(row._mapping)

    def has_entries_besides(self, after_size: int, tx_type: str) -> bool:
        """Whether the log holds an entry at index ``after_size`` or later of another type
        than ``tx_type``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(tx_table.c.idx)
                .where(tx_table.c.idx >= after_size, tx_table.c.tx_type != tx_type)
                .limit(1)
            ).first()
        return row is not None

    def rejection(self, tx_id: bytes) -> Rejection | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(rejected_table)
                .where(rejected_table.c.tx_id == tx_id)
                .order_by(rejected_table.c.seq.desc())
            ).first()
        return None if row is None else Rejection(**row._mapping)

    def iter_txs(
        self, start: int = 0, end: int | None = None, *, page: int = 5000
    ) -> Iterator[LoggedTx]:
        """Accepted transactions with ``start <= index < end``, in log order."""
        position = start
        while end is None or position < end:
            stop = position + page if end is None else min(position + page, end)
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(tx_table)
                    .where(tx_table.c.idx >= position, tx_table.c.idx < stop)
                    .order_by(tx_table.c.idx)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _logged(row._mapping)
            position = stop

    def state_entries(self) -> Iterable[tuple[str, str, bytes]]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(state_table.c.ns, state_table.c.key, state_table.c.value)
            ).all()
        # Sorted here, not in SQL: database collations differ, the root must not.
        return sorted((str(ns), str(key), bytes(value)) for ns, key, value in rows)

    def scanned_state_root(self) -> bytes:
        """The state root rebuilt from every entry of the state table: what the tree's
        root must be, found without the tree."""
        return entries_root(self.state_entries())


def _nothing() -> None:
    return None


def _encoded(value: Any) -> bytes | None:
    return None if value is None else encode_value(value)


def encode_value(value: Any) -> bytes:
    """Deterministic JSON for state values.

    Not RFC 8785: state holds nanosecond timestamps, beyond the integers JCS allows.
    Sorted keys and fixed separators make the bytes the same on every node.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _logged(row: Any) -> LoggedTx:
    return LoggedTx(
        index=int(row["idx"]),
        tx_id=bytes(row["tx_id"]),
        seq=int(row["seq"]),
        sender=str(row["sender"]),
        nonce=int(row["nonce"]),
        tx_type=str(row["tx_type"]),
        timestamp_ns=int(row["timestamp_ns"]),
        leaf=bytes(row["leaf"]),
        raw=bytes(row["raw"]),
    )
