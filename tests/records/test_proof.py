"""A record's proof up to a cosigned checkpoint: it verifies alone, and every link is checked."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from medledger.errors import InvalidInput, VerificationError
from medledger.ledger.errors import InsufficientCosigners
from medledger.records.errors import RecordTampered, UnknownRecord
from medledger.records.importer import import_paths
from medledger.records.proof import RecordProof, prove
from medledger.records.recipients import patient_key
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.ledger.consortium import key
from tests.records.world import World, world


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 1,))


async def _proof(w: World, *, checkpoint: bool = True) -> RecordProof:
    patient = await w.add_patient("proof")
    pool = w.pool()
    files = [EXAMPLES / "observation-example1.json", EXAMPLES / "condition-example1.json"]
    await import_paths(w.writer, pool, patient.address, patient_key(w.node, patient.address), files)
    pool.close()
    if checkpoint:
        await w.checkpoint()
    stored = w.store.for_patient(patient.address)[1]
    return prove(stored, "0x" + w.store.vault_id.hex(), w.node)


def run(tmp_path: Path, check: Callable[[World, RecordProof], None]) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            check(w, await _proof(w))

    asyncio.run(main())


def _members(w: World) -> list[str]:
    return [k.address for k in w.consortium.keys]


def test_a_proof_verifies_alone_and_survives_json(tmp_path: Path) -> None:
    def check(w: World, proof: RecordProof) -> None:
        assert proof.verify(_members(w), 2) == w.author.address  # type: ignore[arg-type]
        again = RecordProof.from_json(json.loads(json.dumps(proof.to_json())))
        assert again == proof
        assert again.verify(_members(w), 2) == w.author.address  # type: ignore[arg-type]

    run(tmp_path, check)


ATTACKS: list[tuple[str, Callable[[RecordProof], RecordProof], str]] = [
    (
        "header relabelled",
        lambda p: dataclasses.replace(
            p, header=dataclasses.replace(p.header, category="administrative")
        ),
        "commitment",
    ),
    ("salt changed", lambda p: dataclasses.replace(p, salt=_flip(p.salt)), "commitment"),
    ("signature changed", lambda p: dataclasses.replace(p, signature=bytes(65)), "commitment"),
    (
        "batch path changed",
        lambda p: dataclasses.replace(p, batch_path=(_flip(p.batch_path[0]), *p.batch_path[1:])),
        "commitment",
    ),
    ("wrong position", lambda p: dataclasses.replace(p, position=p.position ^ 1), "commitment"),
    (
        "log path changed",
        lambda p: dataclasses.replace(p, log_path=(_flip(p.log_path[0]), *p.log_path[1:])),
        "checkpoint",
    ),
    (
        "commit tx changed",
        lambda p: dataclasses.replace(p, commit_tx=b" " + p.commit_tx),
        "checkpoint",
    ),
]


@pytest.mark.parametrize(("name", "attack", "link"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_every_link_of_a_proof_is_checked(
    tmp_path: Path, name: str, attack: Callable[[RecordProof], RecordProof], link: str
) -> None:
    def check(w: World, proof: RecordProof) -> None:
        with pytest.raises(RecordTampered) as caught:
            attack(proof).verify(_members(w), 2)  # type: ignore[arg-type]
        assert caught.value.check == link, name

    run(tmp_path, check)


def test_a_checkpoint_below_the_threshold_or_of_strangers_is_refused(tmp_path: Path) -> None:
    def check(w: World, proof: RecordProof) -> None:
        with pytest.raises(InsufficientCosigners):
            proof.verify(_members(w), 3)  # type: ignore[arg-type]
        strangers = [key(f"stranger-{i}").address for i in range(3)]
        with pytest.raises(VerificationError):
            proof.verify(strangers, 2)

    run(tmp_path, check)


def test_no_proof_before_a_checkpoint_covers_the_batch(tmp_path: Path) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            with pytest.raises(UnknownRecord, match="no checkpoint covers"):
                await _proof(w, checkpoint=False)

    asyncio.run(main())


def test_a_malformed_proof_document_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="record proof"):
        RecordProof.from_json({"header": {}})
