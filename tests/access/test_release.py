"""Threshold release over a real node: the seed's case end to end, and every refusal."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from medledger.access import contract as access
from medledger.access.approval import Approval
from medledger.access.audit import audit_log
from medledger.access.custodian import Custodian
from medledger.access.errors import BadApproval, GrantRevoked, NoGrant, OutOfScope
from medledger.access.reader import read_record
from medledger.crypto.canonical import canonical_json
from medledger.crypto.errors import InsufficientShares
from medledger.crypto.keys import PrivateKey
from medledger.errors import TransportError
from medledger.ledger.contracts import identity
from medledger.records.importer import import_paths
from medledger.records.proof import CommittedRecord, committed_record
from medledger.records.recipients import patient_key
from tests.ledger.consortium import custodian_private, key
from tests.records.world import World, lab_result, world

DR_B = key("dr-b")


class Scene:
    """Hospital A wrote a lab result; its doctor and the patient approved Dr B's request."""

    def __init__(self, w: World, tmp_path: Path) -> None:
        self.w = w
        self.lab_path = tmp_path / "lab.json"
        self.lab_path.write_text(json.dumps(lab_result()))
        self.custodians = [
            Custodian(w.node, member, custodian_private(f"founder-{i}"))
            for i, member in enumerate(w.consortium.keys)
        ]

    async def setup(self) -> None:
        w = self.w
        await w.node.submit_payload(
            w.consortium.keys[1], identity.REGISTER_PARTICIPANT,
            {"address": DR_B.address, "role": "doctor"},
        )  # fmt: skip
        self.patient = await w.add_patient("seed")
        self.other = await w.add_patient("other")
        self.lab = await self._write(self.patient, self.lab_path)
        self.others_lab = await self._write(self.other, self.lab_path)
        policy = {
            "approvers": {"k_of": 2, "of": [{"patient": True}, {"person": w.author.address},
                                             {"role": "nurse"}]},
            "purposes": ["TREAT"],
            "max_duration_s": 86400,
        }  # fmt: skip
        await w.node.submit_payload(
            self.patient, access.SET_POLICY, {"category": "labs", "policy": policy}
        )
        self.grant = await self.granted(self.patient)

    async def _write(self, patient: PrivateKey, path: Path) -> CommittedRecord:
        w = self.w
        pool = w.pool()
        report = await import_paths(
            w.writer, pool, patient.address, patient_key(w.node, patient.address), [path]
        )
        pool.close()
        stored = w.store.get(report.written[0].record_id)
        return committed_record(stored, "0x" + w.store.vault_id.hex(), w.node)

    async def granted(self, patient: PrivateKey) -> bytes:
        w = self.w
        payload = {"patient": patient.address, "categories": ["labs"], "purpose": "TREAT",
                   "duration_s": 3600}  # fmt: skip
        outcome = await w.node.submit_payload(DR_B, access.REQUEST, payload)
        not_after = time.time_ns() // 10**6 + 3_600_000
        approval = Approval(w.node.network_id, outcome.tx_id, patient.address, DR_B.address,
                            not_after)  # fmt: skip
        approvals = [approval.signed_by(signer) for signer in (patient, w.author)]
        await w.node.submit_payload(
            DR_B, access.APPROVE, {"request": "0x" + outcome.tx_id.hex(), "approvals": approvals}
        )
        assert w.node.store.get(access.GRANT_NS, "0x" + outcome.tx_id.hex()) is not None
        return outcome.tx_id

    def receipts(self) -> int:
        return int(self.w.node.store.get(access.AUDIT_COUNT_NS, self.patient.address) or 0)


def run(tmp_path: Path, scenario: Callable[[Scene], Awaitable[None]]) -> None:
    async def main() -> None:
        async with world(tmp_path) as w:
            scene = Scene(w, tmp_path)
            await scene.setup()
            await scenario(scene)

    asyncio.run(main())


