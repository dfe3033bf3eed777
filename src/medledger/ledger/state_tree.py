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
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

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
from medledger.crypto.errors import InvalidProof

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


def _page_of(depth: int, prefix: int) -> tuple[PageKey, int]:
    rel = depth % PAGE_LEVELS
    return (depth - rel, prefix >> rel), (1 << rel) - 1 + (prefix & ((1 << rel) - 1))


def _page_id(key: PageKey) -> bytes:
    depth, prefix = key
    return bytes((depth,)) + prefix.to_bytes((depth + 7) // 8, "big")


_SLOT = [bytes((i,)) for i in range(_PAGE_SLOTS)]
_ENTRY = 1 + smt.NODE_SIZE


def _encode_page(page: Page) -> bytes | None:
    return b"".join(_SLOT[i] + node for i, node in enumerate(page) if node is not None) or None


def _decode_page(data: bytes | None) -> Page:
    page: Page = [None] * _PAGE_SLOTS
    if data:
        if len(data) % _ENTRY:
            raise ValueError("a stored page of the state tree is truncated")
        for start in range(0, len(data), _ENTRY):
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

    def _page(self, key: PageKey) -> tuple[Page, bytes | None]:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if not self._may_exist(key):
            return [None] * _PAGE_SLOTS, None
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql["get_page"], (_page_id(key),)).first()
        encoded = None if row is None else bytes(row[0])
        cached = (_decode_page(encoded), encoded)
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
        rel = depth & 3
        key = (depth - rel, prefix >> rel)
        cached = self._cache.get(key)
        page = self._page(key)[0] if cached is None else cached[0]
        return page[(1 << rel) - 1 + (prefix & ((1 << rel) - 1))]

    def stage(self, version: int, writes: Mapping[bytes, bytes | None]) -> TreeCommit:
        """The tree after one version's writes (path -> value hash, None: deleted), made
        visible to the next :meth:`stage` at once and stored by :meth:`write`."""
        root, changes = smt.update(self, writes)
        commit = TreeCommit(version, root)
        touched: dict[PageKey, Page] = {}
        for (depth, prefix), node in changes.items():
            key, slot = _page_of(depth, prefix)
            page = touched.get(key)
            if page is None:
                old, old_encoded = self._page(key)
                if old_encoded is not None:
                    commit.page_undo.append((key, old_encoded))
                page = touched[key] = list(old)
            page[slot] = node
        commit.pages = {key: (page, _encode_page(page)) for key, page in touched.items()}
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
            undo += [(commit.version, _page_id(key), old) for key, old in commit.page_undo]
            roots.append((commit.version, commit.root))
        deletions = [(_page_id(k),) for k, v in latest.items() if v is None]
        upserts = [(_page_id(k), v) for k, v in latest.items() if v is not None]
        if deletions:
            conn.exec_driver_sql(sql["delete_page"], deletions)
        if upserts:
            conn.exec_driver_sql(sql["upsert_page"], upserts)
        if undo:
            conn.exec_driver_sql(sql["insert_page_undo"], undo)
        if roots:
            conn.exec_driver_sql(sql["upsert_root"], roots)
            conn.exec_driver_sql(sql["set_meta"], (TREE_VERSION_KEY, str(roots[-1][0])))

    def forget(self) -> None:
        """Drop the cache: after a failed write it may be ahead of the store."""
        self._cache = {}

    def _remember(self, key: PageKey, cached: tuple[Page, bytes | None]) -> None:
        if len(self._cache) >= self._cache_pages:
            # Keep the top pages, which every walk passes through.
            self._cache = {k: v for k, v in self._cache.items() if k[0] < 3 * PAGE_LEVELS}
        self._cache[key] = cached


