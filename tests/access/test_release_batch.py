"""One release covers a query's records: one receipt per custodian per release, and every
way to stretch, shrink, reorder or swap its records is refused."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from medledger.access import contract as access
from medledger.access.audit import audit_log
from medledger.access.custodian import ReleaseAsk
from medledger.access.custody import Collected
from medledger.access.errors import OutOfScope
from medledger.access.reader import read_records
from medledger.access.receipts import pack_record, receipt_payload, unpack_record
from medledger.access.release import MAX_RELEASE_RECORDS, Release
from medledger.crypto import ecies
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import DecryptionError
from medledger.ledger.config import LedgerLimits
from medledger.ledger.errors import InvalidPayload, TransactionRejected
from medledger.records.importer import import_paths
from medledger.records.proof import CommittedRecord, committed_record
from medledger.records.recipients import patient_key
from tests.access.test_release import DR_B, Scene, run
from tests.records.world import lab_result

COUNT = MAX_RELEASE_RECORDS + 10  # two releases


def _labs(count: int) -> dict[str, Any]:
    entries = [{"resource": {**lab_result(), "id": f"lab-{n}"}} for n in range(count)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


async def _chart(s: Scene, tmp_path: Path, count: int) -> list[CommittedRecord]:
    w = s.w
    path = tmp_path / "labs.json"
    path.write_text(json.dumps(_labs(count)))
    pool = w.pool()
    report = await import_paths(
        w.writer, pool, s.patient.address, patient_key(w.node, s.patient.address), [path]
    )
    pool.close()
    vault = "0x" + w.store.vault_id.hex()
    return [committed_record(w.store.get(r.record_id), vault, w.node) for r in report.written]


def _receipt_txs(s: Scene) -> int:
    return sum(1 for tx in s.w.node.store.iter_txs() if tx.tx_type == access.RECEIPT)


def test_a_query_s_records_take_one_receipt_per_custodian_per_release(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        records = await _chart(s, tmp_path, COUNT)
        before = _receipt_txs(s)
        opened = await read_records(DR_B, s.grant, records, custodians=s.custodians, threshold=2)
        assert len(opened) == COUNT
        assert all(json.loads(text)["id"] == f"lab-{n}" for n, text in enumerate(opened))
        # 3 custodians x 2 releases, where one receipt per record would be 3 x 160.
        assert _receipt_txs(s) - before == 6
        reads = audit_log(s.w.node, s.patient.address)
        assert len(reads) == COUNT and all(r.complete for r in reads)
        assert {r.record_id for r in reads} == {r.sealed.header.record_id.hex() for r in records}
        assert len({r.read for r in reads}) == 2

    run(tmp_path, scenario)


def _ask(s: Scene, records: list[CommittedRecord], signed: list[CommittedRecord]) -> ReleaseAsk:
    """Dr B's release request signed for ``signed``, sent with ``records``."""
    one_time = ecies.generate_private_key()
    release = Release.of(
        s.w.node.network_id,
        s.grant,
        [r.commitment for r in signed],
        ecies.public_bytes(one_time),
        time.time_ns() // 10**6 + 60_000,
    )
    return ReleaseAsk(release, release.sign(DR_B), tuple(records))


@pytest.mark.parametrize(
    ("sent", "signed", "error"),
    [
        ("a b", "a c", OutOfScope),  # a record swapped for another
        ("b a", "a b", OutOfScope),  # reordered
        ("a", "a b", OutOfScope),  # fewer than signed
        ("a b c", "a b", OutOfScope),  # one more than signed
        ("a x", "a x", OutOfScope),  # another patient's record among the patient's
        ("a m", "a m", OutOfScope),  # a category the grant does not cover
    ],
)
def test_a_release_covers_exactly_the_records_its_reader_signed(
    tmp_path: Path, sent: str, signed: str, error: type[Exception]
) -> None:
    async def scenario(s: Scene) -> None:
        a, b, c = await _chart(s, tmp_path, 3)
        mental = dataclasses.replace(
            a,
            sealed=dataclasses.replace(
                a.sealed, header=dataclasses.replace(a.sealed.header, category="mental-health")
            ),
        )
        named = {"a": a, "b": b, "c": c, "x": s.others_lab, "m": mental}
        before = s.receipts()
        ask = _ask(s, [named[n] for n in sent.split()], [named[n] for n in signed.split()])
        with pytest.raises(error):
            await s.custodians[0].release(ask)
        assert s.receipts() == before  # nothing logged, nothing released

    run(tmp_path, scenario)


