"""The authenticated state: a sparse Merkle tree over every state entry, kept in SQL.

Every ``(namespace, key) -> value`` entry of the ledger state is a leaf at the
path ``SHA-256(label || ns || 0 || key)`` holding ``SHA-256(value bytes)``
(crypto/smt.py). Each block, in its own SQL transaction, appends what it wrote to
a journal: per entry its new value hash and the value it overwrote. A committer
(ledger/committer.py) takes the journal version by version (a version is the log
size after a block), updates the tree in one batch per version, so a write costs
O(log n) hashes, and records each version's state root. Checkpoints sign those
roots: anyone holding an entry, its proof and a cosigned checkpoint can check the
entry without trusting the node that served it.

Tree nodes are stored in pages of four levels (one row per page), current version
only, with the pages each version overwrote kept beside them; the journal keeps the
values. Together they let a node prove entries at the size of a recent checkpoint.
Nothing needs keeping for what a version created: a walk of an older version never
reaches a page or value that did not exist then. Both are pruned once no
checkpoint worth proving against needs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

from medledger.crypto import smt

PAGE_LEVELS = 4
_PAGE_SLOTS = (1 << PAGE_LEVELS) - 1
_PATH_LABEL = b"medledger/state/v1\x00"
TREE_VERSION_KEY = "state_tree_version"
HORIZON_KEY = "state_horizon"

Page = list[bytes | None]
PageKey = tuple[int, int]

_STATEMENTS = {
    "get_page": "SELECT nodes FROM ledger_state_pages WHERE page = ?",
    "get_page_at": "SELECT nodes FROM ledger_state_page_undo WHERE page = ? AND version > ? "
    "ORDER BY version LIMIT 1",
    "upsert_page": "INSERT INTO ledger_state_pages (page, nodes) VALUES (?, ?) "
    "ON CONFLICT (page) DO UPDATE SET nodes = excluded.nodes",
    "delete_page": "DELETE FROM ledger_state_pages WHERE page = ?",
    "insert_page_undo": "INSERT INTO ledger_state_page_undo (version, page, nodes) "
    "VALUES (?, ?, ?)",
    "journal_after": "SELECT version, ns, key, value_hash FROM ledger_state_journal "
    "WHERE version > ? AND version <= ? ORDER BY id",
    "next_versions": "SELECT DISTINCT version FROM ledger_state_journal WHERE version > ? "
    "ORDER BY version LIMIT ?",
    "value_at": "SELECT old FROM ledger_state_journal WHERE version > ? AND ns = ? AND key = ? "
    "ORDER BY version LIMIT 1",
    "upsert_root": "INSERT INTO ledger_state_roots (size, root) VALUES (?, ?) "
    "ON CONFLICT (size) DO UPDATE SET root = excluded.root",
    "get_root": "SELECT root FROM ledger_state_roots WHERE size = ?",
    "latest_root": "SELECT size, root FROM ledger_state_roots ORDER BY size DESC LIMIT 1",
    "prune_pages": "DELETE FROM ledger_state_page_undo WHERE version <= ?",
    "prune_journal": "DELETE FROM ledger_state_journal WHERE version <= ?",
    "get_meta": "SELECT value FROM ledger_state_tree_meta WHERE key = ?",
    "set_meta": "INSERT INTO ledger_state_tree_meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
}


def driver_sql(engine: Engine, statement: str) -> str:
    """A statement written with ``?`` in the driver's own parameter style."""
    pyformat = engine.dialect.paramstyle in {"format", "pyformat"}
    return statement.replace("?", "%s") if pyformat else statement


def statements(engine: Engine) -> dict[str, str]:
    """The tree's statements in the driver's own parameter style."""
    return {k: driver_sql(engine, v) for k, v in _STATEMENTS.items()}


def state_path(ns: str, key: str) -> bytes:
    """Where an entry lives in the tree."""
    return hashlib.sha256(_PATH_LABEL + ns.encode() + b"\x00" + key.encode()).digest()


def value_hash(encoded: bytes) -> bytes:
    return hashlib.sha256(encoded).digest()


