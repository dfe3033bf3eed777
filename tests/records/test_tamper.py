"""Attacks on a vault at rest, one per row: each must be caught by verify, and named."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Connection, create_engine, text

from medledger.crypto.canonical import canonical_json
from medledger.crypto.keys import PrivateKey
from medledger.ledger.checkpoints import TreeHead
from medledger.ledger.contracts import identity, membership
from medledger.ledger.contracts.base import ContractRegistry, Handler
from medledger.ledger.contracts.checkpoint import CHECKPOINT_NS, LATEST_KEY, size_key
from medledger.ledger.contracts.membership import MEMBER_NS, MEMBERS_KEY
from medledger.ledger.machine import NETWORK_NS
from medledger.ledger.node import LedgerNode
from medledger.ledger.store import LedgerStore, encode_value
from medledger.protocol import contract_set
from medledger.records.contract import BATCH_NS, COMMIT, VAULT_NS
from medledger.records.header import RECORD_ID_SIZE
from medledger.records.importer import import_paths
from medledger.records.pipeline import Job, SealingContext, SealingPool
from medledger.records.recipients import custodians_of, patient_key
from medledger.records.store import StoredRecord
from medledger.records.verify import verify_vault
from medledger.records.verify_report import VerifyReport
from medledger.records.writer import RecordWriter
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.ledger.consortium import key
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
    #: The node's ledger database, for attacks that also edit the node.
    ledger: Connection

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


def _state(ledger: Connection, ns: str, key: str) -> Any:
    value = ledger.execute(
        text("SELECT value FROM ledger_state WHERE ns = :ns AND key = :key"), {"ns": ns, "key": key}
    ).scalar_one()
    return json.loads(value)


def _set_state(ledger: Connection, ns: str, key: str, value: Any) -> None:
    ledger.execute(
        text(
            "INSERT INTO ledger_state (ns, key, value) VALUES (:ns, :key, :value) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value"
        ),
        {"ns": ns, "key": key, "value": encode_value(value)},
    )


def _hide_last_batch(vault: Vault) -> None:
    """Delete batch 1 from the vault and make the node's state tables agree."""
    vault.conn.execute(text("DELETE FROM vault_records WHERE batch = 1"))
    vault.conn.execute(text("DELETE FROM vault_batches WHERE seq = 1"))
    (vault_id,) = vault.ledger.execute(
        text("SELECT key FROM ledger_state WHERE ns = :ns"), {"ns": VAULT_NS}
    ).scalars()
    state = _state(vault.ledger, VAULT_NS, vault_id)
    last = _state(vault.ledger, BATCH_NS, f"{vault_id}/1")
    shrunk = {**state, "batches": 1, "records": state["records"] - last["count"]}
    _set_state(vault.ledger, VAULT_NS, vault_id, shrunk)
    vault.ledger.execute(
        text("DELETE FROM ledger_state WHERE ns = :ns AND key = :key"),
        {"ns": BATCH_NS, "key": f"{vault_id}/1"},
    )


def _last_commit(ledger: Connection) -> tuple[int, bytes]:
    row = ledger.execute(
        text("SELECT idx, raw FROM ledger_txs WHERE tx_type = :t ORDER BY idx DESC LIMIT 1"),
        {"t": COMMIT},
    ).one()
    return int(row[0]), bytes(row[1])


def _hide_last_commit_in_another_vault(vault: Vault) -> None:
    _hide_last_batch(vault)
    index, raw = _last_commit(vault.ledger)
    wire = json.loads(raw)
    wire["payload"]["vault"] = "0x" + "00" * 16
    vault.ledger.execute(
        text("UPDATE ledger_txs SET raw = :raw WHERE idx = :i"),
        {"raw": canonical_json(wire), "i": index},
    )


def _delete_last_commit(vault: Vault) -> None:
    _hide_last_batch(vault)
    index, _ = _last_commit(vault.ledger)
    vault.ledger.execute(text("DELETE FROM ledger_txs WHERE idx = :i"), {"i": index})