def test_a_share_opens_only_for_its_own_record(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        a, b = await _chart(s, tmp_path, 2)
        one_time = ecies.generate_private_key()
        release = Release.of(
            s.w.node.network_id,
            s.grant,
            [a.commitment, b.commitment],
            ecies.public_bytes(one_time),
            time.time_ns() // 10**6 + 60_000,
        )
        custodian = s.custodians[0]
        answer = await custodian.release(ReleaseAsk(release, release.sign(DR_B), (a, b)))
        share_a, share_b = answer.sealed
        got = Collected(3)
        got.add_share(ecies.Opener(one_time), release, custodian.address, a.commitment, share_a)
        with pytest.raises(DecryptionError):  # b's share passed off as a's
            got.add_share(ecies.Opener(one_time), release, custodian.address, a.commitment, share_b)

    run(tmp_path, scenario)


def test_every_node_rechecks_a_receipt_s_records(tmp_path: Path) -> None:
    """A custodian that pads, swaps or garbles a receipt's records is refused by the
    ledger, whatever its own node did."""

    async def scenario(s: Scene) -> None:
        a, b = await _chart(s, tmp_path, 2)
        release = Release.of(
            s.w.node.network_id,
            s.grant,
            [a.commitment, b.commitment],
            bytes(32),
            time.time_ns() // 10**6 + 60_000,
        )
        asked = release.sign(DR_B)
        custodian = s.w.consortium.keys[0]

        async def submit(payload: dict[str, Any]) -> None:
            await s.w.node.submit_payload(custodian, access.RECEIPT, payload)

        honest = receipt_payload(
            s.grant, records=[a.sealed, b.sealed], release=release, asked=asked
        )
        padded = {**honest, "records": [*honest["records"], pack_record(s.lab.sealed)]}
        swapped = {**honest, "records": honest["records"][::-1]}
        garbled = {**honest, "records": [[honest["records"][0][0][:-4], "Observation", "labs"]]}
        too_many = {**honest, "records": honest["records"] * (MAX_RELEASE_RECORDS // 2 + 1)}
        for payload, code in (
            (padded, "bad_approval"),
            (swapped, "bad_approval"),
            (garbled, "invalid_payload"),
            (too_many, "invalid_payload"),
        ):
            with pytest.raises(TransactionRejected) as caught:
                await submit(payload)
            assert caught.value.code == code
        await submit(honest)
        assert s.receipts() == 1

    run(tmp_path, scenario)


def test_a_packed_record_round_trips_and_bad_ones_are_refused() -> None:
    from tests.access.chain import LAB, PATIENT

    packed = pack_record(LAB)
    header, signature, salt = unpack_record(packed, LAB.header.network_id, PATIENT.address)
    assert (header, signature, salt) == (LAB.header, LAB.signature, LAB.salt)
    for bad in (
        [packed[0]],
        [packed[0][:-4], *packed[1:]],
        ["!!", *packed[1:]],
        "x",
        [packed[0], 1, "labs"],
    ):
        with pytest.raises(InvalidPayload):
            unpack_record(bad, LAB.header.network_id, PATIENT.address)


def test_a_full_receipt_fits_in_one_transaction() -> None:
    from tests.access.chain import LAB

    widest = dataclasses.replace(
        LAB,
        header=dataclasses.replace(
            LAB.header, resource_type="MedicinalProductAuthorization", category="mental-health"
        ),
    )
    release = Release.of(7, bytes(32), [widest.commitment] * MAX_RELEASE_RECORDS, bytes(32), 1)
    payload = receipt_payload(
        bytes(32), records=[widest] * MAX_RELEASE_RECORDS, release=release, asked=bytes(65)
    )
    # The signed wire form adds the envelope (type, sender, nonce, signature): under 1 KiB.
    assert len(canonical_json(payload)) + 1024 < LedgerLimits().max_tx_bytes
