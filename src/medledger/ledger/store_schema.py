"""The ledger store's tables, and the statements of its hot path in one spelling.

The state journal's table is defined by ledger/state_tree.py, which reads it; it is
created with these.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from medledger.ledger.state_tree import define_journal

metadata = MetaData()

meta_table = Table(
    "ledger_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
state_table = Table(
    "ledger_state",
    metadata,
    Column("ns", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)
tx_table = Table(
    "ledger_txs",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("tx_id", LargeBinary(32), nullable=False, unique=True),
    Column("seq", BigInteger, nullable=False),
    Column("sender", String(42), nullable=False),
    Column("nonce", BigInteger, nullable=False),
    Column("tx_type", String(64), nullable=False),
    Column("timestamp_ns", BigInteger, nullable=False),
    Column("leaf", LargeBinary(32), nullable=False),
    Column("raw", LargeBinary, nullable=False),
)
node_table = Table(
    "ledger_merkle_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)
rejected_table = Table(
    "ledger_rejected",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("pos", Integer, primary_key=True, autoincrement=False),
    Column("tx_id", LargeBinary(32), nullable=False, index=True),
    Column("code", String(32), nullable=False),
    Column("message", Text, nullable=False),
)

define_journal(metadata)

#: One state entry's encoded value; the state committer reads it too.
GET_STATE = "SELECT value FROM ledger_state WHERE ns = ? AND key = ?"

STATEMENTS = {
    "get_state": GET_STATE,
    "upsert_state": "INSERT INTO ledger_state (ns, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
    "delete_state": "DELETE FROM ledger_state WHERE ns = ? AND key = ?",
    "insert_tx": "INSERT INTO ledger_txs "
    "(idx, tx_id, seq, sender, nonce, tx_type, timestamp_ns, leaf, raw) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "insert_node": "INSERT INTO ledger_merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
    "insert_rejected": "INSERT INTO ledger_rejected (seq, pos, tx_id, code, message) "
    "VALUES (?, ?, ?, ?, ?)",
    "insert_journal": "INSERT INTO ledger_state_journal (version, ns, key, value_hash, old) "
    "VALUES (?, ?, ?, ?, ?)",
}