def _cosign_with_a_forged_member(vault: Vault) -> None:
    """Replace the latest checkpoint's cosigners by one founder and a key the operator
    made up, listed as a member in the node's state."""
    rogue = key("rogue")
    members = _state(vault.ledger, NETWORK_NS, MEMBERS_KEY)
    _set_state(vault.ledger, NETWORK_NS, MEMBERS_KEY, sorted([*members, rogue.address]))
    founder = _state(vault.ledger, MEMBER_NS, members[0])
    _set_state(vault.ledger, MEMBER_NS, rogue.address, {**founder, "address": rogue.address})
    latest = _state(vault.ledger, NETWORK_NS, LATEST_KEY)
    entry_key = f"{size_key(latest['size'])}/{latest['state_root']}"
    entry = _state(vault.ledger, CHECKPOINT_NS, entry_key)
    head = TreeHead.from_json(entry)
    cosignatures = {}
    for signer in (key("founder-0"), rogue):
        cosignatures[signer.address] = "0x" + head.sign(signer).signature.hex()
    _set_state(vault.ledger, CHECKPOINT_NS, entry_key, {**entry, "cosignatures": cosignatures})


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
    Attack(
        "last batch deleted, the node's state edited to match",
        _hide_last_batch,
        lambda v: {("batch 1", "missing")},
    ),
    Attack(
        "last batch deleted, its commit's raw bytes edited to name another vault",
        _hide_last_commit_in_another_vault,
        lambda v: {("ledger", "checkpoint")},
    ),
    Attack(
        "last batch deleted, its commit deleted from the node's log",
        _delete_last_commit,
        lambda v: {("ledger", "checkpoint"), ("ledger", "log")},
    ),
    Attack(
        "checkpoint cosigned by a member the node's state made up",
        _cosign_with_a_forged_member,
        lambda v: {("ledger", "checkpoint")},
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


@contextmanager
def _reopened(w: World, tmp_path: Path) -> Iterator[LedgerNode]:
    """The node's database opened afresh, as `medledger verify` opens it: nothing cached
    from before an attack."""
    store = LedgerStore.open(str(tmp_path / "ledger.db"))
    try:
        yield LedgerNode(genesis=w.consortium.genesis, store=store, orderer=w.node.orderer,
                         registry=contract_set(), name="verifier")  # fmt: skip
    finally:
        store.close()


def _verify_afresh(w: World, tmp_path: Path) -> VerifyReport:
    with _reopened(w, tmp_path) as node:
        return verify_vault(w.store, node)


@contextmanager
def _databases(tmp_path: Path) -> Iterator[tuple[Connection, Connection]]:
    vault_engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
    ledger_engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with vault_engine.begin() as conn, ledger_engine.begin() as ledger:
            yield conn, ledger
    finally:
        vault_engine.dispose()
        ledger_engine.dispose()


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_verify_catches_and_names_each_attack(tmp_path: Path, attack: Attack) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            assert _verify_afresh(w, tmp_path).ok
            with _databases(tmp_path) as (conn, ledger):
                vault = Vault(conn, _rows(conn), ledger)
                attack.tamper(vault)
                expected = attack.found(vault)
            report = _verify_afresh(w, tmp_path)
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
            body = json.loads((EXAMPLES / FILES[0]).read_bytes())
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
            body = json.loads((EXAMPLES / FILES[0]).read_bytes())
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


def _participant_row(institution: str) -> dict[str, Any]:
    span = {"role": "doctor", "institution": institution, "since": 0, "until": None}
    return {"role": "doctor", "institution": institution, "status": "active", "since": 0,
            "spans": [span]}  # fmt: skip


def _forge_participant(ledger: Connection, author: str) -> None:
    _set_state(ledger, identity.PARTICIPANT_NS, author, _participant_row(key("founder-0").address))


def _forge_participant_of_a_forged_member(ledger: Connection, author: str) -> None:
    rogue = key("rogue hospital").address
    member = {"id": "rogue", "name": "Rogue", "address": rogue, "custodian_key": "0x" + "00" * 32,
              "status": "active", "since": 0, "spans": [[0, None]]}  # fmt: skip
    _set_state(ledger, MEMBER_NS, rogue, member)
    members = _state(ledger, NETWORK_NS, MEMBERS_KEY)
    _set_state(ledger, NETWORK_NS, MEMBERS_KEY, sorted([*members, rogue]))
    _set_state(ledger, identity.PARTICIPANT_NS, author, _participant_row(rogue))


class AuthorAttack(NamedTuple):
    name: str
    #: Whether the author was registered, then revoked, before writing.
    revoked: bool
    tamper: Callable[[Connection, str], None]


AUTHOR_ATTACKS = [
    AuthorAttack("participant row forged", False, _forge_participant),
    AuthorAttack(
        "participant and member rows forged", False, _forge_participant_of_a_forged_member
    ),
    AuthorAttack("revoked participant's row restored", True, _forge_participant),
]


async def _write_as(w: World, author: PrivateKey) -> StoredRecord:
    """One record by ``author``, sealed and written without asking who may write."""
    founder = w.consortium.keys[0]
    patient = await w.add_patient("target")
    writer = RecordWriter(w.store, w.node, founder, batch_records=64)
    context = SealingContext(w.node.network_id, author.to_bytes(), custodians_of(w.node))
    pool = SealingPool(context, workers=1, chunk=16)
    try:
        pkey = patient_key(w.node, patient.address)
        await import_paths(writer, pool, patient.address, pkey, [EXAMPLES / FILES[0]])
    finally:
        pool.close()
    return _first_record(w)


@pytest.mark.parametrize("attack", AUTHOR_ATTACKS, ids=[a.name for a in AUTHOR_ATTACKS])
def test_a_record_by_a_non_participant_fails_whatever_the_node_s_state_says(
    tmp_path: Path, attack: AuthorAttack
) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            founder = w.consortium.keys[0]
            mallory = key("mallory")
            if attack.revoked:
                address = {"address": mallory.address}
                register = {**address, "role": "doctor"}
                await w.node.submit_payload(founder, identity.REGISTER_PARTICIPANT, register)
                await w.node.submit_payload(founder, identity.REVOKE_PARTICIPANT, address)
            record = await _write_as(w, mallory)
            await w.checkpoint()
            assert (record.label, "author") in _found(_verify_afresh(w, tmp_path))
            with _databases(tmp_path) as (_, ledger):
                attack.tamper(ledger, mallory.address)
            report = _verify_afresh(w, tmp_path)
            assert (record.label, "author") in _found(report), report.problems

    asyncio.run(scenario())


def test_an_author_revoked_after_the_commit_still_verifies(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            revoke = {"address": w.author.address}
            await w.node.submit_payload(w.consortium.keys[0], identity.REVOKE_PARTICIPANT, revoke)
            assert _verify_afresh(w, tmp_path).ok
            await w.checkpoint()
            assert _verify_afresh(w, tmp_path).ok

    asyncio.run(scenario())


def test_a_checkpoint_cosigned_by_members_as_the_log_made_them_verifies(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            await _populate(w, tmp_path)
            first, second = w.consortium.keys[:2]
            newcomer = key("newcomer")
            member = {"id": "newcomer", "name": "A newcomer", "address": newcomer.address,
                      "custodian_key": "0x" + "01" * 32}  # fmt: skip
            admit = await w.node.submit_payload(
                first, membership.PROPOSE, {"action": "admit", "member": member}
            )
            await w.node.submit_payload(second, membership.VOTE, {"proposal": _id(admit.tx_id)})
            remove = await w.node.submit_payload(
                first, membership.PROPOSE, {"action": "remove", "address": second.address}
            )
            await w.node.submit_payload(newcomer, membership.VOTE, {"proposal": _id(remove.tx_id)})
            size = w.node.size
            for signer in (first, newcomer):
                await w.node.cosign_head(size, key=signer)
            report = _verify_afresh(w, tmp_path)
            assert report.ok, report.problems
            assert report.checkpoint_size == size

    asyncio.run(scenario())


def _id(tx_id: bytes) -> str:
    return "0x" + tx_id.hex()


class _Unnumbered(ContractRegistry):
    """The network's contracts, except that a commit may carry any batch number: what
    a log the records contract would have refused looks like."""

    def __init__(self) -> None:
        network = contract_set()
        super().__init__(network.version)
        for tx_type in network.types:
            self.register(tx_type, network.handler(tx_type))

    def handler(self, tx_type: str) -> Handler:
        if tx_type == COMMIT:
            return lambda ctx, view: []
        return super().handler(tx_type)


def test_a_gap_or_a_repeat_in_the_logged_batch_numbers_is_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, registry=_Unnumbered()) as w:
            await _populate(w, tmp_path)
            vault = "0x" + w.store.vault_id.hex()
            for batch in (0, 3):
                payload = {"vault": vault, "batch": batch, "count": 1, "root": _id(bytes(32))}
                await w.node.submit_payload(w.consortium.keys[0], COMMIT, payload)
            await w.checkpoint()
            found = _found(_verify_afresh(w, tmp_path))
            assert {("batch 0", "batch"), ("batch 2", "batch"), ("batch 3", "missing")} <= found

    asyncio.run(scenario())