def define_journal(metadata: MetaData) -> None:
    """The journal lives with the ledger's state: each block appends to it in its own
    SQL transaction."""
    Table(
        "ledger_state_journal",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("version", BigInteger, nullable=False, index=True),
        Column("ns", String(64), nullable=False),
        Column("key", String(256), nullable=False),
        Column("value_hash", LargeBinary(32)),
        Column("old", LargeBinary),
    )


#: The tree's own tables: in a database of their own where that spares the executor
#: the committer's write locks (SQLite), beside the ledger's otherwise (PostgreSQL).
tree_metadata = MetaData()
Table(
    "ledger_state_tree_meta",
    tree_metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
)
Table(
    "ledger_state_pages",
    tree_metadata,
    Column("page", LargeBinary(40), primary_key=True),
    Column("nodes", LargeBinary, nullable=False),
)
Table(
    "ledger_state_page_undo",
    tree_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", BigInteger, nullable=False, index=True),
    Column("page", LargeBinary(40), nullable=False),
    Column("nodes", LargeBinary, nullable=False),
    Index("ledger_state_page_undo_page", "page", "version"),
)
Table(
    "ledger_state_roots",
    tree_metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
)


def journal_rows(
    version: int, writes: Mapping[tuple[str, str], tuple[bytes | None, bytes | None]]
) -> list[tuple[int, str, str, bytes | None, bytes | None]]:
    """A block's journal: (ns, key) -> (new encoded value or None, old one or None)."""
    return [
        (version, ns, key, None if new is None else value_hash(new), old)
        for (ns, key), (new, old) in writes.items()
    ]


def page_of(depth: int, prefix: int) -> tuple[PageKey, int]:
    rel = depth % PAGE_LEVELS
    return (depth - rel, prefix >> rel), (1 << rel) - 1 + (prefix & ((1 << rel) - 1))


