"""Attacks on a vault at rest, one per row: each must be caught by verify, and named."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Connection, create_engine, text

from medledger.records.header import RECORD_ID_SIZE
from medledger.records.importer import import_paths
from medledger.records.pipeline import Job
from medledger.records.recipients import patient_key
from medledger.records.store import StoredRecord
from medledger.records.verify import VerifyReport, verify_vault
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.records.world import World, world

FILES = [
    "observation-example1.json",
    "observation-example2.json",
    "condition-example1.json",
    "immunization-example1.json",
    "patient-example1.json",
    "allergyIntolerance-example1.json",
]


class Vault(NamedTuple):
    conn: Connection
    #: (record id, version) of every row, in batch and position order.
    rows: list[tuple[bytes, int]]

    def set(self, row: int, **values: Any) -> None:
        record_id, version = self.rows[row]
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        self.conn.execute(
            text(f"UPDATE vault_records SET {assignments} WHERE record_id = :r AND version = :v"),
            {**values, "r": record_id, "v": version},
        )

    def get(self, row: int, column: str) -> Any:
        record_id, version = self.rows[row]
        return self.conn.execute(
            text(f"SELECT {column} FROM vault_records WHERE record_id = :r AND version = :v"),
            {"r": record_id, "v": version},
        ).scalar_one()

    def flip(self, row: int, column: str, at: int = -1) -> None:
        value = bytearray(self.get(row, column))
        value[at] ^= 0x01
        self.set(row, **{column: bytes(value)})

    def delete(self, row: int) -> None:
        record_id, version = self.rows[row]
        self.conn.execute(
            text("DELETE FROM vault_records WHERE record_id = :r AND version = :v"),
            {"r": record_id, "v": version},
        )

    def label(self, row: int) -> str:
        record_id, version = self.rows[row]
        return f"{record_id.hex()} v{version}"


def _swap(vault: Vault, column: str, a: int, b: int) -> None:
    first, second = vault.get(a, column), vault.get(b, column)
    if column == "position":
        vault.set(a, position=-1)
    vault.set(b, **{column: first})
    vault.set(a, **{column: second})


def _roll_back_in_place(vault: Vault) -> None:
    # The newest row (an amendment) gets the content of the version it amends.
    older, newer = vault.rows.index((vault.rows[-1][0], 1)), len(vault.rows) - 1
    for column in SEALED_COLUMNS:
        vault.set(newer, **{column: vault.get(older, column)})


SEALED_COLUMNS = (
    "previous",
    "content",
    "ciphertext_hash",
    "keys_hash",
    "signature",
    "salt",
    "ciphertext",
    "wrapped_keys",
    "commitment",
)


class Attack(NamedTuple):
    name: str
    tamper: Callable[[Vault], None]
    #: Expected (subject, check) pairs; a subject of None means the last row's label.
    found: Callable[[Vault], set[tuple[str, str]]]


def _on(row: int, check: str) -> Callable[[Vault], set[tuple[str, str]]]:
    return lambda vault: {(vault.label(row), check)}


ATTACKS = [
    Attack("ciphertext byte flipped", lambda v: v.flip(0, "ciphertext"), _on(0, "ciphertext")),
    Attack("ciphertext hash flipped", lambda v: v.flip(0, "ciphertext_hash"), _on(0, "ciphertext")),
    Attack("wrapped key byte flipped", lambda v: v.flip(1, "wrapped_keys"), _on(1, "keys")),
    Attack(
        "wrapped keys truncated", lambda v: v.set(1, wrapped_keys=b"\x01"), _on(1, "unreadable")
    ),
    Attack(
        "category relabelled", lambda v: v.set(2, category="administrative"), _on(2, "signature")
    ),
    Attack(
        "resource type relabelled", lambda v: v.set(2, resource_type="Patient"), _on(2, "signature")
    ),
    Attack("author replaced", lambda v: v.set(3, author="0x" + "11" * 20), _on(3, "signature")),
    Attack("signature byte flipped", lambda v: v.flip(3, "signature", 5), _on(3, "signature")),
    Attack("commitment flipped", lambda v: v.flip(4, "commitment"), _on(4, "commitment")),
    Attack("commitment salt flipped", lambda v: v.flip(4, "salt"), _on(4, "commitment")),
    Attack("batch proof flipped", lambda v: v.flip(4, "proof"), _on(4, "commitment")),
    Attack(
        "record deleted",
        lambda v: v.delete(1),
        lambda v: {("batch 0", "missing")},
    ),
    Attack(
        "two ciphertexts swapped",
        lambda v: _swap(v, "ciphertext", 0, 1),
        lambda v: {(v.label(0), "ciphertext"), (v.label(1), "ciphertext")},
    ),
    Attack(
        "two records swapped in their batch",
        lambda v: _swap(v, "position", 0, 1),
        lambda v: {(v.label(0), "commitment"), (v.label(1), "commitment")},
    ),
    Attack(
        "newest version deleted (rolled back)",
        lambda v: v.delete(len(v.rows) - 1),
        lambda v: {("batch 1", "missing")},
    ),
    Attack(
        "newest version overwritten by the one before",
        _roll_back_in_place,
        lambda v: {(v.label(len(v.rows) - 1), "unreadable")},
    ),
    Attack(
        "whole batch deleted",
        lambda v: (
            v.conn.execute(text("DELETE FROM vault_records WHERE batch = 1")),
            v.conn.execute(text("DELETE FROM vault_batches WHERE seq = 1")),
        ),
        lambda v: {("batch 1", "missing")},
    ),
    Attack(
        "batch root replaced",
        lambda v: v.conn.execute(
            text("UPDATE vault_batches SET root = :r WHERE seq = 0"), {"r": bytes(32)}
        ),
        lambda v: {("batch 0", "batch")},
    ),
    Attack(
        "forged batch added",
        lambda v: v.conn.execute(
            text(
                "INSERT INTO vault_batches (seq, root, count, status) "
                "VALUES (9, :r, 1, 'committed')"
            ),
            {"r": bytes(32)},
        ),
        lambda v: {("batch 9", "batch")},
    ),
]


async def _populate(w: World, tmp_path: Path) -> None:
    """Batch 0: six records; batch 1: an amendment of the first observation."""
    patient = await w.add_patient("target")
    pkey = patient_key(w.node, patient.address)
    amended = tmp_path / "amended.json"
    amended.write_text((EXAMPLES / FILES[0]).read_text().replace('"final"', '"amended"', 1))
    pool = w.pool()
    try:
        await import_paths(w.writer, pool, patient.address, pkey, [EXAMPLES / f for f in FILES])
        await import_paths(w.writer, pool, patient.address, pkey, [amended])
    finally:
        pool.close()
    await w.checkpoint()


def _rows(conn: Connection) -> list[tuple[bytes, int]]:
    result = conn.execute(
        text("SELECT record_id, version FROM vault_records ORDER BY batch, position")
    )
    return [(bytes(r), int(v)) for r, v in result]


def _found(report: VerifyReport) -> set[tuple[str, str]]:
    return {(p.subject, p.check) for p in report.problems}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_verify_catches_and_names_each_attack(tmp_path: Path, attack: Attack) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            assert verify_vault(w.store, w.node).ok
            engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
            with engine.begin() as conn:
                vault = Vault(conn, _rows(conn))
                attack.tamper(vault)
                expected = attack.found(vault)
            engine.dispose()
            report = verify_vault(w.store, w.node)
            assert not report.ok
            assert expected <= _found(report), report.problems

    asyncio.run(scenario())


async def _write(w: World, jobs: list[Job]) -> None:
    pool = w.pool()
    try:
        await w.writer.write(jobs, pool)
    finally:
        pool.close()


def _first_record(w: World) -> StoredRecord:
    _, first = w.store.batch_records(0)[0]
    assert isinstance(first, StoredRecord)
    return first


def test_a_signed_amendment_that_points_elsewhere_breaks_the_version_chain(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            header = _first_record(w).sealed.header
            body = (EXAMPLES / FILES[0]).read_bytes()
            key = patient_key(w.node, header.patient)
            wrong = b"\x07" * 32
            stray = Job("stray.json", body, header.record_id, 3, wrong, header.patient, key)
            orphan_id = os.urandom(RECORD_ID_SIZE)
            orphan = Job("orphan.json", body, orphan_id, 2, wrong, header.patient, key)
            await _write(w, [stray, orphan])
            await w.checkpoint()
            found = _found(verify_vault(w.store, w.node))
            assert (f"{header.record_id.hex()} v3", "version chain") in found
            assert (f"{orphan_id.hex()} v2", "version chain") in found

    asyncio.run(scenario())


def test_an_amendment_that_skips_a_version_is_caught(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            header = _first_record(w).sealed.header
            body = (EXAMPLES / FILES[0]).read_bytes()
            key = patient_key(w.node, header.patient)
            skip = Job("skip.json", body, header.record_id, 4, header.digest, header.patient, key)
            await _write(w, [skip])
            await w.checkpoint()
            found = _found(verify_vault(w.store, w.node))
            assert (f"{header.record_id.hex()} v4", "version chain") in found

    asyncio.run(scenario())


def test_records_not_yet_under_a_checkpoint_do_not_pass(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            patient = await w.add_patient("late")
            pool = w.pool()
            pkey = patient_key(w.node, patient.address)
            await import_paths(w.writer, pool, patient.address, pkey, [EXAMPLES / FILES[0]])
            assert ("ledger", "checkpoint") in _found(verify_vault(w.store, w.node))
            await w.checkpoint()
            assert verify_vault(w.store, w.node).ok
            await import_paths(w.writer, pool, patient.address, pkey, [EXAMPLES / FILES[1]])
            pool.close()
            assert ("batch 1", "checkpoint") in _found(verify_vault(w.store, w.node))

    asyncio.run(scenario())


def test_an_empty_vault_does_not_pass(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await w.checkpoint()
            report = verify_vault(w.store, w.node)
            assert not report.ok
            assert ("vault", "batch") in _found(report)

    asyncio.run(scenario())
