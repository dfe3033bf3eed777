"""Opening the SQL databases a node keeps: SQLite files by path, anything else by URL."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

_SQLITE_POOL = 32


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL; a bare path means a SQLite file."""
    if "://" not in url:
        url = f"sqlite:///{Path(url)}"
    if url.startswith("sqlite"):
        # A node answers requests on a pool of up to 40 threads: with SQLAlchemy's default
        # of 5 pooled connections, most reads opened a connection (and set its pragmas)
        # and closed it again, which cost more than the query.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=_SQLITE_POOL, max_overflow=_SQLITE_POOL)  # fmt: skip
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class PointCursors:
    """A plain DB-API cursor per thread, for point reads on a hot path: a few
    microseconds where a SQLAlchemy round trip (and a pool checkout) costs a hundred."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()

    def cursor(self) -> Any:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            connection = self._engine.raw_connection()
            if self._engine.dialect.name == "postgresql":
                # Each read must see the latest commit, not a snapshot.
                connection.driver_connection.autocommit = True  # type: ignore[union-attr]
            self._local.connection = connection
            cursor = self._local.cursor = connection.cursor()
        return cursor

    def close(self) -> None:
        """Close this thread's connection (the others go when the engine is disposed)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()


def tree_engine_for(engine: Engine) -> Engine:
    """Where the state tree of a ledger store lives: beside a SQLite file in one of its
    own (so the state committer never holds the executor's write lock), in the same
    database otherwise."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return engine
    path = Path(database)
    return make_engine(str(path.with_name(path.stem + ".tree" + path.suffix)))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: an acknowledged block must survive power loss, not just a process crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def upsert_statement(dialect: str, table: Table, keys: Sequence[str]) -> Any:
    """An insert of ``table`` rows that updates the row already at ``keys``."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)