def page_id(key: PageKey) -> bytes:
    depth, prefix = key
    return depth.to_bytes(2, "big") + prefix.to_bytes((depth + 7) // 8, "big")


_SLOT = [bytes((i,)) for i in range(_PAGE_SLOTS)]
_ENTRY = 1 + smt.NODE_SIZE


def _encode_page(page: Page) -> bytes | None:
    return b"".join(_SLOT[i] + node for i, node in enumerate(page) if node is not None) or None


def decode_page(data: bytes | None) -> Page:
    page: Page = [None] * _PAGE_SLOTS
    if data:
        if len(data) % _ENTRY:
            raise ValueError("a stored page of the state tree is truncated")
        for start in range(0, len(data), _ENTRY):
            if data[start] >= _PAGE_SLOTS:
                raise ValueError("a stored page of the state tree names a slot it has not")
            page[data[start]] = smt.check_node(data[start + 1 : start + _ENTRY])
    return page


@dataclass
class TreeCommit:
    """One version's changes to the tree."""

    version: int
    root: bytes
    #: Each changed page, decoded and encoded (None: now empty).
    pages: dict[PageKey, tuple[Page, bytes | None]] = field(default_factory=dict)
    #: What the version overwrote, for proofs at older versions.
    page_undo: list[tuple[PageKey, bytes]] = field(default_factory=list)


class TreeWriter:
    """The committer's side: the current tree through a bounded page cache, updated one
    version at a time. Only one writer per store."""

    def __init__(self, engine: Engine, *, cache_pages: int = 200_000) -> None:
        self._engine = engine
        self._sql = statements(engine)
        self._cache: dict[PageKey, tuple[Page, bytes | None]] = {}
        self._cache_pages = cache_pages
        # Pages staged but not yet stored: the cache is the only place they exist.
        self._unwritten: set[PageKey] = set()

    def _page(self, key: PageKey) -> tuple[Page, bytes | None]:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if not self._may_exist(key):
            return [None] * _PAGE_SLOTS, None
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql["get_page"], (page_id(key),)).first()
        encoded = None if row is None else bytes(row[0])
        cached = (decode_page(encoded), encoded)
        self._remember(key, cached)
        return cached

    def _may_exist(self, key: PageKey) -> bool:
        # A page holds nodes only below an inner node of the page above that points
        # into it: asking that node spares a query for every page not yet written.
        depth, prefix = key
        if depth == 0:
            return True
        parent = self.node(depth - 1, prefix >> 1)
        if parent is None or parent[32] == 0:
            return False
        return (parent[65:97] if prefix & 1 else parent[33:65]) != smt.EMPTY

    def node(self, depth: int, prefix: int) -> bytes | None:
        key, slot = page_of(depth, prefix)
        cached = self._cache.get(key)
        page = self._page(key)[0] if cached is None else cached[0]
        return page[slot]

    def stage(self, version: int, writes: Mapping[bytes, bytes | None]) -> TreeCommit:
        """The tree after one version's writes (path -> value hash, None: deleted), made
        visible to the next :meth:`stage` at once and stored by :meth:`write`."""
        root, changes = smt.update(self, writes)
        commit = TreeCommit(version, root)
        touched: dict[PageKey, Page] = {}
        for (depth, prefix), node in changes.items():
            key, slot = page_of(depth, prefix)
            page = touched.get(key)
            if page is None:
                old, old_encoded = self._page(key)
                if old_encoded is not None:
                    commit.page_undo.append((key, old_encoded))
                page = touched[key] = list(old)
            page[slot] = node
        commit.pages = {key: (page, _encode_page(page)) for key, page in touched.items()}
        self._unwritten.update(commit.pages)
        for key, cached in commit.pages.items():
            self._remember(key, cached)
        return commit

    def write(self, conn: Connection, commits: Iterable[TreeCommit]) -> None:
        """Store staged commits inside the caller's SQL transaction."""
        sql = self._sql
        latest: dict[PageKey, bytes | None] = {}
        undo, roots = [], []
        for commit in commits:
            for key, (_, encoded) in commit.pages.items():
                latest[key] = encoded
            undo += [(commit.version, page_id(key), old) for key, old in commit.page_undo]
            roots.append((commit.version, commit.root))
        deletions = [(page_id(k),) for k, v in latest.items() if v is None]
        upserts = [(page_id(k), v) for k, v in latest.items() if v is not None]
        if deletions:
            conn.exec_driver_sql(sql["delete_page"], deletions)
        if upserts:
            conn.exec_driver_sql(sql["upsert_page"], upserts)
        if undo:
            conn.exec_driver_sql(sql["insert_page_undo"], undo)
        if roots:
            conn.exec_driver_sql(sql["upsert_root"], roots)
            conn.exec_driver_sql(sql["set_meta"], (TREE_VERSION_KEY, str(roots[-1][0])))

    def stored(self) -> None:
        """The staged pages are in the store now: the cache may let them go."""
        self._unwritten.clear()

    def forget(self) -> None:
        """Drop the cache: after a failed write it may be ahead of the store."""
        self._cache = {}
        self._unwritten.clear()

    def _remember(self, key: PageKey, cached: tuple[Page, bytes | None]) -> None:
        if len(self._cache) >= self._cache_pages:
            # Keep the top pages, which every walk passes through, and the pages staged
            # but not stored yet, which exist nowhere else.
            self._cache = {
                k: v for k, v in self._cache.items()
                if k[0] < 3 * PAGE_LEVELS or k in self._unwritten
            }  # fmt: skip
        self._cache[key] = cached


def entries_root(entries: Iterable[tuple[str, str, bytes]]) -> bytes:
    """The state root of exactly these (ns, key, encoded value) entries, built from
    scratch: what a node's tree must equal."""
    return smt.root_of([(state_path(ns, key), value_hash(value)) for ns, key, value in entries])


def journal_versions(conn: Connection, sql: Mapping[str, str], after: int, limit: int) -> list[int]:
    return [int(r[0]) for r in conn.exec_driver_sql(sql["next_versions"], (after, limit))]


def journal_writes(
    conn: Connection, sql: Mapping[str, str], after: int, through: int
) -> dict[int, dict[bytes, bytes | None]]:
    """The journal's writes of versions ``(after, through]``, by version, as tree paths."""
    versions: dict[int, dict[bytes, bytes | None]] = {}
    for version, ns, key, hashed in conn.exec_driver_sql(sql["journal_after"], (after, through)):
        writes = versions.setdefault(int(version), {})
        writes[state_path(str(ns), str(key))] = None if hashed is None else bytes(hashed)
    return versions


def meta_int(conn: Connection, sql: Mapping[str, str], key: str) -> int:
    row = conn.exec_driver_sql(sql["get_meta"], (key,)).first()
    return 0 if row is None else int(row[0])