def test_the_seed_case_end_to_end(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        text = await read_record(DR_B, s.grant, s.lab, custodians=s.custodians, threshold=2)
        assert text == canonical_json(lab_result())
        assert s.receipts() == 3
        audit = s.w.node.store.get(access.AUDIT_NS, access.audit_key(s.patient.address, 0))
        assert (audit["reader"], audit["purpose"]) == (DR_B.address, "TREAT")
        assert [r["record"] for r in audit["records"]] == ["0x" + s.lab.commitment.hex()]

    run(tmp_path, scenario)


def test_with_only_t_minus_one_custodians_reachable_nothing_opens(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        class Unreachable:
            address = s.custodians[1].address

            async def release(self, ask: object) -> object:
                raise TransportError("custodian unreachable")

        reachable = [s.custodians[0], Unreachable(), Unreachable()]
        with pytest.raises(InsufficientShares, match="released by 1 of 3 custodians, 2 required"):
            await read_record(DR_B, s.grant, s.lab, custodians=reachable, threshold=2)  # type: ignore[arg-type]

    run(tmp_path, scenario)


def test_no_grant_no_share_and_no_receipt(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        with pytest.raises(InsufficientShares, match="no grant"):
            await read_record(DR_B, b"\x01" * 32, s.lab, custodians=s.custodians, threshold=2)
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_only_the_grant_holder_may_ask(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        with pytest.raises(InsufficientShares, match="not the grant's holder"):
            await read_record(key("thief"), s.grant, s.lab, custodians=s.custodians, threshold=2)
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_another_patients_record_is_out_of_scope(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        with pytest.raises(InsufficientShares, match="is not in the grant's scope"):
            await read_record(DR_B, s.grant, s.others_lab, custodians=s.custodians, threshold=2)

    run(tmp_path, scenario)


def test_a_revoked_grant_releases_nothing(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        await s.w.node.submit_payload(s.patient, access.REVOKE, {"grant": "0x" + s.grant.hex()})
        with pytest.raises(InsufficientShares, match="revoked"):
            await read_record(DR_B, s.grant, s.lab, custodians=s.custodians, threshold=2)
        assert s.receipts() == 0

    run(tmp_path, scenario)


def test_a_custodian_releases_nothing_until_its_receipt_is_in_the_log(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        custodian = s.custodians[0]
        node = s.w.node
        original = node.submit_payload

        async def ordering_down(*args: object, **kwargs: object) -> object:
            raise TransportError("ordering service unreachable")

        node.submit_payload = ordering_down  # type: ignore[method-assign,assignment]
        try:
            with pytest.raises(InsufficientShares, match="ordering service unreachable"):
                await read_record(DR_B, s.grant, s.lab, custodians=[custodian], threshold=1)
        finally:
            node.submit_payload = original  # type: ignore[method-assign]
        assert s.receipts() == 0

    run(tmp_path, scenario)


@pytest.mark.parametrize("error", [NoGrant, BadApproval, OutOfScope, GrantRevoked])
def test_refusals_are_ledger_rejections_with_stable_codes(error: type[Exception]) -> None:
    from medledger.ledger.errors import rejection_from_code

    assert type(rejection_from_code(error.code, "x")) is error  # type: ignore[attr-defined]


def test_the_patient_audit_lists_every_read_with_its_proof(tmp_path: Path) -> None:
    async def scenario(s: Scene) -> None:
        await read_record(DR_B, s.grant, s.lab, custodians=s.custodians[:2], threshold=2)
        await s.w.checkpoint()
        await read_record(DR_B, s.grant, s.lab, custodians=s.custodians[1:], threshold=2)
        # Two reads, each one row with the receipts of the two custodians that released.
        first, second = audit_log(s.w.node, s.patient.address)
        assert (first.reader, second.reader) == (DR_B.address, DR_B.address)
        header = s.lab.sealed.header
        assert (first.record_id, first.version) == (header.record_id.hex(), header.version)
        assert (first.category, first.resource_type) == (header.category, header.resource_type)
        assert first.read != second.read and first.proven and not second.proven
        assert first.complete and first.threshold == 2
        assert all(r.proof for r in first.receipts)
        assert [r.custodian for r in first.receipts] == [c.address for c in s.custodians[:2]]
        assert [r.custodian for r in second.receipts] == [c.address for c in s.custodians[1:]]
        assert audit_log(s.w.node, s.other.address) == []
        # A read one custodian alone answered opened nothing: its row says so.
        with pytest.raises(InsufficientShares):
            await read_record(DR_B, s.grant, s.lab, custodians=s.custodians[:1], threshold=2)
        *_, lone = audit_log(s.w.node, s.patient.address)
        assert not lone.complete and len(lone.receipts) == 1

    run(tmp_path, scenario)