@dataclass(frozen=True)
class StateProof:
    """An entry's value (None: absent) at a log size, and its proof against that size's
    state root."""

    ns: str
    key: str
    size: int
    root: bytes
    value: bytes | None
    proof: smt.Proof

    def verify(self, state_root: bytes) -> None:
        """Check the proof against a state root (a cosigned checkpoint's); raise
        :class:`InvalidProof` unless the entry holds :attr:`value` there."""
        if self.root != state_root:
            raise InvalidProof("the proof is against another state root")
        if self.proof.path != state_path(self.ns, self.key):
            raise InvalidProof("the proof is for another entry")
        smt.verify(state_root, self.proof, None if self.value is None else value_hash(self.value))

    def value_json(self) -> Any | None:
        """The entry's value as JSON, None if absent."""
        return None if self.value is None else json.loads(self.value)

    def to_json(self) -> dict[str, Any]:
        proof = self.proof
        return {
            "ns": self.ns,
            "key": self.key,
            "size": self.size,
            "state_root": "0x" + self.root.hex(),
            # The exact bytes the leaf hashes, as text: a client hashes these, not its own
            # re-encoding of the value (which a JSON parser with 53-bit numbers would alter).
            "encoded": None if self.value is None else self.value.decode(),
            "value": self.value_json(),
            "proof": {
                "path": "0x" + proof.path.hex(),
                "siblings": ["0x" + s.hex() for s in proof.siblings],
                "leaf": None if proof.leaf is None else ["0x" + h.hex() for h in proof.leaf],
            },
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StateProof:
        """A proof as a node serves it; its value is the encoded text, not the parsed one."""
        try:
            proof, leaf = obj["proof"], obj["proof"]["leaf"]
            encoded = obj["encoded"]
            if encoded is not None and not isinstance(encoded, str):
                raise TypeError("encoded")
            return cls(
                ns=str(obj["ns"]),
                key=str(obj["key"]),
                size=int(obj["size"]),
                root=_hex(obj["state_root"]),
                value=None if encoded is None else encoded.encode(),
                proof=smt.Proof(
                    _hex(proof["path"]),
                    tuple(_hex(s) for s in proof["siblings"]),
                    None if leaf is None else (_hex(leaf[0]), _hex(leaf[1])),
                ),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise InvalidProof(f"malformed state proof: {type(exc).__name__}") from None


class TreeReader:
    """Roots and proofs, read in one snapshot of the tree (the committer may be writing
    meanwhile); values that changed since come from the ledger's journal."""

    def __init__(self, engine: Engine, ledger: Engine) -> None:
        self._engine = engine
        self._ledger = ledger
        self._sql = statements(engine)
        self._ledger_sql = statements(ledger)

    def root_at(self, size: int) -> bytes | None:
        """The state root after the block that ended at log size ``size``, once the
        committer has reached it."""
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql["get_root"], (size,)).first()
        return None if row is None else bytes(row[0])

    def latest(self) -> tuple[int, bytes] | None:
        """The newest version the committer reached and its root."""
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql["latest_root"]).first()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def horizon(self) -> int:
        with self._engine.connect() as conn:
            row = conn.exec_driver_sql(self._sql["get_meta"], (HORIZON_KEY,)).first()
        return 0 if row is None else int(row[0])

    def prove(self, ns: str, key: str, size: int, current: bytes | None) -> StateProof:
        """The entry at log size ``size`` with its proof; ``current`` is its encoded value
        now. Raises LookupError unless that version exists and is still kept."""
        with self._engine.connect() as conn, conn.begin():
            row = conn.exec_driver_sql(self._sql["get_root"], (size,)).first()
            if row is None:
                raise LookupError(f"no state root at log size {size}")
            horizon = conn.exec_driver_sql(self._sql["get_meta"], (HORIZON_KEY,)).first()
            if horizon is not None and size < int(horizon[0]):
                raise LookupError(f"the state at log size {size} is no longer kept")
            proof = smt.prove(_Snapshot(conn, self._sql, size), state_path(ns, key))
            proven = proof.value_hash
            value = None
            if proven is not None:
                value = current
                if current is None or value_hash(current) != proven:
                    value = self._overwritten(ns, key, size)
        return StateProof(ns, key, size, bytes(row[0]), value, proof)

    def _overwritten(self, ns: str, key: str, size: int) -> bytes | None:
        """An entry's value at ``size`` when it changed since: what the first change
        after ``size`` overwrote."""
        with self._ledger.connect() as conn:
            old = conn.exec_driver_sql(self._ledger_sql["value_at"], (size, ns, key)).first()
        return None if old is None or old[0] is None else bytes(old[0])


class _Snapshot:
    """The tree as it was at one log size, read inside one transaction."""

    def __init__(self, conn: Connection, sql: Mapping[str, str], size: int) -> None:
        self._conn = conn
        self._sql = sql
        self._size = size
        self._pages: dict[PageKey, Page] = {}

    def node(self, depth: int, prefix: int) -> bytes | None:
        key, slot = _page_of(depth, prefix)
        page = self._pages.get(key)
        if page is None:
            page_id = _page_id(key)
            at = (page_id, self._size)
            row = self._conn.exec_driver_sql(self._sql["get_page_at"], at).first()
            if row is None:
                row = self._conn.exec_driver_sql(self._sql["get_page"], (page_id,)).first()
            page = self._pages[key] = _decode_page(None if row is None else bytes(row[0]))
        return page[slot]


def _hex(value: object) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ValueError("expected 0x-prefixed hex")
    return bytes.fromhex(value[2:])


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
