"""The off-ledger vault: sealed records and their batches in SQL.

SQLite by default, PostgreSQL by URL. A batch's records and the batch itself are
written in one SQL transaction, marked pending, before its commitment goes to the
ledger; the batch is marked committed once the ledger accepted it. A crash in
between leaves a pending batch that the vault resubmits (or finds already on the
ledger) when it next opens: nothing acknowledged is lost, nothing is committed
that the vault does not hold.

Rows hold only ciphertext, wrapped keys and what the author signed in the clear
(patient pseudonym, resource type, category, record id and version).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

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
    Text,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from medledger.crypto.keys import Address
from medledger.errors import TransportError, UsageError
from medledger.ledger.database import PointCursors, make_engine
from medledger.records.errors import RecordTampered, UnknownRecord
from medledger.records.header import RecordHeader
from medledger.records.sealed import SealedRecord, WrappedKeys


class NewVersion(Protocol):
    """A sealed record version as the vault takes it (records/pipeline.py's Sealed)."""

    @property
    def sealed(self) -> SealedRecord: ...

    @property
    def author(self) -> Address: ...

    @property
    def fhir_id(self) -> str | None: ...


metadata = MetaData()

meta_table = Table(
    "vault_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
record_table = Table(
    "vault_records",
    metadata,
    Column("record_id", LargeBinary(16), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("previous", LargeBinary(32), nullable=False),
    Column("patient", String(42), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("category", String(64), nullable=False),
    Column("fhir_id", String(64)),
    Column("content", LargeBinary(32), nullable=False),
    Column("ciphertext_hash", LargeBinary(32), nullable=False),
    Column("keys_hash", LargeBinary(32), nullable=False),
    Column("author", String(42), nullable=False),
    Column("signature", LargeBinary(65), nullable=False),
    Column("salt", LargeBinary(32), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("wrapped_keys", LargeBinary, nullable=False),
    Column("commitment", LargeBinary(32), nullable=False),
    Column("batch", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),
    Column("proof", LargeBinary, nullable=False),
    # Leads with the patient, so it also serves listing a patient's records.
    Index("vault_records_patient", "patient", "resource_type", "fhir_id"),
    Index("vault_records_batch", "batch", "position", unique=True),
)
batch_table = Table(
    "vault_batches",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("count", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("tx_id", LargeBinary(32)),
    Column("ledger_index", BigInteger),
)

_COLUMNS = [c.name for c in record_table.columns]
PENDING = "pending"
COMMITTED = "committed"


@dataclass(frozen=True)
class StoredRecord:
    """A sealed record where the vault keeps it: its leaf and the path to its batch root."""

    sealed: SealedRecord
    author: Address
    fhir_id: str | None
    commitment: bytes
    batch: int
    position: int
    proof: tuple[bytes, ...]

    @property
    def label(self) -> str:
        return self.sealed.header.label


def latest_versions(stored: Iterable[StoredRecord]) -> list[StoredRecord]:
    """The newest version of each record among ``stored``, in the order first seen."""
    latest: dict[bytes, StoredRecord] = {}
    for record in stored:
        header = record.sealed.header
        known = latest.get(header.record_id)
        if known is None or known.sealed.header.version < header.version:
            latest[header.record_id] = record
    return list(latest.values())


@dataclass(frozen=True)
class StoredBatch:
    seq: int
    root: bytes
    count: int
    status: str
    tx_id: bytes | None
    ledger_index: int | None


@contextmanager
def _sql(what: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise TransportError(f"vault store: cannot {what}: {type(exc).__name__}") from exc


class VaultStore:
    """One institution's store of sealed records; its id names it on the ledger."""

    def __init__(self, engine: Engine, *, network_id: int) -> None:
        self._engine = engine
        self.network_id = network_id
        with _sql("open"), engine.begin() as conn:
            metadata.create_all(conn)
            self.vault_id = self._identity(conn)
        pyformat = engine.dialect.paramstyle in {"format", "pyformat"}
        marks = ", ".join(["%s" if pyformat else "?"] * len(_COLUMNS))
        # Column names are this module's constants, not input.
        self._insert = f"INSERT INTO vault_records ({', '.join(_COLUMNS)}) VALUES ({marks})"  # noqa: S608
        mark = "%s" if pyformat else "?"
        columns = ", ".join(c.name for c in record_table.columns)
        self._get_latest = (f"SELECT {columns} FROM vault_records WHERE record_id = {mark} "  # noqa: S608
                            "ORDER BY version DESC LIMIT 1")  # fmt: skip
        self._get_version = (f"SELECT {columns} FROM vault_records "  # noqa: S608
                             f"WHERE record_id = {mark} AND version = {mark}")  # fmt: skip
        self._cursors = PointCursors(engine)

    @classmethod
    def open(cls, url: str, *, network_id: int) -> VaultStore:
        return cls(make_engine(url), network_id=network_id)

    def close(self) -> None:
        self._cursors.close()
        self._engine.dispose()

    def _identity(self, conn: Connection) -> bytes:
        rows = dict(conn.execute(select(meta_table.c.key, meta_table.c.value)).all())
        if "vault_id" not in rows:
            rows = {"vault_id": os.urandom(16).hex(), "network_id": str(self.network_id)}
            conn.execute(meta_table.insert(), [{"key": k, "value": v} for k, v in rows.items()])
        if int(rows["network_id"]) != self.network_id:
            raise UsageError(
                f"this vault belongs to network {rows['network_id']}, not {self.network_id}"
            )
        return bytes.fromhex(rows["vault_id"])

    # -- writing ---------------------------------------------------------------

    def add_batch(
        self,
        seq: int,
        root: bytes,
        records: Sequence[NewVersion],
        proofs: Sequence[Sequence[bytes]],
    ) -> None:
        """Store a batch, pending, with its records in one transaction.

        ``records`` are in leaf order; ``proofs[i]`` is the inclusion proof of leaf
        ``i`` in the batch's tree.
        """
        rows = [
            (*_row(record), seq, position, b"".join(proof))
            for position, (record, proof) in enumerate(zip(records, proofs, strict=True))
        ]
        batch = {"seq": seq, "root": root, "count": len(rows), "status": PENDING}
        with _sql("store a batch"), self._engine.begin() as conn:
            conn.execute(batch_table.insert(), [batch])
            conn.exec_driver_sql(self._insert, rows)

    def mark_committed(self, seq: int, tx_id: bytes, ledger_index: int) -> None:
        statement = (
            update(batch_table)
            .where(batch_table.c.seq == seq)
            .values(status=COMMITTED, tx_id=tx_id, ledger_index=ledger_index)
        )
        with _sql("mark a batch committed"), self._engine.begin() as conn:
            conn.execute(statement)

    # -- reading ---------------------------------------------------------------

    def batches(self, status: str | None = None) -> list[StoredBatch]:
        query = select(batch_table).order_by(batch_table.c.seq)
        if status is not None:
            query = query.where(batch_table.c.status == status)
        with _sql("read batches"), self._engine.connect() as conn:
            return [StoredBatch(*row) for row in conn.execute(query)]

    def next_batch(self) -> int:
        with _sql("read batches"), self._engine.connect() as conn:
            top = conn.execute(select(batch_table.c.seq).order_by(batch_table.c.seq.desc())).first()
        return 0 if top is None else int(top[0]) + 1

    def batch_records(self, seq: int) -> list[tuple[int, StoredRecord | RecordTampered]]:
        """The records of one batch by leaf position; a row that cannot be read is its error."""
        query = select(record_table).where(record_table.c.batch == seq)
        with _sql("read records"), self._engine.connect() as conn:
            rows = conn.execute(query.order_by(record_table.c.position)).mappings().all()
        results: list[tuple[int, StoredRecord | RecordTampered]] = []
        for row in rows:
            try:
                results.append((int(row["position"]), self._stored(row)))
            except RecordTampered as exc:
                results.append((int(row["position"]), exc))
        return results

    def get(self, record_id: bytes, version: int | None = None) -> StoredRecord:
        # A record fetch is the hot path of every read: a plain driver cursor per thread
        # costs a fraction of a SQLAlchemy round trip (and of a pool checkout).
        cursor = self._cursors.cursor()
        with _sql("read a record"):
            if version is None:
                cursor.execute(self._get_latest, (record_id,))
            else:
                cursor.execute(self._get_version, (record_id, version))
            row = cursor.fetchone()
            names = [d[0] for d in cursor.description]
        if row is None:
            raise UnknownRecord.not_held(record_id.hex(), version)
        return self._stored(dict(zip(names, row, strict=True)))

    def versions(self, record_id: bytes) -> list[StoredRecord]:
        query = select(record_table).where(record_table.c.record_id == record_id)
        return self._records(query.order_by(record_table.c.version))

    def for_patient(self, patient: Address) -> list[StoredRecord]:
        """Every version of every record of a patient, oldest batch first."""
        query = select(record_table).where(record_table.c.patient == patient)
        return self._records(query.order_by(record_table.c.batch, record_table.c.position))

    def latest_by_fhir_id(
        self, patient: Address, resource_type: str, fhir_id: str
    ) -> RecordHeader | None:
        """The newest version of a patient's resource with this FHIR id, if any."""
        query = (
            select(record_table)
            .where(record_table.c.patient == patient)
            .where(record_table.c.resource_type == resource_type)
            .where(record_table.c.fhir_id == fhir_id)
            .order_by(record_table.c.version.desc())
            .limit(1)
        )
        found = self._records(query)
        return found[0].sealed.header if found else None

    def _records(self, query: Any) -> list[StoredRecord]:
        with _sql("read records"), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._stored(row) for row in rows]

    def _stored(self, row: Any) -> StoredRecord:
        label = f"{bytes(row['record_id']).hex()} v{row['version']}"
        try:
            header = RecordHeader(
                network_id=self.network_id,
                record_id=bytes(row["record_id"]),
                version=row["version"],
                previous=bytes(row["previous"]),
                patient=Address(row["patient"]),
                resource_type=row["resource_type"],
                category=row["category"],
                content=bytes(row["content"]),
                ciphertext=bytes(row["ciphertext_hash"]),
                keys=bytes(row["keys_hash"]),
            )
            keys = WrappedKeys.decode(bytes(row["wrapped_keys"]))
        except (UsageError, ValueError) as exc:
            raise RecordTampered(label, "unreadable", str(exc)) from None
        proof = bytes(row["proof"])
        if len(proof) % 32:
            raise RecordTampered(label, "unreadable", "batch proof is not a list of hashes")
        sealed = SealedRecord(
            header=header,
            signature=bytes(row["signature"]),
            ciphertext=bytes(row["ciphertext"]),
            keys=keys,
            salt=bytes(row["salt"]),
        )
        return StoredRecord(
            sealed,
            Address(row["author"]),
            row["fhir_id"],
            bytes(row["commitment"]),
            row["batch"],
            row["position"],
            tuple(proof[i : i + 32] for i in range(0, len(proof), 32)),
        )


def _row(record: NewVersion) -> tuple[Any, ...]:
    """A record as a row of the vault, short of its batch and position, in the order of
    the table's columns."""
    sealed = record.sealed
    h = sealed.header
    return (
        h.record_id,
        h.version,
        h.previous,
        h.patient,
        h.resource_type,
        h.category,
        record.fhir_id,
        h.content,
        h.ciphertext,
        h.keys,
        record.author,
        sealed.signature,
        sealed.salt,
        sealed.ciphertext,
        sealed.keys.encoded,
        sealed.commitment,
    )
