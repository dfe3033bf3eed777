"""The vault over a real ledger node: official FHIR examples in, verified, opened, amended."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from medledger.crypto import merkle
from medledger.crypto.canonical import canonical_json
from medledger.errors import UsageError
from medledger.records.fhir_sources import load_sources
from medledger.records.importer import import_paths
from medledger.records.pipeline import Job, Sealed
from medledger.records.recipients import UnknownPatient, patient_key
from medledger.records.sealed import open_as_patient, open_with_shares, unwrap_share
from medledger.records.verify import verify_vault
from medledger.records.writer import RecordWriter, plan_new
from tests.data import FHIR_EXAMPLES as EXAMPLES
from tests.ledger.consortium import key
from tests.records.world import World, patient_private, world

INVALID = {"diagnosticReport-example1.json", "diagnosticReport-example2.json"}

Scenario = Callable[[World], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, **kwargs: object) -> None:
    async def main() -> None:
        async with world(tmp_path, **kwargs) as w:  # type: ignore[arg-type]
            await scenario(w)

    asyncio.run(main())


async def _import(w: World, label: str, *paths: Path, workers: int = 1) -> object:
    patient = await w.add_patient(label)
    pool = w.pool(workers)
    try:
        return await import_paths(
            w.writer, pool, patient.address, patient_key(w.node, patient.address), list(paths)
        )
    finally:
        pool.close()


def valid_examples() -> dict[str, bytes]:
    """Canonical JSON of every resource in the valid examples, bundles expanded."""
    return {
        source: canonical_json(obj)
        for item in load_sources([EXAMPLES])
        if not isinstance(item, Exception)
        for source, obj in [item]
        if source not in INVALID
    }


def test_every_valid_example_round_trips_byte_for_byte(tmp_path: Path, state_url: str) -> None:
    originals = valid_examples()

    async def scenario(w: World) -> None:
        report = await _import(w, "alice", EXAMPLES)
        written = {r.source: r for r in report.written}  # type: ignore[attr-defined]
        assert set(written) == set(originals)
        for source, canonical in originals.items():
            stored = w.store.get(written[source].record_id)
            assert open_as_patient(stored.sealed, patient_private("alice")) == canonical, source
        rejected = report.rejected  # type: ignore[attr-defined]
        assert sorted(r.source for r in rejected) == sorted(INVALID)
        assert all(r.field.startswith("contained[") for r in rejected)
        await w.checkpoint()
        verified = verify_vault(w.store, w.node)
        assert verified.ok, verified.problems
        assert verified.records == len(originals)

    run(tmp_path, scenario, vault_url=state_url)


def test_examples_are_every_file_but_the_two_invalid_ones() -> None:
    files = {p.name for p in EXAMPLES.glob("*.json")}
    assert len(files) == 66 and files >= INVALID


def test_two_of_three_custodians_open_a_record_and_one_cannot(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await _import(w, "bob", EXAMPLES / "observation-example1.json")
        (stored,) = w.store.for_patient(key("patient:bob").address)
        members = [k.address for k in w.consortium.keys]
        shares = [
            unwrap_share(stored.sealed, address, private)
            for address, private in zip(members, w.custodians, strict=True)
        ]
        expected = canonical_json(json.loads((EXAMPLES / "observation-example1.json").read_text()))
        assert open_with_shares(stored.sealed, shares[1:]) == expected
        with pytest.raises(Exception, match="share"):
            open_with_shares(stored.sealed, shares[:1])

    run(tmp_path, scenario)


def test_importing_a_known_resource_again_writes_its_next_version(tmp_path: Path) -> None:
    source = json.loads((EXAMPLES / "observation-example1.json").read_text())

    async def scenario(w: World) -> None:
        first = tmp_path / "first.json"
        first.write_text(json.dumps(source))
        await _import(w, "carol", first)
        amended = tmp_path / "amended.json"
        amended.write_text(json.dumps({**source, "status": "amended"}))
        pool = w.pool()
        patient = key("patient:carol").address
        report = await import_paths(
            w.writer, pool, patient, patient_key(w.node, patient), [amended]
        )
        pool.close()
        (written,) = report.written
        versions = w.store.versions(written.record_id)
        assert [v.sealed.header.version for v in versions] == [1, 2]
        assert versions[1].sealed.header.previous == versions[0].sealed.header.digest
        latest = open_as_patient(versions[1].sealed, patient_private("carol"))
        assert json.loads(latest)["status"] == "amended"
        assert (
            json.loads(open_as_patient(versions[0].sealed, patient_private("carol")))["status"]
            == source["status"]
        )
        await w.checkpoint()
        assert verify_vault(w.store, w.node).ok

    run(tmp_path, scenario)


def test_one_file_with_two_versions_of_a_resource_is_written_in_order(tmp_path: Path) -> None:
    base = json.loads((EXAMPLES / "patient-example1.json").read_text())
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": base}, {"resource": {**base, "gender": "other"}}],
    }

    async def scenario(w: World) -> None:
        path = tmp_path / "bundle.json"
        path.write_text(json.dumps(bundle))
        report = await _import(w, "dave", path)
        assert [r.version for r in report.written] == [1, 2]  # type: ignore[attr-defined]
        await w.checkpoint()
        assert verify_vault(w.store, w.node).ok

    run(tmp_path, scenario)


def test_several_workers_write_the_same_as_one(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        report = await _import(w, "erin", EXAMPLES, workers=2)
        assert len(report.written) == len(valid_examples())  # type: ignore[attr-defined]
        await w.checkpoint()
        assert verify_vault(w.store, w.node).ok

    run(tmp_path, scenario, batch_records=16)


def test_an_unregistered_patient_or_author_is_refused(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        with pytest.raises(UnknownPatient, match="not a registered patient"):
            patient_key(w.node, key("nobody").address)
        from medledger.records.recipients import sealing_context

        with pytest.raises(UsageError, match="not a registered participant"):
            sealing_context(w.node, key("impostor"))

    run(tmp_path, scenario)


def test_a_batch_left_pending_by_a_crash_is_committed_on_recovery(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        patient = await w.add_patient("frank")
        pkey = patient_key(w.node, patient.address)
        body = json.loads((EXAMPLES / "observation-example2.json").read_bytes())
        jobs: list[Job] = [plan_new("crash.json", body, patient.address, pkey)]
        pool = w.pool()
        outcomes = [o async for chunk in pool.seal(jobs) for o in chunk]
        pool.close()
        (sealed,) = outcomes
        assert isinstance(sealed, Sealed)
        leaf = merkle.leaf_hash(sealed.sealed.commitment)
        # The crash: stored pending, never submitted.
        w.store.add_batch(0, leaf, [sealed], [[]])
        with pytest.raises(UsageError, match="pending"):
            await w.writer.write([], w.pool())
        fresh = RecordWriter(w.store, w.node, w.consortium.keys[0])
        assert await fresh.recover() == [0]
        assert await fresh.recover() == []
        await w.checkpoint()
        assert verify_vault(w.store, w.node).ok

    run(tmp_path, scenario)


def test_a_batch_committed_just_before_a_crash_is_only_marked_on_recovery(
    tmp_path: Path,
) -> None:
    async def scenario(w: World) -> None:
        await _import(w, "grace", EXAMPLES / "condition-example1.json")
        (batch,) = w.store.batches()
        from sqlalchemy import create_engine, text

        engine = create_engine(f"sqlite:///{tmp_path / 'vault.db'}")
        with engine.begin() as conn:
            conn.execute(text("UPDATE vault_batches SET status = 'pending', tx_id = NULL"))
        engine.dispose()
        size = w.node.size
        assert await w.writer.recover() == [0]
        assert w.node.size == size
        assert w.store.batches()[0] == batch

    run(tmp_path, scenario)


def test_the_ledger_learns_no_patient_and_no_health_data(tmp_path: Path) -> None:
    async def scenario(w: World) -> None:
        await _import(w, "hidden", EXAMPLES / "observation-example1.json", EXAMPLES)
        patient = key("patient:hidden").address
        await w.checkpoint()
        commits = [t for t in w.node.store.iter_txs() if t.tx_type == "records.commit"]
        assert commits
        for logged in commits:
            payload = json.loads(logged.raw)["payload"]
            assert set(payload) == {"vault", "batch", "count", "root"}
        state = b"".join(
            value for ns, _, value in w.node.store.state_entries() if ns.startswith("records.")
        )
        everything = b"".join(t.raw for t in commits) + state
        for secret in (
            patient[2:].lower().encode(),
            patient.encode(),
            b"Observation",
            b"vital-signs",
            b"Glucose",
            b"8867-4",
        ):
            assert secret not in everything

    run(tmp_path, scenario)
