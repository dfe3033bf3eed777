"""Proofs of ledger state: an entry's value at a log size, proven against that size's
state root, read from the state tree (ledger/state_tree.py) in one snapshot.

The value served is the current one, or, if it changed since that size, what the
first change after it overwrote (the journal keeps it); the proof says which is
right, so a node cannot serve another without the proof failing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from medledger.crypto import smt
from medledger.crypto.errors import InvalidProof
from medledger.crypto.hexdata import parse_hex
from medledger.ledger.state_tree import (
    HORIZON_KEY,
    Page,
    PageKey,
    decode_page,
    page_id,
    page_of,
    state_path,
    statements,
    value_hash,
)


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
                root=parse_hex(obj["state_root"]),
                value=None if encoded is None else encoded.encode(),
                proof=smt.Proof(
                    parse_hex(proof["path"]),
                    tuple(parse_hex(s) for s in proof["siblings"]),
                    None if leaf is None else (parse_hex(leaf[0]), parse_hex(leaf[1])),
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
        key, slot = page_of(depth, prefix)
        page = self._pages.get(key)
        if page is None:
            name = page_id(key)
            at = (name, self._size)
            row = self._conn.exec_driver_sql(self._sql["get_page_at"], at).first()
            if row is None:
                row = self._conn.exec_driver_sql(self._sql["get_page"], (name,)).first()
            page = self._pages[key] = decode_page(None if row is None else bytes(row[0]))
        return page[slot]
